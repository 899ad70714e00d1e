// Package pollfd owns a non-blocking descriptor for a port: reads park on Go's
// netpoller (so Close wakes the reader), writers borrow the raw fd under a
// shared lock (so Close never pulls it from under a sendmmsg), and
// WaitWritable parks on the netpoller for POLLOUT within a bound.
// Result.Try is every port reader's netpoller callback step: read until
// the socket would block.
//
// Nothing here blocks an OS thread in a system call. A goroutine blocked in
// ppoll keeps its P until sysmon takes it back, which can take milliseconds;
// a switch pinned to one CPU (GOMAXPROCS=1) would stop reading every other
// port meanwhile.
package pollfd

import (
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// FD is a non-blocking descriptor shared by one reader and many writers.
type FD struct {
	file *os.File
	raw  syscall.RawConn

	mu     sync.RWMutex // shared while fd is borrowed, exclusive to close
	fd     int
	closed bool
	once   sync.Once

	// The netpoller lets one goroutine at a time wait for writability on
	// a descriptor, so waiters take turns; waitFn is bound once so a wait
	// allocates nothing.
	waitMu      sync.Mutex
	waitFirst   bool           // guarded by waitMu
	waitPoll    [1]unix.PollFd // guarded by waitMu
	waitFn      func(uintptr) bool
	lastTimeout time.Time // guarded by waitMu: when a wait last ran out
}

// New takes ownership of fd, which must already be non-blocking.
func New(fd int, name string) (*FD, error) {
	file := os.NewFile(uintptr(fd), name)
	raw, err := file.SyscallConn()
	if err != nil {
		file.Close()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	f := &FD{file: file, raw: raw, fd: fd}
	f.waitFn = f.waitStep
	return f, nil
}

// Borrow returns the descriptor for a write, or false once closed. Every
// successful Borrow must be followed by Return.
func (f *FD) Borrow() (int, bool) {
	f.mu.RLock()
	if f.closed {
		f.mu.RUnlock()
		return -1, false
	}
	return f.fd, true
}

// Return ends a Borrow.
func (f *FD) Return() { f.mu.RUnlock() }

// DupFile returns a duplicate of the descriptor (close-on-exec, sharing
// its flags: still non-blocking) for a hot upgrade to hand over, or false
// once closed.
func (f *FD) DupFile(name string) (*os.File, bool) {
	fd, ok := f.Borrow()
	if !ok {
		return nil, false
	}
	defer f.Return()
	nfd, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, false
	}
	return os.NewFile(uintptr(nfd), name), true
}

// Read calls fn until it returns true, parking on the netpoller whenever it
// returns false. After Close it returns net.ErrClosed.
//
// Without deadlines, RawConn.Read fails only once the file is closed or
// when the poller saw nothing but POLLERR on the descriptor (a tap whose
// interface was deleted, a packet socket whose interface went down). The
// descriptor's own error then shows in one more call of fn, which the
// reader handles; if fn finds nothing, Read returns a transient error (the
// poller forgets its error with the next event, frames arriving say).
func (f *FD) Read(fn func(fd uintptr) bool) error {
	if busyPoll.Load() {
		return f.spin(fn)
	}
	err := f.raw.Read(fn)
	if err == nil {
		return nil
	}
	fd, ok := f.Borrow()
	if !ok {
		return net.ErrClosed
	}
	done := fn(uintptr(fd))
	f.Return()
	if done {
		return nil
	}
	return fmt.Errorf("%s: poll: %w", f.file.Name(), err)
}

// busyPoll: readers spin instead of parking (SetBusyPoll).
var busyPoll atomic.Bool

// SetBusyPoll makes every Read spin on its descriptor, yielding to the
// other goroutines between tries, instead of parking on the netpoller: a
// frame is taken the moment it arrives, with no wake-up of a sleeping
// thread, at the price of a CPU kept busy (umlswitch -busy-poll).
func SetBusyPoll(on bool) { busyPoll.Store(on) }

// BusyPolling reports whether readers spin (SetBusyPoll).
func BusyPolling() bool { return busyPoll.Load() }

// spin is Read without parking.
func (f *FD) spin(fn func(fd uintptr) bool) error {
	for {
		fd, ok := f.Borrow()
		if !ok {
			return net.ErrClosed
		}
		done := fn(uintptr(fd))
		f.Return()
		if done {
			return nil
		}
		runtime.Gosched()
	}
}

// WaitWritable parks until the descriptor reports POLLOUT or timeout passes,
// and reports which. It also returns true once closed: the next write says so.
//
// The netpoller lets one goroutine at a time wait on a descriptor, so
// waiters take turns. A waiter that queued while the one before it ran out
// of time returns false at once: the descriptor has made no progress for a
// whole timeout, and waiting again in turn would multiply that pause.
//
// The netpoller sees readiness as edges and forgets, when a wait starts, any
// edge that came before it. So the wait first asks the kernel directly with
// a zero-timeout poll: on a unix datagram socket whose peer's queue is full,
// that poll also registers the socket with the peer, so the peer's next read
// produces a fresh edge that the parked waiter will see.
func (f *FD) WaitWritable(timeout time.Duration) bool {
	queued := time.Now()
	f.waitMu.Lock()
	defer f.waitMu.Unlock()
	if f.lastTimeout.After(queued) {
		return false
	}
	if err := f.file.SetWriteDeadline(time.Now().Add(timeout)); err != nil {
		return true // closed
	}
	f.waitFirst = true
	err := f.raw.Write(f.waitFn)
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		f.lastTimeout = time.Now()
		return false
	}
	return true
}

// waitStep is the netpoller callback of WaitWritable: on the first call it
// reports the descriptor's real state; after a wakeup it reports done (a
// stale edge costs the caller one failed write and another wait).
func (f *FD) waitStep(fd uintptr) bool {
	if !f.waitFirst {
		return true
	}
	f.waitFirst = false
	f.waitPoll[0] = unix.PollFd{Fd: int32(fd), Events: unix.POLLOUT}
	// A zero-timeout poll never blocks: issue it raw, as mmsg does its
	// non-blocking batches, so the scheduler is not involved.
	n, _, _ := unix.RawSyscall(unix.SYS_POLL, uintptr(unsafe.Pointer(&f.waitPoll[0])), 1, 0)
	return n > 0 && n != ^uintptr(0)
}

// Close waits for borrowed uses to end, closes the descriptor (waking the
// reader) and then runs after, once.
func (f *FD) Close(after func()) error {
	var err error
	f.once.Do(func() {
		f.mu.Lock()
		f.closed = true
		f.mu.Unlock()
		err = f.file.Close()
		if after != nil {
			after()
		}
	})
	return err
}

// ReadTimeout reads one datagram from the non-blocking descriptor fd,
// waiting up to timeout for one to arrive. It is for clients and tests that
// own a plain descriptor, not for port readers (those park on the netpoller).
// It allocates nothing.
func ReadTimeout(fd int, b []byte, timeout time.Duration) (int, error) {
	fds := [1]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	deadline := time.Now().Add(timeout)
	for {
		n, err := unix.Read(fd, b)
		if err != unix.EAGAIN {
			return n, err
		}
		left := time.Until(deadline)
		if left <= 0 {
			return 0, os.ErrDeadlineExceeded
		}
		ts := unix.NsecToTimespec(int64(left))
		unix.Ppoll(fds[:], &ts, nil)
	}
}
