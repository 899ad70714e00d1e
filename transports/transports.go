// Package transports opens the ports a configuration describes, of every
// kind, on a switch (or on the benchmark's ceiling relay), and closes them
// again. Tunnel ports that share a local address share a socket, whichever
// switch they belong to.
package transports

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"sync"

	"github.com/umlswitch/umlswitch/configs"
	"github.com/umlswitch/umlswitch/fabric"
	"github.com/umlswitch/umlswitch/frame"
	"github.com/umlswitch/umlswitch/internal/limit"
	"github.com/umlswitch/umlswitch/transports/bess"
	"github.com/umlswitch/umlswitch/transports/daemon"
	"github.com/umlswitch/umlswitch/transports/dgram"
	"github.com/umlswitch/umlswitch/transports/gre"
	"github.com/umlswitch/umlswitch/transports/l2tpv3"
	"github.com/umlswitch/umlswitch/transports/raw"
	"github.com/umlswitch/umlswitch/transports/stream"
	"github.com/umlswitch/umlswitch/transports/tap"
	"github.com/umlswitch/umlswitch/transports/vxlan"
	"github.com/umlswitch/umlswitch/tunnel"
)

// Defaults apply to ports that set no depth or mtu of their own.
type Defaults struct {
	Depth int
	MTU   int
	// Handoff takes the connections to a daemon control socket that are not
	// clients (the control API's); nil refuses them.
	Handoff func(net.Conn)
	// Clients bounds the clients of every listener (daemon, BESS, stream)
	// together and per uid; nil: no bound.
	Clients *limit.Limiter
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

// Path is the socket a listener (daemon, bess) listens on; empty for other
// kinds.
func (o *Opened) Path() string { return o.path }

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
	depth, mtu := p.Depth, p.MTU
	if depth == 0 {
		depth = d.Depth
	}
	if mtu == 0 {
		mtu = d.MTU
	}
	maxFrame := frame.MaxFrameForMTU(mtu)
	o := &Opened{set: s}
	switch opts := p.Options.(type) {
	case *daemon.Options:
		cfg := opts.Config(depth, maxFrame, s.log, d.Handoff)
		cfg.Clients = d.Clients
		t, err := daemon.Listen(cfg)
		if err != nil {
			return nil, err
		}
		t.Start(reg)
		o.c, o.path = t, t.Path()
	case *bess.Options:
		cfg := opts.Config(depth, maxFrame, s.log)
		cfg.Clients = d.Clients
		t, err := bess.Listen(cfg)
		if err != nil {
			return nil, err
		}
		t.Start(reg)
		o.c, o.path = t, opts.Path
	case *tap.Options:
		tp, err := tap.Open(opts.Config(p.MTU, depth, maxFrame, s.log))
		if err != nil {
			return nil, err
		}
		if o.c, err = attach(reg, tp, tp.Receivers); err != nil {
			return nil, err
		}
	case *raw.Options:
		rp, err := raw.Open(opts.Config(depth, maxFrame, s.log))
		if err != nil {
			return nil, err
		}
		one := func(id frame.PortID) []fabric.Receiver { return []fabric.Receiver{rp.Receiver(id)} }
		if o.c, err = attach(reg, rp, one); err != nil {
			return nil, err
		}
	case *gre.Options:
		tp, err := gre.Open(s.tunnels, reg, opts.Config(depth, maxFrame))
		if err != nil {
			return nil, err
		}
		o.c = detacher{reg, tp}
	case *l2tpv3.Options:
		tp, err := l2tpv3.Open(s.tunnels, reg, opts.Config(depth, maxFrame))
		if err != nil {
			return nil, err
		}
		o.c = detacher{reg, tp}
	case *vxlan.Options:
		tp, err := vxlan.Open(s.tunnels, reg, opts.Config(depth, maxFrame))
		if err != nil {
			return nil, err
		}
		o.c = detacher{reg, tp}
	case *stream.Options:
		cfg := opts.Config(depth, maxFrame, s.log)
		cfg.Clients = d.Clients
		t, err := stream.Open(cfg)
		if err != nil {
			return nil, err
		}
		t.Start(reg)
		o.c, o.path = t, t.Path()
	case *dgram.Options:
		dp, err := dgram.Open(opts.Config(depth, maxFrame, s.log))
		if err != nil {
			return nil, err
		}
		one := func(id frame.PortID) []fabric.Receiver { return []fabric.Receiver{dp.Receiver(id)} }
		if o.c, err = attach(reg, dp, one); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("port %s: transport %q is not wired", p, p.Transport)
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

// TunnelStats returns the counters of the tunnel endpoints: packets that
// reached a local address but no port.
func (s *Set) TunnelStats() []tunnel.Stats { return s.tunnels.Stats() }

// attach adds a port with readers of its own (not a shared tunnel socket)
// and starts them.
func attach(reg fabric.Registry, p fabric.Port, receivers func(frame.PortID) []fabric.Receiver) (io.Closer, error) {
	id, err := reg.Attach(p)
	if err != nil {
		p.Close()
		return nil, err
	}
	for _, r := range receivers(id) {
		reg.Serve(r)
	}
	return detacher{reg, p}, nil
}

// detacher takes a port the set attached off the registry, which closes it.
type detacher struct {
	reg fabric.Registry
	p   fabric.Port
}

func (d detacher) Close() error { d.reg.Detach(d.p); return nil }
