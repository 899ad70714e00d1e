// Package limit bounds what the switch's peers may hold at once (client
// ports, API connections, capture readers), in all and per uid, so that
// one local user cannot take a root daemon's descriptors or memory.
// Root and the switch's own uid are never refused: they could stop the
// switch anyway, and a user hitting a bound must not lock them out.
package limit

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
)

// ErrLimit is wrapped by every refusal.
var ErrLimit = errors.New("limit reached")

// Limiter counts slots held by uid. A nil *Limiter bounds nothing.
type Limiter struct {
	what          string // what a slot is, for errors: "clients"
	total, perUID int    // 0: no bound
	self          uint32

	mu  sync.Mutex
	n   int            // guarded by mu
	uid map[uint32]int // guarded by mu

	refused atomic.Uint64
}

// New returns a limiter of at most total slots, perUID of them for one uid
// (0: no bound).
func New(what string, total, perUID int) *Limiter {
	return &Limiter{what: what, total: total, perUID: perUID, self: uint32(os.Geteuid()), uid: make(map[uint32]int)}
}

// exempt: root and the switch's own user.
func (l *Limiter) exempt(uid uint32) bool { return uid == 0 || uid == l.self }

// Acquire takes a slot for uid, or says which bound stops it.
func (l *Limiter) Acquire(uid uint32) error {
	if l == nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.exempt(uid) {
		if l.total > 0 && l.n >= l.total {
			l.refused.Add(1)
			return fmt.Errorf("%w: %d %s in all", ErrLimit, l.total, l.what)
		}
		if l.perUID > 0 && l.uid[uid] >= l.perUID {
			l.refused.Add(1)
			return fmt.Errorf("%w: %d %s for uid %s", ErrLimit, l.perUID, l.what, uidString(uid))
		}
	}
	l.n++
	l.uid[uid]++
	return nil
}

// Release gives back a slot Acquire took for uid.
func (l *Limiter) Release(uid uint32) {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.uid[uid] == 0 {
		return // not held: a caller's bug, not worth a crash
	}
	l.n--
	if l.uid[uid]--; l.uid[uid] == 0 {
		delete(l.uid, uid)
	}
}

// InUse is the slots held now; Refused how many were refused so far.
func (l *Limiter) InUse() int {
	if l == nil {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.n
}

// Refused is how many Acquire calls were refused so far.
func (l *Limiter) Refused() uint64 {
	if l == nil {
		return 0
	}
	return l.refused.Load()
}

// Bounds are the limiter's bounds: in all and per uid (0: none).
func (l *Limiter) Bounds() (total, perUID int) {
	if l == nil {
		return 0, 0
	}
	return l.total, l.perUID
}

func uidString(uid uint32) string {
	if uid == ^uint32(0) {
		return "unknown (TCP peers)"
	}
	return fmt.Sprint(uid)
}
