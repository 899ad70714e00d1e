package evpn

import (
	"net/netip"
	"testing"
	"time"

	"github.com/umlswitch/umlswitch/configs"
	"github.com/umlswitch/umlswitch/frame"
)

// A speaker that leaves for an upgrade and comes back with its state:
// its peer keeps the leaver's routes meanwhile (graceful restart), the
// new speaker has its tunnels and remote entries back before BGP is up,
// and once the peer's End-of-RIB is in, only what a route confirmed stays.
func TestRestartKeepsTheFabric(t *testing.T) {
	switches := []configs.Switch{sw("a", 100)}
	a, b, dpA, dpB := pair(t, switches, []configs.Switch{sw("b", 100)})
	dpA.learn("a", macA)
	a.MACsChanged("a")
	dpB.learn("b", macB)
	b.MACsChanged("b")
	waitFor(t, "macB at a", func() bool { return dpA.remoteAt("a", macB) == vtepB })
	waitFor(t, "macA at b", func() bool { return dpB.remoteAt("b", macA) == vtepA })

	st := a.State()
	if len(st.Tunnels) != 1 || len(st.MACs) != 1 {
		t.Fatalf("state %+v", st)
	}
	gone := frame.MAC{2, 0, 0, 0, 0, 0xee} // an entry whose route went while a was away
	st.MACs = append(st.MACs, RemoteMAC{Switch: "a", MAC: gone.String(), VTEP: vtepB})
	cfg := a.Config()
	a.Leave()

	// The peer keeps what a announced while a is away.
	time.Sleep(time.Second)
	if !dpB.hasTunnel("b", 100, vtepA) || dpB.remoteAt("b", macA) != vtepA {
		t.Fatal("the peer dropped the leaver's routes despite graceful restart")
	}

	dp2 := newFakeDP()
	dp2.learn("a", macA)
	a2 := New(nil, dp2, nil)
	t.Cleanup(a2.Close)
	a2.Restarting(st)
	if err := a2.Apply(cfg, switches); err != nil {
		t.Fatal(err)
	}
	if !dp2.hasTunnel("a", 100, vtepB) || dp2.remoteAt("a", macB) != vtepB || dp2.remoteAt("a", gone) != vtepB {
		t.Fatal("the data plane was not brought back before BGP came up")
	}
	waitFor(t, "the stale entry swept", func() bool { return !dp2.remoteAt("a", gone).IsValid() })
	if !dp2.hasTunnel("a", 100, vtepB) || dp2.remoteAt("a", macB) != vtepB {
		t.Fatal("the sweep took what the peer's routes confirmed")
	}
	if !dpB.hasTunnel("b", 100, vtepA) || dpB.remoteAt("b", macA) != vtepA {
		t.Fatal("the peer lost the restarted speaker's routes")
	}
}

// A switch that leaves the fabric (its VNI gone at a reload) while what a
// restart brought back is still stale takes that with it: no route would
// ever confirm or sweep it.
func TestRestoredStateLeavesWithItsVNI(t *testing.T) {
	dp := newFakeDP()
	s := New(nil, dp, nil)
	t.Cleanup(s.Close)
	other := netip.MustParseAddr("192.0.2.9")
	s.Restarting(State{Tunnels: []Tunnel{{Switch: "a", VNI: 100, Remote: other}},
		MACs: []RemoteMAC{{Switch: "a", MAC: macB.String(), VTEP: other}}})
	cfg := &configs.EVPN{ASN: 65000, RouterID: netip.MustParseAddr("10.0.0.1"), VTEP: vtepA, VXLANPort: 4789,
		HoldTime: 9 * time.Second, RestartTime: 30 * time.Second,
		Neighbors: []configs.Neighbor{{Address: netip.MustParseAddr("127.0.0.2"), ASN: 65000, Port: 1}}}
	if err := s.Apply(cfg, []configs.Switch{sw("a", 100)}); err != nil {
		t.Fatal(err)
	}
	if !dp.hasTunnel("a", 100, other) || dp.remoteAt("a", macB) != other {
		t.Fatal("the restored state was not brought back")
	}
	if err := s.Apply(cfg, nil); err != nil {
		t.Fatal(err)
	}
	if dp.hasTunnel("a", 100, other) || dp.remoteAt("a", macB).IsValid() {
		t.Fatal("the switch left the fabric and its restored tunnel or address stayed")
	}
	if st := s.State(); len(st.Tunnels)+len(st.MACs) != 0 {
		t.Fatalf("state after the switch left: %+v", st)
	}
}
