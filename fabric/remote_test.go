package fabric

import (
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/umlswitch/umlswitch/frame"
)

// remoteRig is a rig of three ports whose default switch reports its MAC
// events; port 2 plays the tunnel to a remote VTEP.
func remoteRig(t *testing.T) (*rig, *Switch, func() []MACEvent) {
	t.Helper()
	r := newRig(t, 3, Config{})
	d := r.sw.Default()
	var mu sync.Mutex
	var evs []MACEvent
	d.table.notify = func(e MACEvent) { mu.Lock(); evs = append(evs, e); mu.Unlock() }
	events := func() []MACEvent {
		mu.Lock()
		defer mu.Unlock()
		out := evs
		evs = nil
		return out
	}
	return r, d, events
}

func mustRemote(t *testing.T, d *Switch, mac frame.MAC, id frame.PortID) {
	t.Helper()
	for _, e := range d.Entries() {
		if e.MAC == mac {
			if !e.Remote || e.Static || e.Port != id || e.Age != 0 {
				t.Fatalf("%s: %+v, want remote on port %d", mac, e, id)
			}
			return
		}
	}
	t.Fatalf("%s not listed", mac)
}

func TestRemoteEntryForwards(t *testing.T) {
	r, d, events := remoteRig(t)
	if err := d.SetRemote(0, macB, r.ids[2]); err != nil {
		t.Fatal(err)
	}
	r.send(r.from(0, macB, macA, 1))
	if got := r.tags(); string(got[2]) != "\x01" || len(got[1]) != 0 {
		t.Fatalf("unicast to a remote address reached %v, want port 2 only", got)
	}
	// A burst of one flow, as the flow fast path takes it.
	r.send(r.from(0, macB, macA, 2), r.from(0, macB, macA, 2), r.from(0, macB, macA, 2))
	if got := r.tags(); string(got[2]) != "\x02\x02\x02" || len(got[1]) != 0 {
		t.Fatalf("a burst to a remote address reached %v", got)
	}
	mustRemote(t, d, macB, r.ids[2])
	if tb := d.Table(); tb.Len() != 1 || tb.Remotes() != 1 {
		t.Fatalf("len %d remotes %d, want 1 learned (A) and 1 remote", tb.Len(), tb.Remotes())
	}
	if evs := events(); len(evs) != 1 || evs[0].Kind != MACLearned || evs[0].MAC != macA {
		t.Fatalf("events %v: setting a remote entry tells nothing", evs)
	}
	// Set again with another port: it moves.
	if err := d.SetRemote(0, macB, r.ids[1]); err != nil {
		t.Fatal(err)
	}
	r.send(r.from(0, macB, macA, 3))
	if got := r.tags(); string(got[1]) != "\x03" || len(got[2]) != 0 {
		t.Fatalf("moved remote entry: %v", got)
	}
	if d.Table().Remotes() != 1 {
		t.Fatalf("%d remotes after a move", d.Table().Remotes())
	}
	checkConsistent(t, d.Table())
}

// A frame from a remote address on the tunnel it lives behind changes
// nothing; on another port, it is a host that moved here: learned there,
// with a MACMoved event.
func TestRemoteEntryLearnedOnAnotherPort(t *testing.T) {
	r, d, events := remoteRig(t)
	if err := d.SetRemote(0, macB, r.ids[2]); err != nil {
		t.Fatal(err)
	}
	r.send(r.from(2, frame.Broadcast, macB, 1))
	if evs := events(); len(evs) != 0 {
		t.Fatalf("events %v for a frame from the remote entry's own port", evs)
	}
	mustRemote(t, d, macB, r.ids[2])
	if tb := d.Table(); tb.Len() != 0 || tb.Remotes() != 1 {
		t.Fatalf("len %d remotes %d", tb.Len(), tb.Remotes())
	}
	r.tags()
	r.send(r.from(0, frame.Broadcast, macB, 2))
	evs := events()
	if want := (MACEvent{MACMoved, macB, 0, r.ids[0]}); len(evs) != 1 || evs[0] != want {
		t.Fatalf("events %v, want %v", evs, want)
	}
	es := d.Entries()
	if len(es) != 1 || es[0].Remote || es[0].Static || es[0].Port != r.ids[0] {
		t.Fatalf("entries %+v", es)
	}
	if tb := d.Table(); tb.Len() != 1 || tb.Remotes() != 0 {
		t.Fatalf("len %d remotes %d", tb.Len(), tb.Remotes())
	}
	r.tags()
	r.send(r.from(1, macB, macC, 3))
	if got := r.tags(); string(got[0]) != "\x03" || len(got[2]) != 0 {
		t.Fatalf("unicast to the moved host reached %v", got)
	}
	// The VTEP's late withdrawal leaves the local host alone.
	if d.RemoveRemote(0, macB, r.ids[2]) {
		t.Fatal("a withdrawal removed a learned entry")
	}
	// Now learned, it ages like any other.
	r.sw.clock.Store(int64(DefaultMACAge) * 2)
	if n := d.Table().Age(r.sw.clock.Load()); n != 2 { // B and C
		t.Fatalf("aged %d", n)
	}
	checkConsistent(t, d.Table())
}

func TestRemoteEntryStays(t *testing.T) {
	r, d, _ := remoteRig(t)
	tb := d.Table()
	r.send(r.from(0, frame.Broadcast, macA, 1))
	if err := d.SetRemote(0, macA, r.ids[2]); err != nil { // over a learned entry
		t.Fatal(err)
	}
	if tb.Len() != 0 || tb.Remotes() != 1 {
		t.Fatalf("len %d remotes %d: the learned entry did not become remote", tb.Len(), tb.Remotes())
	}
	checkConsistent(t, tb)
	r.sw.clock.Store(int64(DefaultMACAge) * 2)
	if n := tb.Age(r.sw.clock.Load()); n != 0 {
		t.Fatalf("aged %d", n)
	}
	mustRemote(t, d, macA, r.ids[2])
	if n := tb.Flush(); n != 0 {
		t.Fatalf("flush removed %d", n)
	}
	if n := d.FlushPort(r.ids[2]); n != 0 {
		t.Fatalf("flushing its port removed %d", n)
	}
	if tb.RemoveStatic(0, macA) {
		t.Fatal("RemoveStatic removed a remote entry")
	}
	if d.RemoveRemote(0, macA, r.ids[1]) || d.RemoveRemote(1, macA, r.ids[2]) {
		t.Fatal("a withdrawal from another port (or VLAN) removed it")
	}
	mustRemote(t, d, macA, r.ids[2])
	if !d.RemoveRemote(0, macA, r.ids[2]) || tb.Remotes() != 0 || len(d.Entries()) != 0 {
		t.Fatal("not removed")
	}
	if d.RemoveRemote(0, macA, r.ids[2]) {
		t.Fatal("removed twice")
	}
	// Detaching its port removes it.
	if err := d.SetRemote(0, macA, r.ids[2]); err != nil {
		t.Fatal(err)
	}
	r.sw.Detach(r.ports[2])
	if tb.Remotes() != 0 || len(d.Entries()) != 0 {
		t.Fatalf("remote entry of a detached port stayed: %+v", d.Entries())
	}
	checkConsistent(t, tb)
}

func TestRemoteAndStatic(t *testing.T) {
	r, d, _ := remoteRig(t)
	tb := d.Table()
	if err := d.SetStatic(0, macA, r.ids[1]); err != nil {
		t.Fatal(err)
	}
	err := d.SetRemote(0, macA, r.ids[2])
	if err == nil || !strings.Contains(err.Error(), "static") {
		t.Fatalf("SetRemote over a static entry: %v", err)
	}
	if es := d.Entries(); len(es) != 1 || !es[0].Static || es[0].Port != r.ids[1] || tb.Remotes() != 0 {
		t.Fatalf("entries %+v", es)
	}
	if err := d.SetRemote(0, macB, r.ids[2]); err != nil {
		t.Fatal(err)
	}
	if err := d.SetStatic(0, macB, r.ids[0]); err != nil { // the operator wins
		t.Fatal(err)
	}
	es := d.Entries()
	if len(es) != 2 || es[1].MAC != macB || !es[1].Static || es[1].Remote || es[1].Port != r.ids[0] {
		t.Fatalf("entries %+v", es)
	}
	if tb.Remotes() != 0 || tb.Statics() != 2 {
		t.Fatalf("remotes %d statics %d", tb.Remotes(), tb.Statics())
	}
	if d.RemoveRemote(0, macB, r.ids[2]) || d.RemoveRemote(0, macB, r.ids[0]) {
		t.Fatal("RemoveRemote removed a static entry")
	}
	if !tb.RemoveStatic(0, macB) {
		t.Fatal("static entry gone")
	}
	checkConsistent(t, tb)
}

func TestSetRemoteChecks(t *testing.T) {
	r := vlanRig(t, VLAN{Access: 10}, VLAN{Access: 10})
	d := r.sw.Default()
	if err := d.SetRemote(10, frame.Broadcast, r.ids[1]); err == nil {
		t.Error("a broadcast address was made remote")
	}
	if err := d.SetRemote(20, macA, r.ids[1]); err == nil {
		t.Error("a remote entry in a VLAN the port does not carry")
	}
	if err := d.SetRemote(10, macA, 999); err == nil {
		t.Error("a remote entry on no port")
	}
	b, err := r.sw.NewSwitch(SwitchConfig{Name: "b"})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.SetRemote(10, macA, r.ids[1]); err == nil {
		t.Error("a remote entry on another switch's port")
	}
	if err := d.SetRemote(10, macA, r.ids[1]); err != nil {
		t.Fatal(err)
	}
	r.send(inFrame{port: r.ids[0], data: mkFrame(macA, macB, 60, 7)})
	if got := r.tags(); string(got[1]) != "\x07" {
		t.Fatalf("got %v", got)
	}
}

func TestRemoteEntryNotEvicted(t *testing.T) {
	tb := NewMACTable(2, time.Hour)
	tb.setRemote(0, macA, makeRef(9, 1))
	for i := 0; i < 100; i++ {
		tb.Learn(0, macN(i), makeRef(1, 1), 0)
	}
	mustLearned(t, tb, macA, 9, 0)
	if tb.Len() != 2 || tb.Remotes() != 1 || tb.Evicted() != 98 {
		t.Fatalf("len %d remotes %d evicted %d", tb.Len(), tb.Remotes(), tb.Evicted())
	}
	// A full table still takes the remote address over for a local port,
	// by evicting a learned one.
	tb.Learn(0, macA, makeRef(2, 1), 0)
	mustLearned(t, tb, macA, 2, 0)
	if tb.Len() != 2 || tb.Remotes() != 0 || tb.Evicted() != 99 {
		t.Fatalf("len %d remotes %d evicted %d", tb.Len(), tb.Remotes(), tb.Evicted())
	}
	checkConsistent(t, tb)
}

// A port at its MAC limit cannot take a remote address over.
func TestRemoteEntryAndMACLimit(t *testing.T) {
	tb := NewMACTable(16, time.Hour)
	tb.setRemote(0, macA, makeRef(9, 1))
	if !tb.LearnLimited(0, macB, makeRef(1, 1), 0, 1) {
		t.Fatal("first address refused")
	}
	if tb.LearnLimited(0, macA, makeRef(1, 1), 0, 1) {
		t.Fatal("a port at its limit took a remote address over")
	}
	if !tb.LearnLimited(0, macA, makeRef(9, 1), 0, 0) {
		t.Fatal("a frame from a remote address on its own port refused")
	}
	mustLearned(t, tb, macA, 9, 0)
	if tb.Remotes() != 1 || tb.Len() != 1 {
		t.Fatalf("len %d remotes %d", tb.Len(), tb.Remotes())
	}
	checkConsistent(t, tb)
}

// Readers learning a remote address on several ports at once convert it
// once: one learned entry, one list holding it.
func TestRemoteEntryConvertedOnce(t *testing.T) {
	const readers = 4
	for round := 0; round < 200; round++ {
		var evs []MACEvent
		var mu sync.Mutex
		tb := NewMACTable(64, time.Hour)
		tb.notify = func(e MACEvent) { mu.Lock(); evs = append(evs, e); mu.Unlock() }
		tb.setRemote(0, macA, makeRef(9, 1))
		var start, wg sync.WaitGroup
		start.Add(1)
		for g := 0; g < readers; g++ {
			wg.Add(1)
			go func(g int) {
				defer wg.Done()
				start.Wait()
				tb.Learn(0, macA, makeRef(frame.PortID(g+1), 1), 0)
			}(g)
		}
		start.Done()
		wg.Wait()
		checkConsistent(t, tb)
		if tb.Len() != 1 || tb.Remotes() != 0 {
			t.Fatalf("len %d remotes %d", tb.Len(), tb.Remotes())
		}
		// The first learner converted it; each later one moved it.
		if len(evs) != readers || tb.Moved() != readers {
			t.Fatalf("events %v, moved %d", evs, tb.Moved())
		}
		for _, e := range evs {
			if e.Kind != MACMoved {
				t.Fatalf("events %v", evs)
			}
		}
	}
}

// Learning, lookups, ageing, flushes, eviction and a control plane setting
// and withdrawing remote entries (and an operator static ones) at once
// keep the table consistent (run with -race too).
func TestRemoteEntriesConcurrentChurn(t *testing.T) {
	tb := NewMACTable(8, 50)
	const addrs = 24
	var wg sync.WaitGroup
	for g := 0; g < 6; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(g), 2))
			for i := 0; i < 20000; i++ {
				port := frame.PortID(r.IntN(8))
				mac := macN(r.IntN(addrs))
				now := int64(i / 100)
				switch op := r.IntN(100); {
				case g < 2 && op < 40: // the control plane
					tb.setRemote(0, mac, makeRef(port, 1))
				case g < 2 && op < 75:
					tb.removeRemote(0, mac, port)
				case g < 2 && op < 77:
					tb.setStatic(0, mac, makeRef(port, 1))
				case g < 2 && op < 79:
					tb.RemoveStatic(0, mac)
				case g < 2 && op < 80:
					tb.removePinnedOf(port)
				case op < 85:
					tb.Lookup(0, mac, now)
				case op < 87:
					tb.Age(now)
				case op < 88:
					tb.FlushPort(port)
				case op < 89:
					tb.Flush()
				case op < 90:
					tb.LearnLimited(0, mac, makeRef(port, 1), now, 4)
				default:
					tb.Learn(0, mac, makeRef(port, 1), now)
				}
			}
		}(g)
	}
	wg.Wait()
	checkConsistent(t, tb)
	if tb.Len() > 8+6 {
		t.Fatalf("%d entries in a table of 8", tb.Len())
	}
}
