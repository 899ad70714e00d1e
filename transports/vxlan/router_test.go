package vxlan

import (
	"net/netip"
	"testing"

	"github.com/umlswitch/umlswitch/tunnel"
)

// route is what a port claims: its peer and VNI.
type route struct {
	peer netip.Addr
	vni  uint32
}

// routed is a router with ports for (peer3, 1), (peer3, 2) and (peer4, 1).
func routed(t testing.TB) (*router, map[route]*tunnel.Port) {
	r := new(router)
	ports := make(map[route]*tunnel.Port)
	for _, k := range []route{{peer3, 1}, {peer3, 2}, {peer4, 1}} {
		p := new(tunnel.Port)
		if err := r.Claim(k.peer, k.vni, p); err != nil {
			t.Fatal(err)
		}
		r.Publish(k.peer, k.vni, p)
		ports[k] = p
	}
	return r, ports
}

func TestRoute(t *testing.T) {
	r, ports := routed(t)
	pkt := func(vni uint32) []byte { h := Encode(vni); return append(h[:], 1, 2, 3) }
	tests := []struct {
		name string
		pkt  []byte
		peer netip.Addr
		want *tunnel.Port
	}{
		{"peer 3, vni 1", pkt(1), peer3, ports[route{peer3, 1}]},
		{"peer 3, vni 2", pkt(2), peer3, ports[route{peer3, 2}]},
		{"peer 4, vni 1", pkt(1), peer4, ports[route{peer4, 1}]},
		{"peer 4, vni 2: its first port counts it", pkt(2), peer4, ports[route{peer4, 1}]},
		{"peer 3, short: its first port counts it", []byte{8, 0}, peer3, ports[route{peer3, 1}]},
		{"bad flags still go by vni", []byte{0xff, 0, 0, 0, 0, 0, 2, 0}, peer3, ports[route{peer3, 2}]},
		{"stranger", pkt(1), netip.MustParseAddr("127.0.0.9"), nil},
		{"no address", pkt(1), netip.Addr{}, nil},
	}
	for _, tt := range tests {
		if got := r.Route(tt.pkt, tt.peer); got != tt.want {
			t.Errorf("%s: wrong port", tt.name)
		}
	}

	if a := testing.AllocsPerRun(100, func() { r.Route(tests[0].pkt, peer3) }); a != 0 {
		t.Errorf("Route allocates %v times", a)
	}

	if err := r.Claim(peer3, 2, new(tunnel.Port)); err == nil {
		t.Fatal("a taken route was claimed again")
	}
	r.Remove(peer3, 1, new(tunnel.Port)) // not the holder: no effect
	if r.Route(pkt(1), peer3) != ports[route{peer3, 1}] {
		t.Fatal("a port that does not hold a route removed it")
	}
	r.Remove(peer3, 1, ports[route{peer3, 1}])
	if got := r.Route(pkt(1), peer3); got != ports[route{peer3, 2}] {
		t.Fatal("after removing vni 1, peer 3's remaining port should count its packets")
	}
	r.Remove(peer3, 2, ports[route{peer3, 2}])
	if r.Route(pkt(2), peer3) != nil {
		t.Fatal("a peer without ports is still routed")
	}
	if err := r.Claim(peer3, 2, new(tunnel.Port)); err != nil {
		t.Fatalf("a released route cannot be claimed: %v", err)
	}
}

// FuzzRoute: any packet from any sender gets no port if the sender has
// none, otherwise one of the sender's ports: the one for its VNI if there
// is one.
func FuzzRoute(f *testing.F) {
	h := Encode(2)
	f.Add(h[:], uint8(3))
	f.Add([]byte{}, uint8(4))
	f.Add([]byte{8, 0, 0, 0, 0, 0, 1}, uint8(9))
	r, ports := routed(f)
	f.Fuzz(func(t *testing.T, pkt []byte, last uint8) {
		peer := netip.AddrFrom4([4]byte{127, 0, 0, last})
		got := r.Route(pkt, peer)
		if peer != peer3 && peer != peer4 {
			if got != nil {
				t.Fatalf("a port for stranger %s", peer)
			}
			return
		}
		mine := false
		for k, p := range ports {
			mine = mine || (k.peer == peer && p == got)
		}
		if !mine {
			t.Fatalf("%s's packet went to another peer's port, or none", peer)
		}
		if len(pkt) >= HeaderLen {
			if p := ports[route{peer, uint32(pkt[4])<<16 | uint32(pkt[5])<<8 | uint32(pkt[6])}]; p != nil && p != got {
				t.Fatal("not the port of the packet's vni")
			}
		}
	})
}
