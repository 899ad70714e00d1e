package fabric

import (
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/umlswitch/umlswitch/frame"
)

// macN is a distinct locally administered address per n.
func macN(n int) frame.MAC {
	return frame.MAC{0x02, 0, byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}
}

func mustLearned(t *testing.T, tb *MACTable, mac frame.MAC, id frame.PortID, now int64) {
	t.Helper()
	if ref, ok := tb.Lookup(0, mac, now); !ok || ref.id() != id {
		t.Fatalf("%s: learned %v on port %d, want port %d", mac, ok, ref.id(), id)
	}
}

func mustForgotten(t *testing.T, tb *MACTable, mac frame.MAC, now int64) {
	t.Helper()
	if ref, ok := tb.Lookup(0, mac, now); ok {
		t.Fatalf("%s still learned on port %d", mac, ref.id())
	}
}

// checkConsistent holds the table to its invariants: the counts, the
// shards' maps and the ports' lists all agree, and every listed entry is a
// learned one in its shard under its own address.
func checkConsistent(t *testing.T, tb *MACTable) {
	t.Helper()
	mapped, statics, remotes := 0, 0, 0
	for i := range tb.shards {
		for _, e := range tb.shards[i].m {
			switch e.kind {
			case kindLearned:
				mapped++
			case kindStatic:
				statics++
			case kindRemote:
				remotes++
			}
		}
	}
	if statics != tb.Statics() || remotes != tb.Remotes() {
		t.Fatalf("maps hold %d static and %d remote entries, counts say %d and %d", statics, remotes, tb.Statics(), tb.Remotes())
	}
	listed := 0
	tb.lru.Lock()
	for id := range tb.lru.ports {
		l := &tb.lru.ports[id]
		n := 0
		for e := l.head; e != nil; e = e.next {
			n++
			if !e.listed || e.owner != frame.PortID(id) {
				t.Errorf("entry %s on port %d's list: listed %v owner %d", e.key.mac(), id, e.listed, e.owner)
			}
			if tb.shard(e.key).m[e.key] != e || e.kind != kindLearned {
				t.Errorf("listed entry %s (kind %d) is not a learned entry in its shard", e.key.mac(), e.kind)
			}
		}
		if n != l.n {
			t.Errorf("port %d: list holds %d, count says %d", id, n, l.n)
		}
		listed += n
	}
	tb.lru.Unlock()
	if mapped != tb.Len() || listed != tb.Len() {
		t.Fatalf("count %d, maps hold %d, lists hold %d", tb.Len(), mapped, listed)
	}
}

func TestMACTableAgeing(t *testing.T) {
	tb := NewMACTable(8, time.Second)
	sec := int64(time.Second)
	tb.Learn(0, macA, makeRef(1, 1), 0)
	tb.Learn(0, macB, makeRef(2, 1), 0)
	tb.Learn(0, macA, makeRef(1, 1), sec) // refresh A only
	mustForgotten(t, tb, macB, 2*sec)     // expired, though not yet aged out
	if n := tb.Age(2 * sec); n != 1 {
		t.Fatalf("aged %d, want 1", n)
	}
	mustLearned(t, tb, macA, 1, 2*sec)
	checkConsistent(t, tb)
}

// A full table makes room for a newcomer by evicting the oldest entry of the
// port that holds the most; the other ports keep theirs.
func TestMACTableEvictsFromThePortHoldingTheMost(t *testing.T) {
	tb := NewMACTable(4, time.Hour)
	for i := 0; i < 3; i++ {
		tb.Learn(0, macN(i), makeRef(1, 1), 0) // the flooder: 0, 1, 2
	}
	tb.Learn(0, macB, makeRef(2, 1), 0)
	tb.Learn(0, macC, makeRef(3, 1), 0) // full: evicts the flooder's oldest
	mustLearned(t, tb, macC, 3, 0)
	mustForgotten(t, tb, macN(0), 0)
	if tb.Len() != 4 || tb.Evicted() != 1 || tb.Refused() != 0 {
		t.Fatalf("len %d evicted %d refused %d", tb.Len(), tb.Evicted(), tb.Refused())
	}
	// The flooder keeps flooding: it only ever evicts its own addresses.
	for i := 3; i < 1000; i++ {
		tb.Learn(0, macN(i), makeRef(1, 1), 0)
	}
	mustLearned(t, tb, macB, 2, 0)
	mustLearned(t, tb, macC, 3, 0)
	mustLearned(t, tb, macN(999), 1, 0)
	if tb.Len() != 4 || tb.Evicted() != 998 {
		t.Fatalf("len %d evicted %d", tb.Len(), tb.Evicted())
	}
	checkConsistent(t, tb)
}

// An entry seen since it was learned gets a second chance: eviction takes
// the least recently seen entry, not merely the first learned.
func TestMACTableEvictionSparesRecentlySeen(t *testing.T) {
	tb := NewMACTable(3, time.Hour)
	tb.Learn(0, macN(0), makeRef(1, 1), 0)
	tb.Learn(0, macN(1), makeRef(1, 1), 0)
	tb.Learn(0, macN(2), makeRef(1, 1), 0)
	tb.Learn(0, macN(0), makeRef(1, 1), 5) // seen again later
	tb.Learn(0, macN(3), makeRef(1, 1), 5)
	mustLearned(t, tb, macN(0), 1, 5)
	mustForgotten(t, tb, macN(1), 5)
	tb.Learn(0, macN(4), makeRef(1, 1), 5)
	mustForgotten(t, tb, macN(2), 5)
	mustLearned(t, tb, macN(0), 1, 5)
	checkConsistent(t, tb)
}

// A moved address belongs to its new port: flushing the old port keeps it,
// flushing the new one removes it.
func TestMACTableMoveAndFlush(t *testing.T) {
	tb := NewMACTable(16, time.Hour)
	tb.Learn(0, macA, makeRef(1, 1), 0)
	tb.Learn(0, macB, makeRef(1, 1), 0)
	tb.Learn(0, macA, makeRef(2, 1), 0) // A moved to port 2
	if n := tb.FlushPort(1); n != 1 {
		t.Fatalf("flushed %d from port 1, want 1", n)
	}
	mustLearned(t, tb, macA, 2, 0)
	mustForgotten(t, tb, macB, 0)
	tb.Learn(0, macA, makeRef(2, 2), 0) // same slot, a later generation: no move
	if n := tb.FlushPort(2); n != 1 || tb.Len() != 0 {
		t.Fatalf("flushed %d from port 2, %d left", n, tb.Len())
	}
	checkConsistent(t, tb)
}

// Learning, moving, evicting, ageing and flushing from many goroutines at
// once keep the table consistent (run with -race too).
func TestMACTableConcurrentChurn(t *testing.T) {
	tb := NewMACTable(64, 50)
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(g), 1))
			for i := 0; i < 20000; i++ {
				port := frame.PortID(r.IntN(8))
				switch op := r.IntN(100); {
				case op < 90:
					tb.Learn(0, macN(r.IntN(200)), makeRef(port, 1), int64(i/100))
				case op < 95:
					tb.Lookup(0, macN(r.IntN(200)), int64(i/100))
				case op < 98:
					tb.Age(int64(i / 100))
				default:
					tb.FlushPort(port)
				}
			}
		}(g)
	}
	wg.Wait()
	checkConsistent(t, tb)
	if tb.Len() > 64+4 { // concurrent learners may each pass the check once
		t.Fatalf("%d entries in a table of 64", tb.Len())
	}
}

// lockedBuffer is a log destination safe for the switch's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) count(s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Count(l.b.String(), s)
}

// A port flooding new source addresses into a full table makes the switch
// evict, not refuse: a port that attaches afterwards is learned (its
// unicast is not flooded), and each burst of evictions is logged once when
// it starts and once when it ends.
func TestFullTableLearnsNewcomers(t *testing.T) {
	r := newRig(t, 4, Config{MACTableSize: 64, MACAge: time.Hour})
	var logs lockedBuffer
	r.sw.log = slog.New(slog.NewTextHandler(&logs, nil))
	evictor := &evictionLog{} // what Run ticks; ticked by hand here
	flood := func(from, n int) {
		for i := from; i < from+n; i++ {
			r.send(r.from(0, macX, macN(i), 0))
		}
	}
	flood(0, 1000)
	r.send(r.from(1, frame.Broadcast, macB, 1)) // a newcomer
	r.tags()
	r.send(r.from(2, macB, macC, 2))
	if got := r.tags(); len(got[1]) != 1 || len(got[3]) != 0 || len(got[0]) != 0 {
		t.Fatalf("unicast to the newcomer reached ports %v, want port 1 only", got)
	}
	if ev := r.sw.Table().Evicted(); ev < 1000-64 {
		t.Fatalf("%d evictions", ev)
	}
	evictor.tick(r.sw.Default())
	flood(1000, 100)
	evictor.tick(r.sw.Default())
	evictor.tick(r.sw.Default()) // quiet
	flood(2000, 100)
	evictor.tick(r.sw.Default())
	evictor.tick(r.sw.Default())
	if n := logs.count("mac table full"); n != 2 {
		t.Fatalf("%d start-of-burst lines for two bursts:\n%s", n, logs.b.String())
	}
	if n := logs.count("mac table evictions ended"); n != 2 {
		t.Fatalf("%d end-of-burst lines for two bursts:\n%s", n, logs.b.String())
	}
	if !strings.Contains(logs.b.String(), `name=p0`) {
		t.Fatalf("the port holding the most is not named:\n%s", logs.b.String())
	}
}
