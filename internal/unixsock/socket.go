package unixsock

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// Socket is a socket file this process bound: its name in a trusted
// directory and the inode it got, so that Remove unlinks that file and
// nothing that has taken its place.
type Socket struct {
	dir      *Dir
	name     string
	path     string
	dev, ino uint64
	own      *Addr // a datagram socket's address, marked as the switch's own
	// handedOver: the file came with a socket an old switch handed over
	// (an upgrade), and stays its until this process serves (Adopted).
	handedOver bool

	once sync.Once
	err  error
}

// BindPath binds the AF_UNIX socket fd at path with access a, and for
// backlog > 0 listens on it, without ever following a link another user
// could plant:
//
//   - path's directory must be trusted (OpenDir, with a.UID as the
//     socket's owner) and is used by descriptor from then on;
//   - a stale socket file there is removed, a live one refused (a
//     connection to it is accepted: another switch serves it);
//   - fd is bound at path itself (bind never follows a link at the last
//     component, and the kernel keeps path as the socket's address: what
//     getsockname, /proc/net/unix, ss and tools such as Netkit's vclean
//     see, and a datagram socket's source address); then the new file is
//     opened by name in the directory's descriptor without following
//     links (O_PATH|O_NOFOLLOW), checked to be a socket of this user's
//     with one link, and chmodded and chowned through that descriptor, so
//     a swap of the name between bind and chmod changes nothing but makes
//     the bind fail; only then does it listen.
//
// Which file was bound is not proven beyond that check: who could swap the
// name (the directory's owner, when it is the socket's owner=) can put
// there no socket of this user's other than one the switch gave them.
// One who controls a directory above path can make the bind create the
// socket elsewhere; the check then fails and that file is left there.
//
// A datagram socket's address is registered with MarkOwn until Remove.
func BindPath(fd int, path string, a Access, backlog int) (*Socket, error) {
	if _, err := FromPath(path); err != nil {
		return nil, err
	}
	dirPath, name, err := splitPath(path)
	if err != nil {
		return nil, err
	}
	typ, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE)
	if err != nil {
		return nil, fmt.Errorf("socket type: %w", err)
	}
	network := map[int]string{unix.SOCK_STREAM: "unix", unix.SOCK_SEQPACKET: "unixpacket", unix.SOCK_DGRAM: "unixgram"}[typ]
	if network == "" {
		return nil, fmt.Errorf("bind %s: socket type %d is not stream, seqpacket or datagram", path, typ)
	}
	d, err := OpenDir(dirPath, a.UID)
	if err != nil {
		return nil, err
	}
	s, err := d.bind(fd, name, path, network, a, backlog)
	if err != nil {
		d.Close()
		return nil, err
	}
	if typ == unix.SOCK_DGRAM {
		if own, err := Getsockname(fd); err == nil {
			MarkOwn(own)
			s.own = &own
		}
	}
	return s, nil
}

func (d *Dir) bind(fd int, name, path, network string, a Access, backlog int) (*Socket, error) {
	if err := d.clearStale(name, network); err != nil {
		return nil, err
	}
	addr, err := FromPath(path)
	if err != nil {
		return nil, err
	}
	if err := Bind(fd, &addr); err != nil {
		if errors.Is(err, unix.EADDRINUSE) {
			return nil, fmt.Errorf("bind %s: something else was created there meanwhile (another switch?)", path)
		}
		return nil, fmt.Errorf("bind %s: %w", path, err)
	}
	st, err := d.setAccess(name, path, a)
	if err != nil {
		return nil, err
	}
	if backlog > 0 {
		if err := unix.Listen(fd, backlog); err != nil {
			d.removeIf(name, st.Dev, st.Ino)
			return nil, fmt.Errorf("listen %s: %w", path, err)
		}
	}
	return &Socket{dir: d, name: name, path: path, dev: st.Dev, ino: st.Ino}, nil
}

// setAccess finds the socket just bound at name, by a descriptor of its
// own that no rename can redirect, and gives it a's mode and owner.
func (d *Dir) setAccess(name, path string, a Access) (*unix.Stat_t, error) {
	ofd, err := unix.Openat(d.fd, name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("bind %s: the new socket is not there: %w", path, err)
	}
	defer unix.Close(ofd)
	var st unix.Stat_t
	if err := unix.Fstat(ofd, &st); err != nil {
		return nil, fmt.Errorf("bind %s: %w", path, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFSOCK || st.Uid != fsuid() || st.Nlink != 1 {
		// Replaced between bind and now (the switch's socket is left
		// where the other user moved it), or bound elsewhere.
		return nil, fmt.Errorf("bind %s: the name was replaced by another user's file as it was bound; not using it", path)
	}
	if a.Mode != 0 {
		if err := chmodFD(ofd, a.Mode.Perm()); err != nil {
			d.removeIf(name, st.Dev, st.Ino)
			return nil, fmt.Errorf("chmod %s to %04o: %w", path, a.Mode.Perm(), err)
		}
	}
	if a.UID >= 0 || a.GID >= 0 {
		if err := unix.Fchownat(ofd, "", a.UID, a.GID, unix.AT_EMPTY_PATH); err != nil {
			d.removeIf(name, st.Dev, st.Ino)
			return nil, fmt.Errorf("chown %s to %d:%d: %w", path, a.UID, a.GID, err)
		}
	}
	return &st, nil
}

// chmodFD chmods the file an O_PATH descriptor holds: fchmodat2 with
// AT_EMPTY_PATH (Linux 6.6), else through /proc/self/fd, whose link leads
// to that very file (a socket here, never a symbolic link).
func chmodFD(ofd int, mode os.FileMode) error {
	err := unix.Fchmodat(ofd, "", uint32(mode), unix.AT_EMPTY_PATH)
	if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EINVAL) {
		err = unix.Chmod("/proc/self/fd/"+strconv.Itoa(ofd), uint32(mode))
	}
	return err
}

// Path is where the socket was asked to be.
func (s *Socket) Path() string { return s.path }

// Remove unlinks the socket file if it is still the one BindPath made,
// unregisters a datagram socket's address, and closes the directory.
// Call it once the socket is closed; later calls return the first's result.
func (s *Socket) Remove() error {
	s.once.Do(func() {
		if s.own != nil {
			ForgetOwn(*s.own)
		}
		if !keepFiles.Load() && (!s.handedOver || adopted.Load()) {
			s.err = s.dir.removeIf(s.name, s.dev, s.ino)
		}
		s.dir.Close()
	})
	return s.err
}

// keepFiles is set once the process has handed its sockets to a new one
// (a hot upgrade): their files are the new process's from then on.
var keepFiles atomic.Bool

// KeepFiles makes Remove (and Listener.Close) leave socket files alone
// from now on: the process handed its sockets over and is going.
func KeepFiles() { keepFiles.Store(true) }

// adopted is set once the new switch of an upgrade serves: the socket
// files handed over to it are its own from then on. Before, they are the
// old switch's, which goes on serving on them if this one fails to start.
var adopted atomic.Bool

// Adopted makes the socket files handed over by an upgrade this process's
// to remove when it stops: call it once the old switch has heard that
// this one serves.
func Adopted() { adopted.Store(true) }

// Listener is a unix stream listener made by Listen. Close removes its
// socket file if it is still the one Listen made.
type Listener struct {
	*net.UnixListener
	sock *Socket // nil for a socket unit's socket, whose file is the unit's
	addr *net.UnixAddr
	from string // who handed it over (Inherit); empty: bound here
}

// Listen binds a SOCK_STREAM listener at path with access a (BindPath):
// a stale socket file is replaced, a live one refused.
//
// A socket systemd handed over for path (Inherit) is used instead, as it
// is: a socket unit's mode and owner are its SocketMode= and SocketUser=.
func Listen(path string, a Access) (*Listener, error) {
	if s, ok := takeInherited(path); ok {
		return listenInherited(path, s)
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	s, err := BindPath(fd, path, a, unix.SOMAXCONN)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	f := os.NewFile(uintptr(fd), path)
	ln, err := net.FileListener(f) // a duplicate of fd
	f.Close()
	if err != nil {
		s.Remove()
		return nil, err
	}
	ul := ln.(*net.UnixListener)
	ul.SetUnlinkOnClose(false) // Remove does it, and only while the file is still this socket
	return track(&Listener{UnixListener: ul, sock: s, addr: &net.UnixAddr{Name: path, Net: "unix"}}), nil
}

// live are the listeners open now, for a hot upgrade to hand over.
var live struct {
	mu sync.Mutex
	ls map[*Listener]struct{}
}

func track(l *Listener) *Listener {
	live.mu.Lock()
	defer live.mu.Unlock()
	if live.ls == nil {
		live.ls = make(map[*Listener]struct{})
	}
	live.ls[l] = struct{}{}
	return l
}

// Listeners returns the listeners Listen made that are open now.
func Listeners() []*Listener {
	live.mu.Lock()
	defer live.mu.Unlock()
	out := make([]*Listener, 0, len(live.ls))
	for l := range live.ls {
		out = append(out, l)
	}
	return out
}

// Addr is the path clients connect to.
func (l *Listener) Addr() net.Addr { return l.addr }

// Path is the path clients connect to.
func (l *Listener) Path() string { return l.addr.Name }

// Close stops listening and removes the socket file.
func (l *Listener) Close() error {
	live.mu.Lock()
	delete(live.ls, l)
	live.mu.Unlock()
	err := l.UnixListener.Close()
	if l.sock == nil {
		return err // systemd's socket unit keeps it
	}
	if rerr := l.sock.Remove(); err == nil {
		err = rerr
	}
	return err
}

// From says who handed the socket over (Inherit): "systemd", "upgrade",
// or empty for a socket bound here.
func (l *Listener) From() string { return l.from }
