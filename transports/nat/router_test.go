package nat

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/umlswitch/umlswitch/configs"
	"github.com/umlswitch/umlswitch/fabric"
	"github.com/umlswitch/umlswitch/frame"
	"github.com/umlswitch/umlswitch/transports/portkind"
	"github.com/umlswitch/umlswitch/transports/porttest"
)

// guest drives a router from the switch's side: it writes frames to the
// router's port as the switch would and reads what the router sends, as
// a guest on the switch would, answering the router's ARP requests for
// its address.
type guest struct {
	t      *testing.T
	r      *Router
	port   fabric.Port
	mac    frame.MAC
	frames chan gopacket.Packet

	mu sync.Mutex
	ip netip.Addr // answered in ARP once set
}

const guestPortID = 7

func openRouter(t *testing.T, spec string) (*Router, *guest) {
	t.Helper()
	p, err := configs.ParsePort("transport=nat," + spec)
	if err != nil {
		t.Fatal(err)
	}
	reg := porttest.NewCapture(guestPortID)
	r, err := Open(Config{Options: *p.Options.(*Options), Common: portkind.Common{Logger: porttest.Quiet()}}, reg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	g := &guest{t: t, r: r, port: <-reg.Ports, mac: frame.MAC{0xfe, 0xfd, 0, 0, 0, 1}, frames: make(chan gopacket.Packet, 256)}
	rc := <-reg.Receivers
	go g.read(rc)
	return r, g
}

func (g *guest) read(rc fabric.Receiver) {
	v := frame.NewVector(rc.Depth, rc.MaxFrame)
	for {
		n, err := rc.Receive(v)
		if err != nil {
			close(g.frames)
			return
		}
		for i := 0; i < n; i++ {
			if v.Ports[i] != guestPortID {
				g.t.Errorf("frame marked port %d", v.Ports[i])
			}
			pkt := gopacket.NewPacket(bytes.Clone(v.Frame(i)), layers.LayerTypeEthernet, gopacket.Default)
			if g.answerARP(pkt) {
				continue
			}
			select {
			case g.frames <- pkt:
			default:
				g.t.Errorf("guest's queue full")
			}
		}
	}
}

func (g *guest) answerARP(pkt gopacket.Packet) bool {
	arp, ok := pkt.Layer(layers.LayerTypeARP).(*layers.ARP)
	if !ok || arp.Operation != layers.ARPRequest {
		return false
	}
	g.mu.Lock()
	ip := g.ip
	g.mu.Unlock()
	if ip.IsValid() && netip.AddrFrom4([4]byte(arp.DstProtAddress)) == ip {
		g.send(&layers.Ethernet{SrcMAC: g.mac[:], DstMAC: arp.SourceHwAddress, EthernetType: layers.EthernetTypeARP},
			&layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
				Operation: layers.ARPReply, SourceHwAddress: g.mac[:], SourceProtAddress: ip.AsSlice(),
				DstHwAddress: arp.SourceHwAddress, DstProtAddress: arp.SourceProtAddress})
	}
	return true
}

func (g *guest) setIP(ip netip.Addr) {
	g.mu.Lock()
	g.ip = ip
	g.mu.Unlock()
}

func (g *guest) send(ls ...gopacket.SerializableLayer) {
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		g.t.Error(err)
		return
	}
	for {
		n, err := g.port.Write([][]byte{buf.Bytes()})
		if n == 1 {
			return
		}
		if !errors.Is(err, fabric.ErrWouldBlock) {
			g.t.Errorf("write: %d, %v", n, err)
			return
		}
		g.port.WaitWritable(time.Second)
	}
}

// ip4 sends an IPv4 packet from the guest to the router's address.
func (g *guest) ip4(src, dst netip.Addr, proto layers.IPProtocol, ls ...gopacket.SerializableLayer) {
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: proto, SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
	for _, l := range ls {
		switch l := l.(type) {
		case *layers.TCP:
			l.SetNetworkLayerForChecksum(ip)
		case *layers.UDP:
			l.SetNetworkLayerForChecksum(ip)
		}
	}
	g.send(append([]gopacket.SerializableLayer{&layers.Ethernet{SrcMAC: g.mac[:], DstMAC: g.r.mac[:], EthernetType: layers.EthernetTypeIPv4}, ip}, ls...)...)
}

// expect waits for a frame that match accepts, skipping others.
func (g *guest) expect(what string, match func(gopacket.Packet) bool) gopacket.Packet {
	g.t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case pkt, ok := <-g.frames:
			if !ok {
				g.t.Fatalf("%s: the port closed", what)
			}
			if match(pkt) {
				return pkt
			}
		case <-timeout:
			g.t.Fatalf("%s: nothing came", what)
		}
	}
}

// none checks that nothing match accepts comes for a while.
func (g *guest) none(what string, match func(gopacket.Packet) bool) {
	g.t.Helper()
	timeout := time.After(500 * time.Millisecond)
	for {
		select {
		case pkt := <-g.frames:
			if match(pkt) {
				g.t.Fatalf("%s: %v", what, pkt)
			}
		case <-timeout:
			return
		}
	}
}

// dhcp runs DISCOVER/OFFER/REQUEST/ACK and returns the ACK.
func (g *guest) dhcp(xid uint32) *layers.DHCPv4 {
	g.t.Helper()
	ask := func(typ layers.DHCPMsgType, server []byte) *layers.DHCPv4 {
		opts := layers.DHCPOptions{layers.NewDHCPOption(layers.DHCPOptMessageType, []byte{byte(typ)})}
		if server != nil {
			opts = append(opts, layers.NewDHCPOption(layers.DHCPOptServerID, server))
		}
		opts = append(opts, layers.NewDHCPOption(layers.DHCPOptEnd, nil))
		g.send(&layers.Ethernet{SrcMAC: g.mac[:], DstMAC: layers.EthernetBroadcast, EthernetType: layers.EthernetTypeIPv4},
			&layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: net.IPv4zero, DstIP: net.IPv4bcast},
			withIP(&layers.UDP{SrcPort: 68, DstPort: 67}, net.IPv4zero, net.IPv4bcast),
			&layers.DHCPv4{Operation: layers.DHCPOpRequest, HardwareType: layers.LinkTypeEthernet, HardwareLen: 6, Xid: xid,
				ClientHWAddr: g.mac[:], Options: opts})
		want := layers.DHCPMsgTypeOffer
		if typ == layers.DHCPMsgTypeRequest {
			want = layers.DHCPMsgTypeAck
		}
		pkt := g.expect("DHCP "+want.String(), func(p gopacket.Packet) bool {
			d, ok := p.Layer(layers.LayerTypeDHCPv4).(*layers.DHCPv4)
			return ok && d.Xid == xid && msgType(d) == want
		})
		return pkt.Layer(layers.LayerTypeDHCPv4).(*layers.DHCPv4)
	}
	offer := ask(layers.DHCPMsgTypeDiscover, nil)
	return ask(layers.DHCPMsgTypeRequest, option(offer, layers.DHCPOptServerID))
}

func withIP(u *layers.UDP, src, dst net.IP) *layers.UDP {
	u.SetNetworkLayerForChecksum(&layers.IPv4{Version: 4, Protocol: layers.IPProtocolUDP, SrcIP: src, DstIP: dst})
	return u
}

func msgType(d *layers.DHCPv4) layers.DHCPMsgType {
	if v := option(d, layers.DHCPOptMessageType); len(v) == 1 {
		return layers.DHCPMsgType(v[0])
	}
	return 0
}

func option(d *layers.DHCPv4, t layers.DHCPOpt) []byte {
	for _, o := range d.Options {
		if o.Type == t {
			return o.Data
		}
	}
	return nil
}

var (
	gateway = netip.MustParseAddr("10.0.2.2")
	dnsAddr = netip.MustParseAddr("10.0.2.3")
	lease1  = netip.MustParseAddr("10.0.2.15")
)

func TestDHCP(t *testing.T) {
	r, g := openRouter(t, "")
	ack := g.dhcp(1)
	if !ack.YourClientIP.Equal(lease1.AsSlice()) {
		t.Errorf("leased %s, want %s", ack.YourClientIP, lease1)
	}
	for opt, want := range map[layers.DHCPOpt]string{
		layers.DHCPOptRouter: "10.0.2.2", layers.DHCPOptDNS: "10.0.2.3", layers.DHCPOptSubnetMask: "255.255.255.0",
		layers.DHCPOptServerID: "10.0.2.2",
	} {
		if got := net.IP(option(ack, opt)).String(); got != want {
			t.Errorf("option %s: %s, want %s", opt, got, want)
		}
	}
	if mtu := option(ack, layers.DHCPOptInterfaceMTU); len(mtu) != 2 || int(mtu[0])<<8|int(mtu[1]) != 1500 {
		t.Errorf("MTU option %v", mtu)
	}
	// The same client keeps its address; another gets the next.
	if again := g.dhcp(2); !again.YourClientIP.Equal(lease1.AsSlice()) {
		t.Errorf("asked again: %s", again.YourClientIP)
	}
	g.mac[5] = 2
	if other := g.dhcp(3); other.YourClientIP.String() != "10.0.2.16" {
		t.Errorf("second client: %s", other.YourClientIP)
	}
	in := r.Info().(Info)
	if len(in.Leases) != 2 || in.Leases[0] != (LeaseInfo{"10.0.2.15", "fe:fd:00:00:00:01"}) || in.Leases[1].IP != "10.0.2.16" {
		t.Errorf("leases %+v", in.Leases)
	}
}

func TestDHCPWithoutDNS(t *testing.T) {
	_, g := openRouter(t, "net=192.168.50.0/24,dns=0")
	ack := g.dhcp(9)
	if ack.YourClientIP.String() != "192.168.50.15" || option(ack, layers.DHCPOptDNS) != nil ||
		net.IP(option(ack, layers.DHCPOptRouter)).String() != "192.168.50.2" {
		t.Errorf("ack %v", ack)
	}
}

func TestNoDHCP(t *testing.T) {
	_, g := openRouter(t, "dhcp=0")
	g.send(&layers.Ethernet{SrcMAC: g.mac[:], DstMAC: layers.EthernetBroadcast, EthernetType: layers.EthernetTypeIPv4},
		&layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: net.IPv4zero, DstIP: net.IPv4bcast},
		withIP(&layers.UDP{SrcPort: 68, DstPort: 67}, net.IPv4zero, net.IPv4bcast),
		&layers.DHCPv4{Operation: layers.DHCPOpRequest, HardwareType: layers.LinkTypeEthernet, HardwareLen: 6, Xid: 5,
			ClientHWAddr: g.mac[:], Options: layers.DHCPOptions{layers.NewDHCPOption(layers.DHCPOptMessageType, []byte{1})}})
	g.none("DHCP answered with dhcp=0", func(p gopacket.Packet) bool { return p.Layer(layers.LayerTypeDHCPv4) != nil })
}

// query asks the router's DNS server for name's A record.
func (g *guest) query(id uint16, name string) *layers.DNS {
	g.t.Helper()
	g.ip4(lease1, dnsAddr, layers.IPProtocolUDP, &layers.UDP{SrcPort: 3333, DstPort: 53},
		&layers.DNS{ID: id, RD: true, Questions: []layers.DNSQuestion{{Name: []byte(name), Type: layers.DNSTypeA, Class: layers.DNSClassIN}}})
	pkt := g.expect("DNS answer for "+name, func(p gopacket.Packet) bool {
		d, ok := p.Layer(layers.LayerTypeDNS).(*layers.DNS)
		return ok && d.ID == id && d.QR
	})
	return pkt.Layer(layers.LayerTypeDNS).(*layers.DNS)
}

func TestDNS(t *testing.T) {
	for _, restrict := range []bool{false, true} {
		spec := ""
		if restrict {
			spec = "restrict=1"
		}
		_, g := openRouter(t, spec)
		g.setIP(lease1)
		a := g.query(1, "host.lab")
		if len(a.Answers) != 1 || a.Answers[0].IP.String() != "10.0.2.2" {
			t.Errorf("restrict %v: host.lab: %+v", restrict, a.Answers)
		}
		// The host's resolver answers the rest, from its /etc/hosts here
		// (no network needed); restrict=1 asks it nothing.
		a = g.query(2, "localhost")
		if restrict && (a.ResponseCode != layers.DNSResponseCodeNXDomain || len(a.Answers) != 0) {
			t.Errorf("restricted: localhost: %v %+v", a.ResponseCode, a.Answers)
		}
		if !restrict && (len(a.Answers) == 0 || !a.Answers[0].IP.IsLoopback()) {
			t.Errorf("localhost: %v %+v", a.ResponseCode, a.Answers)
		}
	}
}

// A DNS query to .3 with dns=0 is refused: .3 is an address of the lab
// network, where the router connects nowhere.
func TestNoDNS(t *testing.T) {
	_, g := openRouter(t, "dns=0")
	g.setIP(lease1)
	g.ip4(lease1, dnsAddr, layers.IPProtocolUDP, &layers.UDP{SrcPort: 3333, DstPort: 53},
		&layers.DNS{ID: 1, Questions: []layers.DNSQuestion{{Name: []byte("host.lab"), Type: layers.DNSTypeA, Class: layers.DNSClassIN}}})
	g.expect("port unreachable", isUnreachable)
}

func isUnreachable(p gopacket.Packet) bool {
	i, ok := p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
	return ok && i.TypeCode.Type() == layers.ICMPv4TypeDestinationUnreachable
}

func TestPing(t *testing.T) {
	r, g := openRouter(t, "")
	g.setIP(lease1)
	ping := func(dst netip.Addr, seq uint16) {
		g.ip4(lease1, dst, layers.IPProtocolICMPv4, &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(layers.ICMPv4TypeEchoRequest, 0),
			Id: 1, Seq: seq}, gopacket.Payload("ping"))
	}
	echoReply := func(seq uint16) func(p gopacket.Packet) bool {
		return func(p gopacket.Packet) bool {
			i, ok := p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
			return ok && i.TypeCode.Type() == layers.ICMPv4TypeEchoReply && i.Seq == seq
		}
	}
	ping(gateway, 1)
	g.expect("the gateway's echo reply", echoReply(1))
	ping(dnsAddr, 2)
	g.expect("the DNS server's echo reply", echoReply(2))
	ping(netip.MustParseAddr("192.0.2.1"), 3)
	porttest.Eventually(t, "a ping to elsewhere refused", func() bool { return r.Info().(Info).EchoRefused == 1 })
	g.none("an echo reply from elsewhere", echoReply(3))
}

// tcpTo sends a SYN from the guest to dst:port and returns the router's
// answer: a SYN-ACK or a reset.
func (g *guest) syn(dst netip.Addr, srcPort, dstPort uint16) *layers.TCP {
	g.t.Helper()
	g.ip4(lease1, dst, layers.IPProtocolTCP, &layers.TCP{SrcPort: layers.TCPPort(srcPort), DstPort: layers.TCPPort(dstPort),
		SYN: true, Seq: 1000, Window: 65535})
	return g.tcpFrom(srcPort)
}

func (g *guest) tcpFrom(srcPort uint16) *layers.TCP {
	g.t.Helper()
	pkt := g.expect("TCP answer", func(p gopacket.Packet) bool {
		tcp, ok := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
		return ok && tcp.DstPort == layers.TCPPort(srcPort)
	})
	return pkt.Layer(layers.LayerTypeTCP).(*layers.TCP)
}

// hostListener listens on the host's 127.0.0.1 (the gateway for the
// guests) and returns its port.
func hostListener(t *testing.T) (net.Listener, uint16) {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln, uint16(ln.Addr().(*net.TCPAddr).Port)
}

func TestTCPToHost(t *testing.T) {
	r, g := openRouter(t, "")
	g.setIP(lease1)
	ln, port := hostListener(t)
	got := make(chan string, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- err.Error()
			return
		}
		defer c.Close()
		b, _ := io.ReadAll(c)
		got <- string(b)
	}()
	synack := g.syn(gateway, 40000, port)
	if !synack.SYN || !synack.ACK {
		t.Fatalf("SYN to the gateway's %d: %+v", port, synack)
	}
	g.ip4(lease1, gateway, layers.IPProtocolTCP, &layers.TCP{SrcPort: 40000, DstPort: layers.TCPPort(port), ACK: true, PSH: true,
		Seq: 1001, Ack: synack.Seq + 1, Window: 65535}, gopacket.Payload("hello"))
	// The FIN only once the data is taken: a FIN the stack gets while it
	// sets the connection up is dropped, and this guest never sends again.
	for a := g.tcpFrom(40000); a.Ack != 1006; a = g.tcpFrom(40000) {
	}
	g.ip4(lease1, gateway, layers.IPProtocolTCP, &layers.TCP{SrcPort: 40000, DstPort: layers.TCPPort(port), ACK: true, FIN: true,
		Seq: 1006, Ack: synack.Seq + 1, Window: 65535})
	if s := <-got; s != "hello" {
		t.Errorf("the host read %q", s)
	}
	if in := r.Info().(Info); in.Conns > 1 {
		t.Errorf("%d connections", in.Conns)
	}
	// A closed port, an address of the lab network and the DNS server's
	// address are refused with a reset. (A packet to 127.0.0.1 gets
	// nothing: the stack drops a loopback destination from outside.)
	ln2, closed := hostListener(t)
	ln2.Close()
	for _, dst := range []netip.AddrPort{netip.AddrPortFrom(gateway, closed), netip.MustParseAddrPort("10.0.2.77:80"),
		netip.AddrPortFrom(dnsAddr, 80)} {
		if a := g.syn(dst.Addr(), 40001, dst.Port()); !a.RST {
			t.Errorf("SYN to %s: %+v", dst, a)
		}
	}
}

func TestRestrict(t *testing.T) {
	r, g := openRouter(t, "restrict=1,hostfwd=tcp::0-:22")
	g.setIP(lease1)
	_, port := hostListener(t)
	if a := g.syn(gateway, 40000, port); !a.RST {
		t.Errorf("restrict=1: SYN to the host: %+v", a)
	}
	g.ip4(lease1, netip.MustParseAddr("192.0.2.1"), layers.IPProtocolUDP, &layers.UDP{SrcPort: 5000, DstPort: 53}, gopacket.Payload("x"))
	g.expect("restrict=1: UDP out refused", isUnreachable)
	// The forward still reaches the guest.
	c := dialForward(t, r, 0)
	defer c.Close()
	if syn := g.tcpFrom(22); !syn.SYN {
		t.Errorf("restrict=1: the forward reached the guest as %+v", syn)
	}
}

// dialForward connects to the router's forward i as a host's client.
func dialForward(t *testing.T, r *Router, i int) net.Conn {
	t.Helper()
	addr := r.Info().(Info).Forwards[i].Host
	c, err := net.Dial("tcp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestHostForward(t *testing.T) {
	r, g := openRouter(t, "hostfwd=tcp::0-:22;udp::0-10.0.2.20:53")
	g.setIP(lease1)
	in := r.Info().(Info)
	if len(in.Forwards) != 2 || in.Forwards[0].Proto != "tcp" || in.Forwards[0].Guest != "10.0.2.15:22" ||
		!strings.HasPrefix(in.Forwards[0].Host, "127.0.0.1:") || strings.HasSuffix(in.Forwards[0].Host, ":0") ||
		in.Forwards[1].Proto != "udp" || in.Forwards[1].Guest != "10.0.2.20:53" {
		t.Fatalf("forwards %+v", in.Forwards)
	}
	c := dialForward(t, r, 0)
	defer c.Close()
	syn := g.tcpFrom(22)
	if !syn.SYN || syn.ACK {
		t.Fatalf("the host's connection reached the guest as %+v", syn)
	}
	// The same host port again is refused at Open, naming the forward.
	busy := in.Forwards[0].Host
	p, _ := configs.ParsePort("transport=nat,hostfwd=tcp:" + busy + "-:22")
	_, err := Open(Config{Options: *p.Options.(*Options), Common: portkind.Common{Logger: porttest.Quiet()}}, porttest.NewCapture(1))
	if err == nil || !strings.Contains(err.Error(), "hostfwd tcp:"+busy) || !strings.Contains(err.Error(), "address already in use") {
		t.Errorf("a forward of a port in use: %v", err)
	}
}

func TestUDPToHost(t *testing.T) {
	r, g := openRouter(t, "max_conns=1")
	g.setIP(lease1)
	echo, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	go func() {
		buf := make([]byte, 100)
		for {
			n, from, err := echo.ReadFrom(buf)
			if err != nil {
				return
			}
			echo.WriteTo(append([]byte("echo "), buf[:n]...), from)
		}
	}()
	port := uint16(echo.LocalAddr().(*net.UDPAddr).Port)
	g.ip4(lease1, gateway, layers.IPProtocolUDP, &layers.UDP{SrcPort: 5000, DstPort: layers.UDPPort(port)}, gopacket.Payload("hi"))
	pkt := g.expect("the host's UDP reply", func(p gopacket.Packet) bool {
		u, ok := p.Layer(layers.LayerTypeUDP).(*layers.UDP)
		return ok && u.DstPort == 5000
	})
	if u := pkt.Layer(layers.LayerTypeUDP).(*layers.UDP); string(u.Payload) != "echo hi" || u.SrcPort != layers.UDPPort(port) {
		t.Errorf("reply %q from port %d", u.Payload, u.SrcPort)
	}
	if ip := pkt.Layer(layers.LayerTypeIPv4).(*layers.IPv4); !ip.SrcIP.Equal(gateway.AsSlice()) {
		t.Errorf("reply from %s", ip.SrcIP)
	}
	// max_conns=1: a second flow is refused while the first lives.
	g.ip4(lease1, gateway, layers.IPProtocolUDP, &layers.UDP{SrcPort: 5001, DstPort: layers.UDPPort(port)}, gopacket.Payload("hi"))
	g.expect("a flow over max_conns refused", isUnreachable)
	if in := r.Info().(Info); in.Conns != 1 || in.ConnsRefused != 1 {
		t.Errorf("conns %d, refused %d", in.Conns, in.ConnsRefused)
	}
}

// The switch's Write never waits for the stack: frames beyond the queue
// are ErrWouldBlock, and it does not allocate.
func TestWriteNeverWaits(t *testing.T) {
	r, g := openRouter(t, "")
	f := porttest.Ether(r.mac, g.mac, 60, 0)
	batch := make([][]byte, 64)
	for i := range batch {
		batch[i] = f
	}
	blocked := false
	for i := 0; i < 1000 && !blocked; i++ {
		_, err := g.port.Write(batch)
		switch {
		case errors.Is(err, fabric.ErrWouldBlock):
			blocked = true
		case err != nil:
			t.Fatal(err)
		}
	}
	t.Logf("queue full: %v", blocked)
	if !g.port.WaitWritable(10 * time.Second) {
		t.Error("the queue never drained")
	}
	other := porttest.Ether(frame.MAC{2, 0, 0, 0, 0, 9}, g.mac, 60, 0) // not the router's: ignored
	two := [][]byte{other, f}
	if a := testing.AllocsPerRun(100, func() { g.port.Write(two) }); a != 0 {
		t.Errorf("Write allocates %.1f times", a)
	}
}

// Closing the router ends everything it started, whatever was going on:
// a connection out the host keeps open, a UDP flow, a forward's
// connection still being dialled to a guest that does not answer, DHCP
// and DNS.
func TestCloseLeavesNothing(t *testing.T) {
	exercise := func(t *testing.T) {
		r, g := openRouter(t, "hostfwd=tcp::0-:22;udp::0-:53")
		g.dhcp(1)
		g.setIP(lease1)
		g.query(1, "host.lab")
		ln, port := hostListener(t)
		accepted := make(chan net.Conn, 1)
		go func() {
			c, err := ln.Accept()
			if err == nil {
				accepted <- c
			}
		}()
		synack := g.syn(gateway, 40000, port)
		g.ip4(lease1, gateway, layers.IPProtocolTCP, &layers.TCP{SrcPort: 40000, DstPort: layers.TCPPort(port), ACK: true,
			Seq: 1001, Ack: synack.Seq + 1, Window: 65535})
		host := <-accepted // held open by the host until the router closes
		defer host.Close()
		g.ip4(lease1, gateway, layers.IPProtocolUDP, &layers.UDP{SrcPort: 5000, DstPort: 9}, gopacket.Payload("x"))
		c := dialForward(t, r, 0) // the guest never answers its SYN
		defer c.Close()
		u, err := net.Dial("udp4", r.Info().(Info).Forwards[1].Host)
		if err != nil {
			t.Fatal(err)
		}
		defer u.Close()
		u.Write([]byte("x"))
		porttest.Eventually(t, "four connections", func() bool { return r.Info().(Info).Conns == 4 })
		r.Close()
		host.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := host.Read(make([]byte, 1)); err != io.EOF {
			t.Errorf("the host's end of a connection after Close: %v", err)
		}
	}
	t.Run("warm", exercise) // what gVisor and the resolver start once
	porttest.NoLeaks(t, func() { t.Run("body", exercise) })
}
