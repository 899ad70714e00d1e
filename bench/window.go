package bench

import "time"

// DefaultWindow is the frames each generator port may have in flight:
// enough that the switch reads full batches, few enough that a generator
// with 64 ports drains each port before its destination queue overflows.
const DefaultWindow = 256

// lostAfter is how long a full window may see nothing arrive before the
// generator writes its frames off as lost and sends again.
const lostAfter = 20 * time.Millisecond

// windows keeps the frames each flow has in flight (sent, not yet
// received, not written off) under a bound. In unicast runs a flow is one
// port's frames to the next port, so one slow destination holds back only
// the port that feeds it, and a generator with many ports never offers a
// port more than its destination is taking: one thread plays every client,
// and a client it drains only once per pass would otherwise see most of
// what it is sent dropped at the switch. In hub runs every frame goes to
// every other port and one flow covers them all.
type windows struct {
	limit  uint64 // deliveries in flight per flow; 0 for no bound
	copies uint64 // deliveries each sent frame makes
	hub    bool
	flows  []flow
}

type flow struct {
	sent, received, lost uint64    // deliveries
	full                 time.Time // when the window filled with nothing arriving since
	expired              bool      // a receive found nothing lostAfter after full
}

// inFlight is what the flow has sent and neither received nor written off.
// Frames written off may still arrive late; they shrink the written-off
// count rather than wrap the difference.
func (f *flow) inFlight() uint64 {
	if f.received+f.lost >= f.sent {
		f.lost = f.sent - min(f.received, f.sent)
		return 0
	}
	return f.sent - f.received - f.lost
}

func newWindows(window, ports int, hub bool) *windows {
	w := &windows{limit: uint64(window), copies: 1, hub: hub, flows: make([]flow, ports)}
	if hub {
		w.copies = uint64(ports - 1)
		w.limit *= uint64(ports) * w.copies
		w.flows = w.flows[:1]
	}
	return w
}

// from is the flow port i sends on; to is the flow port i receives from.
func (w *windows) from(i int) *flow {
	if w.hub {
		return &w.flows[0]
	}
	return &w.flows[i]
}

func (w *windows) to(i int) *flow {
	if w.hub {
		return &w.flows[0]
	}
	return &w.flows[(i+len(w.flows)-1)%len(w.flows)]
}

// allow is how many frames, up to max, port i may send now.
func (w *windows) allow(i, max int) int {
	if w.limit == 0 {
		return max
	}
	f := w.from(i)
	inFlight := f.inFlight()
	switch {
	case inFlight < w.limit:
		f.full, f.expired = time.Time{}, false
		if room := (w.limit - inFlight + w.copies - 1) / w.copies; room < uint64(max) {
			return int(room)
		}
		return max
	case f.full.IsZero():
		f.full = time.Now()
	case f.expired:
		f.lost += inFlight // lost on the way: stop waiting for them
		f.full, f.expired = time.Time{}, false
		return max
	}
	return 0
}

func (w *windows) sent(i, n int) { w.from(i).sent += uint64(n) * w.copies }

// received counts what port i read. Frames count as lost only when a read
// finds nothing lostAfter after the window filled: a generator that was
// itself descheduled that long would otherwise write off frames that are
// waiting in its own socket, send a window more, and grow the queues
// without bound.
func (w *windows) received(i, n int) {
	f := w.to(i)
	switch {
	case n > 0:
		f.received += uint64(n)
		f.full, f.expired = time.Time{}, false
	case !f.full.IsZero() && !f.expired:
		f.expired = time.Since(f.full) > lostAfter
	}
}
