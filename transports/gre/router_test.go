package gre

import (
	"net/netip"
	"testing"

	"github.com/umlswitch/umlswitch/tunnel"
)

// Keyed and keyless ports of one peer: a packet goes to the port of its
// key (or of no key), else to its peer's first port; a peer with one port
// gets every packet it sends, whatever its key.
func TestRoute(t *testing.T) {
	var r router
	peer5 := netip.MustParseAddr("127.0.0.5")
	ports := make(map[string]*tunnel.Port)
	for _, c := range []struct {
		name   string
		peer   netip.Addr
		hasKey bool
		key    uint32
	}{
		{"peer3 no key", peer3, false, 0},
		{"peer4 key 5", peer4, true, 5},
		{"peer4 key 6", peer4, true, 6},
		{"peer4 no key", peer4, false, 0},
		{"peer5 key 0", peer5, true, 0},
		{"peer5 key 1", peer5, true, 1},
	} {
		p := new(tunnel.Port)
		k := routeKey{c.hasKey, c.key}
		if err := r.Claim(c.peer, k, p); err != nil {
			t.Fatal(err)
		}
		r.Publish(c.peer, k, p)
		ports[c.name] = p
	}
	pkt := func(hasKey bool, key uint32) []byte { h, _ := Encode(hasKey, key, true); return append(h, 1, 2, 3) }
	for _, c := range []struct {
		name string
		pkt  []byte
		peer netip.Addr
		want string
	}{
		{"peer3, no key", pkt(false, 0), peer3, "peer3 no key"},
		{"peer3 has one port: a keyed packet goes to it", pkt(true, 9), peer3, "peer3 no key"},
		{"peer4, key 5", pkt(true, 5), peer4, "peer4 key 5"},
		{"peer4, key 6", pkt(true, 6), peer4, "peer4 key 6"},
		{"peer4, no key", pkt(false, 0), peer4, "peer4 no key"},
		{"peer4, unknown key: its first port", pkt(true, 7), peer4, "peer4 key 5"},
		{"peer4, key flag but cut: as no key", []byte{0x20, 0, 0x65, 0x58, 0, 0}, peer4, "peer4 no key"},
		{"peer5, key 0 is not no key", pkt(true, 0), peer5, "peer5 key 0"},
		{"peer5, key 1", pkt(true, 1), peer5, "peer5 key 1"},
		{"peer5, no key: its first port", pkt(false, 0), peer5, "peer5 key 0"},
		{"stranger", pkt(false, 0), netip.MustParseAddr("127.0.0.9"), ""},
	} {
		if got := r.Route(c.pkt, c.peer); got != ports[c.want] {
			t.Errorf("%s: wrong port, want %q's", c.name, c.want)
		}
	}
	key6 := pkt(true, 6)
	if a := testing.AllocsPerRun(100, func() { r.Route(key6, peer4) }); a != 0 {
		t.Errorf("Route allocates %v times", a)
	}
}
