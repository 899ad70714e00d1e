package pollfd

import "golang.org/x/sys/unix"

// Result is what a port reader's last non-blocking read returned: its
// netpoller callback keeps it here for the receive call that parked on it.
type Result struct {
	N   int
	Err error
}

// Try is the body of a netpoller read callback (FD.Read, RawConn.Read): it
// calls read on fd again while the call is interrupted (EINTR) and returns
// false when the socket would block (EAGAIN), which parks the reader until
// the descriptor is readable. Any other outcome lands in r and returns true.
//
// read is called on the hot path: bind it once, as the callback itself is,
// since a closure made per call would allocate.
func (r *Result) Try(fd uintptr, read func(fd int) (int, error)) bool {
	for {
		n, err := read(int(fd))
		switch err {
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false
		}
		r.N, r.Err = n, err
		return true
	}
}
