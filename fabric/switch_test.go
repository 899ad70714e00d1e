package fabric

import (
	"slices"
	"sync"
	"testing"

	"github.com/umlswitch/umlswitch/frame"
)

// domainRig is a switch whose ports 0 and 1 are in the default switch and
// ports 2 and 3 in switch "b".
func domainRig(t *testing.T) (*rig, *Switch) {
	t.Helper()
	r := newRig(t, 2, Config{})
	b, err := r.sw.NewSwitch(SwitchConfig{Name: "b"})
	if err != nil {
		t.Fatal(err)
	}
	for i := 2; i < 4; i++ {
		p := newFake("q")
		id, err := b.Attach(p)
		if err != nil {
			t.Fatal(err)
		}
		r.ports, r.ids = append(r.ports, p), append(r.ids, id)
	}
	return r, b
}

func TestDomainsAreIsolated(t *testing.T) {
	r, b := domainRig(t)
	// One batch with frames of both switches, as a shared tunnel socket reads.
	r.send(r.from(0, frame.Broadcast, macA, 1), r.from(2, frame.Broadcast, macA, 2), r.from(3, macA, macB, 3))
	got := r.tags()
	want := []string{"", "\x01", "\x03", "\x02"}
	for i := range want {
		if string(got[i]) != want[i] {
			t.Fatalf("port %d got tags %v, want %q (all: %v)", i, got[i], want[i], got)
		}
	}
	// The same address learned in both switches, on different ports.
	if ref, ok := r.sw.Default().Table().Lookup(0, macA, 0); !ok || ref.id() != r.ids[0] {
		t.Fatalf("default domain: A on %v %v", ref.id(), ok)
	}
	if ref, ok := b.Table().Lookup(0, macA, 0); !ok || ref.id() != r.ids[2] {
		t.Fatalf("domain b: A on %v %v", ref.id(), ok)
	}
	if n := len(b.Stats()); n != 2 {
		t.Fatalf("domain b lists %d ports", n)
	}
	// A frame from the default switch for an address only b knows floods
	// inside the default switch.
	r.send(r.from(1, macB, macC, 4))
	if got := r.tags(); string(got[0]) != "\x04" || len(got[2])+len(got[3]) != 0 {
		t.Fatalf("crossed domains: %v", got)
	}
}

func TestRemoveDomainDetachesItsPorts(t *testing.T) {
	r, b := domainRig(t)
	r.sw.RemoveSwitch(b)
	if n := len(r.sw.Stats()); n != 2 {
		t.Fatalf("%d ports left, want 2", n)
	}
	if !r.ports[2].isClosed() || !r.ports[3].isClosed() {
		t.Fatal("ports of the removed domain not closed")
	}
	if _, err := b.Attach(newFake("late")); err == nil {
		t.Fatal("attached to a removed domain")
	}
	c, err := r.sw.NewSwitch(SwitchConfig{Name: "c"})
	if err != nil {
		t.Fatal(err)
	}
	if c.idx != b.idx {
		t.Fatalf("slot %d not reused (got %d)", b.idx, c.idx)
	}
	p := newFake("c0")
	id, _ := c.Attach(p)
	r.send(inFrame{port: id, data: mkFrame(frame.Broadcast, macA, 60, 9)})
	if got := r.tags(); len(got[0])+len(got[1]) != 0 || len(p.frames()) != 0 {
		t.Fatalf("a lone port's broadcast went somewhere: %v", got)
	}
}

func TestStaticEntries(t *testing.T) {
	r := newRig(t, 3, Config{})
	d := r.sw.Default()
	if err := d.SetStatic(0, macB, r.ids[1]); err != nil {
		t.Fatal(err)
	}
	if err := d.SetStatic(0, frame.Broadcast, r.ids[1]); err == nil {
		t.Fatal("a broadcast address was made static")
	}
	r.send(r.from(2, frame.Broadcast, macB, 1)) // B speaks from port 2: learning must not move it
	r.tags()
	r.send(r.from(0, macB, macA, 2))
	if got := r.tags(); string(got[1]) != "\x02" || len(got[2]) != 0 {
		t.Fatalf("static entry not used: %v", got)
	}
	r.sw.clock.Store(int64(DefaultMACAge) * 2)
	if n := d.Table().Age(r.sw.clock.Load()); n != 1 { // A ages, B does not
		t.Fatalf("aged %d", n)
	}
	es := d.Entries()
	if len(es) != 1 || es[0].MAC != macB || !es[0].Static || es[0].Port != r.ids[1] {
		t.Fatalf("entries %+v", es)
	}
	if d.Table().Flush() != 0 || len(d.Entries()) != 1 {
		t.Fatal("flush removed a static entry")
	}
	r.sw.Detach(r.ports[1])
	if d.Table().Statics() != 0 || len(d.Entries()) != 0 {
		t.Fatal("static entry of a detached port stayed")
	}
	if d.Table().RemoveStatic(0, macB) {
		t.Fatal("removed twice")
	}
}

func TestMACEvents(t *testing.T) {
	var mu sync.Mutex
	var evs []MACEvent
	sw := New(Config{Logger: quiet()})
	d, _ := sw.NewSwitch(SwitchConfig{Name: "ev", OnMAC: func(e MACEvent) { mu.Lock(); evs = append(evs, e); mu.Unlock() }})
	var ids []frame.PortID
	var ports []*fakePort
	for i := 0; i < 2; i++ {
		p := newFake("p")
		id, _ := d.Attach(p)
		ids, ports = append(ids, id), append(ports, p)
	}
	f := newForwarder(sw, 64)
	v := frame.NewVector(64, 1518)
	send := func(port frame.PortID, src frame.MAC) {
		f.forward(v, load(v, []inFrame{{port, mkFrame(frame.Broadcast, src, 60, 0)}}))
	}
	send(ids[0], macA)
	send(ids[0], macA) // a refresh: no event
	send(ids[1], macA)
	sw.clock.Store(int64(DefaultMACAge) * 2)
	d.age(sw.clock.Load())
	want := []MACEvent{{MACLearned, macA, 0, ids[0]}, {MACMoved, macA, 0, ids[1]}, {MACAged, macA, 0, ids[1]}}
	if len(evs) != len(want) {
		t.Fatalf("events %v, want %v", evs, want)
	}
	for i := range want {
		if evs[i] != want[i] {
			t.Fatalf("event %d: %v, want %v", i, evs[i], want[i])
		}
	}
	// Flushes say so once, not per address: a port that leaves, then the
	// whole table; flushing nothing says nothing.
	send(ids[0], macA)
	send(ids[0], macB)
	send(ids[1], macC)
	evs = nil
	d.Detach(ports[0])
	d.Table().Flush()
	d.Table().Flush()
	want = []MACEvent{{Kind: MACFlushed, Port: ids[0]}, {Kind: MACFlushed, Port: frame.NoPort}}
	if !slices.Equal(evs, want) {
		t.Fatalf("flush events %v, want %v", evs, want)
	}
}
