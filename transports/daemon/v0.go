package daemon

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/umlswitch/umlswitch/fabric"
	"github.com/umlswitch/umlswitch/frame"
	"github.com/umlswitch/umlswitch/internal/mmsg"
	"github.com/umlswitch/umlswitch/internal/pollfd"
	"github.com/umlswitch/umlswitch/internal/unixsock"
)

// v0Socket is the shared data socket of -compat-v0: version 0 clients send
// every frame to this one path, so a frame's port is found by its sender.
type v0Socket struct {
	path string
	sock *unixsock.Socket // the file at path, removed on close
	file *os.File
	raw  syscall.RawConn

	mu     sync.RWMutex
	byAddr map[unixsock.Addr]frame.PortID

	strangers atomic.Uint64 // datagrams from senders that are not clients

	rx     *mmsg.Batch
	names  []unixsock.Addr
	rxVec  *frame.Vector
	got    pollfd.Result
	readFn func(uintptr) bool // both bound once, so a read allocates no closure
	recvFn func(fd int) (int, error)
}

func listenV0(path string, cfg Config) (*v0Socket, error) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	// A stale socket file is replaced and a live one refused, as for the
	// control socket (uml_switch replaced even a live one). BindPath also
	// registers it as the switch's own: a client naming it as its data
	// socket is refused.
	sock, err := unixsock.BindPath(fd, path, unixsock.Access{Mode: cfg.Mode, UID: -1, GID: -1}, 0)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("v0 data socket: %w", err)
	}
	s := &v0Socket{path: path, sock: sock, file: os.NewFile(uintptr(fd), path), byAddr: make(map[unixsock.Addr]frame.PortID)}
	if s.raw, err = s.file.SyscallConn(); err != nil {
		s.close()
		return nil, err
	}
	s.readFn, s.recvFn = s.read, s.recv
	return s, nil
}

// canonical makes the address a client announced and the address the
// kernel reports for its datagrams compare equal: abstract names keep all
// their bytes, filesystem paths end at their NUL.
//
// An abstract name's length is part of it: the kernel tells a name bound
// 20 bytes long from the same bytes padded to the full 110, so a stranger
// who bound a client's name cut short (every abstract name is listed in
// /proc/net/unix) is another sender, and must not pass for the client.
// Clients bind the full sockaddr_un, as UML does (the switch's port sends
// to that), so a shorter abstract sender is nobody's: its form gets a
// family no announced address has (ParseRequest takes AF_UNIX alone).
func canonical(a *unixsock.Addr, n int) unixsock.Addr {
	var c unixsock.Addr
	if n > unixsock.AddrLen {
		n = unixsock.AddrLen
	}
	copy(c[:n], a[:n])
	if c.IsAbstract() {
		if n < unixsock.AddrLen {
			c[0], c[1] = 0xff, 0xff
		}
		return c
	}
	if i := bytes.IndexByte(c[2:], 0); i >= 0 {
		clear(c[2+i:])
	}
	return c
}

func (s *v0Socket) add(a *unixsock.Addr, id frame.PortID) {
	s.mu.Lock()
	s.byAddr[canonical(a, unixsock.AddrLen)] = id
	s.mu.Unlock()
}

func (s *v0Socket) remove(a *unixsock.Addr) {
	s.mu.Lock()
	delete(s.byAddr, canonical(a, unixsock.AddrLen))
	s.mu.Unlock()
}

func (s *v0Socket) receiver(cfg Config) fabric.Receiver {
	return fabric.Receiver{Name: "daemon v0 " + s.path, Depth: cfg.Depth, MaxFrame: cfg.MaxFrame, Receive: s.receive}
}

func (s *v0Socket) receive(v *frame.Vector) (int, error) {
	if s.rxVec != v {
		n := v.Depth()
		s.rx, s.names, s.rxVec = mmsg.NewBatch(n, 1), make([]unixsock.Addr, n), v
		for i := 0; i < n; i++ {
			s.rx.SetBuf(i, 0, v.Room(i))
		}
	}
	for i := range s.names {
		s.rx.SetName(i, s.names[i][:]) // recvmmsg shortens Namelen: reset it each time
	}
	if err := s.raw.Read(s.readFn); err != nil {
		return 0, net.ErrClosed // without deadlines, RawConn.Read fails only once the file is closed
	}
	if s.got.Err != nil {
		return 0, s.got.Err
	}
	s.mu.RLock()
	for i := 0; i < s.got.N; i++ {
		v.Sizes[i] = int(s.rx.Hdrs[i].Len)
		id, ok := s.byAddr[canonical(&s.names[i], int(s.rx.Hdrs[i].Msg.Namelen))]
		if !ok {
			id = frame.NoPort // a stranger: uml_switch floods these, we drop them
			s.strangers.Add(1)
		}
		v.Ports[i] = id
	}
	s.mu.RUnlock()
	return s.got.N, nil
}

func (s *v0Socket) read(fd uintptr) bool { return s.got.Try(fd, s.recvFn) }

func (s *v0Socket) recv(fd int) (int, error) {
	return s.rx.Recv(fd, len(s.rx.Hdrs), unix.MSG_DONTWAIT|unix.MSG_TRUNC)
}

func (s *v0Socket) close() {
	s.file.Close()
	s.sock.Remove()
}
