package evpn

import (
	"context"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"github.com/osrg/gobgp/v4/pkg/server"

	"github.com/umlswitch/umlswitch/configs"
	"github.com/umlswitch/umlswitch/frame"
)

// rawPeer is a bare GoBGP server in the test process, listening on
// 127.0.0.2: it announces whatever a test builds, however wrong, to the
// speaker under test at 127.0.0.1.
type rawPeer struct {
	t    *testing.T
	srv  *server.BgpServer
	seen int // sentinels sent, for sync
}

const rawASN = 65000

var speakerAddr = netip.MustParseAddr("127.0.0.1")

func startRaw(t *testing.T, port uint16) *rawPeer {
	t.Helper()
	srv := server.NewBgpServer(server.LoggerOption(slog.New(slog.DiscardHandler), new(slog.LevelVar)))
	go srv.Serve()
	if err := srv.StartBgp(context.Background(), &api.StartBgpRequest{Global: &api.Global{Asn: rawASN,
		RouterId: "10.0.0.9", ListenPort: int32(port), ListenAddresses: []string{"127.0.0.2"}}}); err != nil {
		srv.Stop()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = srv.StopBgp(context.Background(), &api.StopBgpRequest{})
		srv.Stop()
	})
	// The speaker's routes stay out of the raw peer's RIB (fromSpeaker
	// reads them before policy): GoBGP's AddPath checks a MAC route it
	// originates against the mobility sequence numbers of the MAC routes
	// in its RIB, and would refuse or rewrite what a test announces.
	ctx := context.Background()
	err := srv.AddDefinedSet(ctx, &api.AddDefinedSetRequest{DefinedSet: &api.DefinedSet{
		DefinedType: api.DefinedType_DEFINED_TYPE_NEIGHBOR, Name: "speaker", List: []string{speakerAddr.String() + "/32"}}})
	if err == nil {
		err = srv.AddPolicy(ctx, &api.AddPolicyRequest{Policy: &api.Policy{Name: "drop-speaker", Statements: []*api.Statement{{
			Name:       "drop-speaker",
			Conditions: &api.Conditions{NeighborSet: &api.MatchSet{Type: api.MatchSet_TYPE_ANY, Name: "speaker"}},
			Actions:    &api.Actions{RouteAction: api.RouteAction_ROUTE_ACTION_REJECT}}}}})
	}
	if err == nil {
		err = srv.SetPolicyAssignment(ctx, &api.SetPolicyAssignmentRequest{Assignment: &api.PolicyAssignment{
			Name: "global", Direction: api.PolicyDirection_POLICY_DIRECTION_IMPORT,
			Policies: []*api.Policy{{Name: "drop-speaker"}}, DefaultAction: api.RouteAction_ROUTE_ACTION_ACCEPT}})
	}
	if err != nil {
		t.Fatal(err)
	}
	r := &rawPeer{t: t, srv: srv}
	r.addPeer()
	return r
}

func (r *rawPeer) addPeer() {
	r.t.Helper()
	err := r.srv.AddPeer(context.Background(), &api.AddPeerRequest{Peer: &api.Peer{
		Conf: &api.PeerConf{NeighborAddress: speakerAddr.String(), PeerAsn: rawASN},
		// A reset keeps GoBGP idle IdleHoldTimeAfterReset (default 30 s).
		Timers: &api.Timers{Config: &api.TimersConfig{HoldTime: 9, KeepaliveInterval: 3, ConnectRetry: 1,
			IdleHoldTimeAfterReset: 1}},
		Transport: &api.Transport{PassiveMode: true},
		// IPv4 unicast too: the speaker must not take it up.
		AfiSafis: []*api.AfiSafi{{Config: &api.AfiSafiConfig{
			Family: &api.Family{Afi: api.Family_AFI_L2VPN, Safi: api.Family_SAFI_EVPN}, Enabled: true}},
			{Config: &api.AfiSafiConfig{Family: &api.Family{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST}, Enabled: true}}},
	}})
	if err != nil {
		r.t.Fatal(err)
	}
}

// announce and withdraw put routes in and out of the raw peer's RIB.
func (r *rawPeer) announce(rs ...rt) {
	r.t.Helper()
	if len(rs) == 0 {
		return
	}
	var ps []*apiutil.Path
	for _, x := range rs {
		ps = append(ps, x.path(r.t))
	}
	if _, err := r.srv.AddPath(apiutil.AddPathRequest{Paths: ps}); err != nil {
		r.t.Fatal(err)
	}
}

func (r *rawPeer) withdraw(rs ...rt) {
	r.t.Helper()
	var ps []*apiutil.Path
	for _, x := range rs {
		ps = append(ps, x.path(r.t))
	}
	if err := r.srv.DeletePath(apiutil.DeletePathRequest{Paths: ps}); err != nil {
		r.t.Fatal(err)
	}
}

// fromSpeaker lists the EVPN routes the raw peer received from the
// speaker.
func (r *rawPeer) fromSpeaker() []*apiutil.Path {
	r.t.Helper()
	var out []*apiutil.Path
	err := r.srv.ListPath(apiutil.ListPathRequest{TableType: api.TableType_TABLE_TYPE_ADJ_IN, Name: speakerAddr.String(),
		Family: bgp.RF_EVPN},
		func(_ bgp.NLRI, paths []*apiutil.Path) {
			for _, p := range paths {
				if _, ok := p.Nlri.(*bgp.EVPNNLRI); ok {
					out = append(out, p)
				}
			}
		})
	if err != nil {
		r.t.Fatal(err)
	}
	return out
}

// announceIPv4 puts an IPv4 unicast route in the raw peer's RIB.
func (r *rawPeer) announceIPv4(prefix string, nh netip.Addr) {
	r.t.Helper()
	n, err := bgp.NewIPAddrPrefix(netip.MustParsePrefix(prefix))
	if err != nil {
		r.t.Fatal(err)
	}
	hop, err := bgp.NewPathAttributeNextHop(nh)
	if err != nil {
		r.t.Fatal(err)
	}
	p := &apiutil.Path{Family: bgp.RF_IPv4_UC, Nlri: n, Attrs: []bgp.PathAttributeInterface{
		bgp.NewPathAttributeOrigin(bgp.BGP_ORIGIN_ATTR_TYPE_IGP), bgp.NewPathAttributeAsPath(nil), hop}}
	if _, err := r.srv.AddPath(apiutil.AddPathRequest{Paths: []*apiutil.Path{p}}); err != nil {
		r.t.Fatal(err)
	}
}

// received lists the EVPN MAC routes the raw peer holds from the speaker:
// MAC and its mobility sequence number (-1: no mobility community).
func (r *rawPeer) received() map[frame.MAC]int {
	r.t.Helper()
	out := make(map[frame.MAC]int)
	for _, p := range r.fromSpeaker() {
		d, ok := p.Nlri.(*bgp.EVPNNLRI).RouteTypeData.(*bgp.EVPNMacIPAdvertisementRoute)
		if !ok {
			continue
		}
		seq := -1
		for _, a := range p.Attrs {
			if ecs, ok := a.(*bgp.PathAttributeExtendedCommunities); ok {
				for _, ec := range ecs.Value {
					if c, ok := ec.(*bgp.MacMobilityExtended); ok {
						seq = int(c.Sequence)
					}
				}
			}
		}
		out[frame.MAC(d.MacAddress)] = seq
	}
	return out
}

// imets lists the next hops of the speaker's type-3 routes, as the raw
// peer holds them.
func (r *rawPeer) imets() []netip.Addr {
	r.t.Helper()
	var out []netip.Addr
	for _, p := range r.fromSpeaker() {
		if p.Nlri.(*bgp.EVPNNLRI).RouteType != bgp.EVPN_INCLUSIVE_MULTICAST_ETHERNET_TAG {
			continue
		}
		for _, a := range p.Attrs {
			if mp, ok := a.(*bgp.PathAttributeMpReachNLRI); ok {
				out = append(out, mp.Nexthop)
			}
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

// established reports whether the raw peer's session to the speaker is up.
func (r *rawPeer) established() bool {
	up := false
	_ = r.srv.ListPeer(context.Background(), &api.ListPeerRequest{}, func(p *api.Peer) {
		up = p.State != nil && p.State.SessionState == api.PeerState_SESSION_STATE_ESTABLISHED
	})
	return up
}

// sync returns once the speaker has processed everything the raw peer
// sent before: a route sent after them is seen, then its withdrawal. The
// sentinel is a MAC route of a served VNI from a VTEP that never announces
// the VNI, so it counts nowhere and installs nothing.
func (r *rawPeer) sync(s *Speaker) {
	r.t.Helper()
	r.seen++
	m := frame.MAC{2, 0x5e, 0, 0, byte(r.seen >> 8), byte(r.seen)}
	x := rt{typ: 2, vni: 100, vtep: netip.MustParseAddr("198.51.100.250"), mac: m}
	has := func() bool {
		got, _ := s.Routes()
		return slices.ContainsFunc(got, func(ri RouteInfo) bool { return ri.MAC == m.String() })
	}
	r.announce(x)
	waitFor(r.t, "sentinel "+m.String(), has)
	r.withdraw(x)
	waitFor(r.t, "sentinel withdrawn "+m.String(), func() bool { return !has() })
}

// rt is a route as the raw peer announces it; zero fields take defaults
// that make a good route.
type rt struct {
	typ      uint8 // 1 to 5
	rd       uint16
	vni      uint32
	vtep     netip.Addr // next hop, and the type-3 route's originating router and PMSI id
	nh       netip.Addr // next hop if not vtep
	mac      frame.MAC
	seq      uint32
	mm       bool // the mobility community even for sequence number 0
	sticky   bool
	etag     uint32
	noPMSI   bool
	pmsiType bgp.PmsiTunnelType // 0: ingress replication
	asn      uint16             // route target's AS part; 0: rawASN
	target   uint32             // route target's number; 0: vni
	labels   []uint32           // type 2; nil: the VNI
	noLabel  bool               // type 2 without any label
	ip       netip.Addr
	noEncap  bool
}

func (x rt) path(t testing.TB) *apiutil.Path {
	t.Helper()
	// Each VTEP has its own distinguisher, as FRR does.
	rd, err := bgp.NewRouteDistinguisherIPAddressAS(netip.AddrFrom4([4]byte{10, 9, 0, 1}), uint16(x.vtep.As16()[15])<<8|x.rd)
	if err != nil {
		t.Fatal(err)
	}
	var n bgp.NLRI
	switch x.typ {
	case 1:
		n = bgp.NewEVPNEthernetAutoDiscoveryRoute(rd, bgp.EthernetSegmentIdentifier{Type: bgp.ESI_ARBITRARY,
			Value: []byte{1, 2, 3, 4, 5, 6, 7, 8, 9}}, x.etag, x.vni)
	case 2:
		labels := x.labels
		if labels == nil && !x.noLabel {
			labels = []uint32{x.vni}
		}
		n, err = bgp.NewEVPNMacIPAdvertisementRoute(rd, bgp.EthernetSegmentIdentifier{}, x.etag, x.mac.String(), x.ip, labels)
	case 3:
		n, err = bgp.NewEVPNMulticastEthernetTagRoute(rd, x.etag, x.vtep)
	case 4:
		n, err = bgp.NewEVPNEthernetSegmentRoute(rd, bgp.EthernetSegmentIdentifier{Type: bgp.ESI_ARBITRARY,
			Value: []byte{1, 2, 3, 4, 5, 6, 7, 8, 9}}, x.vtep)
	case 5:
		n, err = bgp.NewEVPNIPPrefixRoute(rd, bgp.EthernetSegmentIdentifier{}, x.etag, 24, netip.MustParseAddr("203.0.113.0"),
			netip.IPv4Unspecified(), x.vni)
	default:
		t.Fatalf("route type %d", x.typ)
	}
	if err != nil {
		t.Fatal(err)
	}
	nh := x.vtep
	if x.nh.IsValid() {
		nh = x.nh
	}
	reach, err := bgp.NewPathAttributeMpReachNLRI(bgp.RF_EVPN, []bgp.PathNLRI{{NLRI: n}}, nh)
	if err != nil {
		t.Fatal(err)
	}
	asn := x.asn
	if asn == 0 {
		asn = rawASN
	}
	target := x.target
	if target == 0 {
		target = x.vni
	}
	ecs := []bgp.ExtendedCommunityInterface{bgp.NewTwoOctetAsSpecificExtended(bgp.EC_SUBTYPE_ROUTE_TARGET, asn, target, true)}
	if !x.noEncap {
		ecs = append(ecs, bgp.NewEncapExtended(bgp.TUNNEL_TYPE_VXLAN))
	}
	if x.seq != 0 || x.sticky || x.mm {
		ecs = append(ecs, bgp.NewMacMobilityExtended(x.seq, x.sticky))
	}
	attrs := []bgp.PathAttributeInterface{bgp.NewPathAttributeOrigin(bgp.BGP_ORIGIN_ATTR_TYPE_IGP),
		bgp.NewPathAttributeAsPath(nil), reach, bgp.NewPathAttributeExtendedCommunities(ecs)}
	if x.typ == 3 && !x.noPMSI {
		id, err := bgp.NewIngressReplTunnelID(x.vtep)
		if err != nil {
			t.Fatal(err)
		}
		typ := x.pmsiType
		if typ == 0 {
			typ = bgp.PMSI_TUNNEL_TYPE_INGRESS_REPL
		}
		attrs = append(attrs, bgp.NewPathAttributePmsiTunnel(typ, false, x.vni, id))
	}
	return &apiutil.Path{Family: bgp.RF_EVPN, Nlri: n, Attrs: attrs}
}

// waitUntil is waitFor that reports, for a test that says more on failure.
func waitUntil(cond func() bool) bool {
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}

// rawSetup starts a speaker (VTEP vtepA, asn 65000) with switches and a
// raw peer it connects to, and waits for the session.
func rawSetup(t *testing.T, dp *fakeDP, switches ...configs.Switch) (*Speaker, *rawPeer, *configs.EVPN) {
	t.Helper()
	port := freePort(t)
	raw := startRaw(t, port)
	s := New(nil, dp, nil)
	t.Cleanup(s.Close)
	cfg := &configs.EVPN{ASN: rawASN, RouterID: netip.MustParseAddr("10.0.0.1"), VTEP: vtepA, VXLANPort: 4789,
		HoldTime:  9 * time.Second,
		Neighbors: []configs.Neighbor{{Address: netip.MustParseAddr("127.0.0.2"), ASN: rawASN, Port: port}}}
	if err := s.Apply(cfg, switches); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "session to the raw peer", func() bool { return s.Stats().Up == 1 && raw.established() })
	return s, raw, cfg
}

// tunnels is what the data plane holds: switch: remote VTEPs.
func (d *fakeDP) tunnelSet() map[string][]netip.Addr {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make(map[string][]netip.Addr)
	for t := range d.tunnels {
		out[t.Switch] = append(out[t.Switch], t.Remote)
	}
	for sw := range out {
		slices.SortFunc(out[sw], netip.Addr.Compare)
	}
	return out
}

func (d *fakeDP) remoteSet() map[string]map[frame.MAC]netip.Addr {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make(map[string]map[frame.MAC]netip.Addr)
	for sw, ms := range d.remote {
		if len(ms) > 0 {
			out[sw] = maps.Clone(ms)
		}
	}
	return out
}

func ignoredDiff(before, after map[string]uint64) map[string]uint64 {
	out := make(map[string]uint64)
	for k, v := range after {
		if v != before[k] {
			out[k] = v - before[k]
		}
	}
	return out
}
