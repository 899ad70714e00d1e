package unixsock

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// Bind binds fd to a with addrlen 110.
func Bind(fd int, a *Addr) error {
	_, _, e := unix.Syscall(unix.SYS_BIND, uintptr(fd), uintptr(unsafe.Pointer(&a[0])), AddrLen)
	if e != 0 {
		return e
	}
	return nil
}

// Connect connects fd to a with addrlen 110.
func Connect(fd int, a *Addr) error {
	_, _, e := unix.Syscall(unix.SYS_CONNECT, uintptr(fd), uintptr(unsafe.Pointer(&a[0])), AddrLen)
	if e != 0 {
		return e
	}
	return nil
}

// Sendto sends b to a with addrlen 110.
func Sendto(fd int, b []byte, flags int, a *Addr) (int, error) {
	var p unsafe.Pointer
	if len(b) > 0 {
		p = unsafe.Pointer(&b[0])
	}
	n, _, e := unix.Syscall6(unix.SYS_SENDTO, uintptr(fd), uintptr(p), uintptr(len(b)), uintptr(flags),
		uintptr(unsafe.Pointer(&a[0])), AddrLen)
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

// Getsockname returns the address fd is bound to, as the raw 110 bytes.
func Getsockname(fd int) (Addr, error) {
	var a Addr
	l := uint32(AddrLen)
	_, _, e := unix.RawSyscall(unix.SYS_GETSOCKNAME, uintptr(fd), uintptr(unsafe.Pointer(&a[0])), uintptr(unsafe.Pointer(&l)))
	if e != 0 {
		return a, e
	}
	return a, nil
}

// Getpeername returns the address of the socket fd is connected to, as the
// raw 110 bytes (zero-padded past what the kernel returned).
func Getpeername(fd int) (Addr, error) {
	var a Addr
	l := uint32(AddrLen)
	_, _, e := unix.RawSyscall(unix.SYS_GETPEERNAME, uintptr(fd), uintptr(unsafe.Pointer(&a[0])), uintptr(unsafe.Pointer(&l)))
	if e != 0 {
		return a, e
	}
	return a, nil
}
