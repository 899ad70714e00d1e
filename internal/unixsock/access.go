package unixsock

import "os"

// Access is who may connect to a socket file: its permissions and owner,
// as uml_switch's -mode and the configuration's mode=, owner= and group=
// give them. Zero Mode keeps the umask's; UID and GID -1 keep the
// switch's own. BindPath and Listen apply it to the new socket itself,
// never by a path another user could swap for a link. Allow, on a
// listener, narrows who may stay connected to the users it names; the
// socket's accept path checks it.
type Access struct {
	Mode     os.FileMode
	UID, GID int
	Allow    Allow
}

// NoOwner is an Access that changes nothing.
var NoOwner = Access{UID: -1, GID: -1}

// Owned returns a, with UID and GID both 0 (what a Go literal that names
// no owner leaves; a spec's keys start at NoOwner) read as NoOwner's.
func (a Access) Owned() Access {
	if a.UID == 0 && a.GID == 0 {
		a.UID, a.GID = -1, -1
	}
	return a
}
