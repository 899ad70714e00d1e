// Package transports opens the ports a configuration describes, of every
// kind, on a switch (or on the benchmark's ceiling relay), and closes them
// again. It knows no kind: each registers itself with package portkind,
// and kinds.go links them in. Tunnel ports that share a local address
// share a socket, whichever switch they belong to.
package transports

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/umlswitch/umlswitch/configs"
	"github.com/umlswitch/umlswitch/fabric"
	"github.com/umlswitch/umlswitch/frame"
	"github.com/umlswitch/umlswitch/internal/handover"
	"github.com/umlswitch/umlswitch/internal/limit"
	"github.com/umlswitch/umlswitch/transports/portkind"
	"github.com/umlswitch/umlswitch/tunnel"
)

// Defaults apply to ports that set no depth or mtu of their own.
type Defaults struct {
	Depth int
	MTU   int
	// Handoff takes the connections to a control socket that are not
	// clients (the control API's); nil refuses them.
	Handoff func(net.Conn, portkind.API)
	// Clients bounds the clients of every listener (daemon, BESS, stream)
	// together and per uid; nil: no bound.
	Clients *limit.Limiter
	// NotAllowed counts the clients refused by listeners' allow_uid= and
	// allow_gid=; nil: not counted.
	NotAllowed *atomic.Uint64
}

// Set is the ports and listeners opened through it.
type Set struct {
	serve   fabric.Registry // where shared tunnel sockets' readers run
	tunnels *tunnel.Table
	log     *slog.Logger

	mu     sync.Mutex
	opened []*Opened // in opening order
}

// Opened is one opened port or listener.
type Opened struct {
	set  *Set
	c    io.Closer
	path string
	once sync.Once
}

// Close closes it: its ports are detached.
func (o *Opened) Close() error {
	o.once.Do(func() {
		o.set.mu.Lock()
		o.set.opened = slices.DeleteFunc(o.set.opened, func(x *Opened) bool { return x == o })
		o.set.mu.Unlock()
		o.c.Close()
	})
	return nil
}

// Path is the unix socket a listener (daemon, bess, stream) listens on;
// empty for other kinds.
func (o *Opened) Path() string { return o.path }

// Info is what the kind reports of its port beyond the counters (see
// portkind.Informer); nil for most kinds.
func (o *Opened) Info() any {
	if i, ok := o.c.(portkind.Informer); ok {
		return i.Info()
	}
	return nil
}

// NewSet returns an empty set. Readers of sockets shared by ports of
// several registries run on serve.
func NewSet(serve fabric.Registry, log *slog.Logger) *Set {
	if log == nil {
		log = slog.Default()
	}
	return &Set{serve: serve, tunnels: tunnel.NewTable(serve, log), log: log}
}

// Open opens the port p describes on reg, which its ports (or, for a
// listener, each client's port) are attached to.
func (s *Set) Open(p configs.Port, reg fabric.Registry, d Defaults) (*Opened, error) {
	o, err := s.open(p, reg, d)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.opened = append(s.opened, o)
	s.mu.Unlock()
	return o, nil
}

func (s *Set) open(p configs.Port, reg fabric.Registry, d Defaults) (*Opened, error) {
	k := portkind.Lookup(p.Transport)
	if k == nil {
		return nil, fmt.Errorf("port %s: no transport %q", p, p.Transport)
	}
	depth, mtu := p.Depth, p.MTU
	if depth == 0 {
		depth = d.Depth
	}
	if mtu == 0 {
		mtu = d.MTU
	}
	if mtu == 0 {
		mtu = portkind.DefaultMTU
	}
	env := portkind.Env{Registry: reg, Tunnels: s.tunnels, MTU: p.MTU, Clients: d.Clients, NotAllowed: d.NotAllowed, Handoff: d.Handoff,
		Common: portkind.Common{Depth: depth, MaxFrame: frame.MaxFrameForMTU(mtu), Logger: s.log}.Defaulted()}
	c, err := k.Open(p.Options, env)
	if err != nil {
		return nil, err
	}
	o := &Opened{set: s, c: c}
	if l, ok := c.(portkind.Pather); ok {
		o.path = l.Path()
	}
	return o, nil
}

// Close closes everything, last opened first.
func (s *Set) Close() {
	s.mu.Lock()
	opened := slices.Clone(s.opened)
	s.mu.Unlock()
	for i := len(opened) - 1; i >= 0; i-- {
		opened[i].Close()
	}
}

// HandOver collects, from every opened port that can give them, the
// sockets a new switch process needs to serve their clients (a hot
// upgrade: see internal/handover).
func (s *Set) HandOver() []handover.Item {
	s.mu.Lock()
	opened := slices.Clone(s.opened)
	s.mu.Unlock()
	items := s.tunnels.HandOver()
	for _, o := range opened {
		if h, ok := o.c.(interface{ HandOver() []handover.Item }); ok {
			items = append(items, h.HandOver()...)
		}
	}
	return items
}

// TunnelStats returns the counters of the tunnel endpoints: packets that
// reached a local address but no port.
func (s *Set) TunnelStats() []tunnel.Stats { return s.tunnels.Stats() }
