package handover

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"

	"golang.org/x/sys/unix"
)

// predecessor is the old switch of the upgrade that started this process:
// gone is closed once it has exited (its descriptors closed with it).
var predecessor struct {
	once sync.Once
	gone chan struct{}
}

// watchPredecessor starts watching the old switch through a pidfd: the
// one it handed over, which names it whatever became of it since. From an
// old switch that handed none over: one opened on the parent's pid, while
// the parent is still the old switch (else it has died, and this process
// been given to another parent).
func watchPredecessor() {
	predecessor.once.Do(func() {
		predecessor.gone = make(chan struct{})
		pidfd, err := handedPidfd()
		if err != nil {
			old := OldSwitch()
			if pidfd, err = unix.PidfdOpen(old, 0); err == nil && os.Getppid() != old {
				unix.Close(pidfd) // killed before this process adopted its sockets
				err = unix.ESRCH
			}
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

// handedPidfd is the old switch's pidfd that it handed over, if it did.
func handedPidfd() (int, error) {
	v, ok := os.LookupEnv(envPIDFD)
	if !ok {
		return -1, errors.New("no pidfd handed over")
	}
	os.Unsetenv(envPIDFD)
	fd, err := strconv.Atoi(v)
	if err != nil || fd <= controlFD {
		return -1, fmt.Errorf("handover: %s=%q", envPIDFD, v)
	}
	unix.CloseOnExec(fd)
	return fd, nil
}
