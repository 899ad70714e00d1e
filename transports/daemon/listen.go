package daemon

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// ControlPath is the control socket a configured path names, as
// ctlPathFor finds it, without making a directory.
func ControlPath(path string) string {
	if strings.HasSuffix(path, "/") {
		return filepath.Join(filepath.Clean(path), "ctl")
	}
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		return filepath.Join(path, "ctl")
	}
	return path
}

// ctlPathFor returns the control socket for a configured path: a directory
// (an existing one, or a path ending in "/") gets VDE's layout, DIR/ctl, so
// that libvdeplug clients given DIR find it. A directory it makes is the
// switch's, 0755; one that exists must pass unixsock's trust rule when the
// socket is bound there (owned by root, the switch or the socket's owner=,
// and writable by no one else unless sticky), so another user's directory
// is refused then.
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
