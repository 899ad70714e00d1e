package daemon

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
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
