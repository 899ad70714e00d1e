package transports

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/umlswitch/umlswitch/fabric"
	"github.com/umlswitch/umlswitch/frame"
	"github.com/umlswitch/umlswitch/transports/porttest"
)

// refusingPort refuses every frame until ok is set, and counts the Writes.
type refusingPort struct {
	writes atomic.Int64
	ok     atomic.Bool
}

var errRefused = errors.New("refused")

func (p *refusingPort) Write(frames [][]byte) (int, error) {
	p.writes.Add(1)
	if p.ok.Load() {
		return len(frames), nil
	}
	return 0, errRefused
}
func (p *refusingPort) WaitWritable(time.Duration) bool { return true }
func (p *refusingPort) MaxFrame() int                   { return 1514 }
func (p *refusingPort) Name() string                    { return "refusing" }
func (p *refusingPort) Close() error                    { return nil }

// A destination that refuses everything is backed off rather than tried
// frame by frame for every batch, and every frame is counted as dropped;
// once it takes frames again (after its backoff), they reach it.
func TestSpanBacksOffAFailingDestination(t *testing.T) {
	s := newSpan("refusing", porttest.Quiet())
	defer s.Close()
	p := new(refusingPort)
	s.Attach(p)
	frames := make([][]byte, 64)
	for i := range frames {
		frames[i] = make([]byte, 60)
	}
	const window = 300 * time.Millisecond
	batches := 0
	for start := time.Now(); time.Since(start) < window; batches++ {
		s.WriteFrames(frames)
		time.Sleep(100 * time.Microsecond) // a mirror writer's pace under load
	}
	// Backoff from 10 ms, doubling: about 6 tries in the window, at most
	// spanMaxRefused Writes each. Without it: a Write per frame and batch.
	if n := p.writes.Load(); n > 100 {
		t.Fatalf("%d Writes to a refusing destination in %v (%d batches)", n, window, batches)
	}
	if got, want := s.Dropped(), uint64(batches*len(frames)); got != want {
		t.Fatalf("dropped %d, want %d", got, want)
	}
	p.ok.Store(true)
	porttest.Eventually(t, "frames taken again", func() bool {
		before := s.Dropped()
		s.WriteFrames(frames)
		return s.Dropped() == before
	})
}

// erringReceiver fails every read, and counts them.
type erringReceiver struct{ reads atomic.Int64 }

func (r *erringReceiver) receive(*frame.Vector) (int, error) {
	r.reads.Add(1)
	return 0, errRefused
}

// The reader of a destination whose reads keep failing backs off, and
// Close stops it and waits for it even though its port never reports
// closed.
func TestSpanCloseStopsItsReaders(t *testing.T) {
	porttest.NoLeaks(t, func() {
		s := newSpan("erring", porttest.Quiet())
		r := new(erringReceiver)
		s.Serve(fabric.Receiver{Name: "erring", Depth: 4, MaxFrame: 1514, Receive: r.receive})
		time.Sleep(200 * time.Millisecond)
		if n := r.reads.Load(); n > 50 {
			t.Errorf("%d reads in 200 ms of a receiver that keeps failing", n)
		}
		s.Close()
	})
}
