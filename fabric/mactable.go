package fabric

import (
	"encoding/binary"
	"sync"
	"sync/atomic"
	"time"

	"github.com/umlswitch/umlswitch/frame"
)

// portRef names a port together with the generation of its slot, so that a
// MAC entry learned on a port that has since gone never points at a new port
// that reuses the same id.
type portRef uint32

func makeRef(id frame.PortID, gen uint16) portRef { return portRef(gen)<<16 | portRef(id) }
func (r portRef) id() frame.PortID                { return frame.PortID(r & 0xffff) }

// macShards spreads the table over independent locks; 64 keeps readers on
// different cores off each other's cache lines for any realistic lab size.
const macShards = 64

// MACTable maps source addresses to the port they were last seen on. Lookups
// and refreshes of known addresses take only a shard's read lock and atomics;
// only a new or moved address takes locks for writing.
//
// The table holds at most max entries. A new address that finds it full
// evicts an older one, as Open vSwitch does: the least recently seen entry
// of the port that holds the most, so a port flooding random source
// addresses churns through its own entries while the addresses of every
// other port stay learned. Evictions are counted.
type MACTable struct {
	shards  [macShards]macShard
	max     atomic.Int64
	age     atomic.Int64 // nanoseconds an entry lives without being seen
	count   atomic.Int64
	learned atomic.Uint64 // addresses first seen
	moved   atomic.Uint64 // addresses seen on another port than before
	full    atomic.Uint64
	evicted atomic.Uint64
	statics atomic.Int64 // static entries: not counted in count, never aged or evicted
	remotes atomic.Int64 // remote entries: likewise

	// notify, if set, hears of every address learned, moved or aged. It is
	// called from readers on the learning path (never for a refresh), so it
	// must be quick and must not block.
	notify func(MACEvent)

	// Eviction order. Lock order: a shard's lock, then lru; never a shard's
	// lock while holding lru.
	lru struct {
		sync.Mutex
		ports []portList   // by port id: the entries learned on it, oldest first
		heavy frame.PortID // the port holding the most entries, near enough
	}
}

type macShard struct {
	mu sync.RWMutex
	m  map[macKey]*macEntry // guarded by mu; entries' fields are atomics
	_  [32]byte
}

// macKey is an address in a VLAN: learning is per VLAN, so one address
// may live on different ports in different VLANs. It packs the VLAN id
// above the 48 bits of the address (a map keyed by a uint64 takes the fast
// path).
type macKey uint64

func keyOf(vlan uint16, mac frame.MAC) macKey {
	return macKey(uint64(vlan)<<48 | uint64(mac[0])<<40 | uint64(mac[1])<<32 | uint64(mac[2])<<24 |
		uint64(mac[3])<<16 | uint64(mac[4])<<8 | uint64(mac[5]))
}

// dstKey and srcKey are keyOf(vlan, DstMAC(f)) and keyOf(vlan,
// SrcMAC(f)), each one load from the frame.
func dstKey(vlan uint16, f []byte) macKey {
	return macKey(uint64(vlan)<<48 | binary.BigEndian.Uint64(f[0:8])>>16)
}

func srcKey(vlan uint16, f []byte) macKey {
	return macKey(uint64(vlan)<<48 | binary.BigEndian.Uint64(f[4:12])&(1<<48-1))
}

func (k macKey) vlan() uint16 { return uint16(k >> 48) }

func (k macKey) mac() frame.MAC {
	return frame.MAC{byte(k >> 40), byte(k >> 32), byte(k >> 24), byte(k >> 16), byte(k >> 8), byte(k)}
}

// entryKind says who put an entry in the table. It is fixed when the entry
// is made: a change of kind replaces the entry in its shard, so readers that
// found it under a read lock may read it without atomics, and an entry that
// eviction or a flush picked but that has since changed kind is no longer
// the one in the shard.
type entryKind uint8

const (
	kindLearned entryKind = iota // seen on a port: refreshed, moved, aged, evicted
	kindStatic                   // set by an operator: never learned over, aged or evicted
	// Set by a control plane for a remote VTEP's address (an EVPN type-2
	// route): never aged or evicted; learning it on another port (a local
	// host that moved here) makes it a learned entry there.
	kindRemote
)

type macEntry struct {
	ref  atomic.Uint32 // portRef
	seen atomic.Int64  // clock value when last seen; learned entries only
	kind entryKind     // fixed once the entry is in a shard

	// Guarded by MACTable.lru.
	key        macKey
	owner      frame.PortID // whose list holds it
	listed     bool         // false once evicted or removed
	checked    int64        // seen when eviction last passed it over
	prev, next *macEntry
}

// portList is a port's entries in the order they were learned (or last
// spared by eviction).
type portList struct {
	head, tail *macEntry
	n          int
}

func (l *portList) push(e *macEntry) {
	e.prev, e.next = l.tail, nil
	if l.tail != nil {
		l.tail.next = e
	} else {
		l.head = e
	}
	l.tail = e
	l.n++
}

func (l *portList) remove(e *macEntry) {
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		l.head = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else {
		l.tail = e.prev
	}
	e.prev, e.next = nil, nil
	l.n--
}

// NewMACTable returns a table of at most max entries that age out after age.
func NewMACTable(max int, age time.Duration) *MACTable {
	t := &MACTable{}
	t.max.Store(int64(max))
	t.age.Store(int64(age))
	for i := range t.shards {
		t.shards[i].m = make(map[macKey]*macEntry)
	}
	return t
}

func (t *MACTable) shard(k macKey) *macShard {
	x := uint64(k) * 0x9e3779b97f4a7c15 // Fibonacci hashing: the top bits depend on every byte
	return &t.shards[x>>58]
}

// Learn records that mac was seen in vlan on ref at time now (nanoseconds
// on the fabric's clock). A known address is refreshed or moved in place.
func (t *MACTable) Learn(vlan uint16, mac frame.MAC, ref portRef, now int64) {
	t.learn(keyOf(vlan, mac), ref, now)
}

func (t *MACTable) learn(k macKey, ref portRef, now int64) {
	sh := t.shard(k)
	sh.mu.RLock()
	e := sh.m[k]
	sh.mu.RUnlock()
	if e != nil {
		switch e.kind {
		case kindStatic:
			return // the operator said where it lives
		case kindLearned:
			if portRef(e.ref.Load()) == ref { // a refresh: the fast path
				if e.seen.Load() != now { // the clock is coarse: this stores about once a tick
					e.seen.Store(now)
				}
				return
			}
		case kindRemote:
			if portRef(e.ref.Load()).id() == ref.id() {
				return // seen behind the VTEP that advertised it: the control plane's word stands
			}
		}
	}
	// New, moved, or a remote address now seen on a local port: a learned
	// entry more, unless the table is full and has nothing to evict.
	if (e == nil || e.kind == kindRemote) && t.count.Load() >= t.max.Load() && !t.evict() {
		t.full.Add(1)
		return
	}
	sh.mu.Lock()
	event := t.learnLocked(sh, k, ref, now)
	sh.mu.Unlock()
	if event != 0 {
		t.tell(event, k, ref.id())
	}
}

// learnLocked is learn's slow path, taken again under sh's write lock
// because another reader, an operator or a control plane may have changed
// the entry since learn looked. Caller holds sh.mu for writing.
func (t *MACTable) learnLocked(sh *macShard, k macKey, ref portRef, now int64) MACEventKind {
	e := sh.m[k]
	if e != nil {
		switch e.kind {
		case kindStatic:
			return 0
		case kindLearned: // a move, or a new generation of the same port
			event := MACEventKind(0)
			if portRef(e.ref.Load()).id() != ref.id() {
				t.move(e, ref.id())
				event = MACMoved
			}
			e.ref.Store(uint32(ref))
			e.seen.Store(now)
			return event
		case kindRemote:
			if portRef(e.ref.Load()).id() == ref.id() {
				return 0
			}
			t.remotes.Add(-1) // a local host that moved here: learned from now on
		}
	}
	n := &macEntry{key: k}
	n.ref.Store(uint32(ref))
	n.seen.Store(now)
	sh.m[k] = n
	t.count.Add(1)
	t.lru.Lock()
	n.checked = now
	t.link(n, ref.id())
	t.lru.Unlock()
	if e != nil {
		return MACMoved
	}
	return MACLearned
}

func (t *MACTable) tell(kind MACEventKind, k macKey, id frame.PortID) {
	switch kind {
	case MACLearned:
		t.learned.Add(1)
	case MACMoved:
		t.moved.Add(1)
	}
	if t.notify != nil {
		t.notify(MACEvent{Kind: kind, MAC: k.mac(), VLAN: k.vlan(), Port: id})
	}
}

// link puts e at the end of port id's list. Caller holds lru.
func (t *MACTable) link(e *macEntry, id frame.PortID) {
	for int(id) >= len(t.lru.ports) {
		t.lru.ports = append(t.lru.ports, portList{})
	}
	e.owner, e.listed = id, true
	l := &t.lru.ports[id]
	l.push(e)
	if int(t.lru.heavy) >= len(t.lru.ports) || l.n > t.lru.ports[t.lru.heavy].n {
		t.lru.heavy = id
	}
}

// unlink takes e off its port's list, if it is on one. Caller holds lru.
func (t *MACTable) unlink(e *macEntry) {
	if e.listed {
		t.lru.ports[e.owner].remove(e)
		e.listed = false
	}
}

// move puts a known address on port id's list: it was seen there now.
func (t *MACTable) move(e *macEntry, id frame.PortID) {
	t.lru.Lock()
	if e.listed && e.owner != id {
		t.unlink(e)
		t.link(e, id)
	}
	t.lru.Unlock()
}

// evictScan bounds how many recently seen entries one eviction passes over
// before it takes the oldest-learned one regardless.
const evictScan = 256

// evict removes one entry of the port holding the most and reports whether
// it found one. It is the second-chance approximation of least recently
// seen: refreshing an entry only stores its time, so the list is in
// learning order, and an entry seen since eviction last looked at it goes
// to the back instead of out.
func (t *MACTable) evict() bool {
	t.lru.Lock()
	if int(t.lru.heavy) >= len(t.lru.ports) || t.lru.ports[t.lru.heavy].n == 0 {
		t.rescanHeavy()
	}
	var victim *macEntry
	if int(t.lru.heavy) < len(t.lru.ports) {
		l := &t.lru.ports[t.lru.heavy]
		for i := 0; i < evictScan && i < l.n; i++ {
			e := l.head
			if seen := e.seen.Load(); seen > e.checked {
				e.checked = seen
				l.remove(e)
				l.push(e)
				continue
			}
			victim = e
			break
		}
		if victim == nil {
			victim = l.head
		}
		if victim != nil {
			t.unlink(victim)
		}
	}
	t.lru.Unlock()
	if victim == nil {
		return false
	}
	// Unless it went meanwhile (aged, flushed) or a static or remote entry
	// replaced it, which took it out of the count too: room made either way.
	sh := t.shard(victim.key)
	sh.mu.Lock()
	if sh.m[victim.key] == victim {
		delete(sh.m, victim.key)
		t.count.Add(-1)
		t.evicted.Add(1)
	}
	sh.mu.Unlock()
	return true
}

// rescanHeavy finds the port holding the most entries. Caller holds lru.
func (t *MACTable) rescanHeavy() {
	t.lru.heavy = 0
	for id := range t.lru.ports {
		if t.lru.ports[id].n > t.lru.ports[t.lru.heavy].n {
			t.lru.heavy = frame.PortID(id)
		}
	}
}

// Lookup returns the port mac was last seen on in vlan, unless that was
// longer ago than the ageing time.
func (t *MACTable) Lookup(vlan uint16, mac frame.MAC, now int64) (portRef, bool) {
	return t.lookup(keyOf(vlan, mac), now)
}

func (t *MACTable) lookup(k macKey, now int64) (portRef, bool) {
	sh := t.shard(k)
	sh.mu.RLock()
	e := sh.m[k]
	sh.mu.RUnlock()
	if e == nil || (now-e.seen.Load() > t.age.Load() && e.kind == kindLearned) {
		return 0, false
	}
	return portRef(e.ref.Load()), true
}

// Age removes the entries not seen for longer than the ageing time and
// returns how many it removed.
func (t *MACTable) Age(now int64) int {
	n := 0
	age := t.age.Load()
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.Lock()
		t.lru.Lock()
		for k, e := range sh.m {
			if e.kind == kindLearned && now-e.seen.Load() > age {
				delete(sh.m, k)
				t.unlink(e)
				n++
				t.tell(MACAged, k, e.owner)
			}
		}
		t.lru.Unlock()
		sh.mu.Unlock()
	}
	t.count.Add(-int64(n))
	if n > 0 {
		t.lru.Lock()
		t.rescanHeavy()
		t.lru.Unlock()
	}
	return n
}

// FlushPort removes every entry learned on port id, whatever its
// generation. It costs the port's entries, not the table's. Static and
// remote entries stay: they are on no port's list.
func (t *MACTable) FlushPort(id frame.PortID) int {
	t.lru.Lock()
	var gone []*macEntry
	if int(id) < len(t.lru.ports) {
		l := &t.lru.ports[id]
		gone = make([]*macEntry, 0, l.n)
		for e := l.head; e != nil; {
			next := e.next
			e.prev, e.next, e.listed = nil, nil, false
			gone = append(gone, e)
			e = next
		}
		*l = portList{}
		if t.lru.heavy == id {
			t.rescanHeavy()
		}
	}
	t.lru.Unlock()
	n := 0
	for _, e := range gone {
		sh := t.shard(e.key)
		sh.mu.Lock()
		if sh.m[e.key] == e {
			delete(sh.m, e.key)
			n++
		}
		sh.mu.Unlock()
	}
	t.count.Add(-int64(n))
	if n > 0 && t.notify != nil {
		t.notify(MACEvent{Kind: MACFlushed, Port: id})
	}
	return n
}

// Len is the number of learned entries.
func (t *MACTable) Len() int { return int(t.count.Load()) }

// Refused is how many addresses were not learned because the table was full
// and held nothing to evict (another reader took the last entry first).
func (t *MACTable) Refused() uint64 { return t.full.Load() }

// Heaviest returns the port that holds the most entries and how many.
func (t *MACTable) Heaviest() (id frame.PortID, n int) {
	t.lru.Lock()
	defer t.lru.Unlock()
	if int(t.lru.heavy) < len(t.lru.ports) {
		return t.lru.heavy, t.lru.ports[t.lru.heavy].n
	}
	return 0, 0
}

// Evicted is how many entries were evicted to make room for new addresses.
func (t *MACTable) Evicted() uint64 { return t.evicted.Load() }
