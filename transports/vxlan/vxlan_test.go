package vxlan

import (
	"net/netip"
	"strings"
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
	sw6    = netip.MustParseAddr("fd00::2")
	peer6  = netip.MustParseAddr("fd00::3")
)

// remote is the far end of a port, as another VTEP sees it: a UDP socket
// bound to its own address and the VXLAN port, connected to the switch's.
// With ephemeral set it sends from a socket of its own on another port, as
// Linux does (it hashes flows to source ports), and still receives on the
// VXLAN port.
type remote = porttest.TunnelPeer

// openRemote makes the peer of a port with cfg (the switch's view).
func openRemote(t testing.TB, ns *nstest.NS, cfg Config, ephemeral bool) *remote {
	t.Helper()
	port := cfg.DstPort
	if port == 0 {
		port = DefaultPort
	}
	hdr := Encode(cfg.VNI)
	sw := netip.AddrPortFrom(cfg.Src, port)
	var fd, txFd int
	err := ns.Do(func() (err error) {
		if fd, err = porttest.DialTunnel(unix.SOCK_DGRAM, 0, netip.AddrPortFrom(cfg.Dst, port), sw); err != nil {
			return err
		}
		txFd = fd
		if ephemeral {
			txFd, err = porttest.DialTunnel(unix.SOCK_DGRAM, 0, netip.AddrPortFrom(cfg.Dst, 0), sw)
		}
		return err
	})
	if err != nil {
		t.Fatalf("peer socket: %v", err)
	}
	// Only the header the port sends is accepted.
	return porttest.NewTunnelPeer(t, fd, txFd, hdr[:], false, func(pkt []byte) (int, error) {
		if len(pkt) < HeaderLen || [HeaderLen]byte(pkt[:HeaderLen]) != hdr {
			return 0, ErrFlags
		}
		return HeaderLen, nil
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

// newNS is a namespace with IPv6 addresses for the switch and a peer on lo.
func newNS(t testing.TB) *nstest.NS {
	ns := nstest.New(t)
	ns.AddLocal6(t, sw6.String(), peer6.String())
	return ns
}

func TestConformance(t *testing.T) {
	for _, c := range []struct {
		name string
		cfg  Config
	}{
		{"ipv4", Config{Options: Options{Addrs: tunnel.Addrs{Src: swAddr, Dst: peer3}, VNI: 42}}},
		{"ipv4 port 8472 vni max", Config{Options: Options{Addrs: tunnel.Addrs{Src: swAddr, Dst: peer3}, VNI: MaxVNI, DstPort: 8472}}},
		{"ipv6", Config{Options: Options{Addrs: tunnel.Addrs{Src: sw6, Dst: peer6}, VNI: 0}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			porttest.Run(t, func(t *testing.T) *porttest.Harness {
				ns := newNS(t)
				reg := porttest.NewCapture(2)
				cfg := c.cfg
				cfg.Depth, cfg.MaxFrame = 32, 1518
				openIn(t, ns, tunnel.NewTable(reg, porttest.Quiet()), reg, cfg)
				u := openRemote(t, ns, cfg, true)
				return &porttest.Harness{Port: <-reg.Ports, Receiver: <-reg.Receivers, ID: 2, PeerSend: u.Send, PeerRecv: u.Recv,
					EmptyAndOversize: true}
			})
		})
	}
}

func TestOpenRefuses(t *testing.T) {
	reg := porttest.NewCapture(1)
	tb := tunnel.NewTable(reg, porttest.Quiet())
	ok := Config{Options: Options{Addrs: tunnel.Addrs{Src: swAddr, Dst: peer3}, VNI: 1}, Common: portkind.Common{Depth: 64, MaxFrame: 1518}}
	for _, c := range []struct {
		name   string
		change func(*Config)
		want   string
	}{
		{"vni over 24 bits", func(c *Config) { c.VNI = MaxVNI + 1 }, "24 bits"},
		{"no local", func(c *Config) { c.Src = netip.Addr{} }, "required"},
		{"no remote", func(c *Config) { c.Dst = netip.Addr{} }, "required"},
		{"mixed families", func(c *Config) { c.Dst = peer6 }, "family"},
		{"unspecified remote", func(c *Config) { c.Dst = netip.IPv4Unspecified() }, "unicast"},
		{"multicast remote", func(c *Config) { c.Dst = netip.MustParseAddr("239.1.1.1") }, "unicast"},
		{"zone", func(c *Config) {
			c.Src, c.Dst = netip.MustParseAddr("fe80::1%lo"), netip.MustParseAddr("fe80::2%lo")
		}, "zone"},
		{"depth 0", func(c *Config) { c.Depth = 0 }, "depth"},
		{"max frame 0", func(c *Config) { c.MaxFrame = 0 }, "largest frame"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := ok
			c.change(&cfg)
			_, err := Open(tb, reg, cfg)
			if err == nil || !strings.HasPrefix(err.Error(), "vxlan: ") || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Open(%+v) = %v, want an error about %q", cfg, err, c.want)
			}
		})
	}
	if len(tb.Stats()) != 0 || len(reg.Ports) != 0 {
		t.Fatal("a refused port left an endpoint or a port behind")
	}
}

func ether(dst, src frame.MAC, tag byte) []byte { return porttest.Ether(dst, src, 60, tag) }

func mac(i int) frame.MAC { return frame.MAC{0xfe, 0xfd, 0x0c, 0, 0, byte(i)} }

// Several peers, and two VNIs from one peer, share the switch's address:
// every packet reaches its own port, and only its own, whatever source
// port it came from.
func TestManyPeersAndVNIsOnOneAddress(t *testing.T) {
	for _, c := range []struct {
		name              string
		local, p1, p2, p3 netip.Addr
	}{
		{"ipv4", swAddr, peer3, peer4, peer4},
		{"ipv6", sw6, peer6, netip.MustParseAddr("fd00::4"), netip.MustParseAddr("fd00::4")},
	} {
		t.Run(c.name, func(t *testing.T) {
			ns := newNS(t)
			ns.AddLocal6(t, "fd00::4")
			sw, tb := porttest.NewTunnelSwitch(t)
			ca := Config{Options: Options{Addrs: tunnel.Addrs{Src: c.local, Dst: c.p1}, VNI: 7}, Common: portkind.Common{Depth: 64, MaxFrame: 1518}}
			cb := Config{Options: Options{Addrs: tunnel.Addrs{Src: c.local, Dst: c.p2}, VNI: 7}, Common: portkind.Common{Depth: 64, MaxFrame: 1518}}
			cc := Config{Options: Options{Addrs: tunnel.Addrs{Src: c.local, Dst: c.p3}, VNI: 8}, Common: portkind.Common{Depth: 64, MaxFrame: 1518}}
			openIn(t, ns, tb, sw, ca)
			pb := openIn(t, ns, tb, sw, cb)
			openIn(t, ns, tb, sw, cc)
			dup := cc
			dup.MaxFrame = 1000
			if err := ns.Do(func() error { _, err := Open(tb, sw, dup); return err }); err == nil ||
				!strings.Contains(err.Error(), "vni 8") {
				t.Fatalf("a second port with the same peer and vni: %v", err)
			}
			if n := len(tb.Stats()); n != 1 {
				t.Fatalf("%d endpoints for one local address", n)
			}
			a := openRemote(t, ns, ca, true)
			// b and c share an address and so the VXLAN port: one socket
			// receives for both and tells them apart by the VNI.
			bc := openRemote(t, ns, cb, false)
			b, cs := *bc, *bc
			h8 := Encode(8)
			cs.Hdr = h8[:]
			recvVNI := func(vni uint32, tag byte) {
				t.Helper()
				buf := make([]byte, 2048)
				deadline := time.Now().Add(2 * time.Second)
				for time.Now().Before(deadline) {
					n, err := pollfd.ReadTimeout(bc.Fd, buf, time.Until(deadline))
					if err != nil {
						break
					}
					if got, err := Decode(buf[:n]); err == nil && got == vni && n > HeaderLen+14 && buf[HeaderLen+14] == tag {
						return
					}
				}
				t.Fatalf("no frame %d with vni %d", tag, vni)
			}
			a.Send(ether(frame.Broadcast, mac(1), 1))
			recvVNI(7, 1)
			recvVNI(8, 1)
			b.Send(ether(mac(1), mac(2), 2))
			a.Expect(t, 2)
			cs.Send(ether(mac(2), mac(3), 3)) // unicast to b's MAC: goes out with vni 7 only
			recvVNI(7, 3)
			porttest.Eventually(t, "the vni-7 port of the shared peer sent 2 frames",
				func() bool { return sw.StatsOf(pb.Name()).TxFrames == 2 })
		})
	}
}

// Bad packets over the real socket: each counted, on a port of its peer
// where it has one, and none forwarded; the good peer is served throughout.
func TestBadPackets(t *testing.T) {
	ns := newNS(t)
	porttest.TunnelSwitchWithoutLeaks(t, func(t *testing.T, sw *porttest.Switch, tb *tunnel.Table) { badPackets(t, ns, sw, tb) })
}

func badPackets(t *testing.T, ns *nstest.NS, sw *porttest.Switch, tb *tunnel.Table) {
	cbad := Config{Options: Options{Addrs: tunnel.Addrs{Src: swAddr, Dst: peer3}, VNI: 42}, Common: portkind.Common{Depth: 64, MaxFrame: 1518}}
	cgood := Config{Options: Options{Addrs: tunnel.Addrs{Src: swAddr, Dst: peer4}, VNI: 42}, Common: portkind.Common{Depth: 64, MaxFrame: 1518}}
	pbad := openIn(t, ns, tb, sw, cbad)
	pgood := openIn(t, ns, tb, sw, cgood)
	bad := openRemote(t, ns, cbad, true)
	good := openRemote(t, ns, cgood, false)
	stranger := openRemote(t, ns, Config{Options: Options{Addrs: tunnel.Addrs{Src: swAddr, Dst: netip.MustParseAddr("127.0.0.9")}, VNI: 42}}, false)

	f := ether(frame.Broadcast, mac(3), 1)
	hdr := func(b ...byte) []byte { return append(b, f...) }
	sends := []struct {
		name string
		pkt  []byte
		want fabric.DropReason
	}{
		{"empty", []byte{}, fabric.DropDecap},
		{"short", []byte{0x08, 0, 0, 0, 0, 0, 42}, fabric.DropDecap},
		{"no I flag", hdr(0x00, 0, 0, 0, 0, 0, 42, 0), fabric.DropDecap},
		{"G flag", hdr(0x88, 0, 0, 0, 0, 0, 42, 0), fabric.DropDecap},
		{"reserved bit in byte 2", hdr(0x08, 0, 1, 0, 0, 0, 42, 0), fabric.DropDecap},
		{"reserved last byte", hdr(0x08, 0, 0, 0, 0, 0, 42, 0x80), fabric.DropDecap},
		{"other vni, bad flags", hdr(0x0c, 0, 0, 0, 0, 0, 43, 0), fabric.DropDecap},
		{"wrong vni", hdr(0x08, 0, 0, 0, 0, 0, 43, 0), fabric.DropAuth},
		{"wrong vni, high bits", hdr(0x08, 0, 0, 0, 0x80, 0, 42, 0), fabric.DropAuth},
	}
	var decap, auth uint64
	for _, s := range sends {
		if err := bad.SendRaw(s.pkt); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if s.want == fabric.DropDecap {
			decap++
		} else {
			auth++
		}
	}
	stranger.Send(ether(frame.Broadcast, mac(9), 9))
	stranger.SendRaw([]byte{1, 2, 3})
	good.Send(ether(frame.Broadcast, mac(4), 4))
	bad.Expect(t, 4) // the good peer is served
	good.ExpectNothing(t)
	porttest.Eventually(t, "decap and bad-key drops on the bad peer's port, 2 unknown on the endpoint", func() bool {
		st := sw.StatsOf(pbad.Name())
		return st.Drops[fabric.DropDecap] == decap && st.Drops[fabric.DropAuth] == auth && st.RxFrames == 0 &&
			tb.Stats()[0].Unknown == 2
	})
	if st := sw.StatsOf(pgood.Name()); st.Dropped() != 0 || st.RxFrames != 1 {
		t.Fatalf("good port: %+v", st)
	}
}

// The socket closes with the last port on it.
func TestEndpointClosesWithItsLastPort(t *testing.T) {
	ns := nstest.New(t)
	porttest.TunnelSwitchWithoutLeaks(t, func(t *testing.T, sw *porttest.Switch, tb *tunnel.Table) {
		var ps []*tunnel.Port
		for _, c := range []struct {
			peer netip.Addr
			vni  uint32
		}{{peer3, 1}, {peer3, 2}, {peer4, 1}} {
			ps = append(ps, openIn(t, ns, tb, sw, Config{Options: Options{Addrs: tunnel.Addrs{Src: swAddr, Dst: c.peer}, VNI: c.vni}, Common: portkind.Common{Depth: 64, MaxFrame: 1518}}))
		}
		for _, p := range ps[:2] {
			sw.Detach(p)
			if len(tb.Stats()) != 1 {
				t.Fatal("endpoint closed while a port still uses it")
			}
		}
		// A closed port's route is free again.
		again := openIn(t, ns, tb, sw, Config{Options: Options{Addrs: tunnel.Addrs{Src: swAddr, Dst: peer3}, VNI: 1}, Common: portkind.Common{Depth: 64, MaxFrame: 1518}})
		sw.Detach(ps[2])
		if len(tb.Stats()) != 1 {
			t.Fatal("endpoint closed while a port still uses it")
		}
		sw.Detach(again)
		if len(tb.Stats()) != 0 {
			t.Fatal("endpoint left open after its last port")
		}
	})
}

// BenchmarkSwitchOverVXLAN: two VXLAN peers of one switch address, through
// a real switch, each sending frame by frame as UML's transports do, with
// the switch's UDP segmentation offload off and on (see BenchmarkOffload
// for peers that offload too).
func BenchmarkSwitchOverVXLAN(b *testing.B) {
	for _, offload := range []bool{false, true} {
		b.Run(map[bool]string{false: "offload=off", true: "offload=on"}[offload], func(b *testing.B) {
			ns := nstest.New(b)
			sw, tb := porttest.NewTunnelSwitch(b)
			tb.SetOffload(offload)
			var peers []porttest.BenchPeer
			for _, peer := range []netip.Addr{peer3, peer4} {
				cfg := Config{Options: Options{Addrs: tunnel.Addrs{Src: swAddr, Dst: peer}, VNI: 42}, Common: portkind.Common{Depth: 64, MaxFrame: 1518}}
				openIn(b, ns, tb, sw, cfg)
				u := openRemote(b, ns, cfg, false)
				peers = append(peers, porttest.BenchPeer{Fd: u.Fd, Send: porttest.WithHeader(u.Hdr), Per: 2})
			}
			porttest.BenchSwitch(b, peers[0], peers[1], mac(1), mac(2))
		})
	}
}
