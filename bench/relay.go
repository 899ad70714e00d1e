package bench

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/umlswitch/umlswitch/transports/portkind"

	"github.com/umlswitch/umlswitch/configs"
	"github.com/umlswitch/umlswitch/fabric"
	"github.com/umlswitch/umlswitch/frame"
	"github.com/umlswitch/umlswitch/transports"
	"github.com/umlswitch/umlswitch/transports/stream"
)

// relay is the benchmark's ceiling: the daemon protocol and the same port
// sockets as umlswitch, but no switching logic. A batch goes whole to the
// port that owns its first frame's destination (or, as a hub, to every
// other port), with the same hold-while-full backpressure. What umlswitch
// does beyond it (learning, per-frame lookup, grouping, counters) is what a
// comparison against it measures.
type relay struct {
	hub  bool
	hold time.Duration

	mu    sync.Mutex
	ports atomic.Pointer[[]fabric.Port] // by id; nil where detached
	owner sync.Map                      // frame.MAC -> fabric.Port, from each batch's first source
	wg    sync.WaitGroup
}

var _ fabric.Registry = (*relay)(nil)

func (r *relay) Attach(p fabric.Port) (frame.PortID, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var ports []fabric.Port
	if old := r.ports.Load(); old != nil {
		ports = append(ports, *old...)
	}
	ports = append(ports, p)
	r.ports.Store(&ports)
	return frame.PortID(len(ports) - 1), nil
}

func (r *relay) Detach(p fabric.Port) {
	r.mu.Lock()
	defer r.mu.Unlock()
	old := r.ports.Load()
	if old == nil {
		return
	}
	ports := append([]fabric.Port(nil), *old...)
	for i := range ports {
		if ports[i] == p {
			ports[i] = nil
			p.Close()
		}
	}
	r.ports.Store(&ports)
}

func (r *relay) Serve(rc fabric.Receiver) {
	r.wg.Add(1)
	go r.run(rc)
}

func (r *relay) run(rc fabric.Receiver) {
	defer r.wg.Done()
	v := frame.NewVector(rc.Depth, rc.MaxFrame)
	out := make([][]byte, 0, rc.Depth)
	for {
		n, err := rc.Receive(v)
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			continue
		}
		// A socket shared by several ports (a tunnel endpoint) mixes their
		// frames in one batch: relay each run from one ingress as a whole.
		for start := 0; start < n; {
			end := start + 1
			for end < n && v.Ports[end] == v.Ports[start] {
				end++
			}
			out = out[:0]
			for i := start; i < end; i++ {
				if v.Sizes[i] >= frame.HeaderLen && v.Sizes[i] <= v.MaxFrame {
					out = append(out, v.Frame(i))
				}
			}
			if len(out) > 0 {
				r.relayRun(v.Ports[start], out)
			}
			start = end
		}
	}
}

// relayRun sends frames that entered on one port to the owner of the first
// frame's destination, or to every other port.
func (r *relay) relayRun(id frame.PortID, out [][]byte) {
	ports := *r.ports.Load()
	if int(id) >= len(ports) {
		return // frame.NoPort: not for a port
	}
	in := ports[id]
	src, dst := frame.SrcMAC(out[0]), frame.DstMAC(out[0])
	if _, ok := r.owner.Load(src); !ok && in != nil {
		r.owner.Store(src, in)
	}
	if !r.hub && !dst.IsMulticast() {
		if p, ok := r.owner.Load(dst); ok {
			r.send(p.(fabric.Port), out)
			return
		}
	}
	for _, p := range ports {
		if p != nil && p != in {
			r.send(p, out)
		}
	}
}

// send writes frames to p, waiting while p is full and drains.
func (r *relay) send(p fabric.Port, frames [][]byte) {
	for len(frames) > 0 {
		n, err := p.Write(frames)
		frames = frames[n:]
		switch {
		case err == nil:
			return
		case errors.Is(err, fabric.ErrWouldBlock):
			if !p.WaitWritable(r.hold) {
				return
			}
		case errors.Is(err, fabric.ErrPeerGone), errors.Is(err, net.ErrClosed):
			return
		default:
			frames = frames[1:]
		}
	}
}

// RelayMain runs `umlswitch-bench relay`: the ceiling relay on a control
// socket and any -port specs, until SIGINT or SIGTERM.
func RelayMain(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("umlswitch-bench relay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	ctl := fs.String("unix", "", "control socket `PATH` to serve.\nExample: -unix /tmp/relay.ctl")
	hub := fs.Bool("hub", false, "send every batch to every other port.\nExample: -hub")
	hold := fs.Duration("tx-hold", fabric.DefaultTxHold, "how long a full port may take nothing before its frames are dropped.\nExample: -tx-hold 10ms")
	depth := fs.Int("depth", portkind.DefaultDepth, "frames per batch.\nExample: -depth 64")
	mtu := fs.Int("mtu", frame.DefaultMTU, "IP MTU of every port; the largest frame is MTU+22.\nExample: -mtu 9000")
	bareStream := fs.Bool("bare-stream", false, "serve a listening -port transport=stream with a bare relay of its own instead of\n"+
		"umlswitch's stream ports: whole records go on from the buffer they were read into, depth at a\n"+
		"time, one write each (umlswitch-bench's relay-bare).\nExample: -bare-stream")
	var specs []string
	fs.Func("port", "also serve a port described by `SPEC`, as umlswitch -port does.\nExample: -port transport=bess,path=/tmp/relay.bess",
		func(s string) error { specs = append(specs, s); return nil })
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "Usage: umlswitch-bench relay -unix PATH [flags]\n\n"+
			"The benchmark's ceiling: a bare batched relay over the same sockets as umlswitch, with no\n"+
			"switching logic. umlswitch-bench starts it for -switch relay or -compare relay (and relay-bare,\n"+
			"with -bare-stream).\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *ctl == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "umlswitch-bench relay: -unix PATH is required and nothing else is taken")
		return 2
	}
	r := &relay{hub: *hub, hold: *hold}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ports := transports.NewSet(r, log)
	defaults := transports.Defaults{Depth: *depth, MTU: *mtu}
	var streams []*streamRelay
	closeAll := func() {
		for _, s := range streams {
			s.Close()
		}
		ports.Close()
	}
	for _, s := range append([]string{"transport=daemon,path=" + *ctl}, specs...) {
		p, err := configs.ParsePort(s)
		if o, ok := p.Options.(*stream.Options); err == nil && ok && o.Path != "" && !o.Connect && *bareStream {
			// QEMU's stream framing gets a bare relay of its own.
			var sr *streamRelay
			if sr, err = listenStreamRelay(o.Path, *hub, *depth, frame.MaxFrameForMTU(*mtu)); err == nil {
				streams = append(streams, sr)
			}
		} else if err == nil {
			_, err = ports.Open(p, r, defaults)
		}
		if err != nil {
			closeAll()
			fmt.Fprintf(stderr, "umlswitch-bench relay: %v\n", err)
			return 1
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	closeAll()
	r.wg.Wait()
	return 0
}
