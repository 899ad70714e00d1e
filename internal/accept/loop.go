package accept

import (
	"errors"
	"fmt"
	"net"

	"golang.org/x/sys/unix"
)

// Loop is every listener's accept loop: it calls accept until that reports
// net.ErrClosed (the listener was closed) and hands each connection to
// serve, on the calling goroutine. Any other error (EMFILE when descriptors
// run out, a connection reset before it was taken) goes to failed, and the
// loop waits before it tries again, longer each time in a row (Backoff),
// so that it neither spins nor stops.
//
// When the descriptors have run out, shed (if set; see ShedFrom and
// ShedFD) closes the connections waiting in the backlog with the spare
// descriptor the process keeps, so that their clients are told at once
// instead of waiting for a connection that cannot be accepted; the errors
// failed hears say how many so far.
func Loop[C any](accept func() (C, error), shed func() int, failed func(error), serve func(C)) {
	var backoff Backoff
	closed := 0 // waiting connections shed since descriptors ran out
	if shed != nil {
		holdSpare()
	}
	for {
		c, err := accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			if shed != nil && (errors.Is(err, unix.EMFILE) || errors.Is(err, unix.ENFILE)) {
				if closed += shed(); closed > 0 {
					err = fmt.Errorf("%w (closed %d waiting connections since descriptors ran out)", err, closed)
				}
			}
			failed(err)
			backoff.Wait()
			continue
		}
		backoff.Reset()
		closed = 0
		serve(c)
	}
}
