package unixsock

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// clearStale gets name in d ready for a new socket, as uml_switch does:
// nothing there is fine; a socket file nobody listens on (left by a switch
// that died) is removed; a socket with a live listener, or a file that is
// not a socket, is an error. network is what to probe with: "unix",
// "unixpacket" or "unixgram".
func (d *Dir) clearStale(name, network string) error {
	path := d.join(name)
	var st unix.Stat_t
	if err := d.stat(name, &st); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		return &os.PathError{Op: "stat", Path: path, Err: err}
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFSOCK:
	case unix.S_IFLNK:
		return fmt.Errorf("%s exists and is not a socket but a symbolic link: remove it (the switch binds nothing through a link)", path)
	default:
		return fmt.Errorf("%s exists and is not a socket", path)
	}
	err := d.probe(name, network, &st)
	switch {
	case err == nil:
		return fmt.Errorf("%s is in use: another switch is already running on this socket", path)
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.EPROTOTYPE):
		// Refused: nobody listens. EPROTOTYPE: a socket of another type
		// (a stream socket where a seqpacket one is wanted) is in the way.
		if err := d.removeIf(name, st.Dev, st.Ino); err != nil {
			return fmt.Errorf("remove stale socket: %w", err)
		}
		return nil
	default:
		return fmt.Errorf("probe existing socket %s: %w", path, err)
	}
}

// probe connects to the socket file name in d, the one st describes: nil
// if something listens on it. It connects through /proc/self/fd to a
// descriptor of that very file, so the socket probed is the one that may
// be removed afterwards; without /proc, through its path.
func (d *Dir) probe(name, network string, st *unix.Stat_t) error {
	fd, err := unix.Openat(d.fd, name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	var now unix.Stat_t
	if err := unix.Fstat(fd, &now); err != nil {
		return err
	}
	if now.Dev != st.Dev || now.Ino != st.Ino {
		return fmt.Errorf("%s changed while it was checked", d.join(name))
	}
	c, err := net.DialTimeout(network, "/proc/self/fd/"+strconv.Itoa(fd), time.Second)
	if errors.Is(err, syscall.ENOENT) {
		c, err = net.DialTimeout(network, d.join(name), time.Second)
	}
	if err == nil {
		c.Close()
	}
	return err
}
