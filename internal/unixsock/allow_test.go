package unixsock

import (
	"testing"

	"github.com/umlswitch/umlswitch/internal/peercred"
)

// Empty lists let everyone in; lists let in whom they name (by uid, or by
// primary or supplementary group), root and the switch's own user, and
// never a peer the kernel could not name.
func TestAllowAdmits(t *testing.T) {
	const self = 500
	named := Allow{UIDs: []uint32{1000}, GIDs: []uint32{77}}
	cred := func(uid, gid uint32, groups ...uint32) peercred.Cred {
		return peercred.Cred{UID: uid, GID: gid, Groups: groups}
	}
	for _, tc := range []struct {
		name  string
		allow Allow
		c     peercred.Cred
		want  bool
	}{
		{"open, anyone", Allow{}, cred(65534, 65534), true},
		{"open, unknown", Allow{}, peercred.Unknown, true},
		{"named uid", named, cred(1000, 1000), true},
		{"primary group", named, cred(1001, 77), true},
		{"supplementary group", named, cred(1001, 1001, 5, 77), true},
		{"root", named, cred(0, 0), true},
		{"the switch's user", named, cred(self, self), true},
		{"someone else", named, cred(65534, 65534), false},
		{"unknown", named, peercred.Unknown, false},
	} {
		if got := tc.allow.Admits(tc.c, self); got != tc.want {
			t.Errorf("%s: Admits(%v) = %v, want %v", tc.name, tc.c, got, tc.want)
		}
	}
}
