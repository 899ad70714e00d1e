package handover

import (
	"errors"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// predecessor is the old switch of the upgrade that started this process:
// gone is closed once it has exited (its descriptors closed with it).
var predecessor struct {
	once sync.Once
	gone chan struct{}
}

// watchPredecessor starts watching the old switch, the parent of this
// process, through a pidfd. Once the pidfd is open, the old switch still
// being the parent proves that it names that process, not one that took
// its pid after it died (this process then has another parent).
func watchPredecessor() {
	predecessor.once.Do(func() {
		predecessor.gone = make(chan struct{})
		old := OldSwitch()
		pidfd, err := unix.PidfdOpen(old, 0)
		if err == nil && os.Getppid() != old {
			unix.Close(pidfd) // killed before this process adopted its sockets
			err = unix.ESRCH
		}
		if err != nil { // gone already, or a kernel without pidfds: nothing to wait for
			close(predecessor.gone)
			return
		}
		go func() {
			defer unix.Close(pidfd)
			defer close(predecessor.gone)
			fds := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
			for {
				// One blocked thread for the process's first minute or so:
				// readable once the old switch has exited.
				if _, err := unix.Poll(fds, -1); !errors.Is(err, unix.EINTR) {
					return
				}
			}
		}()
	})
}

// PredecessorGone is closed once the old switch this process took over
// from has exited, and so let go of what it held to the end (an XDP
// program, an AF_XDP queue). It is nil in a process that was not started
// by an upgrade: a receive from it blocks forever.
func PredecessorGone() <-chan struct{} { return predecessor.gone }

// PredecessorRunning reports whether this process took over from an old
// switch that has not exited yet.
func PredecessorRunning() bool {
	if predecessor.gone == nil {
		return false
	}
	select {
	case <-predecessor.gone:
		return false
	default:
		return true
	}
}
