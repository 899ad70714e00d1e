package daemon

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/umlswitch/umlswitch/internal/unixsock"
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

// listenUnix binds a SOCK_STREAM listener at path, replacing a stale
// socket file and refusing a live one.
func listenUnix(path string) (*net.UnixListener, error) {
	if err := unixsock.ClearStale(path, "unix"); err != nil {
		return nil, err
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, err
	}
	ln.SetUnlinkOnClose(true)
	return ln, nil
}
