package evpn

import (
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
