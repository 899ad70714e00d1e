package xsk

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// x/sys has the AF_XDP structures but no socket options that take them.

func registerUMEM(fd int, umem []byte, frameSize int) error {
	reg := unix.XDPUmemReg{
		Addr: uint64(uintptr(unsafe.Pointer(&umem[0]))),
		Len:  uint64(len(umem)),
		Size: uint32(frameSize),
	}
	return setsockopt(fd, unix.XDP_UMEM_REG, unsafe.Pointer(&reg), unsafe.Sizeof(reg))
}

func mmapOffsets(fd int) (unix.XDPMmapOffsets, error) {
	var off unix.XDPMmapOffsets
	size := uint32(unsafe.Sizeof(off))
	err := getsockopt(fd, unix.XDP_MMAP_OFFSETS, unsafe.Pointer(&off), &size)
	if err == nil && size != uint32(unsafe.Sizeof(off)) {
		// A kernel older than 5.4 answers without the flags words: it has no
		// XDP_USE_NEED_WAKEUP either, and the bind would fail anyway.
		err = unix.EOPNOTSUPP
	}
	return off, err
}

func statistics(fd int) (unix.XDPStatistics, error) {
	var st unix.XDPStatistics
	size := uint32(unsafe.Sizeof(st))
	err := getsockopt(fd, unix.XDP_STATISTICS, unsafe.Pointer(&st), &size)
	return st, err
}

func setsockopt(fd, opt int, p unsafe.Pointer, size uintptr) error {
	_, _, e := unix.Syscall6(unix.SYS_SETSOCKOPT, uintptr(fd), unix.SOL_XDP, uintptr(opt), uintptr(p), size, 0)
	if e != 0 {
		return e
	}
	return nil
}

func getsockopt(fd, opt int, p unsafe.Pointer, size *uint32) error {
	_, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_XDP, uintptr(opt), uintptr(p), uintptr(unsafe.Pointer(size)), 0)
	if e != 0 {
		return e
	}
	return nil
}

// wakeRX and wakeTX are the empty recvfrom and sendto that tell the kernel
// to look at the fill or TX ring. Neither blocks (MSG_DONTWAIT) and
// neither allocates: they are issued raw, as mmsg issues its batches.
func wakeRX(fd int) unix.Errno {
	_, _, e := unix.RawSyscall6(unix.SYS_RECVFROM, uintptr(fd), 0, 0, unix.MSG_DONTWAIT, 0, 0)
	return e
}

func wakeTX(fd int) unix.Errno {
	_, _, e := unix.Syscall6(unix.SYS_SENDTO, uintptr(fd), 0, 0, unix.MSG_DONTWAIT, 0, 0)
	return e
}
