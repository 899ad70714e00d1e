package daemon

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// ctlPathFor returns the control socket for a configured path: a directory
// (an existing one, or a path ending in "/") gets VDE's layout, DIR/ctl, so
// that libvdeplug clients given DIR find it.
func ctlPathFor(path string) (ctl, dir string, err error) {
	if strings.HasSuffix(path, "/") {
		dir = filepath.Clean(path)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return "", "", fmt.Errorf("control directory: %w", err)
		}
		return filepath.Join(dir, "ctl"), dir, nil
	}
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		return filepath.Join(path, "ctl"), path, nil
	}
	return path, "", nil
}

// listenUnix binds a SOCK_STREAM listener at path. A socket file left by a
// dead switch (connect is refused) is replaced; a live one is an error, as
// is any file that is not a socket.
func listenUnix(path string) (*net.UnixListener, error) {
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != os.ModeSocket {
			return nil, fmt.Errorf("%s exists and is not a socket", path)
		}
		c, err := net.DialTimeout("unix", path, time.Second)
		switch {
		case err == nil:
			c.Close()
			return nil, fmt.Errorf("%s: another switch is already running on this socket", path)
		case errors.Is(err, syscall.ECONNREFUSED):
			if err := os.Remove(path); err != nil {
				return nil, fmt.Errorf("remove stale socket: %w", err)
			}
		default:
			return nil, fmt.Errorf("probe existing socket %s: %w", path, err)
		}
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, err
	}
	ln.SetUnlinkOnClose(true)
	return ln, nil
}
