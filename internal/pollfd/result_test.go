package pollfd

import (
	"errors"
	"net"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// replies returns a read that answers with errs in turn, then with n bytes
// and no error, and a count of its calls.
func replies(n int, errs ...error) (func(int) (int, error), *int) {
	calls := 0
	return func(int) (int, error) {
		calls++
		if calls <= len(errs) {
			return -1, errs[calls-1]
		}
		return n, nil
	}, &calls
}

func TestTry(t *testing.T) {
	cases := []struct {
		name      string
		errs      []error
		wantDone  bool
		wantN     int
		wantErr   error
		wantCalls int
	}{
		{name: "data", wantDone: true, wantN: 7, wantCalls: 1},
		{name: "interrupted then data", errs: []error{unix.EINTR, unix.EINTR}, wantDone: true, wantN: 7, wantCalls: 3},
		{name: "would block parks", errs: []error{unix.EAGAIN}, wantDone: false, wantN: -5, wantCalls: 1},
		{name: "interrupted then would block", errs: []error{unix.EINTR, unix.EAGAIN}, wantDone: false, wantN: -5, wantCalls: 2},
		{name: "other errors are kept", errs: []error{unix.ECONNREFUSED}, wantDone: true, wantN: -1, wantErr: unix.ECONNREFUSED, wantCalls: 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			read, calls := replies(7, c.errs...)
			r := Result{N: -5} // a parked try leaves it alone
			done := r.Try(3, read)
			if done != c.wantDone || r.N != c.wantN || r.Err != c.wantErr || *calls != c.wantCalls {
				t.Fatalf("Try = %v, %+v after %d calls; want %v, {N:%d Err:%v} after %d",
					done, r, *calls, c.wantDone, c.wantN, c.wantErr, c.wantCalls)
			}
		})
	}
}

// TestTryParksOnTheNetpoller reads through FD.Read: the reader parks on an
// empty socket and gets the datagram sent later, and reading allocates
// nothing.
func TestTryParksOnTheNetpoller(t *testing.T) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fds[1])
	f, err := New(fds[0], "test")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close(nil)

	buf := make([]byte, 64)
	var r Result
	read := func(fd int) (int, error) { return unix.Read(fd, buf) }
	callback := func(fd uintptr) bool { return r.Try(fd, read) }

	go func() {
		time.Sleep(20 * time.Millisecond)
		unix.Write(fds[1], []byte("hello"))
	}()
	if err := f.Read(callback); err != nil {
		t.Fatal(err)
	}
	if r.N != 5 || r.Err != nil || string(buf[:5]) != "hello" {
		t.Fatalf("read %+v %q, want 5 bytes of hello", r, buf[:max(r.N, 0)])
	}

	msg := []byte("again")
	if a := testing.AllocsPerRun(100, func() {
		unix.Write(fds[1], msg)
		f.Read(callback)
	}); a != 0 {
		t.Errorf("%v allocations per read, want 0", a)
	}
}

// Busy-polling, a read spins until the frame is there (no netpoller in
// between), and a Close ends a spinning read with net.ErrClosed.
func TestBusyPollSpinsAndCloseEndsIt(t *testing.T) {
	SetBusyPoll(true)
	defer SetBusyPoll(false)
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fds[1])
	f, err := New(fds[0], "test")
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	var r Result
	tries := 0
	callback := func(fd uintptr) bool {
		tries++
		return r.Try(fd, func(fd int) (int, error) { return unix.Read(fd, buf) })
	}
	go func() {
		time.Sleep(20 * time.Millisecond)
		unix.Write(fds[1], []byte("hello"))
	}()
	if err := f.Read(callback); err != nil || r.N != 5 || string(buf[:5]) != "hello" {
		t.Fatalf("read %+v %q, %v", r, buf[:max(r.N, 0)], err)
	}
	if tries < 2 {
		t.Fatalf("%d tries: the read did not spin", tries)
	}
	done := make(chan error, 1)
	go func() { done <- f.Read(callback) }()
	time.Sleep(10 * time.Millisecond)
	f.Close(nil)
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("a spinning read after Close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not end a spinning read")
	}
}
