package evpn

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"github.com/osrg/gobgp/v4/pkg/server"

	"github.com/umlswitch/umlswitch/configs"
	"github.com/umlswitch/umlswitch/frame"
)

// Tunnel is a VXLAN tunnel the fabric needs: from this VTEP to a remote
// one, for one switch and its VNI.
type Tunnel struct {
	Switch string     `json:"switch"`
	VNI    uint32     `json:"vni"`
	Local  netip.Addr `json:"local"`
	Remote netip.Addr `json:"vtep"`
	Port   uint16     `json:"port"` // UDP, both ends
}

// Dataplane is what the control plane drives: the switches' tunnel ports
// and MAC tables. The instance implements it. Its methods are called one
// at a time and must not call back into the Speaker.
type Dataplane interface {
	AddTunnel(t Tunnel) error
	RemoveTunnel(t Tunnel)
	// SetRemoteMAC points mac in switch sw at the tunnel to vtep;
	// RemoveRemoteMAC takes that entry away if it still points there.
	SetRemoteMAC(sw string, mac frame.MAC, vtep netip.Addr) error
	RemoveRemoteMAC(sw string, mac frame.MAC, vtep netip.Addr)
	// LocalMACs lists the addresses that switch sw holds on its own ports
	// (learned or static), not behind its fabric tunnels.
	LocalMACs(sw string) []frame.MAC
}

// Event is a change an operator hears of: a neighbour's session up or
// down, a VTEP joining or leaving a VNI.
type Event struct {
	Type     string // "bgp-up", "bgp-down", "vtep-joined", "vtep-left"
	Neighbor netip.Addr
	State    string
	Switch   string
	VNI      uint32
	VTEP     netip.Addr
}

// Speaker is this host's EVPN speaker: a GoBGP server in process and the
// state it has imported into the switches.
type Speaker struct {
	log     *slog.Logger
	level   *slog.LevelVar
	dp      Dataplane
	onEvent func(Event)

	mu       sync.Mutex
	cfg      *configs.EVPN // nil: stopped
	srv      *server.BgpServer
	gen      int // bumped at each (re)start: callbacks of an older server are ignored
	cancel   context.CancelFunc
	vnis     map[uint32]*vni
	rdIndex  map[string]uint16     // switch name: its number in derived route distinguishers
	routes   map[string]*received  // received routes by key
	peers    map[netip.Addr]string // neighbour: session state
	ignored  map[string]uint64     // routes ignored, by reason
	failures uint64                // data plane changes that failed
	seqSeen  map[frame.MAC]uint32  // highest MAC mobility sequence number received, by address

	dirtyMu sync.Mutex      // never held for long: the forwarding path takes it
	dirty   map[string]bool // switches whose local addresses changed; guarded by dirtyMu

	// Restart (restart.go).
	pending    *State    // to bring back at the next Apply
	restored   time.Time // when it was brought back; zero once swept
	eor        map[netip.Addr]bool
	sweepTimer *time.Timer
	changed    bool   // the data plane changed since onChange was last called
	onChange   func() // the state file's writer

	wake chan struct{}
	done chan struct{}
	wg   sync.WaitGroup
}

// received is a route and the VNIs it was imported into.
type received struct {
	r    Route
	vnis []*vni
}

// New returns a stopped speaker; Apply starts it.
func New(log *slog.Logger, dp Dataplane, onEvent func(Event)) *Speaker {
	if log == nil {
		log = slog.Default()
	}
	if onEvent == nil {
		onEvent = func(Event) {}
	}
	s := &Speaker{log: log.With("evpn", true), dp: dp, onEvent: onEvent, vnis: make(map[uint32]*vni),
		rdIndex: make(map[string]uint16), routes: make(map[string]*received), peers: make(map[netip.Addr]string),
		ignored: make(map[string]uint64), seqSeen: make(map[frame.MAC]uint32), eor: make(map[netip.Addr]bool), dirty: make(map[string]bool), wake: make(chan struct{}, 1),
		done: make(chan struct{}), level: new(slog.LevelVar)}
	// GoBGP logs every state change and message at info: ours are enough.
	s.level.Set(slog.LevelWarn)
	if os.Getenv("EVPN_DEBUG") != "" {
		s.level.Set(slog.LevelDebug)
	}
	s.wg.Add(1)
	go s.syncLoop()
	return s
}

// Apply makes the speaker what cfg and the switches with a VNI describe:
// a changed global setting restarts it; neighbours and VNIs that did not
// change are left alone. A nil cfg stops it.
func (s *Speaker) Apply(cfg *configs.EVPN, switches []configs.Switch) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if cfg == nil {
		s.stopLocked()
		return nil
	}
	old := s.cfg
	if s.srv == nil || !sameGlobal(old, cfg) {
		s.stopLocked()
		if err := s.startLocked(cfg); err != nil {
			return err
		}
		old = nil
	}
	s.applyNeighbors(old, cfg)
	s.cfg = cfg
	err := s.applyVNIs(switches)
	s.restoreLocked()
	return err
}

func sameGlobal(a, b *configs.EVPN) bool {
	return a != nil && b != nil && a.ASN == b.ASN && a.RouterID == b.RouterID && a.VTEP == b.VTEP &&
		a.VXLANPort == b.VXLANPort && a.ListenPort == b.ListenPort && a.HoldTime == b.HoldTime &&
		a.RestartTime == b.RestartTime
}

func (s *Speaker) startLocked(cfg *configs.EVPN) error {
	srv := server.NewBgpServer(server.LoggerOption(s.log, s.level))
	go srv.Serve()
	listen := int32(cfg.ListenPort)
	if listen == 0 {
		listen = -1 // GoBGP's "do not listen"
	}
	ctx := context.Background()
	global := &api.Global{Asn: cfg.ASN, RouterId: cfg.RouterID.String(), ListenPort: listen}
	if gr, _ := s.gracefulRestart(cfg); gr != nil {
		global.GracefulRestart = &api.GracefulRestart{Enabled: true, RestartTime: gr.RestartTime}
	}
	if err := srv.StartBgp(ctx, &api.StartBgpRequest{Global: global}); err != nil {
		srv.Stop()
		return fmt.Errorf("evpn: start BGP (asn %d, router id %s, port %d): %w", cfg.ASN, cfg.RouterID, cfg.ListenPort, err)
	}
	s.gen++
	gen := s.gen
	wctx, cancel := context.WithCancel(ctx)
	err := srv.WatchEvent(wctx, server.WatchEventMessageCallbacks{
		OnBestPath:   func(ps []*apiutil.Path, _ time.Time) { s.onBest(gen, ps) },
		OnPeerUpdate: func(p *apiutil.WatchEventMessage_PeerEvent, _ time.Time) { s.onPeer(gen, p) },
		OnPathEor: func(p *apiutil.Path, _ time.Time) {
			if p.Family == bgp.RF_EVPN {
				s.onEOR(gen, p.PeerAddress)
			}
		},
	}, server.WatchBestPath(true), server.WatchPeer(), server.WatchEor(false))
	if err != nil {
		cancel()
		srv.Stop()
		return fmt.Errorf("evpn: watch BGP: %w", err)
	}
	s.srv, s.cancel = srv, cancel
	s.log.Info("evpn speaker started", "asn", cfg.ASN, "router_id", cfg.RouterID, "vtep", cfg.VTEP, "listen", cfg.ListenPort)
	return nil
}

// withdrawFlush is how long a stopping speaker gives its withdrawals to
// reach established peers before it closes the sessions.
const withdrawFlush = 200 * time.Millisecond

// stopLocked ends the BGP sessions and takes out of the switches all that
// was imported.
func (s *Speaker) stopLocked() {
	if s.srv == nil {
		return
	}
	for _, v := range s.vnis {
		s.removeVNI(v)
	}
	// A goodbye must not look like a crash: once peers negotiated
	// graceful restart, a session that ends with a reset (our close with
	// their last update unread) rather than our notification makes them
	// keep our routes for the restart time. The withdrawals just queued
	// go out first, and the peers' last messages are read meanwhile.
	if slices.Contains(slices.Collect(maps.Values(s.peers)), "established") {
		time.Sleep(withdrawFlush)
	}
	// The next server announces every switch afresh.
	s.vnis = make(map[uint32]*vni)
	s.routes = make(map[string]*received)
	s.restored = time.Time{}
	if s.sweepTimer != nil {
		s.sweepTimer.Stop()
	}
	clear(s.eor)
	s.cancel()
	s.gen++
	s.srv.Stop() // StopBgp, with a notification to every peer, and the rest
	s.srv, s.cfg = nil, nil
	s.peers = make(map[netip.Addr]string)
}

// Close stops the speaker for good.
func (s *Speaker) Close() {
	s.mu.Lock()
	s.stopLocked()
	s.mu.Unlock()
	select {
	case <-s.done:
	default:
		close(s.done)
	}
	s.wg.Wait()
}

func (s *Speaker) peerRequest(cfg *configs.EVPN, n configs.Neighbor) *api.Peer {
	hold := uint64(cfg.HoldTime / time.Second)
	p := &api.Peer{
		Conf:      &api.PeerConf{NeighborAddress: n.Address.String(), PeerAsn: n.ASN},
		Timers:    &api.Timers{Config: &api.TimersConfig{HoldTime: hold, KeepaliveInterval: max(hold/3, 1), ConnectRetry: 2}},
		Transport: &api.Transport{PassiveMode: n.Passive, RemotePort: uint32(n.Port)},
		AfiSafis: []*api.AfiSafi{{Config: &api.AfiSafiConfig{
			Family: &api.Family{Afi: api.Family_AFI_L2VPN, Safi: api.Family_SAFI_EVPN}, Enabled: true}}},
	}
	if gr, mp := s.gracefulRestart(cfg); gr != nil {
		p.GracefulRestart = gr
		p.AfiSafis[0].MpGracefulRestart = mp
	}
	if n.ASN != cfg.ASN {
		p.EbgpMultihop = &api.EbgpMultihop{Enabled: true, MultihopTtl: 255}
	}
	return p
}

// applyNeighbors adds, changes and removes neighbours; one whose settings
// did not change keeps its session.
func (s *Speaker) applyNeighbors(was, cfg *configs.EVPN) {
	var old []configs.Neighbor
	if was != nil {
		old = was.Neighbors
	}
	ctx := context.Background()
	for _, o := range old {
		if !slices.ContainsFunc(cfg.Neighbors, o.Equal) {
			if err := s.srv.DeletePeer(ctx, &api.DeletePeerRequest{Address: o.Address.String()}); err != nil {
				s.log.Warn("evpn: remove neighbour", "neighbor", o.Address, "err", err)
			}
			delete(s.peers, o.Address)
		}
	}
	for _, n := range cfg.Neighbors {
		if slices.ContainsFunc(old, n.Equal) {
			continue
		}
		if err := s.srv.AddPeer(ctx, &api.AddPeerRequest{Peer: s.peerRequest(cfg, n)}); err != nil {
			s.log.Warn("evpn: add neighbour", "neighbor", n.Address, "err", err)
			continue
		}
		s.peers[n.Address] = "idle"
	}
}

// applyVNIs makes the fabric's VNIs those of switches.
func (s *Speaker) applyVNIs(switches []configs.Switch) error {
	want := make(map[uint32]configs.Switch)
	for _, sw := range switches {
		if sw.VNI != 0 {
			want[sw.VNI] = sw
		}
	}
	for id, v := range s.vnis {
		if sw, ok := want[id]; !ok || !s.sameVNI(v, sw) {
			s.removeVNI(v)
			delete(s.vnis, id)
		}
	}
	var errs []error
	for _, id := range slices.Sorted(maps.Keys(want)) {
		if s.vnis[id] != nil {
			continue
		}
		if err := s.addVNI(want[id]); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("evpn: %w", errs[0])
	}
	return nil
}

// sameVNI reports whether v still is what sw describes.
func (s *Speaker) sameVNI(v *vni, sw configs.Switch) bool {
	adv, imports, err := s.advertisementOf(sw)
	if err != nil {
		return false
	}
	return v.sw == sw.Name && adv.rd.String() == v.adv.rd.String() && ecStrings(adv.export) == ecStrings(v.adv.export) &&
		fmt.Sprint(imports) == fmt.Sprint(v.imports)
}

func ecStrings(ecs []bgp.ExtendedCommunityInterface) string {
	var out string
	for _, e := range ecs {
		out += e.String() + " "
	}
	return out
}

// advertisementOf is how switch sw announces itself, and what it imports.
func (s *Speaker) advertisementOf(sw configs.Switch) (advertisement, []target, error) {
	a := advertisement{vni: sw.VNI, vtep: s.cfg.VTEP}
	var err error
	if sw.RD != "" {
		if a.rd, err = bgp.ParseRouteDistinguisher(sw.RD); err != nil {
			return a, nil, fmt.Errorf("switch %s: rd %q: %w", sw.Name, sw.RD, err)
		}
	} else {
		n, ok := s.rdIndex[sw.Name]
		if !ok {
			n = uint16(len(s.rdIndex) + 1)
			s.rdIndex[sw.Name] = n
		}
		if a.rd, err = autoRD(s.cfg.RouterID, n); err != nil {
			return a, nil, fmt.Errorf("switch %s: route distinguisher: %w", sw.Name, err)
		}
	}
	if len(sw.ExportRT) == 0 {
		a.export = []bgp.ExtendedCommunityInterface{autoRT(s.cfg.ASN, sw.VNI)}
	}
	for _, rt := range sw.ExportRT {
		ec, err := bgp.ParseRouteTarget(rt)
		if err != nil {
			return a, nil, fmt.Errorf("switch %s: export_rt %q: %w", sw.Name, rt, err)
		}
		a.export = append(a.export, ec)
	}
	var imports []target
	for _, rt := range sw.ImportRT {
		t, err := parseImport(rt)
		if err != nil {
			return a, nil, fmt.Errorf("switch %s: import_rt: %w", sw.Name, err)
		}
		imports = append(imports, t)
	}
	return a, imports, nil
}

// addVNI joins switch sw to the fabric: announces it, imports the routes
// already received for it and announces its addresses.
func (s *Speaker) addVNI(sw configs.Switch) error {
	adv, imports, err := s.advertisementOf(sw)
	if err != nil {
		return err
	}
	v := newVNI(sw.Name, sw.VNI)
	v.adv, v.imports = adv, imports
	p, err := v.adv.imet()
	if err != nil {
		return fmt.Errorf("switch %s: %w", sw.Name, err)
	}
	if _, err := s.srv.AddPath(apiutil.AddPathRequest{Paths: []*apiutil.Path{p}}); err != nil {
		return fmt.Errorf("switch %s: announce vni %d: %w", sw.Name, sw.VNI, err)
	}
	s.vnis[sw.VNI] = v
	for _, key := range slices.Sorted(maps.Keys(s.routes)) {
		rc := s.routes[key]
		if v.imported(&rc.r) {
			rc.vnis = append(rc.vnis, v)
			s.add(v, key, &rc.r)
		}
	}
	s.syncLocal(v)
	s.log.Info("evpn: switch joins the fabric", "switch", sw.Name, "vni", sw.VNI, "rd", adv.rd, "export", ecStrings(adv.export))
	return nil
}

// removeVNI withdraws what v announced and takes out what it imported.
func (s *Speaker) removeVNI(v *vni) {
	for m := range v.local {
		s.withdrawMAC(v, m)
	}
	v.local = make(map[frame.MAC]uint32)
	if p, err := v.adv.imet(); err == nil {
		if err := s.srv.DeletePath(apiutil.DeletePathRequest{Paths: []*apiutil.Path{p}}); err != nil {
			s.log.Warn("evpn: withdraw type-3 route", "switch", v.sw, "err", err)
		}
	}
	for key, rc := range s.routes {
		if i := slices.Index(rc.vnis, v); i >= 0 {
			rc.vnis = slices.Delete(rc.vnis, i, i+1)
			s.remove(v, key, &rc.r)
		}
	}
	// What a restart brought back and no route has confirmed yet.
	for m := range v.staleMACs {
		if at, ok := v.installed[m]; ok {
			s.dp.RemoveRemoteMAC(v.sw, m, at)
			delete(v.installed, m)
		}
	}
	clear(v.staleMACs)
	for vtep := range v.staleVTEPs {
		if v.vteps[vtep] == 0 {
			s.dp.RemoveTunnel(s.tunnel(v, vtep))
		}
	}
	clear(v.staleVTEPs)
}

// onBest takes in GoBGP's new best paths.
func (s *Speaker) onBest(gen int, paths []*apiutil.Path) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if gen != s.gen || s.srv == nil {
		return
	}
	for _, p := range paths {
		if p.Family != bgp.RF_EVPN || p.Nlri == nil {
			continue
		}
		key := p.Nlri.String()
		if p.Withdrawal {
			if !p.PeerAddress.IsValid() {
				s.lostOwn(p)
				continue
			}
			s.forget(key)
			continue
		}
		if !p.PeerAddress.IsValid() {
			continue // our own
		}
		s.noteSeq(p)
		r, err := decode(p)
		if err == nil {
			err = s.check(&r)
		}
		if err != nil {
			s.ignore(key, p, err)
			continue
		}
		s.learn(key, r)
	}
}

// lostOwn takes note of a route of ours withdrawn. GoBGP's table withdraws
// a MAC route of ours on its own when a received one for the address has
// a higher sequence number (handleMacMobility), whether or not this
// speaker uses that route: the address is no longer announced, and the
// next sync announces it again above every sequence number seen if it is
// still here.
func (s *Speaker) lostOwn(p *apiutil.Path) {
	d, m, ok := macRouteOf(p)
	if !ok {
		return
	}
	for _, v := range s.vnis {
		if _, ok := v.local[m]; ok && rdString(d.RD) == v.adv.rd.String() {
			delete(v.local, m)
			s.evaluate(v, m)
			s.MACsChanged(v.sw)
		}
	}
}

// noteSeq remembers the highest sequence number of every MAC route
// received, used or not: GoBGP refuses to announce ours below it.
func (s *Speaker) noteSeq(p *apiutil.Path) {
	_, m, ok := macRouteOf(p)
	if !ok {
		return
	}
	for _, a := range p.Attrs {
		if ecs, ok := a.(*bgp.PathAttributeExtendedCommunities); ok {
			for _, ec := range ecs.Value {
				if c, ok := ec.(*bgp.MacMobilityExtended); ok {
					s.seqSeen[m] = max(s.seqSeen[m], c.Sequence)
				}
			}
		}
	}
}

// macRouteOf is p's MAC route (type 2) and its address, if it is one.
func macRouteOf(p *apiutil.Path) (*bgp.EVPNMacIPAdvertisementRoute, frame.MAC, bool) {
	n, ok := p.Nlri.(*bgp.EVPNNLRI)
	if !ok {
		return nil, frame.MAC{}, false
	}
	d, ok := n.RouteTypeData.(*bgp.EVPNMacIPAdvertisementRoute)
	if !ok || len(d.MacAddress) != 6 {
		return nil, frame.MAC{}, false
	}
	return d, frame.MAC(d.MacAddress), true
}

// check refuses a route this VTEP cannot use.
func (s *Speaker) check(r *Route) error {
	switch {
	case r.VTEP == s.cfg.VTEP:
		return fmt.Errorf("%w: our own VTEP %s", errMartian, r.VTEP)
	case r.VTEP.Is4() != s.cfg.VTEP.Is4():
		return fmt.Errorf("%w %s: not of our VTEP's address family", errMartian, r.VTEP)
	}
	return nil
}

// ignore counts a route that cannot be used (and forgets one it replaces).
func (s *Speaker) ignore(key string, p *apiutil.Path, err error) {
	reason := "malformed"
	for _, e := range []struct {
		err error
		why string
	}{{errRouteType, "route-type"}, {errETag, "ethernet-tag"}, {errMartian, "martian-next-hop"}, {errNoPMSI, "no-pmsi"},
		{errEncap, "encapsulation"}} {
		if errors.Is(err, e.err) {
			reason = e.why
		}
	}
	if reason == "route-type" {
		return // type 1, 4, 5: not for an L2 switch, and not worth a count
	}
	s.ignored[reason]++
	s.log.Debug("evpn: route ignored", "route", key, "peer", p.PeerAddress, "reason", err)
	s.forget(key)
}

// learn records a received route and imports it into the VNIs whose
// targets it carries.
func (s *Speaker) learn(key string, r Route) {
	old := s.routes[key]
	rc := &received{r: r}
	for _, v := range s.vnis {
		if v.imported(&rc.r) {
			rc.vnis = append(rc.vnis, v)
		}
	}
	s.routes[key] = rc
	if len(rc.vnis) == 0 {
		s.ignored["unknown-vni"]++
	}
	// Add before taking the old away, so a VTEP that announces again is
	// not dropped and made again.
	for _, v := range rc.vnis {
		s.add(v, key, &rc.r)
	}
	if old != nil {
		for _, v := range old.vnis {
			s.removeRoute(v, key, &old.r, &rc.r)
		}
	}
}

// forget takes a withdrawn route out of every VNI it was in.
func (s *Speaker) forget(key string) {
	rc := s.routes[key]
	if rc == nil {
		return
	}
	delete(s.routes, key)
	for _, v := range rc.vnis {
		s.remove(v, key, &rc.r)
	}
}

func (s *Speaker) add(v *vni, key string, r *Route) {
	switch r.Type {
	case bgp.EVPN_INCLUSIVE_MULTICAST_ETHERNET_TAG:
		v.vteps[r.VTEP]++
		if v.vteps[r.VTEP] > 1 {
			return
		}
		if v.staleVTEPs[r.VTEP] { // brought back after a restart: confirmed
			delete(v.staleVTEPs, r.VTEP)
		} else {
			t := s.tunnel(v, r.VTEP)
			if err := s.dp.AddTunnel(t); err != nil {
				s.failures++
				s.log.Warn("evpn: tunnel to a VTEP", "switch", v.sw, "vni", v.id, "vtep", r.VTEP, "err", err)
			}
			s.changed = true
			s.onEvent(Event{Type: "vtep-joined", Switch: v.sw, VNI: v.id, VTEP: r.VTEP})
		}
		for m := range v.byVTEP[r.VTEP] { // addresses announced before the VNI was
			s.evaluate(v, m)
		}
	case bgp.EVPN_ROUTE_TYPE_MAC_IP_ADVERTISEMENT:
		rs := v.remote[r.MAC]
		if rs == nil {
			rs = make(map[string]*Route)
			v.remote[r.MAC] = rs
		}
		if old := rs[key]; old != nil {
			v.index(r.MAC, old.VTEP, -1)
		}
		rs[key] = r
		v.index(r.MAC, r.VTEP, 1)
		s.evaluate(v, r.MAC)
	}
}

func (s *Speaker) remove(v *vni, key string, r *Route) { s.removeRoute(v, key, r, nil) }

// removeRoute takes route r (key) out of v; next, if not nil, is the route
// that replaced it under the same key, already added.
func (s *Speaker) removeRoute(v *vni, key string, r, next *Route) {
	switch r.Type {
	case bgp.EVPN_INCLUSIVE_MULTICAST_ETHERNET_TAG:
		v.vteps[r.VTEP]--
		if v.vteps[r.VTEP] > 0 {
			return
		}
		delete(v.vteps, r.VTEP)
		// What is installed there was announced from there, or brought
		// back stale after a restart.
		for _, ms := range []map[frame.MAC]int{v.byVTEP[r.VTEP], staleAt(v, r.VTEP)} {
			for m := range ms {
				if v.installed[m] == r.VTEP {
					delete(v.staleMACs, m)
					s.evaluate(v, m)
				}
			}
		}
		s.dp.RemoveTunnel(s.tunnel(v, r.VTEP))
		s.changed = true
		s.onEvent(Event{Type: "vtep-left", Switch: v.sw, VNI: v.id, VTEP: r.VTEP})
	case bgp.EVPN_ROUTE_TYPE_MAC_IP_ADVERTISEMENT:
		rs := v.remote[r.MAC]
		if rs[key] == r { // not the route that replaced it here
			v.index(r.MAC, r.VTEP, -1)
			delete(rs, key)
		}
		if len(rs) == 0 {
			delete(v.remote, r.MAC)
		}
		s.evaluate(v, r.MAC)
	}
}

func (s *Speaker) tunnel(v *vni, vtep netip.Addr) Tunnel {
	return Tunnel{Switch: v.sw, VNI: v.id, Local: s.cfg.VTEP, Remote: vtep, Port: s.cfg.VXLANPort}
}

// evaluate decides where address m of v lives now: here (announced by
// us), behind a remote VTEP (a remote entry), or nowhere we know.
func (s *Speaker) evaluate(v *vni, m frame.MAC) {
	best := v.bestRemote(m)
	if seq, ok := v.local[m]; ok {
		if best == nil || !remoteWins(best.Seq, best.VTEP, seq, s.cfg.VTEP) {
			delete(v.installed, m) // the local entry stands
			return
		}
		// It moved away: a higher sequence number from elsewhere.
		s.withdrawMAC(v, m)
		delete(v.local, m)
	}
	at, ok := v.installed[m]
	if best != nil {
		delete(v.staleMACs, m) // confirmed, or replaced
	}
	switch {
	case best == nil && ok && v.staleMACs[m]:
		// Brought back after a restart: kept until the sweep.
	case best == nil && ok:
		s.dp.RemoveRemoteMAC(v.sw, m, at)
		delete(v.installed, m)
		s.changed = true
	case best != nil && (!ok || at != best.VTEP):
		if err := s.dp.SetRemoteMAC(v.sw, m, best.VTEP); err != nil {
			s.failures++
			s.log.Debug("evpn: remote address", "switch", v.sw, "mac", m, "vtep", best.VTEP, "err", err)
			return
		}
		v.installed[m] = best.VTEP
		s.changed = true
	}
}

// MACsChanged tells the speaker that switch sw's addresses changed. It
// never blocks: the forwarding path calls it.
func (s *Speaker) MACsChanged(sw string) {
	s.dirtyMu.Lock()
	s.dirty[sw] = true
	s.dirtyMu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// syncPeriod is how often the state file hears of changes, and every
// syncFull periods every switch's addresses are compared with what is
// announced, besides when the switch says they changed (each learning,
// move, ageing and flush does): a safety net, not the way addresses
// travel. It lists the whole table, 100,000 entries in a big fabric: not
// every second.
const (
	syncPeriod = time.Second
	syncFull   = 10
)

func (s *Speaker) syncLoop() {
	defer s.wg.Done()
	tick := time.NewTicker(syncPeriod)
	defer tick.Stop()
	for ticks := 0; ; {
		all, tell := false, false
		select {
		case <-s.done:
			return
		case <-tick.C:
			ticks++
			all, tell = ticks%syncFull == 0, true
		case <-s.wake:
			time.Sleep(10 * time.Millisecond) // gather a burst of learning
		}
		s.dirtyMu.Lock()
		dirty := s.dirty
		s.dirty = make(map[string]bool)
		s.dirtyMu.Unlock()
		s.mu.Lock()
		if s.srv != nil {
			for _, v := range s.vnis {
				if all || dirty[v.sw] {
					s.syncLocal(v)
				}
			}
		}
		var changed func()
		if tell && s.changed && s.onChange != nil {
			changed, s.changed = s.onChange, false
		}
		s.mu.Unlock()
		if changed != nil {
			changed()
		}
	}
}

// syncLocal announces the addresses v's switch holds on its own ports and
// withdraws those it no longer holds.
func (s *Speaker) syncLocal(v *vni) {
	macs := s.dp.LocalMACs(v.sw)
	here := make(map[frame.MAC]bool, len(macs))
	for _, m := range macs {
		here[m] = true
		if _, ok := v.local[m]; ok {
			continue
		}
		// New here, or moved here from a remote VTEP: outbid every
		// sequence number announced for it, also in routes not used
		// (GoBGP refuses a route of ours below one it holds).
		var seq uint32
		if hs, ok := v.highestSeq(m); ok {
			seq = hs + 1
		}
		if hs, ok := s.seqSeen[m]; ok {
			seq = max(seq, hs+1)
		}
		p, err := v.adv.mac(m, seq)
		if err == nil {
			// One at a time: GoBGP refuses a whole request for one path.
			_, err = s.srv.AddPath(apiutil.AddPathRequest{Paths: []*apiutil.Path{p}})
		}
		if err != nil {
			s.log.Warn("evpn: announce", "switch", v.sw, "mac", m, "err", err)
			continue // again at the next sync
		}
		v.local[m] = seq
		delete(v.installed, m)
	}
	for m := range v.local {
		if !here[m] {
			s.withdrawMAC(v, m)
			delete(v.local, m)
			s.evaluate(v, m)
		}
	}
}

func (s *Speaker) withdrawMAC(v *vni, m frame.MAC) {
	p, err := v.adv.macWithdrawal(m)
	if err == nil {
		err = s.srv.DeletePath(apiutil.DeletePathRequest{Paths: []*apiutil.Path{p}})
	}
	if err != nil {
		s.log.Warn("evpn: withdraw address", "switch", v.sw, "mac", m, "err", err)
	}
}

// onPeer follows the neighbours' session states.
func (s *Speaker) onPeer(gen int, ev *apiutil.WatchEventMessage_PeerEvent) {
	if ev.Type != apiutil.PEER_EVENT_STATE {
		return
	}
	st := sessionState(ev.Peer.State.SessionState)
	addr := ev.Peer.State.NeighborAddress.Unmap()
	s.mu.Lock()
	if gen != s.gen {
		s.mu.Unlock()
		return
	}
	was := s.peers[addr]
	if _, ok := s.peers[addr]; ok {
		s.peers[addr] = st
	}
	s.mu.Unlock()
	switch {
	case st == "established" && was != st:
		s.log.Info("evpn: neighbour up", "neighbor", addr)
		s.onEvent(Event{Type: "bgp-up", Neighbor: addr, State: st})
	case was == "established" && st != was:
		s.log.Warn("evpn: neighbour down", "neighbor", addr, "state", st, "reason", ev.Peer.State.DisconnectMessage)
		s.onEvent(Event{Type: "bgp-down", Neighbor: addr, State: st})
	}
}

func sessionState(st bgp.FSMState) string {
	switch st {
	case bgp.BGP_FSM_IDLE:
		return "idle"
	case bgp.BGP_FSM_CONNECT:
		return "connect"
	case bgp.BGP_FSM_ACTIVE:
		return "active"
	case bgp.BGP_FSM_OPENSENT:
		return "opensent"
	case bgp.BGP_FSM_OPENCONFIRM:
		return "openconfirm"
	case bgp.BGP_FSM_ESTABLISHED:
		return "established"
	}
	return "unknown"
}

// staleAt lists the stale addresses v holds behind vtep (few, and only
// until the restart's End-of-RIB).
func staleAt(v *vni, vtep netip.Addr) map[frame.MAC]int {
	out := make(map[frame.MAC]int)
	for m := range v.staleMACs {
		if v.installed[m] == vtep {
			out[m] = 1
		}
	}
	return out
}
