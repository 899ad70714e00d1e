package fabric

import (
	"slices"

	"github.com/umlswitch/umlswitch/frame"
)

// What operators see of and do to a MAC table: listing, flushing, static
// entries, the remote entries a control plane sets, and change events. None
// of it is on the forwarding path.

// MACEventKind says what happened to an address.
type MACEventKind uint8

const (
	MACLearned MACEventKind = iota + 1 // first seen
	MACMoved                           // seen on another port than before
	MACAged                            // not seen for the ageing time, forgotten
	// MACFlushed: addresses were forgotten at once, not one by one: a
	// port's when it left (Port), or the whole table's (Port NoPort); MAC
	// and VLAN unset.
	MACFlushed
)

func (k MACEventKind) String() string {
	switch k {
	case MACLearned:
		return "learned"
	case MACMoved:
		return "moved"
	case MACAged:
		return "aged"
	case MACFlushed:
		return "flushed"
	}
	return "unknown"
}

// MACEvent is one change of a table, for an operator's event stream.
type MACEvent struct {
	Kind MACEventKind
	MAC  frame.MAC
	VLAN uint16       // 0: untagged on ports without VLAN keys
	Port frame.PortID // where it is now (learned, moved) or was (aged)
}

// MACEntry is one address as a listing shows it.
type MACEntry struct {
	MAC    frame.MAC
	VLAN   uint16 // 0: untagged on ports without VLAN keys
	Port   frame.PortID
	Age    int64 // nanoseconds since it was last seen; 0 for static and remote entries
	Static bool  // set by an operator
	Remote bool  // set by a control plane for a remote VTEP's address
	ref    portRef
}

// Entries lists the table at time now (the clock Learn was given), in
// address order, then VLAN order. Entries past the ageing time that Age has not removed yet
// are left out, as Lookup would.
func (t *MACTable) Entries(now int64) []MACEntry {
	var out []MACEntry
	maxAge := t.age.Load()
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.RLock()
		for k, e := range sh.m {
			age := now - e.seen.Load()
			if e.kind != kindLearned {
				age = 0
			} else if age > maxAge {
				continue
			}
			ref := portRef(e.ref.Load())
			out = append(out, MACEntry{MAC: k.mac(), VLAN: k.vlan(), Port: ref.id(), Age: max(age, 0),
				Static: e.kind == kindStatic, Remote: e.kind == kindRemote, ref: ref})
		}
		sh.mu.RUnlock()
	}
	slices.SortFunc(out, func(a, b MACEntry) int {
		if c := slices.Compare(a.MAC[:], b.MAC[:]); c != 0 {
			return c
		}
		return int(a.VLAN) - int(b.VLAN)
	})
	return out
}

// LearnLimited is Learn for a port that may hold at most limit addresses:
// an address new to the port (or moving to it, from another port or from a
// remote entry) is refused, and false returned, while the port holds limit.
// Only such addresses pay for the count.
func (t *MACTable) LearnLimited(vlan uint16, mac frame.MAC, ref portRef, now int64, limit int) bool {
	return t.learnLimited(keyOf(vlan, mac), ref, now, limit)
}

func (t *MACTable) learnLimited(k macKey, ref portRef, now int64, limit int) bool {
	sh := t.shard(k)
	sh.mu.RLock()
	e := sh.m[k]
	sh.mu.RUnlock()
	if e == nil || (e.kind != kindStatic && portRef(e.ref.Load()).id() != ref.id()) {
		if t.learnedOn(ref.id()) >= limit {
			return false
		}
	}
	t.learn(k, ref, now)
	return true
}

// learnedOn is how many addresses port id holds.
func (t *MACTable) learnedOn(id frame.PortID) int {
	t.lru.Lock()
	defer t.lru.Unlock()
	if int(id) < len(t.lru.ports) {
		return t.lru.ports[id].n
	}
	return 0
}

// Flush forgets every learned address; static and remote entries stay. It
// returns how many it removed.
func (t *MACTable) Flush() int {
	n := 0
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.Lock()
		t.lru.Lock()
		for k, e := range sh.m {
			if e.kind == kindLearned {
				delete(sh.m, k)
				t.unlink(e)
				n++
			}
		}
		t.lru.Unlock()
		sh.mu.Unlock()
	}
	t.count.Add(-int64(n))
	t.lru.Lock()
	t.rescanHeavy()
	t.lru.Unlock()
	if n > 0 && t.notify != nil {
		t.notify(MACEvent{Kind: MACFlushed, Port: frame.NoPort})
	}
	return n
}

// setStatic pins mac in vlan to ref: learning never moves it and it never
// ages. A learned or remote entry for mac becomes static.
func (t *MACTable) setStatic(vlan uint16, mac frame.MAC, ref portRef) {
	k := keyOf(vlan, mac)
	sh := t.shard(k)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	e := sh.m[k]
	if e != nil && e.kind == kindStatic {
		e.ref.Store(uint32(ref))
		return
	}
	t.drop(e)
	n := &macEntry{key: k, kind: kindStatic}
	n.ref.Store(uint32(ref))
	sh.m[k] = n
	t.statics.Add(1)
}

// setRemote points mac in vlan at ref, the tunnel port to the VTEP that
// advertised it: it never ages and is never evicted, and learning it on
// another port makes it an ordinary learned entry there. A learned entry
// for mac becomes remote; a remote one moves to ref. It reports false, and
// changes nothing, where a static entry holds mac.
func (t *MACTable) setRemote(vlan uint16, mac frame.MAC, ref portRef) bool {
	k := keyOf(vlan, mac)
	sh := t.shard(k)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	e := sh.m[k]
	if e != nil {
		switch e.kind {
		case kindStatic:
			return false
		case kindRemote:
			e.ref.Store(uint32(ref))
			return true
		}
	}
	t.drop(e)
	n := &macEntry{key: k, kind: kindRemote}
	n.ref.Store(uint32(ref))
	sh.m[k] = n
	t.remotes.Add(1)
	return true
}

// drop takes e, which its caller is about to replace in its shard, out of
// the lists and counts. Caller holds e's shard for writing.
func (t *MACTable) drop(e *macEntry) {
	if e == nil {
		return
	}
	switch e.kind {
	case kindLearned:
		t.lru.Lock()
		t.unlink(e)
		t.lru.Unlock()
		t.count.Add(-1)
	case kindStatic:
		t.statics.Add(-1)
	case kindRemote:
		t.remotes.Add(-1)
	}
}

// RemoveStatic removes the static entry for mac in vlan and reports
// whether there was one. A learned or remote entry is left alone.
func (t *MACTable) RemoveStatic(vlan uint16, mac frame.MAC) bool {
	k := keyOf(vlan, mac)
	sh := t.shard(k)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	e := sh.m[k]
	if e == nil || e.kind != kindStatic {
		return false
	}
	delete(sh.m, k)
	t.statics.Add(-1)
	return true
}

// removeRemote removes the remote entry for mac in vlan if it points at
// port id, and reports whether it did. A withdrawal by one VTEP leaves
// alone what another VTEP, local learning or an operator holds now.
func (t *MACTable) removeRemote(vlan uint16, mac frame.MAC, id frame.PortID) bool {
	k := keyOf(vlan, mac)
	sh := t.shard(k)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	e := sh.m[k]
	if e == nil || e.kind != kindRemote || portRef(e.ref.Load()).id() != id {
		return false
	}
	delete(sh.m, k)
	t.remotes.Add(-1)
	return true
}

// Learned and Moved count addresses first seen and seen on another port.
func (t *MACTable) Learned() uint64 { return t.learned.Load() }
func (t *MACTable) Moved() uint64   { return t.moved.Load() }

// Statics is the number of static entries.
func (t *MACTable) Statics() int { return int(t.statics.Load()) }

// Remotes is the number of remote entries.
func (t *MACTable) Remotes() int { return int(t.remotes.Load()) }

// removePinnedOf removes the static and remote entries pointing at port
// id, which is going away (as the Linux bridge drops a removed port's
// static entries; a remote entry's tunnel is gone with it). It walks the
// table only when there are such entries at all, so port churn does not
// pay for it.
func (t *MACTable) removePinnedOf(id frame.PortID) {
	if t.statics.Load() == 0 && t.remotes.Load() == 0 {
		return
	}
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.Lock()
		for k, e := range sh.m {
			if e.kind != kindLearned && portRef(e.ref.Load()).id() == id {
				delete(sh.m, k)
				t.drop(e)
			}
		}
		sh.mu.Unlock()
	}
}
