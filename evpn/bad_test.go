package evpn

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"

	"github.com/umlswitch/umlswitch/configs"
	"github.com/umlswitch/umlswitch/frame"
)

var (
	vtepR = netip.MustParseAddr("192.0.2.9")
	vtepQ = netip.MustParseAddr("192.0.2.7")
	macR  = frame.MAC{2, 0, 0, 0, 0, 0x91}
	macQ  = frame.MAC{2, 0, 0, 0, 0, 0x71}
)

// TestBadRoutes feeds the speaker, from a raw GoBGP peer, routes it must
// count and ignore (or ignore silently), one kind at a time, and checks
// what the data plane holds after each.
func TestBadRoutes(t *testing.T) {
	dp := newFakeDP()
	s, raw, cfg := rawSetup(t, dp, sw("a", 100))
	noState := func(what string) {
		t.Helper()
		if ts, rs := dp.tunnelSet(), dp.remoteSet(); len(ts) != 0 || len(rs) != 0 {
			t.Fatalf("%s: tunnels %v, remote MACs %v", what, ts, rs)
		}
	}
	// step announces routes and checks, once the speaker took them in,
	// which counters moved by how much.
	step := func(what string, want map[string]uint64, rs ...rt) {
		t.Helper()
		before := s.Stats().Ignored
		raw.announce(rs...)
		raw.sync(s)
		if got := ignoredDiff(before, s.Stats().Ignored); !maps.Equal(got, want) {
			t.Fatalf("%s: ignored %v, want %v", what, got, want)
		}
	}
	var all []rt

	// A VNI no switch serves: counted, kept for later, nothing installed.
	unknown := []rt{{typ: 3, vni: 300, vtep: vtepR}, {typ: 2, vni: 300, vtep: vtepR, mac: macR}}
	step("unknown vni", map[string]uint64{"unknown-vni": 2}, unknown...)
	noState("unknown vni")
	all = append(all, unknown...)

	// Martian next hops. 0.0.0.0 reaches the speaker as the raw peer's
	// own address (GoBGP fills in an unspecified iBGP next hop): loopback,
	// martian still.
	for i, nh := range []string{"0.0.0.0", "127.0.0.5", "224.0.0.5", "255.255.255.255", "169.254.1.1",
		vtepA.String(), "2001:db8::9", "::ffff:127.0.0.9"} {
		x := rt{typ: 3, vni: 100, vtep: netip.MustParseAddr(nh), rd: uint16(i + 1)}
		y := rt{typ: 2, vni: 100, vtep: x.vtep, rd: x.rd, mac: frame.MAC{2, 0, 0, 0, 1, byte(i)}}
		step("martian "+nh, map[string]uint64{"martian-next-hop": 2}, x, y)
		noState("martian " + nh)
		all = append(all, x, y)
	}

	// A type-3 route without PMSI, or with another tunnel than ingress
	// replication: FRR would not flood to it either.
	x := rt{typ: 3, vni: 100, vtep: vtepR, noPMSI: true, rd: 3}
	step("no pmsi", map[string]uint64{"no-pmsi": 1}, x)
	noState("no pmsi")
	x2 := rt{typ: 3, vni: 100, vtep: vtepR, pmsiType: bgp.PMSI_TUNNEL_TYPE_PIM_SM_TREE, rd: 4}
	step("pim-sm pmsi", map[string]uint64{"no-pmsi": 1}, x2)
	noState("pim-sm pmsi")
	all = append(all, x, x2)

	// An IPv4 next hop written as an IPv4-mapped IPv6 address is that
	// IPv4 address.
	x = rt{typ: 3, vni: 100, vtep: netip.MustParseAddr("192.0.2.8"), nh: netip.MustParseAddr("::ffff:192.0.2.8"), rd: 5}
	step("mapped next hop", map[string]uint64{}, x)
	if ts := dp.tunnelSet(); !slices.Equal(ts["a"], []netip.Addr{x.vtep}) || len(ts) != 1 {
		t.Fatalf("mapped next hop: tunnels %v", ts)
	}
	raw.withdraw(x)
	waitFor(t, "mapped next hop withdrawn", func() bool { return len(dp.tunnelSet()) == 0 })

	// Another family: the session does not carry it, and nothing comes of it.
	raw.announceIPv4("203.0.113.0/24", vtepR)
	step("ipv4 unicast", map[string]uint64{})
	noState("ipv4 unicast")
	if st := s.Stats(); st.Up != 1 || st.Received != len(unknown) {
		t.Fatalf("after an IPv4 route: %+v", st)
	}

	// VLAN-aware bundle routes (non-zero Ethernet tag).
	etag := []rt{{typ: 3, vni: 100, vtep: vtepQ, etag: 100}, {typ: 2, vni: 100, vtep: vtepQ, etag: 100, mac: macQ}}
	step("ethernet tag", map[string]uint64{"ethernet-tag": 2}, etag...)
	noState("ethernet tag")
	all = append(all, etag...)

	// Another encapsulation than VXLAN is refused; none at all is taken
	// as VXLAN (GoBGP and older FRR leave it out).
	x = rt{typ: 3, vni: 100, vtep: netip.MustParseAddr("192.0.2.5"), noEncap: true}
	step("no encapsulation community", map[string]uint64{}, x)
	waitFor(t, "tunnel without encapsulation community", func() bool { return dp.hasTunnel("a", 100, x.vtep) })
	raw.withdraw(x)
	waitFor(t, "tunnel withdrawn", func() bool { return !dp.hasTunnel("a", 100, x.vtep) })

	// A group address in a MAC route.
	x = rt{typ: 2, vni: 100, vtep: vtepR, mac: frame.MAC{1, 0, 0x5e, 0, 0, 1}}
	step("multicast mac", map[string]uint64{"malformed": 1}, x)
	x2 = rt{typ: 2, vni: 100, vtep: vtepR, mac: frame.Broadcast}
	step("broadcast mac", map[string]uint64{"malformed": 1}, x2)
	all = append(all, x, x2)

	// Types 1, 4 and 5: not for an L2 switch, ignored without a count.
	other := []rt{{typ: 1, vni: 100, vtep: vtepR}, {typ: 4, vni: 100, vtep: vtepR}, {typ: 5, vni: 100, vtep: vtepR}}
	step("types 1, 4, 5", map[string]uint64{}, other...)
	noState("types 1, 4, 5")
	if got, _ := s.Routes(); len(got) != len(unknown) {
		t.Fatalf("received routes kept: %+v", got)
	}
	all = append(all, other...)

	// A MAC route before its VTEP announced the VNI: kept, not
	// installed (there is no tunnel to send on) until the type-3 comes.
	early := rt{typ: 2, vni: 100, vtep: vtepQ, mac: macQ, rd: 7}
	step("mac before vni", map[string]uint64{}, early)
	noState("mac before vni")
	imet := rt{typ: 3, vni: 100, vtep: vtepQ, rd: 7}
	step("vni after mac", map[string]uint64{}, imet)
	waitFor(t, "macQ installed once its VTEP joined", func() bool { return dp.remoteAt("a", macQ) == vtepQ })
	if !dp.hasTunnel("a", 100, vtepQ) {
		t.Fatal("no tunnel to vtepQ")
	}
	all = append(all, early, imet)

	// A good route replaced by a martian one (same key): the old goes.
	good := rt{typ: 3, vni: 100, vtep: netip.MustParseAddr("192.0.2.6"), rd: 9}
	raw.announce(good)
	waitFor(t, "good tunnel", func() bool { return dp.hasTunnel("a", 100, good.vtep) })
	bad := good
	bad.nh = netip.MustParseAddr("127.0.0.6")
	step("good replaced by martian", map[string]uint64{"martian-next-hop": 1}, bad)
	if dp.hasTunnel("a", 100, good.vtep) {
		t.Fatal("a route replaced by a martian one keeps its tunnel")
	}
	all = append(all, bad)

	// The switch of VNI 300 comes: the routes kept for it are imported.
	if err := s.Apply(cfg, []configs.Switch{sw("a", 100), sw("c", 300)}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "vni 300 imported", func() bool { return dp.hasTunnel("c", 300, vtepR) && dp.remoteAt("c", macR) == vtepR })

	// Everything withdrawn: nothing left, and nothing counted.
	before := s.Stats().Ignored
	raw.withdraw(all...)
	raw.sync(s)
	noState("all withdrawn")
	if got, _ := s.Routes(); len(got) != 0 {
		t.Fatalf("received routes left: %+v", got)
	}
	if st := s.Stats(); st.Received != 0 || st.VTEPs != 0 || st.RemoteMACs != 0 || !maps.Equal(st.Ignored, before) {
		t.Fatalf("stats after withdrawing all: %+v (ignored before %v)", st, before)
	}
	if ts := slices.Collect(maps.Keys(dp.tunnelSet())); len(ts) != 0 {
		t.Fatalf("tunnels left: %v", ts)
	}
}

// TestZeroMAC: 00:00:00:00:00:00 is no station's address (the kernel's
// bridge drops frames from it, FRR's kernel VTEP uses it for the flood
// entry); a MAC route for it is counted and installs nothing.
func TestZeroMAC(t *testing.T) {
	dp := newFakeDP()
	s, raw, _ := rawSetup(t, dp, sw("a", 100))
	raw.announce(rt{typ: 3, vni: 100, vtep: vtepR})
	waitFor(t, "tunnel to vtepR", func() bool { return dp.hasTunnel("a", 100, vtepR) })
	before := s.Stats().Ignored
	raw.announce(rt{typ: 2, vni: 100, vtep: vtepR, mac: frame.MAC{}})
	raw.sync(s)
	if got := ignoredDiff(before, s.Stats().Ignored); !maps.Equal(got, map[string]uint64{"malformed": 1}) {
		t.Errorf("ignored %v, want malformed 1", got)
	}
	if rs := dp.remoteSet(); len(rs) != 0 {
		t.Errorf("remote MACs %v", rs)
	}
}

// TestOddLabels: the VNI of a received route is its route target's, as
// FRR has it (e2e/frr_test.go: "the label is not looked at"); labels of 0,
// 2^24-1, another VNI's, or a second (L3) label change nothing.
func TestOddLabels(t *testing.T) {
	dp := newFakeDP()
	s, raw, _ := rawSetup(t, dp, sw("a", 100), sw("b", 200))
	raw.announce(rt{typ: 3, vni: 100, vtep: vtepR, rd: 1}, rt{typ: 3, vni: 200, vtep: vtepR, rd: 2})
	waitFor(t, "vtepR in both VNIs", func() bool { return dp.hasTunnel("a", 100, vtepR) && dp.hasTunnel("b", 200, vtepR) })
	macs := map[frame.MAC]netip.Addr{}
	var rs []rt
	for i, labels := range [][]uint32{{0}, {1<<24 - 1}, {200}, {100, 5000}} {
		m := frame.MAC{2, 0, 0, 0, 7, byte(i)}
		x := rt{typ: 2, vni: 100, vtep: vtepR, rd: 1, mac: m, labels: labels}
		if len(labels) == 2 {
			x.ip = netip.MustParseAddr("198.51.100.7")
		}
		rs = append(rs, x)
		macs[m] = vtepR
	}
	before := s.Stats().Ignored
	raw.announce(rs...)
	raw.sync(s)
	if got := ignoredDiff(before, s.Stats().Ignored); len(got) != 0 {
		t.Fatalf("ignored %v", got)
	}
	if got := dp.remoteSet(); !maps.Equal(got["a"], macs) || len(got) != 1 {
		t.Fatalf("remote MACs %v, want %v in a only", got, macs)
	}
	got, _ := s.Routes()
	for _, ri := range got {
		if ri.Type == 2 && (ri.VNI != 100 || ri.Switch != "a") {
			t.Fatalf("route shown as %+v", ri)
		}
	}
	raw.withdraw(rs...)
	waitFor(t, "labelled routes withdrawn", func() bool { return len(dp.remoteSet()) == 0 })
}

// TestRouteWithoutLabel: a MAC route with no label at all cannot be
// parsed; GoBGP resets the session (RFC 7606: an unreadable NLRI), so
// the peer's other routes go too, and nothing stays installed. Once the
// peer stops sending it, the session and the good routes come back.
func TestRouteWithoutLabel(t *testing.T) {
	if testing.Short() {
		t.Skip("a session reset and GoBGP's idle hold time (5 s)")
	}
	dp := newFakeDP()
	s, raw, _ := rawSetup(t, dp, sw("a", 100))
	good := []rt{{typ: 3, vni: 100, vtep: vtepR}, {typ: 2, vni: 100, vtep: vtepR, mac: macR}}
	raw.announce(good...)
	waitFor(t, "good routes", func() bool { return dp.remoteAt("a", macR) == vtepR })
	bad := rt{typ: 2, vni: 100, vtep: vtepR, mac: macQ, noLabel: true}
	raw.announce(bad)
	waitFor(t, "the session reset", func() bool { return s.Stats().Up == 0 })
	waitFor(t, "the peer's routes gone", func() bool {
		return len(dp.tunnelSet()) == 0 && len(dp.remoteSet()) == 0 && s.Stats().Received == 0
	})
	raw.withdraw(bad)
	waitFor(t, "the session back", func() bool { return s.Stats().Up == 1 && raw.established() })
	waitFor(t, "good routes back", func() bool { return dp.remoteAt("a", macR) == vtepR })
	if dp.remoteAt("a", macQ).IsValid() {
		t.Fatal("the route without label installed")
	}
}

// TestOddPaths hands the speaker, as GoBGP's best path callback would,
// paths no BGP message can carry but a GoBGP change might: no NLRI, a
// non-EVPN family or NLRI, a MAC of 3 bytes, no label, no next hop, the
// next hop only in NEXT_HOP, nil attributes and communities. None panics,
// each is counted as it should, and only the usable ones install.
func TestOddPaths(t *testing.T) {
	dp := newFakeDP()
	s := New(nil, dp, nil)
	t.Cleanup(s.Close)
	cfg := &configs.EVPN{ASN: rawASN, RouterID: netip.MustParseAddr("10.0.0.1"), VTEP: vtepA, VXLANPort: 4789,
		HoldTime: 9 * time.Second}
	if err := s.Apply(cfg, []configs.Switch{sw("a", 100)}); err != nil {
		t.Fatal(err)
	}
	peer := netip.MustParseAddr("127.0.0.2")
	path := func(x rt, edit func(p *apiutil.Path)) *apiutil.Path {
		p := x.path(t)
		p.PeerAddress = peer
		if edit != nil {
			edit(p)
		}
		return p
	}
	without := func(drop func(bgp.PathAttributeInterface) bool) func(p *apiutil.Path) {
		return func(p *apiutil.Path) { p.Attrs = slices.DeleteFunc(p.Attrs, drop) }
	}
	isReach := func(a bgp.PathAttributeInterface) bool { _, ok := a.(*bgp.PathAttributeMpReachNLRI); return ok }
	macRoute := func(p *apiutil.Path) *bgp.EVPNMacIPAdvertisementRoute {
		return p.Nlri.(*bgp.EVPNNLRI).RouteTypeData.(*bgp.EVPNMacIPAdvertisementRoute)
	}
	hop, err := bgp.NewPathAttributeNextHop(vtepQ)
	if err != nil {
		t.Fatal(err)
	}
	prefix, err := bgp.NewIPAddrPrefix(netip.MustParsePrefix("203.0.113.0/24"))
	if err != nil {
		t.Fatal(err)
	}
	feed := func(ps ...*apiutil.Path) {
		t.Helper()
		s.mu.Lock()
		gen := s.gen
		s.mu.Unlock()
		s.onBest(gen, ps)
	}
	m := func(i byte) frame.MAC { return frame.MAC{2, 0, 0, 0, 8, i} }
	feed(path(rt{typ: 3, vni: 100, vtep: vtepR}, nil)) // vtepR's MACs can install
	if !dp.hasTunnel("a", 100, vtepR) {
		t.Fatal("no tunnel to vtepR")
	}

	for _, c := range []struct {
		what    string
		p       *apiutil.Path
		ignored map[string]uint64
		mac     frame.MAC  // installed, if at
		at      netip.Addr // invalid: none
	}{
		{"no nlri", &apiutil.Path{Family: bgp.RF_EVPN, PeerAddress: peer}, nil, frame.MAC{}, netip.Addr{}},
		{"ipv4 unicast", &apiutil.Path{Family: bgp.RF_IPv4_UC, Nlri: prefix, PeerAddress: peer,
			Attrs: []bgp.PathAttributeInterface{hop}}, nil, frame.MAC{}, netip.Addr{}},
		{"evpn family, ipv4 nlri", &apiutil.Path{Family: bgp.RF_EVPN, Nlri: prefix, PeerAddress: peer,
			Attrs: []bgp.PathAttributeInterface{hop}}, map[string]uint64{"malformed": 1}, frame.MAC{}, netip.Addr{}},
		{"own route", path(rt{typ: 2, vni: 100, vtep: vtepR, mac: m(1)}, func(p *apiutil.Path) { p.PeerAddress = netip.Addr{} }),
			nil, m(1), netip.Addr{}},
		{"mac of 3 bytes", path(rt{typ: 2, vni: 100, vtep: vtepR, mac: m(2)}, func(p *apiutil.Path) {
			macRoute(p).MacAddress = macRoute(p).MacAddress[:3]
		}), map[string]uint64{"malformed": 1}, m(2), netip.Addr{}},
		{"no label", path(rt{typ: 2, vni: 100, vtep: vtepR, mac: m(3), noLabel: true}, nil), nil, m(3), vtepR},
		{"label of 32 bits", path(rt{typ: 2, vni: 100, vtep: vtepR, mac: m(4), labels: []uint32{1<<32 - 1}}, nil),
			nil, m(4), vtepR},
		{"no next hop", path(rt{typ: 2, vni: 100, vtep: vtepR, mac: m(5)}, without(isReach)),
			map[string]uint64{"martian-next-hop": 1}, m(5), netip.Addr{}},
		{"pmsi without tunnel id", path(rt{typ: 3, vni: 100, vtep: vtepQ, rd: 1}, func(p *apiutil.Path) {
			for _, a := range p.Attrs {
				if pm, ok := a.(*bgp.PathAttributePmsiTunnel); ok {
					pm.TunnelID = nil
				}
			}
		}), nil, frame.MAC{}, netip.Addr{}},
		{"next hop in NEXT_HOP", path(rt{typ: 2, vni: 100, vtep: vtepQ, mac: m(6)}, func(p *apiutil.Path) {
			without(isReach)(p)
			p.Attrs = append(p.Attrs, hop)
		}), nil, m(6), vtepQ},
		{"nil attributes and communities", path(rt{typ: 2, vni: 100, vtep: vtepR, mac: m(7)}, func(p *apiutil.Path) {
			for _, a := range p.Attrs {
				if ecs, ok := a.(*bgp.PathAttributeExtendedCommunities); ok {
					ecs.Value = append([]bgp.ExtendedCommunityInterface{nil}, ecs.Value...)
				}
			}
			p.Attrs = append([]bgp.PathAttributeInterface{nil}, p.Attrs...)
		}), nil, m(7), vtepR},
		{"withdrawal never announced", path(rt{typ: 2, vni: 100, vtep: vtepR, mac: m(8)}, func(p *apiutil.Path) {
			p.Withdrawal = true
		}), nil, m(8), netip.Addr{}},
	} {
		before := s.Stats().Ignored
		feed(c.p)
		if got := ignoredDiff(before, s.Stats().Ignored); !maps.Equal(got, c.ignored) {
			t.Errorf("%s: ignored %v, want %v", c.what, got, c.ignored)
		}
		if c.mac != (frame.MAC{}) {
			if at := dp.remoteAt("a", c.mac); at != c.at {
				t.Errorf("%s: %s at %v, want %v", c.what, c.mac, at, c.at)
			}
		}
	}
	if ts := dp.tunnelSet(); !slices.Equal(ts["a"], []netip.Addr{vtepQ, vtepR}) {
		t.Errorf("tunnels %v, want vtepQ and vtepR", ts)
	}
}

// TestRouteChangesTarget: a peer announces a MAC route again (same key)
// with the route target of another VNI. The address leaves the first
// switch and goes to the second.
func TestRouteChangesTarget(t *testing.T) {
	dp := newFakeDP()
	s, raw, _ := rawSetup(t, dp, sw("a", 100), sw("b", 200))
	raw.announce(rt{typ: 3, vni: 100, vtep: vtepR, rd: 1}, rt{typ: 3, vni: 200, vtep: vtepR, rd: 2})
	x := rt{typ: 2, vni: 100, vtep: vtepR, rd: 5, mac: macR}
	raw.announce(x)
	waitFor(t, "macR in a", func() bool { return dp.remoteAt("a", macR) == vtepR })
	x.target = 200
	raw.announce(x)
	waitFor(t, "macR in b", func() bool { return dp.remoteAt("b", macR) == vtepR })
	raw.sync(s)
	if at := dp.remoteAt("a", macR); at.IsValid() {
		t.Errorf("macR still in a at %v", at)
	}
	if n := s.Stats().RemoteMACs; n != 1 {
		t.Errorf("%d remote MACs, want 1", n)
	}
	raw.withdraw(x)
	raw.sync(s)
	if rs := dp.remoteSet(); len(rs) != 0 {
		t.Errorf("withdrawn, and still remote MACs %v", rs)
	}
}

// TestGlobalChangeAnnouncesAgain: a changed global setting restarts the
// speaker; its switches announce themselves again from the new server,
// with the new VTEP address. (What the server announces is read from its
// own RIB: a second GoBGP server in the process, a raw peer, would race
// with this one's start on GoBGP's global route selection options.)
func TestGlobalChangeAnnouncesAgain(t *testing.T) {
	dp := newFakeDP()
	s := New(nil, dp, nil)
	t.Cleanup(s.Close)
	cfg := &configs.EVPN{ASN: rawASN, RouterID: netip.MustParseAddr("10.0.0.1"), VTEP: vtepA, VXLANPort: 4789,
		HoldTime: 9 * time.Second}
	if err := s.Apply(cfg, []configs.Switch{sw("a", 100)}); err != nil {
		t.Fatal(err)
	}
	dp.learn("a", macA)
	s.MACsChanged("a")
	// own lists the next hops of the speaker's own routes: type-3, and
	// the MAC route of macA.
	own := func() (imets, macs []netip.Addr) {
		s.mu.Lock()
		srv := s.srv
		s.mu.Unlock()
		_ = srv.ListPath(apiutil.ListPathRequest{TableType: api.TableType_TABLE_TYPE_GLOBAL, Family: bgp.RF_EVPN},
			func(_ bgp.NLRI, ps []*apiutil.Path) {
				for _, p := range ps {
					r, err := decode(p)
					switch {
					case err != nil || p.PeerAddress.IsValid():
					case r.Type == bgp.EVPN_INCLUSIVE_MULTICAST_ETHERNET_TAG:
						imets = append(imets, r.VTEP)
					case r.MAC == macA:
						macs = append(macs, r.VTEP)
					}
				}
			})
		return imets, macs
	}
	announced := func(vtep netip.Addr) func() bool {
		return func() bool {
			imets, macs := own()
			return slices.Equal(imets, []netip.Addr{vtep}) && slices.Equal(macs, []netip.Addr{vtep})
		}
	}
	waitFor(t, "type-3 and macA announced", announced(vtepA))
	moved := *cfg
	moved.VTEP = netip.MustParseAddr("192.0.2.3")
	if err := s.Apply(&moved, []configs.Switch{sw("a", 100)}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "type-3 and macA announced from the new VTEP", announced(moved.VTEP))
}

// TestWithdrawEverything: a peer with VTEPs and addresses in two VNIs, one
// of them an address that moved there from here, withdraws all of it in
// one go; nothing is left, the speaker still announces its own, and all
// comes back when the peer announces it again.
func TestWithdrawEverything(t *testing.T) {
	dp := newFakeDP()
	s, raw, _ := rawSetup(t, dp, sw("a", 100), sw("b", 200))
	dp.learn("a", macA)
	s.MACsChanged("a")
	waitFor(t, "macA announced", func() bool { _, ok := raw.received()[macA]; return ok })

	var rs []rt
	want := map[string]map[frame.MAC]netip.Addr{"a": {}, "b": {}}
	for i, v := range []netip.Addr{vtepR, vtepQ, netip.MustParseAddr("192.0.2.5")} {
		for j, vni := range []uint32{100, 200} {
			rd := uint16(j + 1)
			rs = append(rs, rt{typ: 3, vni: vni, vtep: v, rd: rd})
			for k := range 3 {
				m := frame.MAC{2, 0, 0, byte(i), byte(vni / 100), byte(k)}
				rs = append(rs, rt{typ: 2, vni: vni, vtep: v, rd: rd, mac: m})
				want[map[uint32]string{100: "a", 200: "b"}[vni]][m] = v
			}
		}
	}
	rs = append(rs, rt{typ: 2, vni: 100, vtep: vtepR, rd: 1, mac: macA, seq: 1}) // moved away from here
	want["a"][macA] = vtepR
	announced := func() bool {
		got := dp.remoteSet()
		_, mine := raw.received()[macA]
		return maps.Equal(got["a"], want["a"]) && maps.Equal(got["b"], want["b"]) && len(dp.tunnelSet()["a"]) == 3 &&
			len(dp.tunnelSet()["b"]) == 3 && !mine
	}
	raw.announce(rs...)
	waitFor(t, "everything installed, macA moved away", announced)

	raw.withdraw(rs...)
	raw.sync(s)
	if ts, rm := dp.tunnelSet(), dp.remoteSet(); len(ts) != 0 || len(rm) != 0 {
		t.Fatalf("withdrawn, and left: tunnels %v, remote MACs %v", ts, rm)
	}
	if st := s.Stats(); st.Received != 0 || st.VTEPs != 0 || st.RemoteMACs != 0 || st.Up != 1 {
		t.Fatalf("stats after withdrawing everything: %+v", st)
	}
	if got := raw.imets(); !slices.Equal(got, []netip.Addr{vtepA, vtepA}) {
		t.Fatalf("the speaker's own type-3 routes: %v", got)
	}

	raw.announce(rs...)
	waitFor(t, "everything back", announced)
	dp.checkOrder(t)
}

// TestFlappingPeer takes the raw peer's session down again and again, in
// the three ways GoBGP offers, at times when the speaker has installed
// its routes and at times when they are still arriving, while the peer's
// routes and the speaker's own addresses change between sessions. While
// the session is down nothing of the peer's may stay; at the end exactly
// the last session's routes are installed, and the data plane never saw
// a tunnel made twice or removed when not there.
func TestFlappingPeer(t *testing.T) {
	if testing.Short() {
		t.Skip("GoBGP waits 5 s in idle after each session drop")
	}
	dp := newFakeDP()
	s, raw, _ := rawSetup(t, dp, sw("a", 100))
	// Slow tunnel changes: the peer's next session comes while the
	// speaker is still taking the last one's routes out.
	dp.mu.Lock()
	dp.slow = 20 * time.Millisecond
	dp.mu.Unlock()

	// Generation i: two VTEPs (of four, turning) with three MACs each.
	gen := func(i int) (rs []rt, vteps []netip.Addr, macs map[frame.MAC]netip.Addr) {
		macs = make(map[frame.MAC]netip.Addr)
		for _, k := range []int{i % 4, (i + 1) % 4} {
			v := netip.AddrFrom4([4]byte{198, 51, 100, byte(1 + k)})
			vteps = append(vteps, v)
			rs = append(rs, rt{typ: 3, vni: 100, vtep: v})
			for j := range 3 {
				m := frame.MAC{2, 0, 0, 1, byte(i), byte(k<<4 | j)}
				rs = append(rs, rt{typ: 2, vni: 100, vtep: v, mac: m})
				macs[m] = v
			}
		}
		slices.SortFunc(vteps, netip.Addr.Compare)
		return rs, vteps, macs
	}
	local := func(i int) frame.MAC { return frame.MAC{2, 0, 0, 2, 0, byte(i)} }
	installed := func(vteps []netip.Addr, macs map[frame.MAC]netip.Addr) func() bool {
		return func() bool {
			return slices.Equal(dp.tunnelSet()["a"], vteps) && maps.Equal(dp.remoteSet()["a"], macs)
		}
	}

	ctx := context.Background()
	peer := speakerAddr.String()
	var prev []rt
	const flaps = 4
	for i := range flaps {
		waitFor(t, fmt.Sprintf("session %d up", i), func() bool { return s.Stats().Up == 1 && raw.established() })
		rs, vteps, macs := gen(i)
		if len(prev) > 0 {
			raw.withdraw(prev...)
		}
		raw.announce(rs...)
		prev = rs
		dp.learn("a", local(i))
		if i >= 2 {
			dp.forget("a", local(i-2))
		}
		s.MACsChanged("a")
		if i%2 == 0 {
			waitFor(t, fmt.Sprintf("generation %d installed", i), installed(vteps, macs))
		}
		switch i % 3 {
		case 0:
			if err := raw.srv.ResetPeer(ctx, &api.ResetPeerRequest{Address: peer}); err != nil {
				t.Fatal(err)
			}
		case 1:
			if err := raw.srv.DisablePeer(ctx, &api.DisablePeerRequest{Address: peer}); err != nil {
				t.Fatal(err)
			}
			time.Sleep(100 * time.Millisecond)
			if err := raw.srv.EnablePeer(ctx, &api.EnablePeerRequest{Address: peer}); err != nil {
				t.Fatal(err)
			}
		case 2:
			if err := raw.srv.DeletePeer(ctx, &api.DeletePeerRequest{Address: peer}); err != nil {
				t.Fatal(err)
			}
			raw.addPeer()
		}
		// Down: nothing of the peer's may stay.
		waitFor(t, fmt.Sprintf("session %d down, its routes gone", i), func() bool {
			st := s.Stats()
			return st.Up == 0 && st.Received == 0 && len(dp.tunnelSet()) == 0 && len(dp.remoteSet()) == 0
		})
	}

	_, vteps, macs := gen(flaps - 1)
	waitFor(t, "the session back", func() bool { return s.Stats().Up == 1 && raw.established() })
	raw.sync(s)
	waitFor(t, "the last session's routes", installed(vteps, macs))
	wantLocal := map[frame.MAC]bool{local(flaps - 1): true, local(flaps - 2): true}
	waitFor(t, "the raw peer holds the speaker's addresses", func() bool {
		got := raw.received()
		return len(got) == len(wantLocal) && !slices.ContainsFunc(slices.Collect(maps.Keys(got)),
			func(m frame.MAC) bool { return !wantLocal[m] })
	})
	st := s.Stats()
	if st.Received != len(prev) || st.VTEPs != len(vteps) || st.RemoteMACs != len(macs) {
		t.Fatalf("stats %+v, want %d routes, %d VTEPs, %d remote MACs", st, len(prev), len(vteps), len(macs))
	}
	if len(dp.tunnelSet()) != 1 || len(dp.remoteSet()) != 1 {
		t.Fatalf("tunnels %v, remote %v", dp.tunnelSet(), dp.remoteSet())
	}
	dp.checkOrder(t)
}

// TestMACsChangedNeverWaits: the forwarding path calls MACsChanged; it
// must return while the speaker's lock is held (by a slow data plane
// call, a burst of routes).
func TestMACsChangedNeverWaits(t *testing.T) {
	s := New(nil, newFakeDP(), nil)
	defer s.Close()
	s.mu.Lock()
	defer s.mu.Unlock()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 3 { // the wake channel fills: the later calls must not block either
			s.MACsChanged("a")
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("MACsChanged waits on the speaker's lock")
	}
}

// checkOrder fails t if the data plane saw a call out of order (a tunnel
// made twice, one removed when not there).
func (d *fakeDP) checkOrder(t *testing.T) {
	t.Helper()
	d.mu.Lock()
	odd := slices.Clone(d.odd)
	d.mu.Unlock()
	if len(odd) > 0 {
		t.Fatalf("data plane calls out of order: %v", odd)
	}
}
