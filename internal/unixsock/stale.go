package unixsock

import (
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"time"
)

// ClearStale gets path ready for a new listening socket, as uml_switch
// does: nothing there is fine; a socket file nobody listens on (left by a
// switch that died) is removed; a socket with a live listener, or a file
// that is not a socket, is an error. network is what to probe with:
// "unix" (SOCK_STREAM) or "unixpacket" (SOCK_SEQPACKET).
func ClearStale(path, network string) error {
	fi, err := os.Lstat(path)
	if err != nil {
		return nil
	}
	if fi.Mode().Type() != os.ModeSocket {
		return fmt.Errorf("%s exists and is not a socket", path)
	}
	c, err := net.DialTimeout(network, path, time.Second)
	switch {
	case err == nil:
		c.Close()
		return fmt.Errorf("%s: another switch is already running on this socket", path)
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.EPROTOTYPE):
		// Refused: nobody listens. EPROTOTYPE: a socket of another type
		// (a stream socket where a seqpacket one is wanted) is in the way.
		if err := os.Remove(path); err != nil {
			return fmt.Errorf("remove stale socket: %w", err)
		}
		return nil
	default:
		return fmt.Errorf("probe existing socket %s: %w", path, err)
	}
}

// Listen binds a SOCK_STREAM listener at path, replacing a stale socket
// file and refusing a live one (ClearStale); the file goes when it closes.
func Listen(path string) (*net.UnixListener, error) {
	if err := ClearStale(path, "unix"); err != nil {
		return nil, err
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, err
	}
	ln.SetUnlinkOnClose(true)
	return ln, nil
}
