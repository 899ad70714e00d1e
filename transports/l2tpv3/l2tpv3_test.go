package l2tpv3

import (
	"encoding/binary"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/umlswitch/umlswitch/fabric"
	"github.com/umlswitch/umlswitch/frame"
	"github.com/umlswitch/umlswitch/internal/nstest"
	"github.com/umlswitch/umlswitch/internal/pollfd"
	"github.com/umlswitch/umlswitch/transports/portkind"
	"github.com/umlswitch/umlswitch/transports/porttest"
	"github.com/umlswitch/umlswitch/tunnel"
)

// umlSide is what UML's l2tpv3 transport does: a UDP or raw IP socket of
// its own, connected to the switch, sending its header in front of each
// frame.
type umlSide = porttest.TunnelPeer

func openUML(t testing.TB, ns *nstest.NS, cfg Config) *umlSide {
	t.Helper()
	// The UML's view: its tx is the switch's rx.
	l := cfg.layout()
	hdr, _ := Encode(l, cfg.RxSession, cfg.RxCookie)
	typ, proto := unix.SOCK_DGRAM, 0
	if !cfg.UDP {
		typ, proto = unix.SOCK_RAW, IPProto
	}
	var fd int
	err := ns.Do(func() (err error) {
		fd, err = porttest.DialTunnel(typ, proto, netip.AddrPortFrom(cfg.Dst, cfg.DstPort), netip.AddrPortFrom(cfg.Src, cfg.SrcPort))
		return err
	})
	if err != nil {
		t.Fatalf("peer socket: %v", err)
	}
	return porttest.NewTunnelPeer(t, fd, fd, hdr, !cfg.UDP && cfg.Dst.Is4(), func(pkt []byte) (int, error) {
		if len(pkt) < l.Len() {
			return 0, ErrTruncated
		}
		return l.Len(), nil
	})
}

func openIn(t testing.TB, ns *nstest.NS, tb *tunnel.Table, reg fabric.Registry, cfg Config) *tunnel.Port {
	t.Helper()
	var p *tunnel.Port
	if err := ns.Do(func() (err error) { p, err = Open(tb, reg, cfg); return }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Detach(p) })
	return p
}

func addrs(t *testing.T) *nstest.NS {
	ns := nstest.New(t)
	ns.AddLocal6(t, "fd00::2", "fd00::4")
	return ns
}

var (
	sw4, peer4 = netip.MustParseAddr("127.0.0.2"), netip.MustParseAddr("127.0.0.4")
	sw6, peer6 = netip.MustParseAddr("fd00::2"), netip.MustParseAddr("fd00::4")
)

func TestConformance(t *testing.T) {
	for _, c := range []struct {
		name string
		cfg  Config
	}{
		{"udp ipv4", Config{Options: Options{Addrs: tunnel.Addrs{Src: sw4, Dst: peer4}, UDP: true, SrcPort: 17001, DstPort: 17002, RxSession: 11, TxSession: 12}}},
		{"udp ipv6 cookie64 counter", Config{Options: Options{Addrs: tunnel.Addrs{Src: sw6, Dst: peer6}, UDP: true, SrcPort: 17001, DstPort: 17002, RxSession: 0xffffffff, TxSession: 12, HasCookie: true, Cookie64: true, RxCookie: 1 << 60, TxCookie: 5, Counter: true}}},
		{"ip ipv4 cookie", Config{Options: Options{Addrs: tunnel.Addrs{Src: sw4, Dst: peer4}, RxSession: 21, TxSession: 22, HasCookie: true, RxCookie: 0xabcd, TxCookie: 0xdcba}}},
		{"ip ipv6 counter pinned", Config{Options: Options{Addrs: tunnel.Addrs{Src: sw6, Dst: peer6}, RxSession: 21, TxSession: 22, Counter: true, PinCounter: true}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			porttest.Run(t, func(t *testing.T) *porttest.Harness {
				ns := addrs(t)
				reg := porttest.NewCapture(3)
				cfg := c.cfg
				cfg.Depth, cfg.MaxFrame = 32, 1518
				openIn(t, ns, tunnel.NewTable(reg, porttest.Quiet()), reg, cfg)
				u := openUML(t, ns, cfg)
				return &porttest.Harness{Port: <-reg.Ports, Receiver: <-reg.Receivers, ID: 3, PeerSend: u.Send, PeerRecv: u.Recv,
					EmptyAndOversize: true}
			})
		})
	}
}

func ether(src frame.MAC, tag byte) []byte { return porttest.Ether(frame.Broadcast, src, 60, tag) }

// Sessions share one UDP socket; bad packets are counted on their session's
// port, or on the endpoint when no session matches; good ones flow.
func TestSessionsShareASocketAndBadPacketsAreCounted(t *testing.T) {
	ns := addrs(t)
	porttest.TunnelSwitchWithoutLeaks(t, func(t *testing.T, sw *porttest.Switch, tb *tunnel.Table) { sessionsAndBadPackets(t, ns, sw, tb) })
}

func sessionsAndBadPackets(t *testing.T, ns *nstest.NS, sw *porttest.Switch, tb *tunnel.Table) {
	a := Config{Options: Options{Addrs: tunnel.Addrs{Src: sw4, Dst: peer4}, UDP: true, SrcPort: 17001, DstPort: 17002, RxSession: 11, TxSession: 12, HasCookie: true, RxCookie: 0x1111, TxCookie: 0x2222, Counter: true}, Common: portkind.Common{Depth: 64, MaxFrame: 1518}}
	b := Config{Options: Options{Addrs: tunnel.Addrs{Src: sw4, Dst: peer4}, UDP: true, SrcPort: 17001, DstPort: 17003, RxSession: 21, TxSession: 22}, Common: portkind.Common{Depth: 64, MaxFrame: 1518}}
	pa := openIn(t, ns, tb, sw, a)
	openIn(t, ns, tb, sw, b)
	if len(tb.Stats()) != 1 {
		t.Fatalf("%d endpoints for one local address", len(tb.Stats()))
	}
	dup := b
	dup.DstPort = 17009
	if err := ns.Do(func() error { _, err := Open(tb, sw, dup); return err }); err == nil {
		t.Fatal("a second port with session 21 on the same socket was accepted")
	}
	ua, ub := openUML(t, ns, a), openUML(t, ns, b)
	f := ether(frame.MAC{2, 0, 0, 0, 0, 1}, 1)

	ua.Send(f)
	buf := make([]byte, 2048)
	if n, err := ub.Recv(buf, 2*time.Second); err != nil || n != 60 || buf[14] != 1 {
		t.Fatalf("session 21 did not get session 11's frame: %d %v", n, err)
	}
	hdr := func(session uint32, cookie uint32) []byte {
		h := binary.BigEndian.AppendUint32(nil, dataWord)
		h = binary.BigEndian.AppendUint32(h, session)
		return binary.BigEndian.AppendUint32(h, cookie)
	}
	ua.SendRaw(append(append(hdr(11, 0x9999), 0, 0, 0, 1), f...)) // wrong cookie
	ua.SendRaw(hdr(11, 0x1111))                                   // cut before the counter
	ua.SendRaw(append(append(hdr(77, 0x1111), 0, 0, 0, 1), f...)) // unknown session
	ua.SendRaw([]byte{0, 3})                                      // not even a session
	ub.Send(ether(frame.MAC{2, 0, 0, 0, 0, 2}, 2))
	if n, err := ua.Recv(buf, 2*time.Second); err != nil || n != 60 || buf[14] != 2 {
		t.Fatalf("session 11 not served after bad packets: %d %v", n, err)
	}
	porttest.Eventually(t, "1 bad-key and 1 decap drop on session 11, 2 unknown on the endpoint", func() bool {
		st := sw.StatsOf(pa.Name())
		return st.Drops[fabric.DropAuth] == 1 && st.Drops[fabric.DropDecap] == 1 && tb.Stats()[0].Unknown == 2
	})
	if n, err := ub.Recv(buf, 100*time.Millisecond); err == nil {
		t.Fatalf("a bad packet was forwarded (%d bytes)", n)
	}
}

// The counter starts at 1 and counts every frame, as UML's does.
func TestCounterCounts(t *testing.T) {
	ns := addrs(t)
	sw, tb := porttest.NewTunnelSwitch(t)
	a := Config{Options: Options{Addrs: tunnel.Addrs{Src: sw4, Dst: peer4}, UDP: true, SrcPort: 17001, DstPort: 17002, RxSession: 11, TxSession: 12, Counter: true}, Common: portkind.Common{Depth: 64, MaxFrame: 1518}}
	b := Config{Options: Options{Addrs: tunnel.Addrs{Src: sw4, Dst: peer4}, UDP: true, SrcPort: 17001, DstPort: 17003, RxSession: 21, TxSession: 22}, Common: portkind.Common{Depth: 64, MaxFrame: 1518}}
	openIn(t, ns, tb, sw, a)
	openIn(t, ns, tb, sw, b)
	ua, ub := openUML(t, ns, a), openUML(t, ns, b)
	for i := 0; i < 3; i++ {
		ub.Send(ether(frame.MAC{2, 0, 0, 0, 0, 2}, byte(i)))
	}
	for want := uint32(1); want <= 3; want++ {
		buf := make([]byte, 2048)
		n, err := pollfd.ReadTimeout(ua.Fd, buf, 2*time.Second)
		if err != nil || n < 12 {
			t.Fatal(err)
		}
		if got := binary.BigEndian.Uint32(buf[8:]); got != want {
			t.Fatalf("counter %d, want %d", got, want)
		}
	}
}

// BenchmarkSwitchOverL2TPv3: two sessions on one UDP socket, through a real
// switch, each client as UML's transport sends.
func BenchmarkSwitchOverL2TPv3(b *testing.B) {
	for _, udp := range []bool{true, false} {
		b.Run(map[bool]string{true: "udp", false: "ip"}[udp], func(b *testing.B) {
			ns := nstest.New(b)
			sw := porttest.NewSwitch(b, fabric.Config{})
			tb := tunnel.NewTable(sw, porttest.Quiet())
			a := Config{Options: Options{Addrs: tunnel.Addrs{Src: sw4, Dst: peer4}, UDP: udp, SrcPort: 17001, DstPort: 17002, RxSession: 11, TxSession: 12}, Common: portkind.Common{Depth: 64, MaxFrame: 1518}}
			c := Config{Options: Options{Addrs: tunnel.Addrs{Src: sw4, Dst: netip.MustParseAddr("127.0.0.5")}, UDP: udp, SrcPort: 17001, DstPort: 17003, RxSession: 21, TxSession: 22}, Common: portkind.Common{Depth: 64, MaxFrame: 1518}}
			peers := make([]porttest.BenchPeer, 2)
			for i, cfg := range []Config{a, c} {
				openIn(b, ns, tb, sw, cfg)
				u := openUML(b, ns, cfg)
				peers[i] = porttest.BenchPeer{Fd: u.Fd, Send: porttest.WithHeader(u.Hdr), Per: 2}
			}
			porttest.BenchSwitch(b, peers[0], peers[1], frame.MAC{2, 0, 0, 0, 0, 1}, frame.MAC{2, 0, 0, 0, 0, 2})
		})
	}
}

// A session takes packets from its peer alone: a well-formed packet with
// the right session and cookie from another UDP port of the peer's
// address, or from another address, is counted on the endpoint and
// forwarded nowhere; the peer's own still flow. Over IP, the address is
// checked.
func TestOnlyTheSessionsPeer(t *testing.T) {
	for _, udp := range []bool{true, false} {
		t.Run(map[bool]string{true: "udp", false: "ip"}[udp], func(t *testing.T) {
			ns := addrs(t)
			sw, tb := porttest.NewTunnelSwitch(t)
			a := Config{Options: Options{Addrs: tunnel.Addrs{Src: sw4, Dst: peer4}, UDP: udp, SrcPort: 17001, DstPort: 17002, RxSession: 11, TxSession: 12, HasCookie: true, RxCookie: 0x1111, TxCookie: 0x2222}, Common: portkind.Common{Depth: 64, MaxFrame: 1518}}
			b := Config{Options: Options{Addrs: tunnel.Addrs{Src: sw4, Dst: netip.MustParseAddr("127.0.0.5")}, UDP: udp, SrcPort: 17001, DstPort: 17003, RxSession: 21, TxSession: 22}, Common: portkind.Common{Depth: 64, MaxFrame: 1518}}
			pa := openIn(t, ns, tb, sw, a)
			openIn(t, ns, tb, sw, b)
			ua, ub := openUML(t, ns, a), openUML(t, ns, b)
			// Intruders: a's address from another UDP port, and another
			// address (b's peer's, which has a session of its own).
			var intruders []Config
			if udp {
				other := a
				other.DstPort = 17009
				intruders = append(intruders, other)
			}
			other := a
			other.Dst, other.DstPort = b.Dst, 17010
			if !udp {
				other.DstPort = 0
			}
			intruders = append(intruders, other)
			f := ether(frame.MAC{2, 0, 0, 0, 0, 9}, 9)
			for _, c := range intruders {
				openUML(t, ns, c).Send(f) // a's session and cookie: all but the sender right
			}
			ub.ExpectNothing(t)
			porttest.Eventually(t, "the intruders' packets counted on the endpoint", func() bool {
				return tb.Stats()[0].Unknown == uint64(len(intruders))
			})
			if st := sw.StatsOf(pa.Name()); st.RxFrames != 0 || st.Dropped() != 0 {
				t.Errorf("session 11 was charged with the intruders' packets: %+v", st)
			}
			ua.Send(ether(frame.MAC{2, 0, 0, 0, 0, 1}, 1))
			ub.Expect(t, 1)
		})
	}
}
