package accept

import "time"

// Backoff paces an accept loop after errors: a listener that fails to
// accept (EMFILE when the descriptors are gone) must neither spin nor stop.
// Each Wait sleeps twice as long as the one before, from 5 ms up to a
// second; Reset after an accept that worked. The zero value is ready.
type Backoff struct{ d time.Duration }

// Backoff bounds.
const (
	minBackoff = 5 * time.Millisecond
	maxBackoff = time.Second
)

// Wait sleeps for the next delay.
func (b *Backoff) Wait() { time.Sleep(b.next()) }

func (b *Backoff) next() time.Duration {
	b.d = min(max(2*b.d, minBackoff), maxBackoff)
	return b.d
}

// Reset starts again from the shortest delay.
func (b *Backoff) Reset() { b.d = 0 }
