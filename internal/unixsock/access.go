package unixsock

import (
	"fmt"
	"os"
)

// Access is who may connect to a socket file: its permissions and owner,
// as uml_switch's -mode and the configuration's mode=, owner= and group=
// give them. Zero Mode keeps the umask's; UID and GID -1 keep the
// switch's own.
type Access struct {
	Mode     os.FileMode
	UID, GID int
}

// NoOwner is an Access that changes nothing.
var NoOwner = Access{UID: -1, GID: -1}

// Apply sets path's permissions and owner.
func (a Access) Apply(path string) error {
	if a.Mode != 0 {
		if err := os.Chmod(path, a.Mode); err != nil {
			return err
		}
	}
	if a.UID >= 0 || a.GID >= 0 {
		if err := os.Chown(path, a.UID, a.GID); err != nil {
			return fmt.Errorf("chown %s to %d:%d: %w", path, a.UID, a.GID, err)
		}
	}
	return nil
}
