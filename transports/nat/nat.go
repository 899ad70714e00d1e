// Package nat is a port kind that is a router to the host's network, as
// QEMU's -netdev user (slirp) is: a guest on the switch gets an address by
// DHCP, resolves names at the router's DNS server and reaches the outside
// through connections the switch's own process makes, so no root, tap or
// iptables is needed. The router is a port like any other: it learns,
// floods, counts, mirrors and is captured as every port is.
//
// It is gVisor's TCP/IP stack, in process, with gvisor-tap-vsock's pieces
// (as its virtualnetwork package assembles them): its LinkEndpoint is the
// stack's NIC, its IP pool and insomniacslk's DHCP server hand out leases,
// its DNS server answers, and gVisor's TCP and UDP forwarders turn the
// guests' connections into the host's sockets (the NAT). The pieces are
// assembled here rather than through virtualnetwork.New, which always runs
// DHCP and DNS and lets the guests reach anywhere, so that dhcp=0, dns=0
// and restrict=1 can leave them out, and so that every connection is
// bounded (max_conns) and ended when the port closes.
//
// Frames cross between the switch and the stack in process: the switch's
// Write copies into a queue a goroutine of the port hands to the stack,
// and the stack's frames are copied into a queue the port's receiver
// reads (see port). Neither side ever waits for the other.
//
// Addresses follow QEMU's: in net= (10.0.2.0/24), the router is .2, which
// also stands for the host's 127.0.0.1 (a guest reaches a host server on
// 127.0.0.1:PORT at 10.0.2.2:PORT), DNS is .3 and leases start at .15.
package nat

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/containers/gvisor-tap-vsock/pkg/services/dns"
	"github.com/containers/gvisor-tap-vsock/pkg/services/forwarder"
	"github.com/containers/gvisor-tap-vsock/pkg/tap"
	"github.com/containers/gvisor-tap-vsock/pkg/types"
	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/network/arp"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/icmp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
	"gvisor.dev/gvisor/pkg/waiter"

	"github.com/umlswitch/umlswitch/fabric"
	"github.com/umlswitch/umlswitch/frame"
	"github.com/umlswitch/umlswitch/internal/accept"
	"github.com/umlswitch/umlswitch/internal/handover"
	"github.com/umlswitch/umlswitch/internal/ratelog"
	"github.com/umlswitch/umlswitch/transports/portkind"
)

// nicID is the stack's one NIC: the port.
const nicID tcpip.NICID = 1

// Timeouts of what the router does for a guest.
const (
	dialTimeout = 20 * time.Second // a guest's connection out, while its SYN waits
	fwdTimeout  = 10 * time.Second // a forward's connection to the guest
	// synInFlight bounds the guests' connections being dialled at once;
	// gVisor drops SYNs beyond it (the guest retransmits).
	synInFlight = 16
)

// Router is an open NAT port: the stack, its services and forwards, and
// the port attached to the switch.
type Router struct {
	opts  Options
	addr  addresses
	mac   frame.MAC
	mtu   int
	log   *slog.Logger
	every ratelog.Every // the router's own lines a guest can provoke

	reg      fabric.Registry
	attached bool
	port     *port
	stack    *stack.Stack
	link     *tap.LinkEndpoint
	leases   *leases // nil with dhcp=0
	flows    *flows
	forwards []ForwardInfo
	hosts    []hostSocket // the forwards' host sockets
	closers  []io.Closer  // listeners and servers, closed first

	ctx       context.Context // ends with Close: dials and lookups stop
	cancel    context.CancelFunc
	dialer    net.Dialer
	delivered chan struct{} // closed when deliver has returned
	once      sync.Once

	echoRefused atomic.Uint64 // pings to addresses other than the router's
}

var _ portkind.Opened = (*Router)(nil)

// Open builds the router cfg describes, binds its forwards (so a host
// port in use fails here, with the port) and attaches it to reg.
func Open(cfg Config, reg fabric.Registry) (*Router, error) {
	cfg.Common = cfg.Common.Defaulted()
	routeLibraryLogs(cfg.Logger)
	o := &cfg.Options
	a := addressesOf(o.net())
	r := &Router{opts: *o, addr: a, mac: o.MAC, log: cfg.Logger.With("transport", "nat", "net", a.net.String()),
		reg: reg, flows: newFlows(o.maxConns()), delivered: make(chan struct{}),
		mtu: cfg.MaxFrame - frame.HeaderLen - 2*frame.VLANTagLen}
	if r.mac == (frame.MAC{}) {
		r.mac = RouterMAC(a.gateway)
	}
	r.every.Period = 10 * time.Second
	r.ctx, r.cancel = context.WithCancel(context.Background())
	r.port = newPort("nat "+a.net.String(), r.mac, cfg.MaxFrame)
	if err := r.build(); err != nil {
		close(r.delivered)
		r.teardown()
		return nil, fmt.Errorf("nat: %w", err)
	}
	go func() {
		defer close(r.delivered)
		r.deliver()
	}()
	id, err := reg.Attach(r.port)
	if err != nil {
		r.teardown()
		return nil, fmt.Errorf("nat: %w", err)
	}
	r.attached = true
	reg.Serve(r.port.receiver(id, cfg.Depth))
	args := []any{"gateway", a.gateway.String(), "mac", r.mac.String(), "dhcp", !o.NoDHCP, "restrict", o.Restrict}
	if !o.NoDNS {
		args = append(args, "dns", a.dns.String())
	}
	for _, f := range r.forwards {
		args = append(args, "hostfwd", f.Proto+":"+f.Host+"-"+f.Guest)
	}
	r.log.Info("nat router up", args...)
	return r, nil
}

// build makes the stack and starts what o asks for.
func (r *Router) build() error {
	a := r.addr
	var virtual []string
	if !r.opts.NoDNS {
		virtual = append(virtual, a.dns.String())
	}
	link, err := tap.NewLinkEndpoint(false, uint32(r.mtu), r.mac.String(), a.gateway.String(), virtual)
	if err != nil {
		return err
	}
	link.Connect(linkOut{r.port})
	r.link = link
	s := stack.New(stack.Options{
		NetworkProtocols:   []stack.NetworkProtocolFactory{ipv4.NewProtocol, arp.NewProtocol},
		TransportProtocols: []stack.TransportProtocolFactory{tcp.NewProtocol, udp.NewProtocol, icmp.NewProtocol4},
	})
	r.stack = s
	if err := s.CreateNIC(nicID, link); err != nil {
		return fmt.Errorf("stack: %s", err)
	}
	own := []netip.Addr{a.gateway}
	if !r.opts.NoDNS {
		own = append(own, a.dns)
	}
	for _, ip := range own {
		if err := s.AddProtocolAddress(nicID, tcpip.ProtocolAddress{Protocol: ipv4.ProtocolNumber,
			AddressWithPrefix: tcpip.AddrFrom4(ip.As4()).WithPrefix()}, stack.AddressProperties{}); err != nil {
			return fmt.Errorf("stack: address %s: %s", ip, err)
		}
	}
	// Promiscuous and spoofing: the stack takes the guests' packets to any
	// address (the forwarders make them the host's connections) and
	// answers from those addresses.
	s.SetSpoofing(nicID, true)
	s.SetPromiscuousMode(nicID, true)
	subnet, err := tcpip.NewSubnet(tcpip.AddrFrom4(a.net.Addr().As4()), tcpip.MaskFromBytes(net.CIDRMask(a.net.Bits(), 32)))
	if err != nil {
		return fmt.Errorf("stack: %w", err)
	}
	s.SetRouteTable([]tcpip.Route{{Destination: subnet, NIC: nicID}})

	tcpFwd := tcp.NewForwarder(s, 0, synInFlight, r.natTCP)
	s.SetTransportProtocolHandler(tcp.ProtocolNumber, func(id stack.TransportEndpointID, pkt *stack.PacketBuffer) bool {
		if _, ok := r.outside(id.LocalAddress); !ok {
			return false // the stack answers with a reset
		}
		return tcpFwd.HandlePacket(id, pkt)
	})
	udpFwd := udp.NewForwarder(s, r.natUDP)
	s.SetTransportProtocolHandler(udp.ProtocolNumber, func(id stack.TransportEndpointID, pkt *stack.PacketBuffer) bool {
		if _, ok := r.outside(id.LocalAddress); !ok || !r.flows.take() {
			return false // the stack answers port unreachable
		}
		return udpFwd.HandlePacket(id, pkt) // calls natUDP, which owns the slot
	})

	if !r.opts.NoDHCP {
		if err := r.startDHCP(); err != nil {
			return fmt.Errorf("dhcp: %w", err)
		}
	}
	if !r.opts.NoDNS {
		if err := r.startDNS(); err != nil {
			return fmt.Errorf("dns: %w", err)
		}
	}
	for _, f := range r.opts.Forwards {
		if err := r.listen(f); err != nil {
			return err
		}
	}
	return nil
}

// linkOut is where the LinkEndpoint sends the stack's frames: the port's
// out queue (tap.NetworkSwitch; tap.Switch is not needed).
type linkOut struct{ p *port }

func (l linkOut) DeliverNetworkPacket(_ tcpip.NetworkProtocolNumber, pkt *stack.PacketBuffer) {
	l.p.send(pkt.AsSlices())
}

// deliver hands the frames the switch wrote to the stack, until the port
// closes.
func (r *Router) deliver() {
	q := r.port.in
	for {
		from, to, closed := q.pending()
		if closed {
			return
		}
		if from == to {
			<-q.ready
			continue
		}
		for i := from; i < to; i++ {
			buf, size := q.slot(i)
			r.inject(buf[:*size])
		}
		q.release(to)
		r.port.freed()
	}
}

// inject gives one frame to the stack, as tap.Switch does: its payload,
// the header taken off.
func (r *Router) inject(f []byte) {
	typ := frame.EtherType(f)
	if typ == etherIPv4 && r.foreignEcho(f[frame.HeaderLen:]) {
		r.echoRefused.Add(1)
		return
	}
	pkt := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: buffer.MakeWithData(f[frame.HeaderLen:])})
	r.link.DeliverNetworkPacket(tcpip.NetworkProtocolNumber(typ), pkt)
	pkt.DecRef()
}

const etherIPv4 = 0x0800

// foreignEcho reports whether p is a ping to an address that is not the
// router's: a promiscuous stack would answer it as its own, so a guest
// would see every address of the world answer. It gets no answer, as the
// outside gets no ICMP from the router.
func (r *Router) foreignEcho(p []byte) bool {
	if len(p) < 20 || p[0]>>4 != 4 || p[9] != 1 {
		return false
	}
	ihl := int(p[0]&0xf) * 4
	if len(p) <= ihl || p[ihl] != 8 {
		return false
	}
	dst := netip.AddrFrom4([4]byte(p[16:20]))
	return dst != r.addr.gateway && (r.opts.NoDNS || dst != r.addr.dns)
}

// outside says where a guest's connection to dst goes on the host: the
// gateway is the host's loopback, an address of the lab network or one
// that is not unicast nowhere, and with restrict=1 nothing goes anywhere.
func (r *Router) outside(dst tcpip.Address) (netip.Addr, bool) {
	if r.opts.Restrict || dst.Len() != 4 {
		return netip.Addr{}, false
	}
	d := netip.AddrFrom4(dst.As4())
	switch {
	case d == r.addr.gateway:
		return hostLoopback, true
	case r.addr.net.Contains(d), !d.IsGlobalUnicast():
		// Global unicast leaves out loopback, link-local (a cloud's
		// metadata server too), multicast and broadcast.
		return netip.Addr{}, false
	}
	return d, true
}

var hostLoopback = netip.AddrFrom4([4]byte{127, 0, 0, 1})

// natTCP turns a guest's connection into the host's: it runs on a
// goroutine of gVisor's forwarder per SYN (at most synInFlight at once).
func (r *Router) natTCP(req *tcp.ForwarderRequest) {
	if !r.flows.enter() {
		req.Complete(true)
		return
	}
	defer r.flows.exit()
	id := req.ID()
	dst, ok := r.outside(id.LocalAddress)
	if !ok || !r.flows.take() {
		req.Complete(true)
		return
	}
	defer r.flows.give()
	ctx, cancel := context.WithTimeout(r.ctx, dialTimeout)
	host, err := r.dialer.DialContext(ctx, "tcp4", netip.AddrPortFrom(dst, id.LocalPort).String())
	cancel()
	if err != nil {
		req.Complete(true) // refused or unreachable: the guest gets a reset
		return
	}
	var wq waiter.Queue
	ep, terr := req.CreateEndpoint(&wq)
	req.Complete(false)
	if terr != nil {
		host.Close()
		return
	}
	r.flows.splice(gonet.NewTCPConn(&wq, ep), host)
}

// natUDP turns a guest's new UDP flow into a host socket; it runs inline
// in the stack, holding the slot the handler took.
func (r *Router) natUDP(req *udp.ForwarderRequest) {
	id := req.ID()
	dst, _ := r.outside(id.LocalAddress)
	var wq waiter.Queue
	ep, terr := req.CreateEndpoint(&wq)
	if terr != nil {
		r.flows.give()
		return
	}
	guest := gonet.NewUDPConn(&wq, ep)
	target := netip.AddrPortFrom(dst, id.LocalPort).String()
	p, _ := forwarder.NewUDPProxy(idleConn{guest}, func() (net.Conn, error) {
		return r.flows.dialCounted(false, func() (net.Conn, error) { return r.dialer.DialContext(r.ctx, "udp4", target) })
	})
	if !r.flows.hold(p) {
		guest.Close()
		r.flows.give()
		return
	}
	if !r.flows.spawn(func() {
		defer r.flows.give()
		p.Run() // until the flow is idle for udpIdle, or closed
		r.flows.drop(p)
		p.Close()
	}) {
		r.flows.drop(p)
		p.Close()
		r.flows.give()
	}
}

// startDNS serves DNS at .3, UDP and TCP: gvisor-tap-vsock's server, with
// the zone lab. (host.lab is the gateway, the host's loopback) and the
// host's resolver for other names, which restrict=1 leaves out.
func (r *Router) startDNS() error {
	at := tcpip.FullAddress{NIC: nicID, Addr: tcpip.AddrFrom4(r.addr.dns.As4()), Port: 53}
	udpConn, err := gonet.DialUDP(r.stack, &at, nil, ipv4.ProtocolNumber)
	if err != nil {
		return err
	}
	r.closers = append(r.closers, udpConn)
	tcpLn, err := gonet.ListenTCP(r.stack, at, ipv4.ProtocolNumber)
	if err != nil {
		return err
	}
	r.closers = append(r.closers, tcpLn)
	zones := []types.Zone{{Name: LabZone + ".", Records: []types.Record{{Name: "host", IP: net.IP(r.addr.gateway.AsSlice())}}}}
	up := &upstream{ctx: r.ctx, off: r.opts.Restrict, slots: make(chan struct{}, dnsLookups)}
	srv, err := dns.NewWithUpstreamResolver(udpConn, tcpLn, zones, up)
	if err != nil {
		return err
	}
	r.flows.spawn(func() { srv.Serve() })
	r.flows.spawn(func() { srv.ServeTCP() })
	return nil
}

// LabZone is the DNS zone the router answers itself: host.lab is the
// gateway.
const LabZone = "lab"

// listen binds one forward on the host and serves it.
func (r *Router) listen(f Forward) error {
	guest := f.Guest
	if !guest.IsValid() {
		guest = r.addr.first
	}
	to := tcpip.FullAddress{NIC: nicID, Addr: tcpip.AddrFrom4(guest.As4()), Port: f.GuestPort}
	info := ForwardInfo{Proto: f.proto(), Guest: netip.AddrPortFrom(guest, f.GuestPort).String()}
	key := f.String() // as configured: a handed-over port 0 stays the port it was
	if f.UDP {
		ln, err := hostUDP(f, key)
		if err != nil {
			return fmt.Errorf("hostfwd %s: %w", f, err)
		}
		r.hosts = append(r.hosts, hostSocket{key, ln})
		p, _ := forwarder.NewUDPProxy(ln, func() (net.Conn, error) {
			return r.flows.dialCounted(true, func() (net.Conn, error) {
				c, err := gonet.DialUDP(r.stack, nil, &to, ipv4.ProtocolNumber)
				if err != nil {
					return nil, err
				}
				return c, nil
			})
		})
		r.closers = append(r.closers, p) // its listener and its clients' sockets
		info.Host = ln.LocalAddr().String()
		r.flows.spawn(p.Run)
	} else {
		ln, err := hostTCP(f, key)
		if err != nil {
			return fmt.Errorf("hostfwd %s: %w", f, err)
		}
		r.closers = append(r.closers, ln)
		r.hosts = append(r.hosts, hostSocket{key, ln})
		info.Host = ln.Addr().String()
		r.flows.spawn(func() { r.accept(ln, to) })
	}
	r.forwards = append(r.forwards, info)
	return nil
}

// hostUDP and hostTCP bind a forward's host socket, or take the one a hot
// upgrade handed over.
func hostUDP(f Forward, key string) (*net.UDPConn, error) {
	fd, ok := handover.TakeFD(handedForward, key)
	if !ok {
		return net.ListenUDP("udp4", net.UDPAddrFromAddrPort(f.Host))
	}
	pc, err := adopt(fd, key, net.FilePacketConn)
	if err != nil {
		return nil, err
	}
	if c, ok := pc.(*net.UDPConn); ok {
		return c, nil
	}
	pc.Close()
	return nil, errors.New("the socket handed over is not UDP")
}

func hostTCP(f Forward, key string) (*net.TCPListener, error) {
	fd, ok := handover.TakeFD(handedForward, key)
	if !ok {
		ln, err := net.Listen("tcp4", f.Host.String())
		if err != nil {
			return nil, err
		}
		return ln.(*net.TCPListener), nil
	}
	ln, err := adopt(fd, key, net.FileListener)
	if err != nil {
		return nil, err
	}
	if l, ok := ln.(*net.TCPListener); ok {
		return l, nil
	}
	ln.Close()
	return nil, errors.New("the socket handed over is not a TCP listener")
}

// handedForward is the kind of a forward's host socket in a hot upgrade,
// keyed by the forward as configured.
const handedForward = "nat-hostfwd"

// hostSocket is a forward's host socket, for HandOver.
type hostSocket struct {
	key  string
	sock syscall.Conn
}

// HandOver gives a new switch process (a hot upgrade) the forwards' host
// sockets, so that it can bind them while this one still holds them. The
// router's connections are not handed over: they end with this process.
func (r *Router) HandOver() []handover.Item {
	var items []handover.Item
	for _, h := range r.hosts {
		if f, err := handover.Dup(h.sock, "nat hostfwd "+h.key); err == nil {
			items = append(items, handover.Item{Kind: handedForward, Key: h.key, File: f})
		}
	}
	return items
}

// adopt makes a handed-over descriptor a listener or packet socket.
func adopt[T any](fd int, name string, from func(*os.File) (T, error)) (T, error) {
	f := os.NewFile(uintptr(fd), name)
	defer f.Close() // from duplicates it
	return from(f)
}

// accept serves a TCP forward: each connection to the host port is one to
// the guest, from the gateway's address. During a hot upgrade it accepts
// nothing (accept.Pause): a connection then waits for the new switch,
// rather than being made through this one's stack as it leaves.
func (r *Router) accept(ln *net.TCPListener, to tcpip.FullAddress) {
	next := accept.Pausable(ln, ln.Accept, r.ctx.Done())
	for {
		c, err := next()
		if err == nil {
			accept.End() // settled: its flow is this switch's to finish
		}
		if err != nil {
			if r.ctx.Err() != nil {
				return
			}
			r.every.Log(r.log, slog.LevelWarn, "nat: hostfwd accept", "err", err)
			select { // EMFILE and the like: not a busy loop
			case <-r.ctx.Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		if !r.flows.take() {
			c.Close()
			continue
		}
		if !r.flows.spawn(func() {
			defer r.flows.give()
			ctx, cancel := context.WithTimeout(r.ctx, fwdTimeout)
			g, err := gonet.DialContextTCP(ctx, r.stack, to, ipv4.ProtocolNumber)
			cancel()
			if err != nil {
				c.Close()
				return
			}
			r.flows.splice(g, c)
		}) {
			r.flows.give()
			c.Close()
			return
		}
	}
}

// Close detaches the port and tears the router down: listeners, servers,
// connections and the stack, waiting for every goroutine of its own.
func (r *Router) Close() error {
	r.once.Do(func() {
		if r.attached {
			r.reg.Detach(r.port) // closes the port
		}
		r.teardown()
	})
	return nil
}

func (r *Router) teardown() {
	r.port.Close() // deliver returns, the receiver reports net.ErrClosed
	r.cancel()
	for _, c := range r.closers {
		c.Close()
	}
	r.flows.shut()
	<-r.delivered // nothing enters the stack any more
	if r.stack != nil {
		r.stack.Close() // every endpoint: the servers' reads end
	}
	r.flows.wait()
	if r.stack != nil {
		r.stack.Wait()
	}
}

// Info is what the API shows of a NAT port (ctl ports -json, "details").
type Info struct {
	Net          string        `json:"net"`
	Gateway      string        `json:"gateway"`
	DNS          string        `json:"dns,omitempty"`
	MAC          string        `json:"mac"`
	Restrict     bool          `json:"restrict,omitempty"`
	Leases       []LeaseInfo   `json:"leases"`
	Forwards     []ForwardInfo `json:"forwards,omitempty"`
	Conns        int           `json:"conns"`         // TCP connections and UDP flows now
	ConnsRefused uint64        `json:"conns_refused"` // turned away at max_conns
	Dropped      uint64        `json:"dropped"`       // the router's frames its queue to the switch had no room for
	EchoRefused  uint64        `json:"echo_refused"`  // pings to addresses not the router's, unanswered
}

// LeaseInfo is one DHCP lease.
type LeaseInfo struct {
	IP  string `json:"ip"`
	MAC string `json:"mac"`
}

// ForwardInfo is one forward as bound: Host is the host's address and
// port (a port 0 of hostfwd= made concrete).
type ForwardInfo struct {
	Proto string `json:"proto"`
	Host  string `json:"host"`
	Guest string `json:"guest"`
}

// Info reports the router's leases, forwards and counters
// (portkind.Informer).
func (r *Router) Info() any {
	in := Info{Net: r.addr.net.String(), Gateway: r.addr.gateway.String(), MAC: r.mac.String(), Restrict: r.opts.Restrict,
		Leases: []LeaseInfo{}, Forwards: slices.Clone(r.forwards), Conns: r.flows.held(), ConnsRefused: r.flows.refused.Load(),
		Dropped: r.port.outDropped.Load(), EchoRefused: r.echoRefused.Load()}
	if !r.opts.NoDNS {
		in.DNS = r.addr.dns.String()
	}
	if r.leases != nil {
		in.Leases = r.leases.list()
	}
	return in
}
