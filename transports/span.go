package transports

import (
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/umlswitch/umlswitch/configs"
	"github.com/umlswitch/umlswitch/fabric"
	"github.com/umlswitch/umlswitch/frame"
	"github.com/umlswitch/umlswitch/tunnel"
)

// Backoff of a SPAN destination that refuses what is sent to it (a
// vanished peer, an unreachable address): for this long nothing is sent
// to it and the mirrored frames are dropped and counted, instead of every
// batch trying, and failing, frame by frame. Doubles while it keeps
// failing, up to spanMaxBackoff; one frame taken ends it.
const (
	spanMinBackoff = 10 * time.Millisecond
	spanMaxBackoff = time.Second
	// spanMaxRefused is how many frames in a row a destination may refuse
	// in one batch before the rest of the batch is dropped.
	spanMaxRefused = 4
)

// Span is the destination of a SPAN mirror: ports of any kind, opened like
// switch ports but outside the switch. Mirrored frames are written to each
// (a port that is full or refuses them loses them, counted); what arrives
// from them is read and thrown away.
type Span struct {
	spec    string
	log     *slog.Logger
	opened  *Opened // nil in tests that attach ports themselves
	dropped atomic.Uint64

	mu    sync.Mutex
	ports []*spanPort // guarded by mu

	// stop ends the readers Serve started, which readers counts; Close
	// waits for them.
	stop      chan struct{}
	readers   sync.WaitGroup
	closeOnce sync.Once
}

// spanPort is one destination port and its backoff.
type spanPort struct {
	p     fabric.Port
	wait  time.Duration // the current backoff, 0 while it takes frames
	until time.Time     // nothing is sent before then
}

// NewSpan opens the port p describes as a SPAN destination through set:
// a tunnel port shares its local address's socket with the switch's ports
// there (its reader runs on the switch, which drops what arrives for it).
func NewSpan(set *Set, p configs.Port, d Defaults) (*Span, error) {
	s := newSpan(p.String(), set.log)
	o, err := set.Open(p, s, d)
	if err != nil {
		s.Close()
		return nil, err
	}
	s.opened = o
	return s, nil
}

func newSpan(spec string, log *slog.Logger) *Span {
	return &Span{spec: spec, log: log, stop: make(chan struct{})}
}

// Name implements capture.FrameSink.
func (s *Span) Name() string { return s.spec }

// Dropped counts mirrored frames a destination did not take.
func (s *Span) Dropped() uint64 { return s.dropped.Load() }

// WriteFrames implements capture.FrameSink, never waiting for a port.
func (s *Span) WriteFrames(frames [][]byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var now time.Time
	for _, sp := range s.ports {
		if sp.wait > 0 {
			if now.IsZero() {
				now = time.Now()
			}
			if now.Before(sp.until) {
				s.dropped.Add(uint64(len(frames)))
				continue
			}
		}
		if s.write(sp.p, frames) {
			sp.wait = 0
			continue
		}
		sp.wait = min(max(2*sp.wait, spanMinBackoff), spanMaxBackoff)
		sp.until = time.Now().Add(sp.wait)
	}
}

// write sends frames to p, dropping and counting what it does not take,
// and reports whether p is usable: it took a frame, or was only full.
func (s *Span) write(p fabric.Port, frames [][]byte) bool {
	rest, took, refused := frames, false, 0
	for len(rest) > 0 {
		n, err := p.Write(rest)
		rest = rest[n:]
		took = took || n > 0
		if err == nil {
			return true
		}
		if n > 0 {
			refused = 0
		}
		switch {
		case errors.Is(err, fabric.ErrWouldBlock):
			s.dropped.Add(uint64(len(rest)))
			return true // full, not failing
		case errors.Is(err, fabric.ErrPeerGone), errors.Is(err, net.ErrClosed):
			s.dropped.Add(uint64(len(rest)))
			return took
		}
		if len(rest) == 0 {
			break
		}
		s.dropped.Add(1) // rest[0] was refused (too long for the port, say)
		rest = rest[1:]
		if refused++; refused >= spanMaxRefused {
			s.dropped.Add(uint64(len(rest)))
			return took
		}
	}
	return took
}

// Attach implements fabric.Registry for the destination's transport. A
// tunnel port gets no id: the switch reads its shared socket and drops
// frames of no port.
func (s *Span) Attach(p fabric.Port) (frame.PortID, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ports = append(s.ports, &spanPort{p: p})
	if _, shared := p.(*tunnel.Port); shared {
		return frame.NoPort, nil
	}
	return frame.PortID(len(s.ports) - 1), nil
}

// Detach implements fabric.Registry.
func (s *Span) Detach(p fabric.Port) {
	s.mu.Lock()
	for i, q := range s.ports {
		if q.p == p {
			s.ports = append(s.ports[:i], s.ports[i+1:]...)
			break
		}
	}
	s.mu.Unlock()
	p.Close()
}

// Serve implements fabric.Registry: the destination's frames are read so
// its socket never fills, and dropped. Close stops the reader and waits
// for it.
func (s *Span) Serve(r fabric.Receiver) {
	s.readers.Add(1)
	go func() {
		defer s.readers.Done()
		s.drain(r)
	}()
}

// drain reads r until it is closed or the span is, backing off while it
// fails.
func (s *Span) drain(r fabric.Receiver) {
	v := frame.NewVector(r.Depth, r.MaxFrame)
	var wait time.Duration
	for {
		_, err := r.Receive(v)
		if errors.Is(err, net.ErrClosed) {
			return
		}
		select {
		case <-s.stop:
			return
		default:
		}
		if err == nil {
			wait = 0
			continue
		}
		wait = min(max(2*wait, spanMinBackoff), spanMaxBackoff)
		t := time.NewTimer(wait)
		select {
		case <-s.stop:
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// Close closes the destination, and returns once its readers have ended.
func (s *Span) Close() {
	s.closeOnce.Do(func() {
		if s.opened != nil {
			s.opened.Close() // its readers see net.ErrClosed
		}
		close(s.stop)
		s.readers.Wait()
	})
}
