package accept

import (
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// maxShed bounds the connections one Shed closes: a backlog, not a flood.
const maxShed = 256

// spare is a descriptor the process keeps for the moment it has none left
// (EMFILE, ENFILE): closed, it lets a listener accept the connections
// waiting in its backlog and close them at once, so their clients learn
// there is no room instead of waiting until they time out. One for the
// whole process, since a listener sheds only while it cannot accept.
var spare = struct {
	sync.Mutex
	fd int // -1: not held
}{fd: -1}

// holdSpare takes the spare descriptor if it is not held yet (a listener
// starts: descriptors are still to be had).
func holdSpare() {
	spare.Lock()
	defer spare.Unlock()
	if spare.fd < 0 {
		spare.fd = openSpare()
	}
}

func openSpare() int {
	fd, err := unix.Open("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1
	}
	return fd
}

// ShedFD gives up the spare descriptor to accept and close at once the
// connections waiting on listening socket lfd, then takes it back; it
// returns how many it closed. Without a spare (it could not be taken back
// last time) it closes none.
func ShedFD(lfd int) int {
	spare.Lock()
	defer spare.Unlock()
	if spare.fd < 0 {
		spare.fd = openSpare() // descriptors may have been freed since
		return 0
	}
	unix.Close(spare.fd)
	n := 0
	for ; n < maxShed; n++ {
		fd, _, err := unix.Accept4(lfd, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
		if err != nil {
			break // EAGAIN: the backlog is empty; EMFILE: another goroutine took the descriptor
		}
		unix.Close(fd)
	}
	spare.fd = openSpare()
	return n
}

// ShedFrom returns Loop's shed for a listener of package net (one that is
// a syscall.Conn: *net.UnixListener, *net.TCPListener); nil for others.
func ShedFrom(ln any) func() int {
	sc, ok := ln.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return func() int {
		n := 0
		rc.Control(func(fd uintptr) { n = ShedFD(int(fd)) })
		return n
	}
}
