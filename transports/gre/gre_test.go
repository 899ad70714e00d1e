package gre

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

var (
	swAddr = netip.MustParseAddr("127.0.0.2")
	peer3  = netip.MustParseAddr("127.0.0.3")
	peer4  = netip.MustParseAddr("127.0.0.4")
)

// umlSide is what UML's gre transport does: a raw GRE socket bound to its
// own address, connected to the switch's.
type umlSide = porttest.TunnelPeer

func openUML(t testing.TB, ns *nstest.NS, local, remote netip.Addr, hasKey bool, txKey uint32, seq bool) *umlSide {
	t.Helper()
	hdr, _ := Encode(hasKey, txKey, seq)
	var fd int
	err := ns.Do(func() (err error) {
		fd, err = porttest.DialTunnel(unix.SOCK_RAW, IPProto, netip.AddrPortFrom(local, 0), netip.AddrPortFrom(remote, 0))
		return err
	})
	if err != nil {
		t.Fatalf("peer socket: %v", err)
	}
	return porttest.NewTunnelPeer(t, fd, fd, hdr, local.Is4(), func(pkt []byte) (int, error) {
		h, err := Parse(pkt)
		return h.Len, err
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

func TestConformance(t *testing.T) {
	for _, c := range []struct {
		name        string
		local, peer string
		key, seq    bool
	}{{"ipv4", "127.0.0.2", "127.0.0.3", false, false}, {"ipv4 key sequence", "127.0.0.2", "127.0.0.3", true, true},
		{"ipv6", "fd00::2", "fd00::3", true, false}} {
		t.Run(c.name, func(t *testing.T) {
			porttest.Run(t, func(t *testing.T) *porttest.Harness {
				ns := nstest.New(t)
				ns.AddLocal6(t, "fd00::2", "fd00::3")
				local, remote := netip.MustParseAddr(c.local), netip.MustParseAddr(c.peer)
				reg := porttest.NewCapture(2)
				tb := tunnel.NewTable(reg, porttest.Quiet())
				openIn(t, ns, tb, reg, Config{Options: Options{Addrs: tunnel.Addrs{Src: local, Dst: remote}, HasKey: c.key, RxKey: 11, TxKey: 12, Sequence: c.seq}, Common: portkind.Common{Depth: 32, MaxFrame: 1518}})
				u := openUML(t, ns, remote, local, c.key, 11, c.seq)
				return &porttest.Harness{Port: <-reg.Ports, Receiver: <-reg.Receivers, ID: 2, PeerSend: u.Send, PeerRecv: u.Recv,
					EmptyAndOversize: true}
			})
		})
	}
}

func ether(dst, src frame.MAC, tag byte) []byte { return porttest.Ether(dst, src, 60, tag) }

func mac(i int) frame.MAC { return frame.MAC{0xfe, 0xfd, 0x0c, 0, 0, byte(i)} }

// Several peers, and two keys from one peer, share the switch's address:
// every packet reaches its own port, and only its own.
func TestManyPeersOnOneAddress(t *testing.T) {
	ns := nstest.New(t)
	sw, tb := porttest.NewTunnelSwitch(t)
	openIn(t, ns, tb, sw, Config{Options: Options{Addrs: tunnel.Addrs{Src: swAddr, Dst: peer3}}, Common: portkind.Common{Depth: 64, MaxFrame: 1518}})
	key50 := openIn(t, ns, tb, sw, Config{Options: Options{Addrs: tunnel.Addrs{Src: swAddr, Dst: peer4}, HasKey: true, RxKey: 5, TxKey: 50}, Common: portkind.Common{Depth: 64, MaxFrame: 1518}})
	openIn(t, ns, tb, sw, Config{Options: Options{Addrs: tunnel.Addrs{Src: swAddr, Dst: peer4}, HasKey: true, RxKey: 6, TxKey: 60}, Common: portkind.Common{Depth: 64, MaxFrame: 1518}})
	if err := ns.Do(func() error {
		_, err := Open(tb, sw, Config{Options: Options{Addrs: tunnel.Addrs{Src: swAddr, Dst: peer4}, HasKey: true, RxKey: 6, TxKey: 1}, Common: portkind.Common{Depth: 64, MaxFrame: 1518}})
		return err
	}); err == nil {
		t.Fatal("a second port with the same peer and key was accepted")
	}
	if n := len(tb.Stats()); n != 1 {
		t.Fatalf("%d endpoints for one local address", n)
	}
	a := openUML(t, ns, peer3, swAddr, false, 0, false)
	b := openUML(t, ns, peer4, swAddr, true, 5, false)
	c := openUML(t, ns, peer4, swAddr, true, 6, false)
	// b and c share 127.0.0.4: each receives every GRE packet for that
	// address, and keeps those with its own key, as UML does.
	recvKey := func(u *umlSide, key uint32, tag byte) {
		t.Helper()
		buf := make([]byte, 2048)
		deadline := time.Now().Add(2 * time.Second)
		for time.Now().Before(deadline) {
			n, err := pollfd.ReadTimeout(u.Fd, buf, time.Until(deadline))
			if err != nil {
				break
			}
			pkt := buf[int(buf[0]&0x0f)*4 : n]
			if h, _ := Parse(pkt); h.Key == key && pkt[h.Len+14] == tag {
				return
			}
		}
		t.Fatalf("no frame %d with key %d", tag, key)
	}
	a.Send(ether(frame.Broadcast, mac(1), 1))
	recvKey(b, 50, 1)
	recvKey(c, 60, 1)
	b.Send(ether(mac(1), mac(2), 2))
	a.Expect(t, 2)
	c.Send(ether(mac(2), mac(3), 3)) // unicast to b's address: goes out with b's key only
	recvKey(b, 50, 3)
	porttest.Eventually(t, "the key-50 port sent 2 frames", func() bool { return sw.StatsOf(key50.Name()).TxFrames == 2 })
}

// Bad packets over the real socket: each counted, on its port where it has
// one, and none forwarded; the good peer is served throughout.
func TestBadPackets(t *testing.T) {
	ns := nstest.New(t)
	porttest.TunnelSwitchWithoutLeaks(t, func(t *testing.T, sw *porttest.Switch, tb *tunnel.Table) { badPackets(t, ns, sw, tb) })
}

func badPackets(t *testing.T, ns *nstest.NS, sw *porttest.Switch, tb *tunnel.Table) {
	keyed := openIn(t, ns, tb, sw, Config{Options: Options{Addrs: tunnel.Addrs{Src: swAddr, Dst: peer3}, HasKey: true, RxKey: 7, TxKey: 7, Sequence: true}, Common: portkind.Common{Depth: 64, MaxFrame: 1518}})
	openIn(t, ns, tb, sw, Config{Options: Options{Addrs: tunnel.Addrs{Src: swAddr, Dst: peer4}}, Common: portkind.Common{Depth: 64, MaxFrame: 1518}})
	bad := openUML(t, ns, peer3, swAddr, true, 7, true)
	good := openUML(t, ns, peer4, swAddr, false, 0, false)
	stranger := openUML(t, ns, netip.MustParseAddr("127.0.0.9"), swAddr, false, 0, false)

	word := func(flags uint16) []byte {
		return binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(nil, flags), ProtoTEB)
	}
	f := ether(frame.Broadcast, mac(3), 1)
	sends := []struct {
		name string
		pkt  []byte
		want fabric.DropReason
	}{
		{"truncated header", []byte{0x30, 0x00}, fabric.DropDecap},
		{"header only, cut inside the key", word(flagKey | flagSequence), fabric.DropDecap},
		{"checksum flag", append(append(word(flagChecksum|flagKey|flagSequence), make([]byte, 12)...), f...), fabric.DropDecap},
		{"no sequence flag", append(append(word(flagKey), 0, 0, 0, 7), f...), fabric.DropDecap},
		{"wrong protocol", append([]byte{0x30, 0x00, 0x08, 0x00, 0, 0, 0, 7, 0, 0, 0, 1}, f...), fabric.DropDecap},
		{"wrong key", append(append(word(flagKey|flagSequence), 0, 0, 0, 8, 0, 0, 0, 1), f...), fabric.DropAuth},
	}
	for _, s := range sends {
		if err := bad.SendRaw(s.pkt); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
	}
	stranger.Send(ether(frame.Broadcast, mac(9), 9))
	good.Send(ether(frame.Broadcast, mac(4), 4))
	bad.Expect(t, 4) // the good peer is served
	good.ExpectNothing(t)
	porttest.Eventually(t, "5 decap and 1 bad-key drops on the keyed port, 1 unknown on the endpoint", func() bool {
		st := sw.StatsOf(keyed.Name())
		return st.Drops[fabric.DropDecap] == 5 && st.Drops[fabric.DropAuth] == 1 && tb.Stats()[0].Unknown == 1
	})
}

// The socket closes with the last port on it.
func TestEndpointClosesWithItsLastPort(t *testing.T) {
	ns := nstest.New(t)
	sw, tb := porttest.NewTunnelSwitch(t)
	var ps []*tunnel.Port
	for _, peer := range []netip.Addr{peer3, peer4} {
		var p *tunnel.Port
		ns.Do(func() (err error) {
			p, err = Open(tb, sw, Config{Options: Options{Addrs: tunnel.Addrs{Src: swAddr, Dst: peer}}, Common: portkind.Common{Depth: 64, MaxFrame: 1518}})
			return
		})
		ps = append(ps, p)
	}
	sw.Detach(ps[0])
	if len(tb.Stats()) != 1 {
		t.Fatal("endpoint closed while a port still uses it")
	}
	sw.Detach(ps[1])
	if len(tb.Stats()) != 0 {
		t.Fatal("endpoint left open after its last port")
	}
}

// BenchmarkSwitchOverGRE: two GRE peers of one switch address, through a
// real switch, each client as UML's transport sends.
func BenchmarkSwitchOverGRE(b *testing.B) {
	ns := nstest.New(b)
	sw := porttest.NewSwitch(b, fabric.Config{})
	tb := tunnel.NewTable(sw, porttest.Quiet())
	var peers []porttest.BenchPeer
	for _, peer := range []netip.Addr{peer3, peer4} {
		openIn(b, ns, tb, sw, Config{Options: Options{Addrs: tunnel.Addrs{Src: swAddr, Dst: peer}}, Common: portkind.Common{Depth: 64, MaxFrame: 1518}})
		u := openUML(b, ns, peer, swAddr, false, 0, false)
		peers = append(peers, porttest.BenchPeer{Fd: u.Fd, Send: porttest.WithHeader(u.Hdr), Per: 2})
	}
	porttest.BenchSwitch(b, peers[0], peers[1], mac(1), mac(2))
}
