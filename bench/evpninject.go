package bench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"sync"
	"time"

	"github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"github.com/osrg/gobgp/v4/pkg/server"

	"github.com/umlswitch/umlswitch/frame"
)

// The EVPN scale run's other side: a GoBGP speaker in this process that
// plays many remote VTEPs at once, announcing their type-3 routes (one
// VNI each) and the type-2 routes of the addresses behind them, encoded as
// package evpn (and FRR) encodes its own.

// EVPNScale is the fabric an EVPN scale run plays: VTEPs remote VTEPs
// spread over VNIs VNIs, VTEP k serving VNI k%VNIs+1 only (so each VTEP is
// one tunnel port of the switch), each announcing MACs/VTEPs addresses.
type EVPNScale struct{ VNIs, VTEPs, MACs int }

// evpnASN is the autonomous system of both sides: iBGP, as in a lab's
// fabric, so the route targets are the same auto-derived ones.
const evpnASN = 65000

// Check refuses a layout the switch cannot hold: the fabric numbers its
// ports with 16 bits, so the tunnels (one per VTEP here) must stay well
// under 65536.
func (s EVPNScale) Check() error {
	switch {
	case s.VNIs < 1 || s.VNIs > 4096:
		return fmt.Errorf("%d VNIs: want 1..4096", s.VNIs)
	case s.VTEPs < s.VNIs || s.VTEPs > 50000:
		return fmt.Errorf("%d VTEPs: want %d (one a VNI) to 50000 (each is a tunnel port, and port numbers have 16 bits)", s.VTEPs, s.VNIs)
	case s.MACs < s.VTEPs || s.MACs%s.VTEPs != 0 || s.MACs/s.VTEPs > 65536:
		return fmt.Errorf("%d MACs: want a multiple of the %d VTEPs, at most 65536 each", s.MACs, s.VTEPs)
	}
	return nil
}

func (s EVPNScale) String() string {
	return fmt.Sprintf("%d VTEPs (%d per VNI), %d MACs (%d per VTEP) over %d VNIs", s.VTEPs, s.VTEPs/s.VNIs, s.MACs, s.MACs/s.VTEPs, s.VNIs)
}

// vni is the VNI VTEP k serves.
func (s EVPNScale) vni(k int) uint32 { return uint32(k%s.VNIs + 1) }

// evpnVTEP is the address of remote VTEP k: 10.1.0.1 and up, none of
// them anywhere (the switch only sends to them); the marker is the last.
func evpnVTEP(k int) netip.Addr {
	a := 0x0a010001 + uint32(k)
	return netip.AddrFrom4([4]byte{byte(a >> 24), byte(a >> 16), byte(a >> 8), byte(a)})
}

// evpnMAC is address j behind VTEP k.
func evpnMAC(k, j int) frame.MAC {
	return frame.MAC{0x02, 0xee, byte(k >> 8), byte(k), byte(j >> 8), byte(j)}
}

// injector is the GoBGP speaker that plays the remote VTEPs.
type injector struct {
	srv    *server.BgpServer
	scale  EVPNScale
	peer   netip.Addr
	cancel context.CancelFunc

	mu          sync.Mutex
	established time.Time // when the session came up; zero while it is not
	up          chan struct{}
	gen         bool // the generator's routes are in the table
}

// startInjector starts the speaker with every route of scale in its table
// and no neighbour yet: connect starts a session, disconnect ends it, and
// the routes stay for the next.
func startInjector(scale EVPNScale) (*injector, error) {
	// GoBGP logs every session change at info: errors are enough here.
	level := new(slog.LevelVar)
	level.Set(slog.LevelError)
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	srv := server.NewBgpServer(server.LoggerOption(log, level))
	go srv.Serve()
	j := &injector{srv: srv, scale: scale}
	ctx := context.Background()
	err := srv.StartBgp(ctx, &api.StartBgpRequest{Global: &api.Global{Asn: evpnASN, RouterId: "10.255.255.254", ListenPort: -1}})
	if err != nil {
		srv.Stop()
		return nil, fmt.Errorf("bench: injector: %w", err)
	}
	wctx, cancel := context.WithCancel(ctx)
	j.cancel = cancel
	err = srv.WatchEvent(wctx, server.WatchEventMessageCallbacks{OnPeerUpdate: j.onPeer}, server.WatchPeer())
	if err == nil {
		err = j.announceAll()
	}
	if err != nil {
		j.close()
		return nil, fmt.Errorf("bench: injector: %w", err)
	}
	return j, nil
}

func (j *injector) onPeer(ev *apiutil.WatchEventMessage_PeerEvent, _ time.Time) {
	if ev.Type != apiutil.PEER_EVENT_STATE {
		return
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if ev.Peer.State.SessionState == bgp.BGP_FSM_ESTABLISHED && j.up != nil && j.established.IsZero() {
		j.established = time.Now()
		close(j.up)
	}
}

// announceAll puts every VTEP's type-3 route and every type-2 route into
// the speaker's table, a VTEP at a time.
func (j *injector) announceAll() error {
	for k := 0; k < j.scale.VTEPs; k++ {
		paths := []*apiutil.Path{j.imet(k)}
		for m := 0; m < j.scale.MACs/j.scale.VTEPs; m++ {
			paths = append(paths, j.mac(k, m))
		}
		if _, err := j.srv.AddPath(apiutil.AddPathRequest{Paths: paths}); err != nil {
			return fmt.Errorf("announce VTEP %s: %w", evpnVTEP(k), err)
		}
	}
	return nil
}

// connect adds the switch as a neighbour (iBGP) at addr:port and waits
// until the session is up; it returns when it came up. Then it announces
// the marker, which GoBGP queues behind the table it sends a new
// neighbour: when the switch holds the marker's tunnel, it has taken in
// every route before it.
func (j *injector) connect(addr netip.Addr, port int, timeout time.Duration) (time.Time, error) {
	up := make(chan struct{})
	j.mu.Lock()
	j.peer, j.up, j.established = addr, up, time.Time{}
	j.mu.Unlock()
	err := j.srv.AddPeer(context.Background(), &api.AddPeerRequest{Peer: &api.Peer{
		Conf:      &api.PeerConf{NeighborAddress: addr.String(), PeerAsn: evpnASN},
		Timers:    &api.Timers{Config: &api.TimersConfig{HoldTime: 90, KeepaliveInterval: 30, ConnectRetry: 1}},
		Transport: &api.Transport{RemotePort: uint32(port), LocalAddress: "127.0.0.1"},
		AfiSafis: []*api.AfiSafi{{Config: &api.AfiSafiConfig{
			Family: &api.Family{Afi: api.Family_AFI_L2VPN, Safi: api.Family_SAFI_EVPN}, Enabled: true}}},
	}})
	if err != nil {
		return time.Time{}, fmt.Errorf("bench: injector: add the switch as neighbour: %w", err)
	}
	select {
	case <-up:
	case <-time.After(timeout):
		return time.Time{}, fmt.Errorf("bench: injector: no BGP session with the switch at %s port %d within %v", addr, port, timeout)
	}
	if _, err := j.srv.AddPath(apiutil.AddPathRequest{Paths: []*apiutil.Path{j.marker()}}); err != nil {
		return time.Time{}, fmt.Errorf("bench: injector: announce the marker: %w", err)
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.established, nil
}

// marker is the type-3 route of one more VTEP, announced last.
func (j *injector) marker() *apiutil.Path { return j.imet(j.scale.VTEPs) }

// genVTEP is the generator's own VTEP, for the runs that forward to a
// remote address: an address on the namespace's loopback, so that what the
// switch sends it arrives. It serves VNI 1 (switch v1), with the MAC of the
// generator's second port behind it.
var genVTEP = netip.MustParseAddr("10.0.0.2")

func genRoutes() []*apiutil.Path {
	return []*apiutil.Path{imetRoute(genVTEP, 1), macRoute(genVTEP, 1, portMAC(1))}
}

// announceGen announces the generator's VTEP and its MAC.
func (j *injector) announceGen() error {
	if _, err := j.srv.AddPath(apiutil.AddPathRequest{Paths: genRoutes()}); err != nil {
		return fmt.Errorf("bench: injector: announce the generator's VTEP: %w", err)
	}
	j.mu.Lock()
	j.gen = true
	j.mu.Unlock()
	return nil
}

// disconnect takes the session down (a Cease notification): the switch
// must withdraw everything the injector announced. The marker and the
// generator's routes leave the table: the next session's load has neither.
func (j *injector) disconnect() error {
	if err := j.srv.DeletePeer(context.Background(), &api.DeletePeerRequest{Address: j.peer.String()}); err != nil {
		return fmt.Errorf("bench: injector: drop the session: %w", err)
	}
	paths := []*apiutil.Path{j.marker()}
	j.mu.Lock()
	if j.gen {
		paths = append(paths, genRoutes()...)
		j.gen = false
	}
	j.mu.Unlock()
	if err := j.srv.DeletePath(apiutil.DeletePathRequest{Paths: paths}); err != nil {
		return fmt.Errorf("bench: injector: take the marker back: %w", err)
	}
	return nil
}

// churnTick is how often churn changes routes.
const churnTick = 10 * time.Millisecond

// churn withdraws and announces again the type-2 routes of VNI 1's VTEPs
// (the remote forwarding runs' VNI, so that the table they look up in is
// the one that changes), one MAC after another, rate changes a second in
// all (a withdrawal or an announcement each), until stop is closed. Each
// tick announces again what the one before withdrew, so at most a tick's
// worth is away at any time; at the end it announces what is still away.
// It returns the changes it made and how long it ran.
func (j *injector) churn(rate int, stop <-chan struct{}) (changes int, took time.Duration, err error) {
	var macs []*apiutil.Path
	for k := 0; k < j.scale.VTEPs; k++ {
		if j.scale.vni(k) != 1 {
			continue
		}
		for m := 0; m < j.scale.MACs/j.scale.VTEPs; m++ {
			macs = append(macs, j.mac(k, m))
		}
	}
	if len(macs) == 0 {
		return 0, 0, errors.New("bench: injector: churn: VNI 1 has no MAC routes")
	}
	t := time.NewTicker(churnTick)
	defer t.Stop()
	t0 := time.Now()
	var away []*apiutil.Path
	back := func() error {
		if len(away) == 0 {
			return nil
		}
		if _, err := j.srv.AddPath(apiutil.AddPathRequest{Paths: away}); err != nil {
			return fmt.Errorf("bench: injector: churn: announce: %w", err)
		}
		changes += len(away)
		away = nil // GoBGP may keep the slice
		return nil
	}
	for next := 0; ; {
		select {
		case <-stop:
			return changes, time.Since(t0), back()
		case <-t.C:
		}
		if err := back(); err != nil {
			return changes, time.Since(t0), err
		}
		// Half of what is due by now goes away (and comes back next
		// tick): a late tick catches up. A tick announces again before
		// it withdraws, so every route may be away at once.
		due := int(float64(rate)*time.Since(t0).Seconds()) - changes
		for range min(max((due+1)/2, 1), len(macs)) {
			away = append(away, macs[next])
			next = (next + 1) % len(macs)
		}
		if err := j.srv.DeletePath(apiutil.DeletePathRequest{Paths: away}); err != nil {
			return changes, time.Since(t0), fmt.Errorf("bench: injector: churn: withdraw: %w", err)
		}
		changes += len(away)
	}
}

func (j *injector) close() {
	if j.cancel != nil {
		j.cancel()
	}
	j.srv.Stop() // and its StopBgp
}

// rd is a VTEP's route distinguisher: its address and 1, as FRR derives
// one from a router id and a small number.
func rd(vtep netip.Addr) bgp.RouteDistinguisherInterface {
	r, _ := bgp.NewRouteDistinguisherIPAddressAS(vtep, 1)
	return r
}

// attrs are the attributes of every route of a VTEP in a VNI: origin, an
// empty AS path, the next hop (the VTEP) in MP_REACH_NLRI, the VNI's
// auto-derived route target and the VXLAN encapsulation.
func attrs(vtep netip.Addr, vni uint32, n bgp.NLRI) []bgp.PathAttributeInterface {
	reach, _ := bgp.NewPathAttributeMpReachNLRI(bgp.RF_EVPN, []bgp.PathNLRI{{NLRI: n}}, vtep)
	return []bgp.PathAttributeInterface{
		bgp.NewPathAttributeOrigin(bgp.BGP_ORIGIN_ATTR_TYPE_IGP),
		bgp.NewPathAttributeAsPath(nil),
		reach,
		bgp.NewPathAttributeExtendedCommunities([]bgp.ExtendedCommunityInterface{
			bgp.NewTwoOctetAsSpecificExtended(bgp.EC_SUBTYPE_ROUTE_TARGET, evpnASN, vni, true),
			bgp.NewEncapExtended(bgp.TUNNEL_TYPE_VXLAN),
		}),
	}
}

// imetRoute is a VTEP's inclusive multicast route (type 3) in a VNI, with
// the PMSI tunnel attribute (ingress replication, the VNI as label).
func imetRoute(vtep netip.Addr, vni uint32) *apiutil.Path {
	n, _ := bgp.NewEVPNMulticastEthernetTagRoute(rd(vtep), 0, vtep)
	id, _ := bgp.NewIngressReplTunnelID(vtep)
	attrs := append(attrs(vtep, vni, n), bgp.NewPathAttributePmsiTunnel(bgp.PMSI_TUNNEL_TYPE_INGRESS_REPL, false, vni, id))
	return &apiutil.Path{Family: bgp.RF_EVPN, Nlri: n, Attrs: attrs}
}

// macRoute is the type-2 route of address mac behind a VTEP in a VNI.
func macRoute(vtep netip.Addr, vni uint32, mac frame.MAC) *apiutil.Path {
	n, _ := bgp.NewEVPNMacIPAdvertisementRoute(rd(vtep), bgp.EthernetSegmentIdentifier{}, 0, mac.String(), netip.Addr{}, []uint32{vni})
	return &apiutil.Path{Family: bgp.RF_EVPN, Nlri: n, Attrs: attrs(vtep, vni, n)}
}

// imet is VTEP k's type-3 route.
func (j *injector) imet(k int) *apiutil.Path { return imetRoute(evpnVTEP(k), j.scale.vni(k)) }

// mac is the type-2 route of address m behind VTEP k.
func (j *injector) mac(k, m int) *apiutil.Path {
	return macRoute(evpnVTEP(k), j.scale.vni(k), evpnMAC(k, m))
}
