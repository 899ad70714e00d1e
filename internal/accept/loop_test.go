package accept

import (
	"errors"
	"net"
	"slices"
	"testing"

	"golang.org/x/sys/unix"
)

// Loop serves every connection, reports and survives a failed accept, and
// ends when the listener says it is closed, also behind a *net.OpError as
// net's listeners wrap it.
func TestLoop(t *testing.T) {
	script := []struct {
		conn int
		err  error
	}{
		{conn: 1},
		{err: unix.EMFILE},
		{err: unix.EMFILE},
		{conn: 2},
		{err: &net.OpError{Op: "accept", Net: "unix", Err: net.ErrClosed}},
		{conn: 3}, // never reached
	}
	next := 0
	accept := func() (int, error) {
		s := script[next]
		next++
		return s.conn, s.err
	}
	var served []int
	var failed []error
	Loop(accept, nil, func(err error) { failed = append(failed, err) }, func(c int) { served = append(served, c) })
	if !slices.Equal(served, []int{1, 2}) {
		t.Errorf("served %v, want [1 2]", served)
	}
	if len(failed) != 2 || !errors.Is(failed[0], unix.EMFILE) {
		t.Errorf("failed with %v, want EMFILE twice", failed)
	}
	if next != 5 {
		t.Errorf("accepted %d times, want 5", next)
	}
}
