package fabric

import (
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
// only a new address takes a write lock. The table holds at most max entries:
// beyond that new addresses are not learned (their frames are flooded) and
// counted, so a MAC flood cannot exhaust memory.
type MACTable struct {
	shards [macShards]macShard
	max    int64
	age    int64 // nanoseconds an entry lives without being seen
	count  atomic.Int64
	full   atomic.Uint64
}

type macShard struct {
	mu sync.RWMutex
	m  map[frame.MAC]*macEntry // guarded by mu; entries' fields are atomics
	_  [32]byte
}

type macEntry struct {
	ref  atomic.Uint32 // portRef
	seen atomic.Int64  // clock value when last seen
}

// NewMACTable returns a table of at most max entries that age out after age.
func NewMACTable(max int, age time.Duration) *MACTable {
	t := &MACTable{max: int64(max), age: int64(age)}
	for i := range t.shards {
		t.shards[i].m = make(map[frame.MAC]*macEntry)
	}
	return t
}

func (t *MACTable) shard(m frame.MAC) *macShard {
	x := uint64(m[0])<<40 | uint64(m[1])<<32 | uint64(m[2])<<24 | uint64(m[3])<<16 | uint64(m[4])<<8 | uint64(m[5])
	x *= 0x9e3779b97f4a7c15 // Fibonacci hashing: the top bits depend on every byte
	return &t.shards[x>>58]
}

// Learn records that mac was seen on ref at time now (nanoseconds on the
// switch's clock). A known address is refreshed or moved in place.
func (t *MACTable) Learn(mac frame.MAC, ref portRef, now int64) {
	sh := t.shard(mac)
	sh.mu.RLock()
	e := sh.m[mac]
	sh.mu.RUnlock()
	if e != nil {
		if portRef(e.ref.Load()) != ref {
			e.ref.Store(uint32(ref))
		}
		if e.seen.Load() != now { // the clock is coarse: this stores about once a tick
			e.seen.Store(now)
		}
		return
	}
	if t.count.Load() >= t.max {
		t.full.Add(1)
		return
	}
	sh.mu.Lock()
	if e = sh.m[mac]; e == nil {
		e = new(macEntry)
		sh.m[mac] = e
		t.count.Add(1)
	}
	e.ref.Store(uint32(ref))
	e.seen.Store(now)
	sh.mu.Unlock()
}

// Lookup returns the port mac was last seen on, unless that was longer ago
// than the ageing time.
func (t *MACTable) Lookup(mac frame.MAC, now int64) (portRef, bool) {
	sh := t.shard(mac)
	sh.mu.RLock()
	e := sh.m[mac]
	sh.mu.RUnlock()
	if e == nil || now-e.seen.Load() > t.age {
		return 0, false
	}
	return portRef(e.ref.Load()), true
}

// Age removes the entries not seen for longer than the ageing time and
// returns how many it removed.
func (t *MACTable) Age(now int64) int {
	return t.removeIf(func(e *macEntry) bool { return now-e.seen.Load() > t.age })
}

// FlushPort removes every entry learned on port id, whatever its generation.
func (t *MACTable) FlushPort(id frame.PortID) int {
	return t.removeIf(func(e *macEntry) bool { return portRef(e.ref.Load()).id() == id })
}

func (t *MACTable) removeIf(drop func(*macEntry) bool) int {
	n := 0
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.Lock()
		for mac, e := range sh.m {
			if drop(e) {
				delete(sh.m, mac)
				n++
			}
		}
		sh.mu.Unlock()
	}
	t.count.Add(-int64(n))
	return n
}

// Len is the number of entries.
func (t *MACTable) Len() int { return int(t.count.Load()) }

// Refused is how many addresses were not learned because the table was full.
func (t *MACTable) Refused() uint64 { return t.full.Load() }
