package peercred

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// peerGroups reads SO_PEERGROUPS (Linux 4.13): the peer's supplementary
// groups when it connected. x/sys has no wrapper for a list of gids.
func peerGroups(fd int) ([]uint32, error) {
	buf := make([]uint32, 64)
	for {
		n := uint32(len(buf) * 4)
		_, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_SOCKET, unix.SO_PEERGROUPS,
			uintptr(unsafe.Pointer(&buf[0])), uintptr(unsafe.Pointer(&n)), 0)
		switch {
		case e == unix.ERANGE && int(n/4) > len(buf) && n/4 <= 1<<16:
			buf = make([]uint32, n/4) // n is the size needed
			continue
		case e != 0:
			return nil, e
		}
		return buf[: n/4 : n/4], nil
	}
}

// setgroups sets the calling thread's supplementary groups only
// (x/sys's Setgroups is the raw, per-thread system call).
func setgroups(gids []uint32) error {
	ints := make([]int, len(gids))
	for i, g := range gids {
		ints[i] = int(g)
	}
	return unix.Setgroups(ints)
}
