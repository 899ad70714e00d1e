package nat

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/containers/gvisor-tap-vsock/pkg/tap"
	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/server4"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
	"gvisor.dev/gvisor/pkg/waiter"
)

// leaseTime is what DHCP grants; a lease not asked for again within
// twice that may go to another guest once the pool is full.
const leaseTime = time.Hour

// maxLeases bounds the leases of a large network: a guest that asks with
// ever new addresses takes no more than this.
const maxLeases = 1024

// reserved marks the pool's addresses that are never leased (.1 to .14,
// the broadcast): no Ethernet address renders so.
const reserved = "reserved"

// leases are the DHCP server's: gvisor-tap-vsock's IP pool, which hands a
// client the first free address and keeps it for that client, bounded
// and with leases a client stopped renewing taken back when the pool is
// full.
type leases struct {
	pool *tap.IPPool
	max  int

	mu   sync.Mutex
	seen map[string]time.Time // client address -> last request
}

func newLeases(a addresses) *leases {
	pool := tap.NewIPPool(&net.IPNet{IP: a.net.Addr().AsSlice(), Mask: net.CIDRMask(a.net.Bits(), 32)})
	for ip := a.net.Addr().Next(); ip.Less(a.first); ip = ip.Next() {
		pool.Reserve(ip.AsSlice(), reserved)
	}
	pool.Reserve(a.broadcast.AsSlice(), reserved)
	size := 1<<(32-a.net.Bits()) - 16 // .15 to the one before the broadcast
	return &leases{pool: pool, max: min(size, maxLeases), seen: make(map[string]time.Time)}
}

// get returns the client's address, a new one if it has none; false when
// none is left.
func (l *leases) get(mac string, now time.Time) (net.IP, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.seen[mac]; !ok && len(l.seen) >= l.max {
		for m, at := range l.seen {
			if now.Sub(at) > 2*leaseTime {
				delete(l.seen, m)
				l.pool.Release(m)
			}
		}
		if len(l.seen) >= l.max {
			return nil, false
		}
	}
	ip, err := l.pool.GetOrAssign(mac)
	if err != nil {
		return nil, false
	}
	l.seen[mac] = now
	return ip, true
}

func (l *leases) release(mac string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.seen[mac]; ok {
		delete(l.seen, mac)
		l.pool.Release(mac)
	}
}

// list is the leases by address.
func (l *leases) list() []LeaseInfo {
	out := []LeaseInfo{}
	for ip, mac := range l.pool.Leases() {
		if mac != reserved {
			out = append(out, LeaseInfo{IP: ip, MAC: mac})
		}
	}
	slices.SortFunc(out, func(a, b LeaseInfo) int {
		x, _ := netip.ParseAddr(a.IP)
		y, _ := netip.ParseAddr(b.IP)
		return x.Compare(y)
	})
	return out
}

// startDHCP serves DHCP on the router's port 67: insomniacslk's server
// with gvisor-tap-vsock's pool, answering as gvisor-tap-vsock's handler
// does but with QEMU's addresses (router .2, DNS .3) and without DNS when
// dns=0.
func (r *Router) startDHCP() error {
	r.leases = newLeases(r.addr)
	var wq waiter.Queue
	ep, terr := r.stack.NewEndpoint(udp.ProtocolNumber, ipv4.ProtocolNumber, &wq)
	if terr != nil {
		return errors.New(terr.String())
	}
	ep.SocketOptions().SetBroadcast(true)
	if terr := ep.Bind(tcpip.FullAddress{NIC: nicID, Port: 67}); terr != nil {
		ep.Close()
		return errors.New(terr.String())
	}
	conn := gonet.NewUDPConn(&wq, ep)
	srv, err := server4.NewServer("", nil, r.dhcpReply, server4.WithConn(conn))
	if err != nil {
		conn.Close()
		return err
	}
	r.closers = append(r.closers, srv)
	r.flows.spawn(func() { srv.Serve() })
	return nil
}

// dhcpReply answers one request (on a goroutine server4 starts for it).
func (r *Router) dhcpReply(conn net.PacketConn, peer net.Addr, m *dhcpv4.DHCPv4) {
	if m.OpCode != dhcpv4.OpcodeBootRequest || len(m.ClientHWAddr) != 6 {
		return
	}
	gw := net.IP(r.addr.gateway.AsSlice())
	mac := m.ClientHWAddr.String()
	var typ dhcpv4.MessageType
	switch m.MessageType() {
	case dhcpv4.MessageTypeDiscover:
		typ = dhcpv4.MessageTypeOffer
	case dhcpv4.MessageTypeRequest:
		if sid := m.ServerIdentifier(); sid != nil && !sid.Equal(gw) {
			return // the client took another server's offer
		}
		typ = dhcpv4.MessageTypeAck
	case dhcpv4.MessageTypeRelease:
		r.leases.release(mac)
		return
	default:
		return
	}
	ip, ok := r.leases.get(mac, time.Now())
	if !ok {
		r.every.Log(r.log, slog.LevelWarn, "nat: DHCP: no address left", "client", mac)
		return
	}
	reply, err := dhcpv4.NewReplyFromRequest(m, dhcpv4.WithMessageType(typ), dhcpv4.WithYourIP(ip),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(gw)),
		dhcpv4.WithOption(dhcpv4.OptIPAddressLeaseTime(leaseTime)),
		dhcpv4.WithOption(dhcpv4.OptSubnetMask(net.CIDRMask(r.addr.net.Bits(), 32))),
		dhcpv4.WithOption(dhcpv4.OptRouter(gw)),
		dhcpv4.WithOption(dhcpv4.Option{Code: dhcpv4.OptionInterfaceMTU, Value: dhcpv4.Uint16(r.mtu)}))
	if err != nil {
		return
	}
	if !r.opts.NoDNS {
		reply.UpdateOption(dhcpv4.OptDNS(r.addr.dns.AsSlice()))
	}
	conn.WriteTo(reply.ToBytes(), peer)
}

// dnsLookups bounds the host resolver's lookups for the guests at once,
// and dnsTimeout each: a guest asking for ever new names gets failures
// beyond it, not a pile of goroutines.
const (
	dnsLookups = 64
	dnsTimeout = 5 * time.Second
)

var (
	errRestricted = errors.New("restrict=1: names outside the lab zone are not looked up")
	errBusy       = errors.New("too many lookups at once")
)

// upstream is the DNS server's resolver for names outside the lab zone:
// the host's own (its /etc/hosts and /etc/resolv.conf, as Go reads them),
// bounded, ended when the router closes, and nothing with restrict=1.
type upstream struct {
	ctx   context.Context
	off   bool
	slots chan struct{}
	r     net.Resolver
}

// begin takes a slot and a context for one lookup; the server's own
// context (context.TODO) is replaced by the router's.
func (u *upstream) begin() (context.Context, func(), error) {
	if u.off {
		return nil, nil, errRestricted
	}
	select {
	case u.slots <- struct{}{}:
	default:
		return nil, nil, errBusy
	}
	ctx, cancel := context.WithTimeout(u.ctx, dnsTimeout)
	return ctx, func() { cancel(); <-u.slots }, nil
}

func (u *upstream) LookupIPAddr(_ context.Context, host string) ([]net.IPAddr, error) {
	ctx, end, err := u.begin()
	if err != nil {
		return nil, err
	}
	defer end()
	// The server asks with the question's name, absolute ("name."): Go
	// looks such a name up in DNS only, not in the host's /etc/hosts.
	return u.r.LookupIPAddr(ctx, strings.TrimSuffix(host, "."))
}

func (u *upstream) LookupCNAME(_ context.Context, host string) (string, error) {
	ctx, end, err := u.begin()
	if err != nil {
		return "", err
	}
	defer end()
	return u.r.LookupCNAME(ctx, host)
}

func (u *upstream) LookupMX(_ context.Context, name string) ([]*net.MX, error) {
	ctx, end, err := u.begin()
	if err != nil {
		return nil, err
	}
	defer end()
	return u.r.LookupMX(ctx, name)
}

func (u *upstream) LookupNS(_ context.Context, name string) ([]*net.NS, error) {
	ctx, end, err := u.begin()
	if err != nil {
		return nil, err
	}
	defer end()
	return u.r.LookupNS(ctx, name)
}

func (u *upstream) LookupSRV(_ context.Context, service, proto, name string) (string, []*net.SRV, error) {
	ctx, end, err := u.begin()
	if err != nil {
		return "", nil, err
	}
	defer end()
	return u.r.LookupSRV(ctx, service, proto, name)
}

func (u *upstream) LookupTXT(_ context.Context, name string) ([]string, error) {
	ctx, end, err := u.begin()
	if err != nil {
		return nil, err
	}
	defer end()
	return u.r.LookupTXT(ctx, name)
}
