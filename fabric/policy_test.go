package fabric

import (
	"fmt"
	"testing"
	"time"

	"github.com/umlswitch/umlswitch/frame"
)

// policyRig is a switch whose ports have the given policies.
func policyRig(t *testing.T, pols ...Policy) *rig {
	t.Helper()
	opts := make([]PortOptions, len(pols))
	for i, p := range pols {
		opts[i].Policy = p
	}
	return optionsRig(t, opts...)
}

// optionsRig is a switch of fake ports p0, p1, ... attached with opts,
// each able to carry a full-sized frame in two VLAN tags.
func optionsRig(t testing.TB, opts ...PortOptions) *rig {
	t.Helper()
	r := &rig{sw: New(Config{Logger: quiet()}), v: frame.NewVector(64, 2048)}
	for i, o := range opts {
		fp := newFake(fmt.Sprintf("p%d", i))
		fp.maxFrame = frame.MaxFrameForMTU(frame.DefaultMTU)
		id, err := r.sw.AttachWith(fp, o)
		if err != nil {
			t.Fatal(err)
		}
		r.ports, r.ids = append(r.ports, fp), append(r.ids, id)
	}
	r.fw = newForwarder(r.sw, 64)
	return r
}

func (r *rig) drops(port int, reason DropReason) uint64 {
	st, _ := r.sw.PortStats(r.ids[port])
	return st.Drops[reason]
}

// A full mesh of three tunnel ports in one split horizon group, and a
// local port: a flood from a tunnel goes to the local port only, a flood
// from the local port to every tunnel; unicast between tunnels is dropped.
func TestSplitHorizon(t *testing.T) {
	g := Policy{SplitHorizon: "fabric"}
	r := policyRig(t, g, g, g, Policy{})
	r.send(r.from(0, frame.Broadcast, macA, 1))
	if got := r.tags(); string(got[1])+string(got[2]) != "" || string(got[3]) != "\x01" {
		t.Fatalf("flood from a tunnel: %v", got)
	}
	r.send(r.from(3, frame.Broadcast, macB, 2))
	if got := r.tags(); string(got[0]) != "\x02" || string(got[1]) != "\x02" || string(got[2]) != "\x02" {
		t.Fatalf("flood from the local port: %v", got)
	}
	r.send(r.from(1, macA, macC, 3)) // A was learned on tunnel 0
	if got := r.tags(); len(got[0]) != 0 || r.drops(1, DropSplitHorizon) != 1 {
		t.Fatalf("unicast between tunnels: %v, drops %d", got, r.drops(1, DropSplitHorizon))
	}
	// A second group is a group of its own.
	r2 := policyRig(t, g, Policy{SplitHorizon: "other"})
	r2.send(r2.from(0, frame.Broadcast, macA, 4))
	if got := r2.tags(); string(got[1]) != "\x04" {
		t.Fatalf("another group: %v", got)
	}
}

func TestIsolatedFloodAndBroadcastKeys(t *testing.T) {
	iso := Policy{Isolated: true}
	r := policyRig(t, iso, iso, Policy{}, Policy{NoFlood: true}, Policy{NoBroadcast: true})
	r.send(r.from(0, frame.Broadcast, macA, 1))
	got := r.tags()
	if len(got[1]) != 0 || string(got[2]) != "\x01" || string(got[3]) != "\x01" || len(got[4]) != 0 {
		t.Fatalf("broadcast from an isolated port: %v", got)
	}
	r.send(r.from(2, mcst, macC, 2)) // multicast reaches the broadcast=0 port, not flood-limited ones' business
	if got := r.tags(); string(got[4]) != "\x02" || string(got[3]) != "\x02" {
		t.Fatalf("multicast: %v", got)
	}
	r.send(r.from(2, macX, macC, 3)) // unknown unicast: not to the flood=0 port
	if got := r.tags(); len(got[3]) != 0 || string(got[0]) != "\x03" || string(got[4]) != "\x03" {
		t.Fatalf("unknown unicast: %v", got)
	}
	r.send(r.from(1, macA, macB, 4)) // isolated to isolated, known: dropped
	if got := r.tags(); len(got[0]) != 0 || r.drops(1, DropIsolated) != 1 {
		t.Fatalf("isolated unicast: %v", got)
	}
	r.send(r.from(2, macA, macC, 5)) // to an isolated port from a plain one: fine
	if got := r.tags(); string(got[0]) != "\x05" {
		t.Fatalf("plain to isolated: %v", got)
	}
}

func TestMACLimit(t *testing.T) {
	r := policyRig(t, Policy{MACLimit: 2}, Policy{})
	mac := func(i byte) frame.MAC { return frame.MAC{2, 0, 0, 0, 9, i} }
	for i := byte(1); i <= 5; i++ {
		r.send(r.from(0, frame.Broadcast, mac(i), i))
	}
	got := r.tags()
	if string(got[1]) != "\x01\x02" || r.drops(0, DropMACLimit) != 3 || r.sw.Table().Len() != 2 {
		t.Fatalf("delivered %v, mac-limit drops %d, table %d", got[1], r.drops(0, DropMACLimit), r.sw.Table().Len())
	}
	r.send(r.from(0, frame.Broadcast, mac(1), 9)) // a known address still flows
	if got := r.tags(); string(got[1]) != "\x09" {
		t.Fatalf("known source after the limit: %v", got)
	}
	r.sw.Table().FlushPort(r.ids[0])
	r.send(r.from(0, frame.Broadcast, mac(3), 10)) // room again
	if got := r.tags(); string(got[1]) != "\x0a" {
		t.Fatalf("after a flush: %v", got)
	}
}

func TestStormAndLinkLocal(t *testing.T) {
	r := policyRig(t, Policy{Storm: 10, NoLinkLocal: true}, Policy{})
	r.sw.start = time.Now() // the bucket starts full: 10 frames
	var batch []inFrame
	for i := 0; i < 30; i++ {
		batch = append(batch, r.from(0, frame.Broadcast, macA, byte(i)))
	}
	r.send(batch...)
	if got := r.tags(); len(got[1]) != 10 || r.drops(0, DropStorm) != 20 {
		t.Fatalf("storm: %d delivered, %d dropped", len(got[1]), r.drops(0, DropStorm))
	}
	r.send(r.from(0, macB, macA, 1)) // unknown unicast is flooded too: limited
	if r.drops(0, DropStorm) != 21 {
		t.Fatalf("unknown unicast past the rate: %d", r.drops(0, DropStorm))
	}
	r.send(r.from(1, frame.Broadcast, macB, 2)) // B is known now
	r.tags()
	r.send(r.from(0, macB, macA, 3)) // known unicast is not limited
	if got := r.tags(); string(got[1]) != "\x03" {
		t.Fatalf("known unicast: %v", got)
	}
	stp := frame.MAC{0x01, 0x80, 0xc2, 0, 0, 0}
	r.send(r.from(0, stp, macA, 4), r.from(1, stp, macB, 5))
	if got := r.tags(); len(got[1]) != 0 || string(got[0]) != "\x05" || r.drops(0, DropLinkLocal) != 1 {
		t.Fatalf("link-local: %v, drops %d", got, r.drops(0, DropLinkLocal))
	}
}

func TestTokenBucket(t *testing.T) {
	b := newTokenBucket(100)
	n := 0
	for b.take(0) {
		n++
	}
	if n != 100 {
		t.Fatalf("burst %d, want 100", n)
	}
	if b.take(int64(5 * time.Millisecond)) {
		t.Fatal("a token after 5 ms at 100/s")
	}
	if !b.take(int64(20 * time.Millisecond)) {
		t.Fatal("no token after 20 ms")
	}
}

// A port whose link is down (link=down) passes nothing either way: what
// it sends is dropped as it comes in, what would leave through it (flooded,
// or unicast to an address pinned there) is dropped on it, all counted as
// link-down; going down forgets the addresses learned on it, so frames to
// its hosts flood; going up restores it.
func TestLinkDown(t *testing.T) {
	r := policyRig(t, Policy{}, Policy{}, Policy{})
	r.send(r.from(0, frame.Broadcast, macA, 1), r.from(1, frame.Broadcast, macB, 2))
	r.tags()
	r.send(r.from(0, macB, macA, 3))
	if got := r.tags(); string(got[1]) != "\x03" || len(got[2]) != 0 {
		t.Fatalf("before: %v", got)
	}
	if err := r.sw.SetPolicy(r.ports[1], Policy{LinkDown: true}, VLAN{}); err != nil {
		t.Fatal(err)
	}
	if _, ok := r.sw.Table().Lookup(0, macB, r.sw.Now()); ok {
		t.Fatal("B is still learned on the port that went down")
	}
	rxBefore, _ := r.sw.PortStats(r.ids[1])
	r.send(r.from(1, macA, macB, 4), r.from(1, frame.Broadcast, macC, 5)) // in: nothing passes, nothing learned
	if got := r.tags(); len(got[0])+len(got[2]) != 0 || r.drops(1, DropLinkDown) != 2 {
		t.Fatalf("frames from the down port: %v, link-down %d", got, r.drops(1, DropLinkDown))
	}
	if st, _ := r.sw.PortStats(r.ids[1]); st.RxFrames != rxBefore.RxFrames {
		t.Fatalf("a down port counted %d frames received", st.RxFrames-rxBefore.RxFrames)
	}
	if _, ok := r.sw.Table().Lookup(0, macC, r.sw.Now()); ok {
		t.Fatal("an address was learned on a down port")
	}
	r.send(r.from(0, macB, macA, 6)) // B unknown now: floods, but not out of the down port
	if got := r.tags(); len(got[1]) != 0 || string(got[2]) != "\x06" || r.drops(1, DropLinkDown) != 3 {
		t.Fatalf("unicast to a host behind the down port: %v, link-down %d", got, r.drops(1, DropLinkDown))
	}
	r.send(r.from(2, frame.Broadcast, macC, 7))
	if got := r.tags(); len(got[1]) != 0 || string(got[0]) != "\x07" || r.drops(1, DropLinkDown) != 4 {
		t.Fatalf("broadcast: %v, link-down %d", got, r.drops(1, DropLinkDown))
	}
	if err := r.sw.Default().SetStatic(0, macB, r.ids[1]); err != nil {
		t.Fatal(err)
	}
	r.send(r.from(0, macB, macA, 8)) // pinned to the down port: not sent, not flooded
	if got := r.tags(); len(got[1])+len(got[2]) != 0 || r.drops(1, DropLinkDown) != 5 || r.drops(0, DropLinkDown) != 0 {
		t.Fatalf("unicast pinned to the down port: %v, link-down %d", got, r.drops(1, DropLinkDown))
	}
	r.sw.Table().RemoveStatic(0, macB)

	if err := r.sw.SetPolicy(r.ports[1], Policy{}, VLAN{}); err != nil {
		t.Fatal(err)
	}
	r.send(r.from(1, macA, macB, 9))
	if got := r.tags(); string(got[0]) != "\x09" {
		t.Fatalf("after link up: %v", got)
	}
	r.send(r.from(0, macB, macA, 10))
	if got := r.tags(); string(got[1]) != "\x0a" || len(got[2]) != 0 || r.drops(1, DropLinkDown) != 5 {
		t.Fatalf("unicast after link up: %v, link-down %d", got, r.drops(1, DropLinkDown))
	}
	if r.drops(0, DropLinkDown)+r.drops(2, DropLinkDown) != 0 {
		t.Fatal("link-down counted on a port that was up")
	}
}

// In a switch with VLANs, a flooded copy is counted as link-down only on
// a down port that carries the frame's VLAN.
func TestLinkDownVLAN(t *testing.T) {
	down := Policy{LinkDown: true}
	r := optionsRig(t, PortOptions{VLAN: VLAN{Access: 10}}, PortOptions{VLAN: VLAN{Access: 10}, Policy: down},
		PortOptions{VLAN: VLAN{Access: 20}, Policy: down}, PortOptions{VLAN: VLAN{Access: 10}})
	r.send(r.from(0, frame.Broadcast, macA, 1))
	if got := r.tags(); string(got[3]) != "\x01" || len(got[1])+len(got[2]) != 0 {
		t.Fatalf("flood: %v", got)
	}
	if r.drops(1, DropLinkDown) != 1 || r.drops(2, DropLinkDown) != 0 {
		t.Fatalf("link-down: %d on the VLAN 10 port, %d on the VLAN 20 one", r.drops(1, DropLinkDown), r.drops(2, DropLinkDown))
	}
	r.send(r.from(1, frame.Broadcast, macB, 2))
	if got := r.tags(); len(got[0])+len(got[3]) != 0 || r.drops(1, DropLinkDown) != 2 {
		t.Fatalf("from the down port: %v", got)
	}
}
