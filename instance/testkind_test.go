package instance_test

import (
	"fmt"
	"maps"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/umlswitch/umlswitch/configs"
	"github.com/umlswitch/umlswitch/fabric"
	"github.com/umlswitch/umlswitch/frame"
	"github.com/umlswitch/umlswitch/instance"
	"github.com/umlswitch/umlswitch/transports/portkind"
	"github.com/umlswitch/umlswitch/transports/porttest"
)

// memhub is a port kind that exists only in this file: a listener whose
// clients are in-memory ports the test plugs in and pulls out. That this
// file and its one Register line are all it takes (no case in transports,
// no name in instance) is what the test below proves: parsing, naming,
// listing, learning, impairment and detaching all come from the registry.
func init() {
	portkind.Register(portkind.Kind{
		Kind: configs.Kind{Name: "memhub", Summary: "in-memory clients, for the instance's tests",
			New: func() configs.Options { return &memhubOptions{} },
			Keys: []configs.Key{configs.Text("hub", "NAME", "the hub's name, for the test to find it",
				func(o *memhubOptions) *string { return &o.Hub }, nil).Require()}},
		Listens: portkind.Always,
		Open: func(o configs.Options, env portkind.Env) (portkind.Opened, error) {
			return memhubs.open(o.(*memhubOptions).Hub, env)
		},
	})
}

type memhubOptions struct{ Hub string }

// memhubs are the open hubs by name.
var memhubs = &memhubRegistry{byName: map[string]*memhub{}}

type memhubRegistry struct {
	mu     sync.Mutex
	byName map[string]*memhub
}

func (r *memhubRegistry) open(name string, env portkind.Env) (*memhub, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.byName[name] != nil {
		return nil, fmt.Errorf("memhub %s: already open", name)
	}
	h := &memhub{name: name, env: env, clients: map[*memPort]bool{}}
	r.byName[name] = h
	return h, nil
}

func (r *memhubRegistry) get(t *testing.T, name string) *memhub {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if h := r.byName[name]; h != nil {
		return h
	}
	t.Fatalf("memhub %s is not open", name)
	return nil
}

// memhub is one listener: its clients attach through env.Registry.
type memhub struct {
	name string
	env  portkind.Env

	mu      sync.Mutex
	clients map[*memPort]bool
	closed  bool
}

// plug attaches a new client and starts its reader.
func (h *memhub) plug(t *testing.T) *memPort {
	t.Helper()
	p := &memPort{name: fmt.Sprintf("memhub %s client", h.name), in: make(chan []byte, 16), done: make(chan struct{})}
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		t.Fatal("plug into a closed hub")
	}
	h.clients[p] = true
	h.mu.Unlock()
	id, err := h.env.Registry.Attach(p)
	if err != nil {
		t.Fatal(err)
	}
	h.env.Registry.Serve(fabric.Receiver{Name: p.name, Depth: h.env.Depth, MaxFrame: h.env.MaxFrame,
		Receive: func(v *frame.Vector) (int, error) { return p.receive(v, id) }})
	return p
}

// pull detaches a client, as a transport does when its peer goes.
func (h *memhub) pull(p *memPort) {
	h.mu.Lock()
	delete(h.clients, p)
	h.mu.Unlock()
	h.env.Registry.Detach(p)
}

// Close detaches every client, as a listener's Close does.
func (h *memhub) Close() error {
	h.mu.Lock()
	h.closed = true
	clients := slices.Collect(maps.Keys(h.clients))
	clear(h.clients)
	h.mu.Unlock()
	for _, p := range clients {
		h.env.Registry.Detach(p)
	}
	memhubs.mu.Lock()
	delete(memhubs.byName, h.name)
	memhubs.mu.Unlock()
	return nil
}

// memPort is one client: frames the test sends come out of receive, and
// frames the switch writes are counted.
type memPort struct {
	name    string
	in      chan []byte
	written atomic.Int64
	once    sync.Once
	done    chan struct{}

	mu       sync.Mutex
	carriers []bool // SetCarrier's calls
}

// SetCarrier records the call: a memPort is a port whose peer sees a
// carrier, as a tap's does.
func (p *memPort) SetCarrier(up bool) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.carriers = append(p.carriers, up)
	return nil
}

func (p *memPort) carrierCalls() []bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.carriers)
}

func (p *memPort) send(f []byte) { p.in <- f }

func (p *memPort) receive(v *frame.Vector, id frame.PortID) (int, error) {
	select {
	case f := <-p.in:
		v.Sizes[0] = copy(v.Room(0), f)
		v.Ports[0] = id
		return 1, nil
	case <-p.done:
		return 0, net.ErrClosed
	}
}

func (p *memPort) Write(frames [][]byte) (int, error) {
	select {
	case <-p.done:
		return 0, net.ErrClosed
	default:
	}
	p.written.Add(int64(len(frames)))
	return len(frames), nil
}

func (p *memPort) WaitWritable(time.Duration) bool { return true }
func (p *memPort) MaxFrame() int                   { return frame.MaxFrameForMTU(frame.DefaultMTU) }
func (p *memPort) Name() string                    { return p.name }
func (p *memPort) Close() error                    { p.once.Do(func() { close(p.done) }); return nil }

// A kind registered from a test file alone is a kind like the built-in
// ones: its specs parse, its listener is listed, its clients are ports
// named after it that learn and forward, impaired or not, and each is
// detached when it goes or when its listener is removed.
func TestKindFromATestFile(t *testing.T) {
	in := start(t, "ports: [{transport: memhub, hub: a}, {transport: memhub, hub: b, delay: 1ms, name: slow}]", instance.Config{})
	for _, c := range []struct{ hub, listener string }{{"a", "memhub0"}, {"b", "slow"}} {
		h := memhubs.get(t, c.hub)
		x, y := h.plug(t), h.plug(t)
		first, second := c.listener+".1", c.listener+".2"
		waitFor(t, in, "clients", func() bool {
			names := portNames(in)
			return slices.Contains(names, first) && slices.Contains(names, second)
		})
		x.send(porttest.Ether(frame.Broadcast, macA, 60, 1))
		y.send(porttest.Ether(frame.Broadcast, macB, 60, 2))
		waitFor(t, in, "learning", func() bool {
			m := fdbPorts(t, in)
			return m[macA.String()] == first && m[macB.String()] == second
		})
		waitFor(t, in, "flooding", func() bool { return x.written.Load() >= 1 && y.written.Load() >= 1 })
		var listed bool
		for _, p := range in.Ports("") {
			if p.Name == c.listener {
				listed = p.Kind == "memhub" && p.Clients == 2 && p.ID == -1
			}
		}
		if !listed {
			t.Fatalf("%s is not listed as a listener with two clients: %+v", c.listener, in.Ports(""))
		}
		h.pull(x)
		waitFor(t, in, "a client's detach", func() bool {
			return !slices.Contains(portNames(in), first) && fdbPorts(t, in)[macA.String()] == ""
		})
		if err := in.RemovePort(c.listener); err != nil {
			t.Fatal(err)
		}
		waitFor(t, in, "the listener's removal", func() bool { return !slices.Contains(portNames(in), second) })
		select {
		case <-y.done:
		default:
			t.Fatalf("%s's last client was not closed with its listener", c.listener)
		}
	}
	if names := portNames(in); len(names) != 0 {
		t.Fatalf("ports left: %v", names)
	}
	// The kind's keys are checked like any other's.
	if _, err := configs.ParsePort("transport=memhub"); err == nil {
		t.Fatal("a memhub port without hub= was taken")
	}
}
