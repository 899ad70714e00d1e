package l2tpv3

import (
	"net/netip"
	"testing"

	"github.com/umlswitch/umlswitch/tunnel"
)

// The router finds a packet's port by its session alone (the endpoint then
// checks the sender: TestOnlyTheSessionsPeer); an unknown session goes
// nowhere (the endpoint counts it), even when the sender has ports.
func TestRoute(t *testing.T) {
	for _, udp := range []bool{true, false} {
		l := Layout{UDP: udp, Cookie: 4}
		r := &router{sessionAt: l.SessionAt()}
		p11, p21 := new(tunnel.Port), new(tunnel.Port)
		for s, p := range map[uint32]*tunnel.Port{11: p11, 21: p21} {
			if err := r.Claim(s, struct{}{}, p); err != nil {
				t.Fatal(err)
			}
			r.Publish(s, struct{}{}, p)
		}
		if err := r.Claim(21, struct{}{}, new(tunnel.Port)); err == nil {
			t.Fatal("a session was claimed twice")
		}
		pkt := func(session uint32) []byte { h, _ := Encode(l, session, 0x1111); return append(h, 1, 2, 3) }
		for _, c := range []struct {
			name string
			pkt  []byte
			peer netip.Addr
			want *tunnel.Port
		}{
			{"session 11", pkt(11), peer4, p11},
			{"session 21, another sender", pkt(21), netip.MustParseAddr("127.0.0.9"), p21},
			{"unknown session", pkt(77), peer4, nil},
			{"cut before the session", pkt(11)[:l.SessionAt()+3], peer4, nil},
		} {
			if got := r.Route(c.pkt, c.peer); got != c.want {
				t.Errorf("udp %v, %s: wrong port", udp, c.name)
			}
		}
		s11 := pkt(11)
		if a := testing.AllocsPerRun(100, func() { r.Route(s11, peer4) }); a != 0 {
			t.Errorf("Route allocates %v times", a)
		}
	}
}
