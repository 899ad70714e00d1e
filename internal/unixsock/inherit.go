package unixsock

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"golang.org/x/sys/unix"
)

// inherited are the listening stream sockets this process was handed by
// systemd's socket activation, by the path each is bound to, until Listen
// takes them.
var inherited struct {
	mu     sync.Mutex
	byPath map[string]inheritedSocket
}

type inheritedSocket struct {
	f    *os.File
	from string // who handed it over: "systemd" (whose socket unit keeps its file) or "upgrade"
}

// Inherit keeps the listening unix stream sockets among files (what
// sdnotify.Listeners returns) for Listen, which uses the one bound at the
// path it is asked for instead of binding a socket: a socket unit holds
// the control sockets while the switch restarts, and clients that connect
// meanwhile wait in its backlog rather than being refused. It returns the
// paths kept; a file that is not such a socket is an error, and is closed.
// from says who handed them over: "systemd", whose socket unit keeps the
// files, or "upgrade", an old switch whose files are this one's now (its
// Close removes them).
func Inherit(files []*os.File, from string) ([]string, error) {
	inherited.mu.Lock()
	defer inherited.mu.Unlock()
	if inherited.byPath == nil {
		inherited.byPath = make(map[string]inheritedSocket)
	}
	var paths []string
	for _, f := range files {
		path, err := listeningPath(int(f.Fd()))
		if err != nil {
			f.Close()
			return paths, fmt.Errorf("socket %s from systemd: %w", f.Name(), err)
		}
		inherited.byPath[path] = inheritedSocket{f: f, from: from}
		paths = append(paths, path)
	}
	slices.Sort(paths)
	return paths, nil
}

// Unused closes the inherited sockets Listen has not taken and returns
// their paths, for a warning.
func Unused() []string {
	inherited.mu.Lock()
	defer inherited.mu.Unlock()
	var paths []string
	for path, s := range inherited.byPath {
		s.f.Close()
		paths = append(paths, path)
	}
	clear(inherited.byPath)
	slices.Sort(paths)
	return paths
}

// listeningPath is the filesystem path a listening unix stream socket is
// bound to.
func listeningPath(fd int) (string, error) {
	if typ, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE); err != nil || (typ != unix.SOCK_STREAM && typ != unix.SOCK_SEQPACKET) {
		return "", fmt.Errorf("not a stream or seqpacket socket (%v)", err)
	}
	if on, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ACCEPTCONN); err != nil || on != 1 {
		return "", fmt.Errorf("not listening (%v)", err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return "", err
	}
	un, ok := sa.(*unix.SockaddrUnix)
	if !ok || un.Name == "" || un.Name[0] == '@' || un.Name[0] == 0 {
		return "", fmt.Errorf("not a unix socket bound to a path (%v)", sa)
	}
	return filepath.Clean(un.Name), nil
}

// takeInherited returns the inherited listener bound at path, if any.
func takeInherited(path string) (inheritedSocket, bool) {
	inherited.mu.Lock()
	defer inherited.mu.Unlock()
	s, ok := inherited.byPath[filepath.Clean(path)]
	if ok {
		delete(inherited.byPath, filepath.Clean(path))
	}
	return s, ok
}

// listenInherited makes a Listener of an inherited socket. Its file, mode
// and owner are as they were made (a socket unit's SocketMode= and
// SocketUser=). A socket unit's file stays when Close closes the socket,
// since the unit keeps listening; an old switch's is removed, as this
// switch's own would be.
func listenInherited(path string, s inheritedSocket) (*Listener, error) {
	f := s.f
	defer f.Close()
	var sock *Socket
	if s.from != "systemd" {
		var err error
		if sock, err = socketAt(path, s.from); err != nil {
			return nil, err
		}
	}
	if err := unix.SetNonblock(int(f.Fd()), true); err != nil {
		return nil, err
	}
	ln, err := net.FileListener(f) // a duplicate of its fd
	if err != nil {
		return nil, fmt.Errorf("socket %s from systemd: %w", path, err)
	}
	ul := ln.(*net.UnixListener)
	ul.SetUnlinkOnClose(false)
	return track(&Listener{UnixListener: ul, sock: sock, addr: &net.UnixAddr{Name: path, Net: "unix"}, from: s.from}), nil
}

// socketAt is the Socket record of the socket file at path as it is now,
// for Remove to unlink while it is still that file; from says who handed
// it over (an upgrade's old switch keeps it until this one serves).
func socketAt(path, from string) (*Socket, error) {
	dir, name, err := splitPath(path)
	if err != nil {
		return nil, err
	}
	d, err := OpenDir(dir, -1)
	if err != nil {
		return nil, err
	}
	var st unix.Stat_t
	if err := d.stat(name, &st); err != nil {
		d.Close()
		return nil, &os.PathError{Op: "stat", Path: path, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFSOCK {
		d.Close()
		return nil, fmt.Errorf("%s is no longer a socket", path)
	}
	return &Socket{dir: d, name: name, path: path, dev: st.Dev, ino: st.Ino, handedOver: from == "upgrade"}, nil
}

// ListenPath returns a listening unix socket of type sotype (SOCK_STREAM,
// SOCK_SEQPACKET) at path: the one handed over for path (Inherit), else a
// new one bound with BindPath (access a, backlog). The descriptor is
// non-blocking and close-on-exec; sock is what Remove unlinks at Close
// (nil for a socket unit's socket, whose file is the unit's).
func ListenPath(path string, sotype int, a Access, backlog int) (fd int, sock *Socket, err error) {
	if s, ok := takeInherited(path); ok {
		defer s.f.Close()
		if typ, err := unix.GetsockoptInt(int(s.f.Fd()), unix.SOL_SOCKET, unix.SO_TYPE); err != nil || typ != sotype {
			return -1, nil, fmt.Errorf("%s: the socket handed over is of another type (%d, want %d)", path, typ, sotype)
		}
		if s.from != "systemd" {
			if sock, err = socketAt(path, s.from); err != nil {
				return -1, nil, err
			}
		}
		if fd, err = unix.FcntlInt(s.f.Fd(), unix.F_DUPFD_CLOEXEC, 0); err != nil {
			return -1, nil, err
		}
		return fd, sock, unix.SetNonblock(fd, true)
	}
	fd, err = unix.Socket(unix.AF_UNIX, sotype|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, nil, err
	}
	if sock, err = BindPath(fd, path, a, backlog); err != nil {
		unix.Close(fd)
		return -1, nil, err
	}
	return fd, sock, nil
}
