package evpn

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/umlswitch/umlswitch/configs"
	"github.com/umlswitch/umlswitch/frame"
)

// fakeDP is a data plane that records what the speaker asks of it.
type fakeDP struct {
	mu      sync.Mutex
	tunnels map[Tunnel]bool
	remote  map[string]map[frame.MAC]netip.Addr // switch: address: VTEP
	local   map[string][]frame.MAC
	slow    time.Duration // each tunnel change takes this long
	odd     []string      // calls that make no sense: a tunnel made twice, one removed that is not there
}

func newFakeDP() *fakeDP {
	return &fakeDP{tunnels: make(map[Tunnel]bool), remote: make(map[string]map[frame.MAC]netip.Addr),
		local: make(map[string][]frame.MAC)}
}

func (d *fakeDP) AddTunnel(t Tunnel) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	time.Sleep(d.slow)
	if d.tunnels[t] {
		d.odd = append(d.odd, fmt.Sprintf("tunnel %+v made twice", t))
	}
	d.tunnels[t] = true
	return nil
}

func (d *fakeDP) RemoveTunnel(t Tunnel) {
	d.mu.Lock()
	defer d.mu.Unlock()
	time.Sleep(d.slow)
	if !d.tunnels[t] {
		d.odd = append(d.odd, fmt.Sprintf("tunnel %+v removed but not there", t))
	}
	delete(d.tunnels, t)
	for m, at := range d.remote[t.Switch] {
		if at == t.Remote {
			delete(d.remote[t.Switch], m)
		}
	}
}

func (d *fakeDP) SetRemoteMAC(sw string, m frame.MAC, vtep netip.Addr) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.remote[sw] == nil {
		d.remote[sw] = make(map[frame.MAC]netip.Addr)
	}
	d.remote[sw][m] = vtep
	// As the fabric: a remote entry replaces a learned one.
	d.local[sw] = slices.DeleteFunc(d.local[sw], func(x frame.MAC) bool { return x == m })
	return nil
}

func (d *fakeDP) RemoveRemoteMAC(sw string, m frame.MAC, vtep netip.Addr) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.remote[sw][m] == vtep {
		delete(d.remote[sw], m)
	}
}

func (d *fakeDP) LocalMACs(sw string) []frame.MAC {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.local[sw])
}

// learn puts m on a local port of sw, as learning does (a remote entry
// becomes a learned one).
func (d *fakeDP) learn(sw string, m frame.MAC) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.remote[sw], m)
	if !slices.Contains(d.local[sw], m) {
		d.local[sw] = append(d.local[sw], m)
	}
}

func (d *fakeDP) forget(sw string, m frame.MAC) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.local[sw] = slices.DeleteFunc(d.local[sw], func(x frame.MAC) bool { return x == m })
}

func (d *fakeDP) remoteAt(sw string, m frame.MAC) netip.Addr {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.remote[sw][m]
}

func (d *fakeDP) hasTunnel(sw string, vni uint32, to netip.Addr) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	for t := range d.tunnels {
		if t.Switch == sw && t.VNI == vni && t.Remote == to {
			return true
		}
	}
	return false
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func freePort(t *testing.T) uint16 {
	l, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Skipf("no 127.0.0.2 here: %v", err)
	}
	defer l.Close()
	return uint16(l.Addr().(*net.TCPAddr).Port)
}

var (
	vtepA = netip.MustParseAddr("192.0.2.1")
	vtepB = netip.MustParseAddr("192.0.2.2")
	macA  = frame.MAC{2, 0, 0, 0, 0, 0xa}
	macB  = frame.MAC{2, 0, 0, 0, 0, 0xb}
)

// pair starts two speakers with an iBGP session over loopback: a connects
// from 127.0.0.1 to b listening on 127.0.0.2.
func pair(t *testing.T, switchesA, switchesB []configs.Switch) (a, b *Speaker, dpA, dpB *fakeDP) {
	t.Helper()
	port := freePort(t)
	dpA, dpB = newFakeDP(), newFakeDP()
	a, b = New(nil, dpA, nil), New(nil, dpB, nil)
	t.Cleanup(a.Close)
	t.Cleanup(b.Close)
	cfgB := &configs.EVPN{ASN: 65000, RouterID: netip.MustParseAddr("10.0.0.2"), VTEP: vtepB, VXLANPort: 4789,
		ListenPort: int(port), HoldTime: 9 * time.Second, RestartTime: 30 * time.Second,
		Neighbors: []configs.Neighbor{{Address: netip.MustParseAddr("127.0.0.1"), ASN: 65000, Passive: true}}}
	cfgA := &configs.EVPN{ASN: 65000, RouterID: netip.MustParseAddr("10.0.0.1"), VTEP: vtepA, VXLANPort: 4789,
		HoldTime: 9 * time.Second, RestartTime: 30 * time.Second,
		Neighbors: []configs.Neighbor{{Address: netip.MustParseAddr("127.0.0.2"), ASN: 65000, Port: port}}}
	if err := b.Apply(cfgB, switchesB); err != nil {
		t.Fatal(err)
	}
	if err := a.Apply(cfgA, switchesA); err != nil {
		t.Fatal(err)
	}
	return a, b, dpA, dpB
}

func sw(name string, vni uint32) configs.Switch {
	s := configs.Switch{Name: name}
	s.VNI = vni
	return s
}

func TestTwoSpeakersExchangeVTEPsAndMACs(t *testing.T) {
	a, b, dpA, dpB := pair(t, []configs.Switch{sw("a", 100), sw("a2", 200)}, []configs.Switch{sw("b", 100), sw("b3", 300)})
	dpA.learn("a", macA)
	a.MACsChanged("a")
	dpB.learn("b", macB)
	b.MACsChanged("b")

	waitFor(t, "a's tunnel to b", func() bool { return dpA.hasTunnel("a", 100, vtepB) })
	waitFor(t, "b's tunnel to a", func() bool { return dpB.hasTunnel("b", 100, vtepA) })
	waitFor(t, "macB at a", func() bool { return dpA.remoteAt("a", macB) == vtepB })
	waitFor(t, "macA at b", func() bool { return dpB.remoteAt("b", macA) == vtepA })
	// VNIs only one side has make no tunnels.
	if dpA.hasTunnel("a2", 200, vtepB) || dpB.hasTunnel("b3", 300, vtepA) {
		t.Fatal("a tunnel for a VNI the other side does not serve")
	}

	// macB moves from b to a: a outbids b's route, b withdraws and
	// points it at a.
	dpA.learn("a", macB)
	a.MACsChanged("a")
	waitFor(t, "macB moved to a at b", func() bool { return dpB.remoteAt("b", macB) == vtepA })
	if slices.Contains(dpB.LocalMACs("b"), macB) {
		t.Fatal("b still holds macB locally")
	}
	// And back: b outbids again (sequence 2).
	dpB.learn("b", macB)
	b.MACsChanged("b")
	waitFor(t, "macB back at b", func() bool { return dpA.remoteAt("a", macB) == vtepB })

	// An address that ages out is withdrawn.
	dpA.forget("a", macA)
	a.MACsChanged("a")
	waitFor(t, "macA withdrawn", func() bool { return !dpB.remoteAt("b", macA).IsValid() })

	// A neighbour that goes away takes its tunnels and addresses with it.
	b.Close()
	waitFor(t, "b's routes gone at a", func() bool {
		return !dpA.hasTunnel("a", 100, vtepB) && !dpA.remoteAt("a", macB).IsValid()
	})
}

func TestReapplyKeepsSessionAndAddsVNI(t *testing.T) {
	a, b, dpA, _ := pair(t, []configs.Switch{sw("a", 100)}, []configs.Switch{sw("b", 100), sw("b2", 200)})
	waitFor(t, "a's tunnel to b", func() bool { return dpA.hasTunnel("a", 100, vtepB) })
	ups := 0
	for _, n := range a.Neighbors() {
		if n.State == "established" {
			ups++
		}
	}
	if ups != 1 {
		t.Fatalf("neighbours %+v", a.Neighbors())
	}
	cfg := a.Config()
	if err := a.Apply(cfg, []configs.Switch{sw("a", 100), sw("a2", 200)}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a2's tunnel to b", func() bool { return dpA.hasTunnel("a2", 200, vtepB) })
	if !dpA.hasTunnel("a", 100, vtepB) {
		t.Fatal("vni 100's tunnel went on reapply")
	}
	_ = b
	if err := a.Apply(cfg, []configs.Switch{sw("a2", 200)}); err != nil {
		t.Fatal(err)
	}
	if dpA.hasTunnel("a", 100, vtepB) {
		t.Fatal("a left the fabric but keeps its tunnel")
	}
}
