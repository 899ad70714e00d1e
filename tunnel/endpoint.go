package tunnel

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/umlswitch/umlswitch/fabric"
	"github.com/umlswitch/umlswitch/frame"
	"github.com/umlswitch/umlswitch/internal/handover"
	"github.com/umlswitch/umlswitch/internal/mmsg"
	"github.com/umlswitch/umlswitch/internal/pollfd"
	"github.com/umlswitch/umlswitch/internal/sockport"
)

// Kind is the socket an encapsulation travels in.
type Kind struct {
	Name  string // for logs: "gre", "l2tpv3/ip", "l2tpv3/udp"
	Type  int    // unix.SOCK_RAW (IP protocol Proto) or unix.SOCK_DGRAM (UDP)
	Proto int
}

// Router finds the port a received packet is for. The protocol package
// implements it for each endpoint, usually as a Routes and the reading of
// a route from the packet; Route is called by the endpoint's one reader
// goroutine.
type Router interface {
	// Route returns the port for pkt, whose encapsulation header comes
	// first (an IPv4 header has been removed), sent from peer; nil if none.
	Route(pkt []byte, peer netip.Addr) *Port
}

// slack is receive room beyond a port's largest frame, so that a header
// longer than the one the endpoint expected still leaves a whole frame in
// the buffer (it is then moved to the headroom).
const slack = 128

// Endpoint is one socket at a local address and the ports that share it.
type Endpoint struct {
	t        *Table
	key      endpointKey
	fd       *pollfd.FD
	ip4Hdr   bool // raw IPv4 sockets hand up the IP header
	router   Router
	refs     int // guarded by t.mu
	rxHint   int // expected header length, IP header included
	depth    int
	maxFrame int

	gso bool // UDP: ports may send many same-size frames in one message
	gro bool // UDP: a datagram may carry many frames (see offload.go)

	unknown   atomic.Uint64 // packets for no port
	malformed atomic.Uint64 // packets whose IPv4 header was broken
	moved     atomic.Uint64 // frames moved because their header was not rxHint long
	coalesced atomic.Uint64 // datagrams that carried several frames (UDP GRO)
	overrun   atomic.Uint64 // the socket's drops when last read (see Overruns)

	// Receive state: the endpoint's one reader goroutine only.
	rx     *mmsg.Batch
	names  [][sockaddrLen]byte
	rxVec  *frame.Vector
	got    pollfd.Result      // packets read, or why none were
	readFn func(uintptr) bool // both bound once, so a read allocates no closure
	recvFn func(fd int) (int, error)
	g      groState
}

type endpointKey struct {
	kind  Kind
	local netip.AddrPort
}

// Stats are an endpoint's counters of what no port could be charged with.
type Stats struct {
	Local     netip.AddrPort
	Kind      string
	Unknown   uint64 // from a peer, key or session no port has, or not from its port's only peer
	Malformed uint64 // broken IPv4 header
	Moved     uint64 // frames moved into place (headers of another length)
	Coalesced uint64 // datagrams that carried several frames (UDP GRO)
	Overrun   uint64 // packets the socket's receive queue had no room for
	GSO, GRO  bool   // whether the socket sends and receives many frames per datagram
}

// Table keeps one switch's endpoints, so that ports with the same local
// address and kind share a socket.
type Table struct {
	reg fabric.Registry
	log *slog.Logger

	mu        sync.Mutex
	eps       map[endpointKey]*Endpoint
	noOffload bool // guarded by mu
}

// NewTable returns a table that serves new endpoints' readers on reg.
func NewTable(reg fabric.Registry, log *slog.Logger) *Table {
	if log == nil {
		log = slog.Default()
	}
	return &Table{reg: reg, log: log, eps: make(map[endpointKey]*Endpoint)}
}

// SetOffload turns UDP segmentation offload (GSO on send, GRO on receive)
// on or off for endpoints opened afterwards. It is on by default where the
// kernel supports it; turning it off is for measurements and for paths
// where it misbehaves.
func (t *Table) SetOffload(on bool) {
	t.mu.Lock()
	t.noOffload = !on
	t.mu.Unlock()
}

// EndpointConfig describes the socket a port needs.
type EndpointConfig struct {
	Kind      Kind
	Local     netip.AddrPort // port 0 for raw sockets
	NewRouter func() Router  // used when the endpoint is created
	HeaderLen int            // the encapsulation header the first port uses
	Depth     int
	MaxFrame  int
}

// Acquire returns the endpoint for cfg's kind and local address, creating
// and serving it if needed. Each Acquire is matched by one Release (a
// port's Close does it).
func (t *Table) Acquire(cfg EndpointConfig) (*Endpoint, error) {
	key := endpointKey{kind: cfg.Kind, local: cfg.Local}
	t.mu.Lock()
	defer t.mu.Unlock()
	if e := t.eps[key]; e != nil {
		if cfg.MaxFrame > e.maxFrame {
			return nil, fmt.Errorf("%s %s: mtu larger than the ports already sharing this address (largest frame %d)",
				cfg.Kind.Name, cfg.Local, e.maxFrame)
		}
		e.refs++
		return e, nil
	}
	e, err := t.open(key, cfg)
	if err != nil {
		return nil, err
	}
	e.refs = 1
	t.eps[key] = e
	t.reg.Serve(fabric.Receiver{Name: fmt.Sprintf("%s %s", cfg.Kind.Name, cfg.Local), Depth: e.depth,
		MaxFrame: e.maxFrame + slack, Receive: e.receive})
	t.log.Info("listening", "transport", cfg.Kind.Name, "local", cfg.Local, "gso", e.gso, "gro", e.gro)
	return e, nil
}

func (t *Table) open(key endpointKey, cfg EndpointConfig) (*Endpoint, error) {
	ip := cfg.Local.Addr()
	family := unix.AF_INET
	if ip.Is6() {
		family = unix.AF_INET6
	}
	if fd, ok := handedEndpoint(cfg); ok {
		return t.serveSocket(fd, key, cfg)
	}
	fd, err := unix.Socket(family, cfg.Kind.Type|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, cfg.Kind.Proto)
	if err != nil {
		if errors.Is(err, unix.EPERM) && cfg.Kind.Type == unix.SOCK_RAW {
			return nil, fmt.Errorf("%s: raw socket: %w (needs root or CAP_NET_RAW)", cfg.Kind.Name, err)
		}
		return nil, fmt.Errorf("%s: socket: %w", cfg.Kind.Name, err)
	}
	// A switch takes traffic from many peers on one socket, and UDP and IP
	// have no flow control: room for bursts. The FORCE options pass
	// net.core.rmem_max (212992 on a default Debian) when running as root.
	sockport.SetBuffer(fd, unix.SO_RCVBUF, 4<<20)
	sockport.SetBuffer(fd, unix.SO_SNDBUF, 4<<20)
	var sa unix.Sockaddr
	if ip.Is4() {
		sa = &unix.SockaddrInet4{Port: int(cfg.Local.Port()), Addr: ip.As4()}
	} else {
		sa = &unix.SockaddrInet6{Port: int(cfg.Local.Port()), Addr: ip.As16()}
	}
	if err := unix.Bind(fd, sa); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("%s: bind %s: %w", cfg.Kind.Name, cfg.Local, err)
	}
	return t.serveSocket(fd, key, cfg)
}

// serveSocket makes an endpoint of fd, a socket bound at cfg.Local.
func (t *Table) serveSocket(fd int, key endpointKey, cfg EndpointConfig) (*Endpoint, error) {
	ip := cfg.Local.Addr()
	pfd, err := pollfd.New(fd, cfg.Kind.Name+" "+cfg.Local.String())
	if err != nil {
		return nil, err
	}
	e := &Endpoint{t: t, key: key, fd: pfd, router: cfg.NewRouter(), depth: cfg.Depth, maxFrame: cfg.MaxFrame,
		ip4Hdr: ip.Is4() && cfg.Kind.Type == unix.SOCK_RAW}
	e.rxHint = cfg.HeaderLen
	if e.ip4Hdr {
		e.rxHint += 20
	}
	e.rxHint = min(e.rxHint, frame.Headroom)
	e.readFn = e.read
	e.recvFn = e.recv
	if cfg.Kind.Type == unix.SOCK_DGRAM && !t.noOffload {
		e.gso, e.gro = enableOffload(fd)
	}
	return e, nil
}

// Router returns the endpoint's router, for the protocol package.
func (e *Endpoint) Router() Router { return e.router }

// Release drops one reference; the last closes the socket, which stops the
// endpoint's reader.
func (e *Endpoint) Release() {
	t := e.t
	t.mu.Lock()
	e.refs--
	last := e.refs == 0
	if last {
		delete(t.eps, e.key)
	}
	t.mu.Unlock()
	if last {
		e.Overruns() // the last count, for the log and the ports' final counters
		e.fd.Close(nil)
		t.log.Info("closed", "transport", e.key.kind.Name, "local", e.key.local, "unknown", e.unknown.Load(),
			"malformed", e.malformed.Load(), "overrun", e.overrun.Load())
	}
}

// Stats returns the counters of every endpoint in the table.
func (t *Table) Stats() []Stats {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]Stats, 0, len(t.eps))
	for _, e := range t.eps {
		out = append(out, Stats{Local: e.key.local, Kind: e.key.kind.Name, Unknown: e.unknown.Load(),
			Malformed: e.malformed.Load(), Moved: e.moved.Load(), Coalesced: e.coalesced.Load(), Overrun: e.Overruns(), GSO: e.gso, GRO: e.gro})
	}
	return out
}

// Overruns is how many packets the kernel dropped for the endpoint's socket,
// its receive queue being full: a reader that fell behind a burst. The
// kernel does not say whose they were. Read when asked (a snapshot), so the
// receive path pays nothing for it; after Close, the last count read.
func (e *Endpoint) Overruns() uint64 {
	if e.fd == nil {
		return e.overrun.Load()
	}
	if fd, ok := e.fd.Borrow(); ok {
		n, err := sockport.Drops(fd)
		e.fd.Return()
		if err == nil {
			for old := e.overrun.Load(); n > old && !e.overrun.CompareAndSwap(old, n); old = e.overrun.Load() {
			}
		}
	}
	return e.overrun.Load()
}

// bind points the receive batch at v: each packet lands rxHint bytes before
// the headroom, so a packet whose header is rxHint long has its frame
// exactly where the switch wants it.
func (e *Endpoint) bind(v *frame.Vector) {
	n := min(e.depth, v.Depth())
	per := 1
	if e.gro {
		per = 2 // the rest of a coalesced datagram goes to an overflow area
	}
	e.rx, e.names, e.rxVec = mmsg.NewBatch(n, per), make([][sockaddrLen]byte, n), v
	for i := 0; i < n; i++ {
		e.rx.SetBuf(i, 0, v.Bufs[i][frame.Headroom-e.rxHint:])
	}
	if e.gro {
		e.g.bind(e.rx, len(v.Bufs[0])-(frame.Headroom-e.rxHint))
	}
}

func (e *Endpoint) read(fd uintptr) bool { return e.got.Try(fd, e.recvFn) }

func (e *Endpoint) recv(fd int) (int, error) {
	return e.rx.Recv(fd, len(e.rx.Hdrs), unix.MSG_DONTWAIT|unix.MSG_TRUNC)
}

func (e *Endpoint) receive(v *frame.Vector) (int, error) {
	if e.rxVec != v {
		e.bind(v)
	}
	if e.g.pending() {
		return e.drain(v), nil // frames of coalesced datagrams that did not fit last time
	}
	for i := range e.names {
		e.rx.SetName(i, e.names[i][:]) // the kernel shortens Namelen: reset it
	}
	if e.gro {
		e.g.resetControl(e.rx)
	}
	if err := e.fd.Read(e.readFn); err != nil {
		return 0, err
	}
	if e.got.Err != nil {
		// ICMP errors for earlier sends surface here on UDP sockets
		// (ECONNREFUSED): transient, and the socket stays usable.
		return 0, e.got.Err
	}
	return e.decapBatch(v), nil
}

// decapBatch decapsulates the e.got.N packets just received and returns how
// many slots of v they fill.
func (e *Endpoint) decapBatch(v *frame.Vector) int {
	if e.gro && e.g.coalesced(e.rx, e.got.N) {
		return e.split(v)
	}
	for i := 0; i < e.got.N; i++ {
		e.decap(v, i)
	}
	return e.got.N
}

// decap finds packet i's port and puts its frame at the headroom, or marks
// it: frame.NoPort for no port, a Rejected size for a port's bad header.
func (e *Endpoint) decap(v *frame.Vector, i int) {
	// The true length, thanks to MSG_TRUNC.
	e.place(v, i, int(e.rx.Hdrs[i].Len), decodeSockaddr(e.names[i][:e.rx.Hdrs[i].Msg.Namelen]))
}

// place does decap's work for the packet of total bytes from peer that
// starts rxHint bytes before slot i's headroom (as much of it as fits).
func (e *Endpoint) place(v *frame.Vector, i, total int, peer netip.AddrPort) {
	buf := v.Bufs[i][frame.Headroom-e.rxHint:]
	pkt := buf[:min(total, len(buf))]
	start := frame.Headroom - e.rxHint
	if e.ip4Hdr {
		n, ok := ipv4HeaderLen(pkt)
		if !ok {
			e.malformed.Add(1)
			v.Ports[i] = frame.NoPort
			return
		}
		pkt, total, start = pkt[n:], total-n, start+n
	}
	p := e.router.Route(pkt, peer.Addr())
	if p == nil || (p.onlyPeer && !p.sentBy(peer)) {
		e.unknown.Add(1)
		v.Ports[i] = frame.NoPort
		return
	}
	v.Ports[i] = p.id
	hdr, reason := p.check(pkt)
	if reason != 0 {
		v.Sizes[i] = fabric.Rejected(reason)
		return
	}
	size := total - hdr
	if start+hdr != frame.Headroom {
		if hdr+min(size, v.MaxFrame+1) > len(pkt) {
			v.Sizes[i] = fabric.Rejected(fabric.DropDecap) // a header so long the frame was cut
			return
		}
		copy(v.Bufs[i][frame.Headroom:], pkt[hdr:min(len(pkt), hdr+v.MaxFrame+1)])
		e.moved.Add(1)
	}
	v.Sizes[i] = size
}

// handedKind is the Kind of a tunnel socket in a hot upgrade, keyed by its
// local address.
func handedKind(k Kind) string { return "tunnel " + k.Name }

// HandOver gives a new switch process (a hot upgrade) a duplicate of every
// endpoint's socket: the new switch serves the same socket, so a UDP port
// needs no second bind and a raw socket's packets are not read twice.
func (t *Table) HandOver() []handover.Item {
	t.mu.Lock()
	defer t.mu.Unlock()
	var items []handover.Item
	for key, e := range t.eps {
		if f, ok := e.fd.DupFile(handedKind(key.kind) + " " + key.local.String()); ok {
			items = append(items, handover.Item{Kind: handedKind(key.kind), Key: key.local.String(), File: f})
		}
	}
	return items
}

// handedEndpoint takes the socket an old switch handed over for cfg's
// kind and local address, if it did.
func handedEndpoint(cfg EndpointConfig) (int, bool) {
	return handover.TakeFD(handedKind(cfg.Kind), cfg.Local.String())
}
