package tunnel

import (
	"net/netip"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/umlswitch/umlswitch/fabric"
	"github.com/umlswitch/umlswitch/frame"
	"github.com/umlswitch/umlswitch/internal/mmsg"
)

// sockaddr lays out a as recvmmsg stores a sender.
func sockaddr(a netip.AddrPort) []byte {
	s := encodeSockaddr(a)
	return s.b[:s.n]
}

func TestDecodeSockaddr(t *testing.T) {
	for _, a := range []string{"127.0.0.1:17002", "[fd00::4]:1", "0.0.0.0:0", "[::]:65535"} {
		want := netip.MustParseAddrPort(a)
		if got := decodeSockaddr(sockaddr(want)); got != want {
			t.Errorf("decodeSockaddr(%s) = %s", want, got)
		}
	}
	mapped := netip.AddrPortFrom(netip.MustParseAddr("::ffff:127.0.0.1"), 7)
	if got := decodeSockaddr(sockaddr(mapped)); got != netip.MustParseAddrPort("127.0.0.1:7") {
		t.Errorf("a v4-mapped sender decodes as %s", got)
	}
	for _, b := range [][]byte{nil, make([]byte, 15), append([]byte{byte(unix.AF_INET6), 0}, make([]byte, 20)...)} {
		if got := decodeSockaddr(b); got.IsValid() || got.Addr().IsValid() {
			t.Errorf("decodeSockaddr(%x) = %s", b, got)
		}
	}
}

// A port with OnlyFromPeer takes packets from its peer alone: the same
// address from another UDP port, or another address, is the endpoint's
// unknown and reaches no port. Without it (GRE, VXLAN) the router's word
// is final. The check allocates nothing.
func TestOnlyFromPeer(t *testing.T) {
	for _, c := range []struct {
		name     string
		peer     string // the port's configured peer
		sender   string
		only     bool
		accepted bool
	}{
		{"udp peer", "127.0.0.4:17002", "127.0.0.4:17002", true, true},
		{"udp same address, other port", "127.0.0.4:17002", "127.0.0.4:40000", true, false},
		{"udp other address", "127.0.0.4:17002", "127.0.0.1:17002", true, false},
		{"udp6 peer", "[fd00::4]:17002", "[fd00::4]:17002", true, true},
		{"udp6 other port", "[fd00::4]:17002", "[fd00::4]:17003", true, false},
		{"v4-mapped peer", "[::ffff:127.0.0.4]:17002", "127.0.0.4:17002", true, true},
		{"raw peer", "127.0.0.4:0", "127.0.0.4:0", true, true},
		{"raw other address", "127.0.0.4:0", "127.0.0.9:0", true, false},
		{"unchecked port, anyone", "127.0.0.4:17002", "127.0.0.9:1", false, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := &Endpoint{depth: 1, maxFrame: 200}
			p := e.NewPort(PortConfig{Peer: netip.MustParseAddrPort(c.peer), OnlyFromPeer: c.only, CounterAt: -1,
				Check: func([]byte) (int, fabric.DropReason) { return 4, 0 }})
			p.id = 5
			e.router = fixedRouter{p}
			v := frame.NewVector(1, 200+slack)
			e.rx, e.names, e.rxVec = mmsg.NewBatch(1, 1), make([][sockaddrLen]byte, 1), v
			n := copy(e.names[0][:], sockaddr(netip.MustParseAddrPort(c.sender)))
			e.rx.Hdrs[0].Msg.Namelen = uint32(n)
			pkt := append([]byte{1, 0, 0, 0}, make([]byte, 60)...)
			copy(v.Bufs[0][frame.Headroom-e.rxHint:], pkt)
			e.rx.Hdrs[0].Len = uint32(len(pkt))
			e.decap(v, 0)
			if got := v.Ports[0] == 5 && v.Sizes[0] == 60; got != c.accepted {
				t.Fatalf("accepted %v (port %d, size %d), want %v", got, v.Ports[0], v.Sizes[0], c.accepted)
			}
			if !c.accepted && (v.Ports[0] != frame.NoPort || e.unknown.Load() != 1) {
				t.Fatalf("a stranger's packet: port %d, unknown %d", v.Ports[0], e.unknown.Load())
			}
			if a := testing.AllocsPerRun(100, func() { e.decap(v, 0) }); a != 0 {
				t.Errorf("decap allocates %v times", a)
			}
		})
	}
}
