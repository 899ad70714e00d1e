package accept

import (
	"errors"
	"net"
)

// Loop is every listener's accept loop: it calls accept until that reports
// net.ErrClosed (the listener was closed) and hands each connection to
// serve, on the calling goroutine. Any other error (EMFILE when descriptors
// run out, a connection reset before it was taken) goes to failed, and the
// loop waits before it tries again, longer each time in a row (Backoff),
// so that it neither spins nor stops.
func Loop[C any](accept func() (C, error), failed func(error), serve func(C)) {
	var backoff Backoff
	for {
		c, err := accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			failed(err)
			backoff.Wait()
			continue
		}
		backoff.Reset()
		serve(c)
	}
}
