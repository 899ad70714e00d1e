package unixsock

import "github.com/umlswitch/umlswitch/internal/peercred"

// Allow is who may stay connected to a listening socket: its allow_uid=
// and allow_gid=, checked against the peer's credentials (SO_PEERCRED)
// when a connection is accepted. A socket's mode names one owner and one
// group; these name any users and groups, and only narrow what the mode
// lets connect. Empty lists let in everyone the mode does.
type Allow struct {
	UIDs, GIDs []uint32
}

// Open reports whether a lets in everyone (no list given).
func (a Allow) Open() bool { return len(a.UIDs) == 0 && len(a.GIDs) == 0 }

// Admits reports whether a peer with credentials c may stay. Root and the
// switch's own user (self) always may, as they may with uml_switch: they
// can reach the switch's sockets and memory whatever its lists say, and
// must never lock themselves out of it. A peer the kernel cannot name
// (another user namespace) is refused unless a is open.
func (a Allow) Admits(c peercred.Cred, self uint32) bool {
	if a.Open() {
		return true
	}
	if !c.Known() {
		return false
	}
	return c.UID == 0 || c.UID == self || c.In(a.UIDs, a.GIDs)
}
