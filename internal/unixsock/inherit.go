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
	byPath map[string]*os.File
}

// Inherit keeps the listening unix stream sockets among files (what
// sdnotify.Listeners returns) for Listen, which uses the one bound at the
// path it is asked for instead of binding a socket: a socket unit holds
// the control sockets while the switch restarts, and clients that connect
// meanwhile wait in its backlog rather than being refused. It returns the
// paths kept; a file that is not such a socket is an error, and is closed.
func Inherit(files []*os.File) ([]string, error) {
	inherited.mu.Lock()
	defer inherited.mu.Unlock()
	if inherited.byPath == nil {
		inherited.byPath = make(map[string]*os.File)
	}
	var paths []string
	for _, f := range files {
		path, err := listeningPath(int(f.Fd()))
		if err != nil {
			f.Close()
			return paths, fmt.Errorf("socket %s from systemd: %w", f.Name(), err)
		}
		inherited.byPath[path] = f
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
	for path, f := range inherited.byPath {
		f.Close()
		paths = append(paths, path)
	}
	clear(inherited.byPath)
	slices.Sort(paths)
	return paths
}

// listeningPath is the filesystem path a listening unix stream socket is
// bound to.
func listeningPath(fd int) (string, error) {
	if typ, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE); err != nil || typ != unix.SOCK_STREAM {
		return "", fmt.Errorf("not a stream socket (%v)", err)
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
func takeInherited(path string) (*os.File, bool) {
	inherited.mu.Lock()
	defer inherited.mu.Unlock()
	f, ok := inherited.byPath[filepath.Clean(path)]
	if ok {
		delete(inherited.byPath, filepath.Clean(path))
	}
	return f, ok
}

// listenInherited makes a Listener of an inherited socket. Its file, mode
// and owner are the socket unit's (SocketMode=, SocketUser=), and Close
// leaves the file: the unit owns it, and keeps listening.
func listenInherited(path string, f *os.File) (*Listener, error) {
	defer f.Close()
	if err := unix.SetNonblock(int(f.Fd()), true); err != nil {
		return nil, err
	}
	ln, err := net.FileListener(f) // a duplicate of its fd
	if err != nil {
		return nil, fmt.Errorf("socket %s from systemd: %w", path, err)
	}
	ul := ln.(*net.UnixListener)
	ul.SetUnlinkOnClose(false)
	return &Listener{UnixListener: ul, addr: &net.UnixAddr{Name: path, Net: "unix"}, fromSystemd: true}, nil
}
