package vxlan

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"golang.org/x/sys/unix"

	"github.com/umlswitch/umlswitch/fabric"
	"github.com/umlswitch/umlswitch/internal/nstest"
	"github.com/umlswitch/umlswitch/internal/pollfd"
	"github.com/umlswitch/umlswitch/transports/portkind"
	"github.com/umlswitch/umlswitch/transports/porttest"
	"github.com/umlswitch/umlswitch/tunnel"
)

// A Linux vxlan device talks to a switch port through a veth pair between
// two namespaces: namespace K holds the kernel's VTEP (vx0, VNI 42, and
// vx1, VNI 43), namespace S the switch, whose other port leads to a test
// peer that plays a host on vx0's subnet. The kernel resolves the host
// with ARP, the peer answers through the switch, and a UDP datagram then
// crosses each way, so the kernel has accepted what the switch sent and
// the switch what the kernel sent (from source ports the kernel hashed).
// Traffic on VNI 43 reaches the switch's port for the same peer and is
// counted as bad-key, never forwarded.
func TestKernelVXLAN(t *testing.T) {
	s, k := nstest.New(t), nstest.New(t)
	s.MustRun(t, "ip", "link", "add", "vs", "type", "veth", "peer", "name", "vk", "netns", k.Name)
	s.MustRun(t, "ip", "addr", "add", "10.99.0.1/24", "dev", "vs")
	s.MustRun(t, "ip", "link", "set", "vs", "up")
	k.MustRun(t, "ip", "addr", "add", "10.99.0.2/24", "dev", "vk")
	k.MustRun(t, "ip", "link", "set", "vk", "up")
	// No IPv6 on the new devices: their router and listener messages
	// would only be noise to the peer.
	k.MustRun(t, "sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
	vx0, vx1 := net.HardwareAddr{2, 0, 0, 0, 0, 0x42}, net.HardwareAddr{2, 0, 0, 0, 0, 0x43}
	for _, d := range []struct{ name, id, mac, addr string }{
		{"vx0", "42", vx0.String(), "10.98.0.2/24"},
		{"vx1", "43", vx1.String(), "10.97.0.2/24"},
	} {
		k.MustRun(t, "ip", "link", "add", d.name, "address", d.mac, "type", "vxlan", "id", d.id,
			"local", "10.99.0.2", "remote", "10.99.0.1", "dstport", "4789")
		k.MustRun(t, "ip", "addr", "add", d.addr, "dev", d.name)
		k.MustRun(t, "ip", "link", "set", d.name, "up")
	}

	sw, tb := porttest.NewTunnelSwitch(t)
	vx := openIn(t, s, tb, sw, Config{Options: Options{Addrs: tunnel.Addrs{Src: netip.MustParseAddr("10.99.0.1"), Dst: netip.MustParseAddr("10.99.0.2")}, VNI: 42}, Common: portkind.Common{Depth: 64, MaxFrame: 1518}})
	hostCfg := Config{Options: Options{Addrs: tunnel.Addrs{Src: swAddr, Dst: peer3}, VNI: 1}, Common: portkind.Common{Depth: 64, MaxFrame: 1518}}
	openIn(t, s, tb, sw, hostCfg)
	host := openRemote(t, s, hostCfg, false)
	hostMAC := net.HardwareAddr{2, 0, 0, 0, 0, 1}

	kernelUDP := func(local, to netip.AddrPort) int {
		t.Helper()
		var fd int
		if err := k.Do(func() (err error) { fd, err = porttest.DialTunnel(unix.SOCK_DGRAM, 0, local, to); return }); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { unix.Close(fd) })
		return fd
	}
	// nextFrame returns the next frame the host receives that f accepts.
	nextFrame := func(what string, f func(gopacket.Packet) bool) gopacket.Packet {
		t.Helper()
		buf := make([]byte, 2048)
		deadline := time.Now().Add(5 * time.Second)
		for {
			n, err := host.Recv(buf, time.Until(deadline))
			if err != nil {
				t.Fatalf("waiting for %s: %v", what, err)
			}
			p := gopacket.NewPacket(append([]byte(nil), buf[:n]...), layers.LayerTypeEthernet, gopacket.Default)
			if f(p) {
				return p
			}
		}
	}
	send := func(ls ...gopacket.SerializableLayer) {
		t.Helper()
		b := gopacket.NewSerializeBuffer()
		if err := gopacket.SerializeLayers(b, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
			t.Fatal(err)
		}
		if err := host.Send(b.Bytes()); err != nil {
			t.Fatal(err)
		}
	}

	// Kernel to switch: vx0 asks for 10.98.0.1 before it can send.
	kfd := kernelUDP(netip.MustParseAddrPort("10.98.0.2:9000"), netip.MustParseAddrPort("10.98.0.1:9001"))
	if _, err := unix.Write(kfd, []byte("from the kernel")); err != nil {
		t.Fatal(err)
	}
	p := nextFrame("vx0's ARP request", func(p gopacket.Packet) bool {
		a, ok := p.Layer(layers.LayerTypeARP).(*layers.ARP)
		return ok && a.Operation == layers.ARPRequest && bytes.Equal(a.DstProtAddress, []byte{10, 98, 0, 1})
	})
	if eth := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet); !bytes.Equal(eth.SrcMAC, vx0) {
		t.Fatalf("ARP request from %s, want vx0's %s", eth.SrcMAC, vx0)
	}

	// Switch to kernel: the answer lets the kernel send its datagram.
	send(&layers.Ethernet{SrcMAC: hostMAC, DstMAC: vx0, EthernetType: layers.EthernetTypeARP},
		&layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
			Operation: layers.ARPReply, SourceHwAddress: hostMAC, SourceProtAddress: []byte{10, 98, 0, 1},
			DstHwAddress: vx0, DstProtAddress: []byte{10, 98, 0, 2}})
	nextFrame("the kernel's datagram", func(p gopacket.Packet) bool {
		u, ok := p.Layer(layers.LayerTypeUDP).(*layers.UDP)
		eth := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
		return ok && u.DstPort == 9001 && string(u.Payload) == "from the kernel" && bytes.Equal(eth.DstMAC, hostMAC)
	})

	// And a datagram the other way, into the kernel's socket.
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: net.IP{10, 98, 0, 1}, DstIP: net.IP{10, 98, 0, 2}}
	udp := &layers.UDP{SrcPort: 9001, DstPort: 9000}
	udp.SetNetworkLayerForChecksum(ip)
	send(&layers.Ethernet{SrcMAC: hostMAC, DstMAC: vx0, EthernetType: layers.EthernetTypeIPv4}, ip, udp,
		gopacket.Payload("from the switch"))
	buf := make([]byte, 100)
	n, err := pollfd.ReadTimeout(kfd, buf, 5*time.Second)
	if err != nil || string(buf[:n]) != "from the switch" {
		t.Fatalf("kernel socket read %q, %v", buf[:max(n, 0)], err)
	}

	// A run of frames of one size goes out as one GSO message (when the
	// socket offloads): the kernel takes each segment as a datagram.
	const run = 20
	frames := make([][]byte, run)
	for i := range frames {
		ip.Id = uint16(i)
		b := gopacket.NewSerializeBuffer()
		if err := gopacket.SerializeLayers(b, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
			&layers.Ethernet{SrcMAC: hostMAC, DstMAC: vx0, EthernetType: layers.EthernetTypeIPv4}, ip, udp,
			gopacket.Payload(fmt.Sprintf("datagram %02d", i))); err != nil {
			t.Fatal(err)
		}
		frames[i] = b.Bytes()
	}
	if n, err := vx.Write(frames); n != run || err != nil {
		t.Fatalf("Write = %d, %v", n, err)
	}
	for i := 0; i < run; i++ {
		n, err := pollfd.ReadTimeout(kfd, buf, 5*time.Second)
		if want := fmt.Sprintf("datagram %02d", i); err != nil || string(buf[:n]) != want {
			t.Fatalf("kernel socket read %q, %v; want %q", buf[:max(n, 0)], err, want)
		}
	}

	// VNI 43: the kernel's ARP requests on vx1 are the known peer's, with a
	// VNI it has no port for.
	before := sw.StatsOf(vx.Name())
	kfd1 := kernelUDP(netip.MustParseAddrPort("10.97.0.2:9000"), netip.MustParseAddrPort("10.97.0.1:9001"))
	if _, err := unix.Write(kfd1, []byte("on vni 43")); err != nil {
		t.Fatal(err)
	}
	porttest.Eventually(t, "bad-key drops for vx1's packets", func() bool {
		return sw.StatsOf(vx.Name()).Drops[fabric.DropAuth] > before.Drops[fabric.DropAuth]
	})
	after := sw.StatsOf(vx.Name())
	if after.RxFrames != before.RxFrames {
		t.Fatalf("%d frames from vx1 were received", after.RxFrames-before.RxFrames)
	}
	for {
		n, err := host.Recv(buf, 200*time.Millisecond)
		if err != nil {
			break
		}
		if n >= 12 && bytes.Equal(buf[6:12], vx1) {
			t.Fatal("a frame from vx1 (VNI 43) was forwarded")
		}
	}
	if st := tb.Stats(); len(st) != 2 || st[0].Unknown+st[1].Unknown != 0 {
		t.Fatalf("endpoint counters %+v: the kernel's packets are from a known peer", st)
	}
}
