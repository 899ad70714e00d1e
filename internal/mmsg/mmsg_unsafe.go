package mmsg

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// Hdr mirrors the kernel's struct mmsghdr: a msghdr and the byte count the
// call filled in, padded to the pointer size.
type Hdr struct {
	Msg unix.Msghdr
	Len uint32
	_   [unsafe.Sizeof(uintptr(0)) - 4]byte
}

// Batch is a set of message headers with one or more iovecs per message.
// Header i uses Iovs[i*PerMsg : (i+1)*PerMsg].
type Batch struct {
	Hdrs   []Hdr
	Iovs   []unix.Iovec
	PerMsg int
}

// NewBatch returns a batch of n messages with perMsg iovecs each.
func NewBatch(n, perMsg int) *Batch {
	b := &Batch{Hdrs: make([]Hdr, n), Iovs: make([]unix.Iovec, n*perMsg), PerMsg: perMsg}
	for i := range b.Hdrs {
		b.Hdrs[i].Msg.Iov = &b.Iovs[i*perMsg]
		b.Hdrs[i].Msg.SetIovlen(perMsg)
	}
	return b
}

// SetBuf points iovec j of message i at buf. An empty buf is allowed.
func (b *Batch) SetBuf(i, j int, buf []byte) {
	iov := &b.Iovs[i*b.PerMsg+j]
	if len(buf) == 0 {
		iov.Base = nil
	} else {
		iov.Base = &buf[0]
	}
	iov.SetLen(len(buf))
}

// SetName makes message i carry the socket address name (for sendto-style
// sends or to collect the sender on receive); nil clears it.
func (b *Batch) SetName(i int, name []byte) {
	m := &b.Hdrs[i].Msg
	if len(name) == 0 {
		m.Name, m.Namelen = nil, 0
		return
	}
	m.Name = &name[0]
	m.Namelen = uint32(len(name))
}

// SetControl points message i's ancillary data at buf; nil clears it. A
// receive shrinks Controllen to what the kernel wrote, so readers set it
// again before every call.
func (b *Batch) SetControl(i int, buf []byte) {
	m := &b.Hdrs[i].Msg
	if len(buf) == 0 {
		m.Control = nil
		m.SetControllen(0)
		return
	}
	m.Control = &buf[0]
	m.SetControllen(len(buf))
}

// Recv calls recvmmsg on fd for the first n messages. With MSG_DONTWAIT in
// flags it never blocks and is issued as a raw system call (see syscall6);
// without it, it may block and goes through the scheduler.
func (b *Batch) Recv(fd, n, flags int) (int, error) {
	return syscall6(unix.SYS_RECVMMSG, fd, unsafe.Pointer(&b.Hdrs[0]), n, flags)
}

// Send calls sendmmsg on fd for messages [from, to), raw when flags hold
// MSG_DONTWAIT, as Recv.
func (b *Batch) Send(fd, from, to, flags int) (int, error) {
	return syscall6(unix.SYS_SENDMMSG, fd, unsafe.Pointer(&b.Hdrs[from]), to-from, flags)
}

// syscall6 issues a batch call. A call that cannot block is made without
// telling the scheduler (RawSyscall6): a batch of 64 takes long enough that
// sysmon would otherwise count the thread as blocked and hand its P to
// another thread, and on a switch pinned to one CPU that hand-off costs more
// context switches than the batch saves. A signal may then interrupt the
// call with EINTR, which callers retry.
func syscall6(trap uintptr, fd int, hdrs unsafe.Pointer, n, flags int) (int, error) {
	var r uintptr
	var e unix.Errno
	if flags&unix.MSG_DONTWAIT != 0 {
		r, _, e = unix.RawSyscall6(trap, uintptr(fd), uintptr(hdrs), uintptr(n), uintptr(flags), 0, 0)
	} else {
		r, _, e = unix.Syscall6(trap, uintptr(fd), uintptr(hdrs), uintptr(n), uintptr(flags), 0, 0)
	}
	if e != 0 {
		return 0, e
	}
	return int(r), nil
}

// Readv reads into message i's iovecs with readv(2), for a descriptor that
// has no recvmmsg (a tap). The descriptor must be non-blocking: the call is
// made raw, as in syscall6.
func (b *Batch) Readv(fd, i int) (int, error) {
	return rawIO(unix.SYS_READV, fd, b, i, b.PerMsg)
}

// Writev writes the first n of message i's iovecs with writev(2), as
// Readv: a message gathered from a varying number of pieces.
func (b *Batch) Writev(fd, i, n int) (int, error) {
	n = max(0, min(n, b.PerMsg))
	return rawIO(unix.SYS_WRITEV, fd, b, i, n)
}

func rawIO(trap uintptr, fd int, b *Batch, i, n int) (int, error) {
	r, _, e := unix.RawSyscall(trap, uintptr(fd), uintptr(unsafe.Pointer(&b.Iovs[i*b.PerMsg])), uintptr(n))
	if e != 0 {
		return 0, e
	}
	return int(r), nil
}
