package transports

import (
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"

	"github.com/umlswitch/umlswitch/configs"
	"github.com/umlswitch/umlswitch/fabric"
	"github.com/umlswitch/umlswitch/frame"
)

// Span is the destination of a SPAN mirror: ports of any kind, opened like
// switch ports but outside the switch. Mirrored frames are written to each
// (a port that is full or refuses them loses them, counted); what arrives
// from them is read and thrown away.
type Span struct {
	set     *Set
	spec    string
	mu      sync.Mutex
	ports   []fabric.Port
	dropped atomic.Uint64
}

// NewSpan opens the port p describes as a SPAN destination.
func NewSpan(p configs.Port, d Defaults, log *slog.Logger) (*Span, error) {
	s := &Span{spec: p.String()}
	s.set = NewSet(s, log)
	if _, err := s.set.Open(p, s, d); err != nil {
		return nil, err
	}
	return s, nil
}

// Name implements capture.FrameSink.
func (s *Span) Name() string { return s.spec }

// Dropped counts mirrored frames a destination did not take.
func (s *Span) Dropped() uint64 { return s.dropped.Load() }

// WriteFrames implements capture.FrameSink, never waiting for a port.
func (s *Span) WriteFrames(frames [][]byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.ports {
		rest := frames
		for len(rest) > 0 {
			n, err := p.Write(rest)
			rest = rest[n:]
			if err == nil {
				break
			}
			if errors.Is(err, fabric.ErrWouldBlock) || errors.Is(err, fabric.ErrPeerGone) || errors.Is(err, net.ErrClosed) {
				s.dropped.Add(uint64(len(rest)))
				break
			}
			s.dropped.Add(1) // rest[0] was refused (too long for the port, say)
			rest = rest[1:]
		}
	}
}

// Attach implements fabric.Registry for the destination's transport.
func (s *Span) Attach(p fabric.Port) (frame.PortID, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ports = append(s.ports, p)
	return frame.PortID(len(s.ports) - 1), nil
}

// Detach implements fabric.Registry.
func (s *Span) Detach(p fabric.Port) {
	s.mu.Lock()
	for i, q := range s.ports {
		if q == p {
			s.ports = append(s.ports[:i], s.ports[i+1:]...)
			break
		}
	}
	s.mu.Unlock()
	p.Close()
}

// Serve implements fabric.Registry: the destination's frames are read so
// its socket never fills, and dropped.
func (s *Span) Serve(r fabric.Receiver) {
	go func() {
		v := frame.NewVector(r.Depth, r.MaxFrame)
		for {
			if _, err := r.Receive(v); errors.Is(err, net.ErrClosed) {
				return
			}
		}
	}()
}

// Close closes the destination.
func (s *Span) Close() { s.set.Close() }
