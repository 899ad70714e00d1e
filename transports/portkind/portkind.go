// Package portkind is the registry of port kinds. A kind's package says
// everything about the kind in one Register call from its init: its keys
// (configs.Kind), how a port of it opens, and whether it serves many
// clients. Package transports opens every port through the registry, so a
// new kind is its own package plus one import line in transports/kinds.go;
// nothing else names it.
package portkind

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync/atomic"

	"github.com/umlswitch/umlswitch/configs"
	"github.com/umlswitch/umlswitch/fabric"
	"github.com/umlswitch/umlswitch/frame"
	"github.com/umlswitch/umlswitch/internal/limit"
	"github.com/umlswitch/umlswitch/internal/privdrop"
	"github.com/umlswitch/umlswitch/tunnel"
)

// Kind is one port kind.
type Kind struct {
	configs.Kind // its name, summary and keys
	// Open opens what o (the kind's own Options) describes and starts it.
	// Its ports join env.Registry through Attach, whether there is one
	// (tap, raw, dgram), one per client that connects (a listener), or one
	// that a shared tunnel socket feeds; they leave through Detach. Closing
	// what Open returns detaches them all and releases the kind's sockets.
	Open func(o configs.Options, env Env) (Opened, error)
	// Listens, if set, says whether a port with options o is a listener:
	// every client that connects is a port of its own, named after the
	// listener (daemon0.1, stream0.2). Nil: never.
	Listens func(o configs.Options) bool
	// Capabilities, if set, are what a port with options o needs to open
	// again while the switch runs (an interface that comes back, a socket
	// made anew): a switch that changes to -user keeps them. Nil: none.
	Capabilities func(o configs.Options) privdrop.Caps
}

// Opened is what Open returns.
type Opened interface {
	io.Closer
}

// Pather is implemented by an Opened that listens on a unix socket: Path
// is that socket, which the API reports.
type Pather interface {
	Path() string
}

// Informer is implemented by an Opened with details of its own for the
// API (a NAT port's leases and forwards): what Info returns is the port's
// "details" in ctl ports -json. It is called without the instance's locks.
type Informer interface {
	Info() any
}

// Common are the settings every kind's Config has besides the kind's own
// keys (its Options).
type Common struct {
	Depth    int // frames per receive batch
	MaxFrame int // largest frame, from the destination MAC to the end of the payload
	Logger   *slog.Logger
}

// Env is what a kind's Open is given: where its ports go and the settings
// that every kind shares, with their defaults already applied.
type Env struct {
	Common
	Registry fabric.Registry
	Tunnels  *tunnel.Table // the local tunnel sockets, shared by every switch's tunnel ports
	MTU      int           // the port's own mtu=, 0 when it gives none (a tap keeps its own then)
	// Clients bounds a listener's clients, with every other listener's, in
	// all and per uid; nil: no bound.
	Clients *limit.Limiter
	// NotAllowed counts the clients that a listener's allow_uid= and
	// allow_gid= refused, every listener's together; nil: not counted.
	NotAllowed *atomic.Uint64
	// Handoff takes the connections to a control socket that are not
	// clients: the control API's. Nil: the socket has no API.
	Handoff func(net.Conn, API)
}

// API is what a control socket's own keys say about the API served on it.
type API struct {
	ReadOnly bool // writes are refused
	// UIDs and GIDs may change the switch through this socket besides
	// those the whole configuration names.
	UIDs, GIDs []uint32
}

// Defaults of Common, in this one place.
const (
	DefaultDepth = 64
	DefaultMTU   = frame.DefaultMTU
)

// Defaulted returns c with zero values replaced by the defaults. Kinds
// apply it to the Config they are given (tests and benchmarks leave fields
// zero); Env's is defaulted already.
func (c Common) Defaulted() Common {
	if c.Depth <= 0 {
		c.Depth = DefaultDepth
	}
	if c.MaxFrame <= 0 {
		c.MaxFrame = frame.MaxFrameForMTU(DefaultMTU)
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// kinds are the registered kinds by name; Register fills it from init
// functions, so it is only read afterwards.
var kinds = map[string]*Kind{}

// Register adds a kind: its keys to configs (which parses specs) and its
// Open to the registry. It panics on a kind without Open or registered
// twice: mistakes in the program, not in its input.
func Register(k Kind) {
	if k.Open == nil {
		panic(fmt.Sprintf("portkind: kind %q has no Open", k.Name))
	}
	configs.Register(k.Kind) // panics on a duplicate name
	kinds[k.Name] = &k
}

// Lookup returns the kind called name, or nil.
func Lookup(name string) *Kind { return kinds[name] }

// Listens reports whether p is a listener whose clients are ports of their
// own (see Kind.Listens).
func Listens(p configs.Port) bool {
	k := kinds[p.Transport]
	return k != nil && k.Listens != nil && p.Options != nil && k.Listens(p.Options)
}

// Capabilities are what the ports ps need to open again while the switch
// runs (see Kind.Capabilities).
func Capabilities(ps ...configs.Port) privdrop.Caps {
	var c privdrop.Caps
	for _, p := range ps {
		if k := kinds[p.Transport]; k != nil && k.Capabilities != nil && p.Options != nil {
			c |= k.Capabilities(p.Options)
		}
	}
	return c
}

// Always is a Listens for kinds every port of which listens.
func Always(configs.Options) bool { return true }

// AttachOne attaches p, a port with readers of its own, to reg and starts
// them (receivers is given p's id). Closing the result detaches p, which
// closes it; on error p is closed already.
func AttachOne(reg fabric.Registry, p fabric.Port, receivers func(frame.PortID) []fabric.Receiver) (Opened, error) {
	id, err := reg.Attach(p)
	if err != nil {
		p.Close()
		return nil, err
	}
	for _, r := range receivers(id) {
		reg.Serve(r)
	}
	return Detacher(reg, p), nil
}

// Detacher returns an Opened whose Close detaches p from reg: for ports
// that attached themselves (tunnels on a shared socket).
func Detacher(reg fabric.Registry, p fabric.Port) Opened { return detacher{reg, p} }

type detacher struct {
	reg fabric.Registry
	p   fabric.Port
}

func (d detacher) Close() error { d.reg.Detach(d.p); return nil }

// Starter is what a listening (or connecting) kind opens: nothing attaches
// before Start, and each client that comes is attached to reg then.
type Starter interface {
	Opened
	Start(reg fabric.Registry)
}

// Listening is the Open of a kind whose options open a Starter.
func Listening[O any, S Starter](open func(o *O, env Env) (S, error)) func(configs.Options, Env) (Opened, error) {
	return func(o configs.Options, env Env) (Opened, error) {
		s, err := open(o.(*O), env)
		if err != nil {
			return nil, err
		}
		s.Start(env.Registry)
		return s, nil
	}
}

// Single is the Open of a kind whose options open one port with readers
// of its own (receivers, given the port's id): see AttachOne.
func Single[O any, P fabric.Port](open func(o *O, env Env) (P, error), receivers func(p P, id frame.PortID) []fabric.Receiver) func(configs.Options, Env) (Opened, error) {
	return func(o configs.Options, env Env) (Opened, error) {
		p, err := open(o.(*O), env)
		if err != nil {
			return nil, err
		}
		return AttachOne(env.Registry, p, func(id frame.PortID) []fabric.Receiver { return receivers(p, id) })
	}
}

// Tunneled is the Open of a kind whose port attaches itself, fed by a
// socket that env.Tunnels shares between ports.
func Tunneled[O any, P fabric.Port](open func(o *O, env Env) (P, error)) func(configs.Options, Env) (Opened, error) {
	return func(o configs.Options, env Env) (Opened, error) {
		p, err := open(o.(*O), env)
		if err != nil {
			return nil, err
		}
		return Detacher(env.Registry, p), nil
	}
}
