package accept

import (
	"errors"
	"net"
	"os"
	"sync"
	"time"
)

// A hot upgrade lists this switch's ports for the new switch, then waits
// until it serves. A client accepted in between would become a port of
// this switch alone, one the new switch never hears of, and be cut off
// when this one leaves. So while an upgrade is under way the listeners
// that make ports accept nothing: their clients wait in the kernel's
// backlog for the new switch (which takes over the same listening
// sockets) or, if the upgrade fails, for this one.
var pause struct {
	mu       sync.Mutex
	on       bool
	resumed  chan struct{} // closed when the pause ends
	inFlight int           // connections accepted and not yet settled
	settled  chan struct{} // closed when inFlight drops to 0 during a pause
	blocking map[deadliner]struct{}
}

// deadliner is a listener whose Accept blocks (net's): a deadline in the
// past wakes it.
type deadliner interface{ SetDeadline(time.Time) error }

// woken is the deadline that wakes a blocked Accept.
var woken = time.Unix(1, 0)

// Pause stops every listener from accepting and waits, at most limit, for
// the connections accepted before it to settle: to be ports (what a hot
// upgrade lists) or to be gone. It reports whether they all did. Resume
// ends the pause; a process that leaves after an upgrade never resumes.
func Pause(limit time.Duration) bool {
	pause.mu.Lock()
	if !pause.on {
		pause.on = true
		pause.resumed = make(chan struct{})
		for ln := range pause.blocking {
			ln.SetDeadline(woken)
		}
	}
	if pause.inFlight <= 0 {
		pause.mu.Unlock()
		return true
	}
	if pause.settled == nil {
		pause.settled = make(chan struct{})
	}
	settled := pause.settled
	pause.mu.Unlock()
	t := time.NewTimer(limit)
	defer t.Stop()
	select {
	case <-settled:
		return true
	case <-t.C:
		return false
	}
}

// Resume lets the listeners accept again (a failed upgrade).
func Resume() {
	pause.mu.Lock()
	defer pause.mu.Unlock()
	if pause.on {
		pause.on = false
		close(pause.resumed)
	}
}

// Begin is what an accept step calls before it accepts: false while
// paused, when it must accept nothing and its loop waits in WaitResumed.
// After true, End must follow once the connection accepted has settled,
// or at once if none was.
func Begin() bool {
	pause.mu.Lock()
	defer pause.mu.Unlock()
	if pause.on {
		return false
	}
	pause.inFlight++
	return true
}

// End says that a connection accepted after Begin has settled: it is a
// port now, or gone, or was not accepted after all.
func End() {
	pause.mu.Lock()
	defer pause.mu.Unlock()
	pause.inFlight--
	if pause.inFlight <= 0 && pause.settled != nil {
		close(pause.settled)
		pause.settled = nil
	}
}

// WaitResumed returns once no pause is on, or stop is closed.
func WaitResumed(stop <-chan struct{}) {
	pause.mu.Lock()
	on, resumed := pause.on, pause.resumed
	pause.mu.Unlock()
	if !on {
		return
	}
	select {
	case <-resumed:
	case <-stop:
	}
}

// Pausable makes accept, the blocking Accept of ln, a step for Loop that
// accepts nothing while a pause is on: Pause wakes it with a deadline,
// and it waits for the pause to end (or stop) before it accepts again.
// What it returns is in flight until End.
func Pausable[C any](ln deadliner, accept func() (C, error), stop <-chan struct{}) func() (C, error) {
	pause.mu.Lock()
	if pause.blocking == nil {
		pause.blocking = make(map[deadliner]struct{})
	}
	pause.blocking[ln] = struct{}{}
	pause.mu.Unlock()
	return func() (C, error) {
		for {
			// The deadline is cleared before Begin: a Pause between the
			// two finds Begin false; one after Begin wakes the Accept.
			ln.SetDeadline(time.Time{})
			if !Begin() {
				WaitResumed(stop)
				select {
				case <-stop:
					forget(ln)
					var none C
					return none, net.ErrClosed
				default:
					continue
				}
			}
			c, err := accept()
			if err == nil {
				return c, nil
			}
			End()
			if errors.Is(err, os.ErrDeadlineExceeded) {
				continue // woken by a Pause
			}
			if errors.Is(err, net.ErrClosed) {
				forget(ln)
			}
			return c, err
		}
	}
}

// forget stops Pause from waking ln, closed.
func forget(ln deadliner) {
	pause.mu.Lock()
	delete(pause.blocking, ln)
	pause.mu.Unlock()
}
