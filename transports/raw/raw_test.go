package raw

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"strings"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/vishvananda/netlink"
	xnetbpf "golang.org/x/net/bpf"

	"github.com/umlswitch/umlswitch/bpf"
	"github.com/umlswitch/umlswitch/fabric"
	"github.com/umlswitch/umlswitch/frame"
	"github.com/umlswitch/umlswitch/internal/nstest"
	"github.com/umlswitch/umlswitch/internal/xsk"
	"github.com/umlswitch/umlswitch/transports/portkind"
	"github.com/umlswitch/umlswitch/transports/porttest"
)

// vethPair makes a namespace holding a veth pair, "port" (for the raw port)
// and "peer" (the far end, where tests send and listen), both up and quiet.
// Its MTU lets an untagged frame of the port's full size through.
func vethPair(t testing.TB) *nstest.NS {
	t.Helper()
	ns := nstest.New(t)
	ns.MustRun(t, "ip", "link", "add", "port", "mtu", "1504", "type", "veth", "peer", "name", "peer", "mtu", "1504")
	for _, dev := range []string{"port", "peer"} {
		ns.MustRun(t, "sysctl", "-qw", "net.ipv6.conf."+dev+".disable_ipv6=1")
		ns.MustRun(t, "ip", "link", "set", dev, "up")
	}
	ns.WaitUp(t, "port", "peer")
	return ns
}

// openIn opens the port cfg describes in ns, on the socket kind its xdp=
// names.
func openIn(t testing.TB, ns *nstest.NS, cfg Config) hostPort {
	t.Helper()
	if cfg.MaxFrame == 0 {
		cfg.MaxFrame = frame.MaxFrameForMTU(1500)
	}
	if cfg.Depth == 0 {
		cfg.Depth = 16
	}
	var p hostPort
	if err := ns.Do(func() (err error) {
		p, err = open(cfg)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// kind is one way a raw port reads and writes.
type kind struct {
	xdp  XDPMode
	ring RingMode
}

// options are the port's options on ifname, read as k says.
func (k kind) options(ifname string) Options {
	return Options{Ifname: ifname, XDP: k.xdp, Ring: k.ring}
}

func (k kind) withFilter(ifname string, f *bpf.Program) Options {
	o := k.options(ifname)
	o.Filter = f
	return o
}

func (k kind) promisc(ifname string) Options {
	o := k.options(ifname)
	o.Promisc = true
	return o
}

func (k kind) all(ifname string, f *bpf.Program) Options {
	o := k.withFilter(ifname, f)
	o.Promisc = true
	return o
}

// bothKinds runs f for a port on AF_PACKET, with recvmmsg and with a
// TPACKET_V3 ring, and for one on AF_XDP: what a raw port promises, it
// promises on each.
func bothKinds(t *testing.T, f func(t *testing.T, k kind)) {
	for _, k := range []struct {
		name string
		kind
	}{
		{"af_packet", kind{XDPOff, RingOff}},
		{"af_packet_ring_blocks", kind{XDPOff, RingBlocks}},
		{"af_packet_ring_frames", kind{XDPOff, RingFrames}},
		{"af_xdp", kind{XDPOn, RingDefault}},
	} {
		t.Run(k.name, func(t *testing.T) { f(t, k.kind) })
	}
}

func TestConformance(t *testing.T) {
	bothKinds(t, func(t *testing.T, k kind) {
		porttest.Run(t, func(t *testing.T) *porttest.Harness {
			ns := vethPair(t)
			p := openIn(t, ns, Config{Options: k.options("port")})
			peer := porttest.OpenPacketSocket(t, ns, "peer")
			return &porttest.Harness{Port: p, Receiver: p.Receivers(5)[0], ID: 5, PeerSend: peer.Send, PeerRecv: peer.Recv}
		})
	})
}

// receive reads frames from the port until want arrived or a quiet second
// passed, and returns them.
func receive(t *testing.T, p hostPort, want int) [][]byte {
	t.Helper()
	v := frame.NewVector(16, p.MaxFrame())
	r := p.Receivers(1)[0]
	var got [][]byte
	deadline := time.Now().Add(time.Second)
	for len(got) < want && time.Now().Before(deadline) {
		n, err := receiveTimeout(r, v, time.Until(deadline))
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < n; i++ {
			if v.Sizes[i] < 0 || v.Sizes[i] > v.MaxFrame {
				got = append(got, nil) // oversize or rejected: seen, not deliverable
				continue
			}
			got = append(got, bytes.Clone(v.Frame(i)))
		}
	}
	return got
}

// receiveTimeout runs one Receive, giving up after d (the port's blocking
// read is interrupted by a frame the test sends itself to a bystander
// socket, so no test hangs: the caller's deadline bounds the wait).
func receiveTimeout(r fabric.Receiver, v *frame.Vector, d time.Duration) (int, error) {
	type result struct {
		n   int
		err error
	}
	done := make(chan result, 1)
	go func() {
		n, err := r.Receive(v)
		done <- result{n, err}
	}()
	select {
	case res := <-done:
		return res.n, res.err
	case <-time.After(d):
		return 0, nil // the goroutine ends when the test's cleanup closes the port
	}
}

func ethertype(src byte, etype uint16, size int) []byte {
	f := porttest.Ether(frame.Broadcast, frame.MAC{0xfe, 0xfd, 0, 0, 0, src}, size, src)
	binary.BigEndian.PutUint16(f[12:], etype)
	return f
}

// A filter attached in the kernel keeps what it refuses from the switch,
// and the port counts those frames.
func TestFilterRefusesInKernelAndCounts(t *testing.T) {
	bothKinds(t, testFilterRefusesInKernelAndCounts)
}

func testFilterRefusesInKernelAndCounts(t *testing.T, k kind) {
	ns := vethPair(t)
	f, err := bpf.EtherTypes(unix.ETH_P_ARP)
	if err != nil {
		t.Fatal(err)
	}
	p := openIn(t, ns, Config{Options: k.withFilter("port", f)})
	peer := porttest.OpenPacketSocket(t, ns, "peer")
	sent := []uint16{unix.ETH_P_IP, unix.ETH_P_ARP, 0x88b5, unix.ETH_P_IPV6, unix.ETH_P_ARP}
	for i, et := range sent {
		if err := peer.Send(ethertype(byte(i), et, 60)); err != nil {
			t.Fatal(err)
		}
	}
	got := receive(t, p, 3) // asks for more than will come: nothing else may arrive
	if len(got) != 2 {
		t.Fatalf("received %d frames, want the 2 ARP ones", len(got))
	}
	for _, g := range got {
		if binary.BigEndian.Uint16(g[12:]) != unix.ETH_P_ARP {
			t.Fatalf("a refused frame crossed: % x", g[:14])
		}
	}
	kd := p.(fabric.KernelDropper)
	porttest.Eventually(t, "filtered count 3", func() bool {
		var d [fabric.NumDropReasons]uint64
		kd.KernelDrops(&d)
		return d[fabric.DropFiltered] == 3 && d[fabric.DropRxOverrun] == 0
	})
	// The totals are running ones: the kernel resets its counts on every read.
	var d [fabric.NumDropReasons]uint64
	kd.KernelDrops(&d)
	if d[fabric.DropFiltered] != 3 {
		t.Fatalf("a second read gives %d filtered", d[fabric.DropFiltered])
	}
}

// The kernel takes VLAN tags out of received frames; the port puts them
// back, for 802.1Q and 802.1ad alike, and counts a frame the tag makes too
// long as oversize rather than cutting it.
func TestVLANTagsSurviveReceiveOffload(t *testing.T) { bothKinds(t, testVLANTagsSurviveReceiveOffload) }

func testVLANTagsSurviveReceiveOffload(t *testing.T, k kind) {
	ns := vethPair(t)
	p := openIn(t, ns, Config{Options: k.options("port")})
	peer := porttest.OpenPacketSocket(t, ns, "peer")
	tagged := func(tpid uint16, vid uint16, size int) []byte {
		f := ethertype(byte(vid), tpid, size)
		binary.BigEndian.PutUint16(f[14:], 5<<13|vid)
		binary.BigEndian.PutUint16(f[16:], 0x88b5)
		return f
	}
	want := [][]byte{tagged(unix.ETH_P_8021Q, 10, 64), tagged(unix.ETH_P_8021AD, 20, 100), ethertype(3, 0x88b5, 60)}
	for _, f := range want {
		if err := peer.Send(f); err != nil {
			t.Fatal(err)
		}
	}
	got := receive(t, p, len(want))
	if len(got) != len(want) {
		t.Fatalf("received %d frames, want %d", len(got), len(want))
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("frame %d:\n got % x\nwant % x", i, got[i][:20], want[i][:20])
		}
	}
}

func TestOwnFramesDoNotComeBack(t *testing.T) { bothKinds(t, testOwnFramesDoNotComeBack) }

func testOwnFramesDoNotComeBack(t *testing.T, k kind) {
	ns := vethPair(t)
	p := openIn(t, ns, Config{Options: k.options("port")})
	peer := porttest.OpenPacketSocket(t, ns, "peer")
	if n, err := p.Write([][]byte{ethertype(1, 0x88b5, 60)}); n != 1 || err != nil {
		t.Fatalf("Write = %d, %v", n, err)
	}
	buf := make([]byte, 2000)
	if _, err := peer.Recv(buf, 2*time.Second); err != nil {
		t.Fatalf("the peer did not get the frame: %v", err)
	}
	if got := receive(t, p, 1); len(got) != 0 {
		t.Fatalf("the port read its own frame back")
	}
}

func TestPromiscuousWhileOpen(t *testing.T) { bothKinds(t, testPromiscuousWhileOpen) }

func testPromiscuousWhileOpen(t *testing.T, k kind) {
	ns := vethPair(t)
	promisc := func() bool { // the kernel's promiscuity count, which SIOCGIFFLAGS does not show
		var n int
		if err := ns.Do(func() error {
			l, err := netlink.LinkByName("port")
			if err == nil {
				n = l.Attrs().Promisc
			}
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return n > 0
	}
	if promisc() {
		t.Fatal("promiscuous before the port opened")
	}
	p := openIn(t, ns, Config{Options: k.promisc("port")})
	if !promisc() {
		t.Fatal("not promiscuous with promisc=1")
	}
	p.Close()
	if promisc() {
		t.Fatal("still promiscuous after the port closed")
	}
}

func TestMissingInterfaceIsAClearError(t *testing.T) { bothKinds(t, testMissingInterfaceIsAClearError) }

func testMissingInterfaceIsAClearError(t *testing.T, k kind) {
	ns := nstest.New(t)
	err := ns.Do(func() error {
		_, err := open(Config{Options: k.options("nosuch0"), Common: portkind.Common{MaxFrame: 1518, Depth: 4}})
		return err
	})
	if err == nil || !strings.Contains(err.Error(), `"nosuch0"`) {
		t.Fatalf("error %v does not name the interface", err)
	}
}

func TestOpenCloseLeavesNothing(t *testing.T) { bothKinds(t, testOpenCloseLeavesNothing) }

func testOpenCloseLeavesNothing(t *testing.T, k kind) {
	ns := vethPair(t)
	f, _ := bpf.EtherTypes(unix.ETH_P_ARP)
	porttest.NoLeaks(t, func() {
		for range 3 {
			var p hostPort
			if err := ns.Do(func() (err error) {
				p, err = open(Config{Options: k.all("port", f), Common: portkind.Common{MaxFrame: 1518, Depth: 8}})
				return err
			}); err != nil {
				t.Fatal(err)
			}
			p.Close()
		}
	})
}

// Unit checks of the control-message walk, with no kernel involved.
func TestStrippedTag(t *testing.T) {
	aux := func(status uint32, tci, tpid uint16) []byte {
		b := make([]byte, controlLen)
		binary.NativeEndian.PutUint64(b[0:], uint64(unix.CmsgLen(int(unsafe.Sizeof(unix.TpacketAuxdata{})))))
		binary.NativeEndian.PutUint32(b[8:], unix.SOL_PACKET)
		binary.NativeEndian.PutUint32(b[12:], unix.PACKET_AUXDATA)
		binary.NativeEndian.PutUint32(b[16:], status)
		binary.NativeEndian.PutUint16(b[32:], tci)
		binary.NativeEndian.PutUint16(b[34:], tpid)
		return b
	}
	cases := []struct {
		ctl       []byte
		tci, tpid uint16
		ok        bool
	}{
		{aux(unix.TP_STATUS_VLAN_VALID|unix.TP_STATUS_VLAN_TPID_VALID, 10, unix.ETH_P_8021AD), 10, unix.ETH_P_8021AD, true},
		{aux(unix.TP_STATUS_VLAN_VALID, 7, 0), 7, unix.ETH_P_8021Q, true},
		{aux(0, 7, unix.ETH_P_8021Q), 0, 0, false},
		{nil, 0, 0, false},
		{aux(unix.TP_STATUS_VLAN_VALID, 7, 0)[:12], 0, 0, false},
		{aux(unix.TP_STATUS_VLAN_VALID, 7, 0)[:30], 0, 0, false},
	}
	for i, c := range cases {
		tag := strippedTag(c.ctl)
		if tag.tci != c.tci || tag.tpid != c.tpid || tag.present != c.ok {
			t.Errorf("case %d: %+v", i, tag)
		}
	}
}

// FuzzStrippedTag: no control bytes make the walk panic or loop.
func FuzzStrippedTag(f *testing.F) {
	f.Add(make([]byte, 40))
	f.Fuzz(func(t *testing.T, b []byte) { strippedTag(b) })
}

// The host's stack leaves TCP and UDP checksums to offload on a veth; the
// port completes them, so the frames are valid where they arrive.
func TestOffloadedChecksumsAreCompleted(t *testing.T) {
	bothKinds(t, testOffloadedChecksumsAreCompleted)
}

func testOffloadedChecksumsAreCompleted(t *testing.T, k kind) {
	ns := vethPair(t)
	p := openIn(t, ns, Config{Options: k.options("port")})
	ns.MustRun(t, "ip", "addr", "add", "10.9.0.2/24", "dev", "peer")
	ns.MustRun(t, "ip", "neigh", "add", "10.9.0.1", "lladdr", "fe:fd:00:00:00:09", "dev", "peer")
	if err := ns.Do(func() error {
		for _, network := range []string{"udp", "tcp"} {
			c, err := net.DialTimeout(network, "10.9.0.1:9", 50*time.Millisecond)
			if err == nil {
				c.Write([]byte("a payload of odd length"))
				c.Close()
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	var checked []string
	for _, f := range receive(t, p, 2) {
		pkt := gopacket.NewPacket(f, layers.LayerTypeEthernet, gopacket.Default)
		ip4, _ := pkt.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		if ip4 == nil {
			continue
		}
		var l4 gopacket.SerializableLayer
		var got uint16
		switch l := pkt.TransportLayer().(type) {
		case *layers.UDP:
			l.SetNetworkLayerForChecksum(ip4)
			l4, got = l, l.Checksum
		case *layers.TCP:
			l.SetNetworkLayerForChecksum(ip4)
			l4, got = l, l.Checksum
		default:
			continue
		}
		buf := gopacket.NewSerializeBuffer()
		if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{ComputeChecksums: true}, l4,
			gopacket.Payload(pkt.TransportLayer().LayerPayload())); err != nil {
			t.Fatal(err)
		}
		want := gopacket.NewPacket(buf.Bytes(), pkt.TransportLayer().LayerType(), gopacket.Default)
		var wantSum uint16
		switch l := want.TransportLayer().(type) {
		case *layers.UDP:
			wantSum = l.Checksum
		case *layers.TCP:
			wantSum = l.Checksum
		}
		if got != wantSum {
			t.Errorf("%v checksum %#04x, want %#04x", pkt.TransportLayer().LayerType(), got, wantSum)
		}
		checked = append(checked, pkt.TransportLayer().LayerType().String())
	}
	if len(checked) < 2 {
		t.Fatalf("checked only %v: want a UDP datagram and a TCP SYN", checked)
	}
}

// A veth passes the host's TSO frames through whole, as a NIC with GRO
// does; the port cuts them into valid segments, across batches.
func TestOffloadFramesAreCut(t *testing.T) { bothKinds(t, testOffloadFramesAreCut) }

func testOffloadFramesAreCut(t *testing.T, k kind) {
	ns := vethPair(t)
	p := openIn(t, ns, Config{Options: k.options("port"), Common: portkind.Common{Depth: 8}})
	payload := make([]byte, 30000)
	for i := range payload {
		payload[i] = byte(i % 253)
	}
	porttest.SendTSO(t, ns, "peer", payload, 1448)
	porttest.ReceiveTSO(t, p.Receivers(1)[0], frame.NewVector(8, p.MaxFrame()), payload)
}

// xdpProgram is the id of the XDP program on the namespace's "port", 0
// for none.
func xdpProgram(t *testing.T, ns *nstest.NS) uint32 {
	t.Helper()
	var id uint32
	if err := ns.Do(func() error {
		l, err := netlink.LinkByName("port")
		if err == nil && l.Attrs().Xdp != nil && l.Attrs().Xdp.Attached {
			id = l.Attrs().Xdp.ProgId
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return id
}

// The port's XDP program is on the interface while the port is open, and
// gone once it closes; the port's name says how it reads.
func TestXDPProgramGoesWithThePort(t *testing.T) {
	ns := vethPair(t)
	f, _ := bpf.EtherTypes(unix.ETH_P_ARP)
	p := openIn(t, ns, Config{Options: Options{Ifname: "port", XDP: XDPOn, Filter: f}})
	if xdpProgram(t, ns) == 0 {
		t.Fatal("no XDP program on the interface while the port is open")
	}
	if name := p.Name(); !strings.Contains(name, "xdp,") || !strings.Contains(name, "mode") || !strings.Contains(name, "filtered)") {
		t.Errorf("name %q does not say AF_XDP, its mode and the filter", name)
	}
	p.Close()
	if id := xdpProgram(t, ns); id != 0 {
		t.Fatalf("XDP program %d still attached after the port closed", id)
	}
}

// Someone else's XDP program is never replaced: xdp=1 fails naming it,
// xdp=auto reads through AF_PACKET beside it.
func TestXDPLeavesAForeignProgram(t *testing.T) {
	ns := vethPair(t)
	var foreign *xsk.Program
	if err := ns.Do(func() error {
		ifi, err := net.InterfaceByName("port")
		if err == nil {
			foreign, err = xsk.Attach(ifi.Index, nil)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer foreign.Close()
	id := xdpProgram(t, ns)
	err := ns.Do(func() error {
		_, err := open(Config{Options: Options{Ifname: "port", XDP: XDPOn}, Common: portkind.Common{MaxFrame: 1518, Depth: 8}})
		return err
	})
	if err == nil || !strings.Contains(err.Error(), "already has an XDP program") {
		t.Fatalf("xdp=1 beside another program: %v", err)
	}
	p := openIn(t, ns, Config{Options: Options{Ifname: "port", XDP: XDPAuto}})
	if strings.Contains(p.Name(), "xdp") {
		t.Errorf("xdp=auto beside another program opened %q", p.Name())
	}
	if got := xdpProgram(t, ns); got != id {
		t.Fatalf("the interface's program is now %d, was %d", got, id)
	}
}

// A filter the translation cannot take (a kernel extension, which only
// the kernel's socket filter runs) is refused with xdp=1, naming the way
// out; xdp=auto reads through AF_PACKET, where the kernel runs it.
func TestXDPRefusesAnUntranslatableFilter(t *testing.T) {
	ns := vethPair(t)
	ext, err := bpf.New([]xnetbpf.RawInstruction{{Op: 0x20, K: 0xfffff000}, {Op: 0x16}}) // ld #proto (SKF_AD_PROTOCOL); ret a
	if err != nil {
		t.Fatal(err)
	}
	err = ns.Do(func() error {
		q, err := open(Config{Options: Options{Ifname: "port", XDP: XDPOn, Filter: ext}, Common: portkind.Common{MaxFrame: 1518, Depth: 8}})
		if err == nil {
			q.Close()
		}
		return err
	})
	if !errors.Is(err, bpf.ErrNotTranslatable) || !strings.Contains(err.Error(), "xdp=0") {
		t.Fatalf("a filter with a kernel extension on xdp=1: %v", err)
	}
	if p := openIn(t, ns, Config{Options: Options{Ifname: "port", XDP: XDPAuto, Filter: ext}}); strings.Contains(p.Name(), "xdp") {
		t.Errorf("xdp=auto with that filter opened %q", p.Name())
	}
}

// queues=2 on a veth with two receive queues: a reader per queue, and
// frames of many flows arrive, spread over both, none lost.
func TestXDPQueues(t *testing.T) {
	ns := nstest.New(t)
	ns.MustRun(t, "ip", "link", "add", "port", "numrxqueues", "2", "numtxqueues", "2", "type", "veth", "peer", "name", "peer", "numrxqueues", "2", "numtxqueues", "2")
	for _, dev := range []string{"port", "peer"} {
		ns.MustRun(t, "sysctl", "-qw", "net.ipv6.conf."+dev+".disable_ipv6=1")
		ns.MustRun(t, "ip", "link", "set", dev, "up")
	}
	ns.WaitUp(t, "port", "peer")
	p := openIn(t, ns, Config{Options: Options{Ifname: "port", XDP: XDPOn, Queues: 2}})
	rs := p.Receivers(1)
	if len(rs) != 2 || !strings.Contains(p.Name(), "2 queues") {
		t.Fatalf("%d receivers, name %q", len(rs), p.Name())
	}
	peer := porttest.OpenPacketSocket(t, ns, "peer")
	const n = 64
	for i := range n {
		eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2}, EthernetType: layers.EthernetTypeIPv4}
		ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: net.IP{10, 0, 0, 1}, DstIP: net.IP{10, 0, 0, 2}}
		udp := &layers.UDP{SrcPort: layers.UDPPort(1000 + i), DstPort: 9}
		udp.SetNetworkLayerForChecksum(ip)
		buf := gopacket.NewSerializeBuffer()
		if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, ip, udp, gopacket.Payload("x")); err != nil {
			t.Fatal(err)
		}
		if err := peer.Send(buf.Bytes()); err != nil {
			t.Fatal(err)
		}
	}
	var counts [2]int
	for q, r := range rs {
		v := frame.NewVector(16, p.MaxFrame())
		for deadline := time.Now().Add(time.Second); counts[0]+counts[1] < n && time.Now().Before(deadline); {
			k, err := receiveTimeout(r, v, 100*time.Millisecond)
			if err != nil {
				t.Fatal(err)
			}
			if k == 0 {
				break
			}
			counts[q] += k
		}
	}
	if counts[0]+counts[1] != n || counts[0] == 0 || counts[1] == 0 {
		t.Fatalf("queue 0 got %d frames, queue 1 %d, of %d", counts[0], counts[1], n)
	}
}
