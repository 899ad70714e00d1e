package accept

import (
	"os"
	"sync"
	"sync/atomic"

	"github.com/umlswitch/umlswitch/internal/peercred"
	"github.com/umlswitch/umlswitch/internal/unixsock"
)

// Gate applies a listening socket's allow_uid= and allow_gid= to the
// peers it accepts, before anything of theirs is read: a refused peer is
// closed and never becomes a port nor reaches the control API.
type Gate struct {
	allow   unixsock.Allow
	refused *atomic.Uint64
	self    uint32
	logged  sync.Map // uids whose refusal was logged: once each, whatever they retry
}

// NewGate checks peers against allow; refusals add to refused (nil: not
// counted), which listeners may share.
func NewGate(allow unixsock.Allow, refused *atomic.Uint64) *Gate {
	return &Gate{allow: allow, refused: refused, self: uint32(os.Geteuid())}
}

// Admit reports whether the peer with credentials cred may stay. On a
// refusal it counts it and reports in first whether this uid's is the
// first (the caller logs it then, so that a user retrying in a loop
// writes one line).
func (g *Gate) Admit(cred peercred.Cred) (ok, first bool) {
	if g == nil || g.allow.Admits(cred, g.self) {
		return true, false
	}
	if g.refused != nil {
		g.refused.Add(1)
	}
	_, seen := g.logged.LoadOrStore(cred.UID, true)
	return false, !seen
}
