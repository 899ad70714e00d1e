package tunnel

import (
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

func named(name string) *Port { return &Port{cfg: PortConfig{Name: name}} }

// claimed is a table with ports a1 (group 1, key 10), a2 (1, 20) and b1
// (2, 10), claimed and published in that order.
func claimed(t testing.TB) (*Routes[int, int], map[string]*Port) {
	t.Helper()
	var r Routes[int, int]
	ports := make(map[string]*Port)
	for _, c := range []struct {
		name string
		g, k int
	}{{"a1", 1, 10}, {"a2", 1, 20}, {"b1", 2, 10}} {
		p := named(c.name)
		if err := r.Claim(c.g, c.k, p); err != nil {
			t.Fatal(err)
		}
		r.Publish(c.g, c.k, p)
		ports[c.name] = p
	}
	return &r, ports
}

func TestRoutesLookup(t *testing.T) {
	var empty Routes[int, int]
	if empty.Lookup(1, 10) != nil {
		t.Fatal("the zero table routed a packet")
	}
	r, ports := claimed(t)
	for _, c := range []struct {
		name string
		g, k int
		want *Port
	}{
		{"group 1, key 10", 1, 10, ports["a1"]},
		{"group 1, key 20", 1, 20, ports["a2"]},
		{"group 2, key 10", 2, 10, ports["b1"]},
		{"group 1, unknown key: its first port", 1, 99, ports["a1"]},
		{"group 2, another group's key: its first port", 2, 20, ports["b1"]},
		{"unknown group", 3, 10, nil},
	} {
		if got := r.Lookup(c.g, c.k); got != c.want {
			t.Errorf("%s: got %v, want %v", c.name, got, c.want)
		}
	}
	if a := testing.AllocsPerRun(100, func() { r.Lookup(1, 20) }); a != 0 {
		t.Errorf("Lookup allocates %v times", a)
	}
}

func TestRoutesClaimThenPublish(t *testing.T) {
	var r Routes[int, int]
	p, q := named("p"), named("q")
	if err := r.Claim(1, 10, p); err != nil {
		t.Fatal(err)
	}
	if r.Lookup(1, 10) != nil {
		t.Fatal("a claimed but unpublished route routes")
	}
	err := r.Claim(1, 10, q)
	if !errors.Is(err, ErrRouteTaken) || !strings.Contains(err.Error(), `"p"`) {
		t.Fatalf("a duplicate claim: %v, want ErrRouteTaken naming port p", err)
	}
	if err := r.Claim(1, 20, q); err != nil {
		t.Fatalf("another key of the group: %v", err)
	}
	r.Publish(1, 10, q) // q does not hold (1, 10)
	if r.Lookup(1, 10) != nil {
		t.Fatal("a port that does not hold a route published it")
	}
	r.Publish(1, 10, p)
	r.Publish(1, 10, p) // twice: still one entry
	if r.Lookup(1, 10) != p || r.Lookup(1, 20) != p {
		t.Fatal("after publishing, p is not routed to (or not first in its group)")
	}
	r.Remove(1, 10, p)
	if r.Lookup(1, 10) != nil {
		t.Fatal("a port published twice is still routed after one Remove")
	}
}

func TestRoutesRemove(t *testing.T) {
	r, ports := claimed(t)
	r.Remove(1, 10, named("stale")) // does not hold the route
	r.Remove(1, 10, ports["a2"])    // holds another route of the group
	if r.Lookup(1, 10) != ports["a1"] {
		t.Fatal("a port that does not hold a route removed it")
	}
	r.Remove(1, 10, ports["a1"])
	if r.Lookup(1, 10) != ports["a2"] {
		t.Fatal("after removing the first port, the group's next one should take its packets")
	}
	if err := r.Claim(1, 10, named("new")); err != nil {
		t.Fatalf("a released route cannot be claimed: %v", err)
	}
	r.Remove(1, 20, ports["a2"])
	if r.Lookup(1, 20) != nil {
		t.Fatal("a group with no published port is still routed")
	}
	if r.Lookup(2, 10) != ports["b1"] {
		t.Fatal("removing one group's ports changed another's")
	}
}

// A port released between its claim and its publication (it closed while
// being attached) is never routed to.
func TestRoutesRemoveBeforePublish(t *testing.T) {
	var r Routes[int, int]
	p := named("p")
	if err := r.Claim(1, 10, p); err != nil {
		t.Fatal(err)
	}
	r.Remove(1, 10, p)
	r.Publish(1, 10, p)
	if r.Lookup(1, 10) != nil {
		t.Fatal("a released port was published")
	}
}

// Changes never touch what a reader already holds.
func TestRoutesCopyOnWrite(t *testing.T) {
	r, ports := claimed(t)
	before := *r.groups.Load()
	r.Remove(1, 10, ports["a1"])
	a3 := named("a3")
	if err := r.Claim(1, 30, a3); err != nil {
		t.Fatal(err)
	}
	r.Publish(1, 30, a3)
	r.Publish(3, 10, named("c1")) // not claimed: no change
	if g1 := before[1]; len(before) != 2 || len(g1) != 2 || g1[0].port != ports["a1"] || g1[1].port != ports["a2"] {
		t.Fatal("a change altered a published table")
	}
	if r.Lookup(1, 30) != a3 || r.Lookup(1, 10) != ports["a2"] {
		t.Fatal("the changes were not published")
	}
}

// Lookups run while ports come and go, as the endpoint's reader does while
// ports open and close (run with -race).
func TestRoutesConcurrentLookups(t *testing.T) {
	var r Routes[int, int]
	const groups, keys = 4, 4
	group := make(map[*Port]int) // written before the readers start
	var ports [groups][keys]*Port
	for g := range groups {
		for k := range keys {
			ports[g][k] = named("p")
			group[ports[g][k]] = g
		}
	}
	var stop atomic.Bool
	var wg sync.WaitGroup
	var wrong atomic.Int64
	for range 4 {
		wg.Go(func() {
			for i := 0; !stop.Load(); i++ {
				g, k := i%groups, i/groups%keys
				if p := r.Lookup(g, k); p != nil && group[p] != g {
					wrong.Add(1)
				}
			}
		})
	}
	for i := range 2000 {
		g, k := i%groups, i/groups%keys
		p := ports[g][k]
		if i/(groups*keys)%2 == 0 {
			if err := r.Claim(g, k, p); err != nil {
				t.Error(err)
			}
			r.Publish(g, k, p)
		} else {
			r.Remove(g, k, p)
		}
	}
	stop.Store(true)
	wg.Wait()
	if n := wrong.Load(); n != 0 {
		t.Fatalf("%d lookups returned another group's port", n)
	}
}

func BenchmarkRoutesLookup(b *testing.B) {
	r, _ := claimed(b)
	b.ReportAllocs()
	for b.Loop() {
		r.Lookup(1, 20)
	}
}
