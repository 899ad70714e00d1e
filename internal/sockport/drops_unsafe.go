package sockport

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// skMeminfoDrops is SK_MEMINFO_DROPS, the index of the socket's drop count
// in what SO_MEMINFO reports (Linux 4.11 and later).
const skMeminfoDrops = 8

// Drops returns how many packets the kernel dropped for socket fd since it
// was made: those its receive queue had no room for, mostly (sk_drops, as
// SO_RXQ_OVFL reports it). Reading it at a snapshot costs the receive path
// nothing, and it also counts the drops after the last packet read.
func Drops(fd int) (uint64, error) {
	var info [skMeminfoDrops + 1]uint32
	size := uint32(unsafe.Sizeof(info))
	_, _, errno := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_SOCKET, unix.SO_MEMINFO,
		uintptr(unsafe.Pointer(&info[0])), uintptr(unsafe.Pointer(&size)), 0)
	if errno != 0 {
		return 0, errno
	}
	if size < uint32(unsafe.Sizeof(info)) {
		return 0, unix.ENOPROTOOPT // a kernel without the drop count
	}
	return uint64(info[skMeminfoDrops]), nil
}
