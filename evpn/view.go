package evpn

import (
	"context"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"time"

	"github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"

	"github.com/umlswitch/umlswitch/configs"
	"github.com/umlswitch/umlswitch/frame"
)

// What operators see of the speaker (ctl bgp, ctl evpn, metrics).

// Neighbor is one BGP neighbour and its session.
type Neighbor struct {
	Address  netip.Addr `json:"address"`
	ASN      uint32     `json:"asn"`
	State    string     `json:"state"` // idle, connect, active, opensent, openconfirm, established
	Uptime   string     `json:"uptime,omitempty"`
	Received uint64     `json:"received"` // EVPN routes received
	Accepted uint64     `json:"accepted"`
	Sent     uint64     `json:"sent"`
}

// VNIInfo is one switch in the fabric.
type VNIInfo struct {
	Switch     string       `json:"switch"`
	VNI        uint32       `json:"vni"`
	RD         string       `json:"rd"`
	Export     []string     `json:"export_rt"`
	Import     []string     `json:"import_rt"` // empty: any route target numbered VNI
	VTEPs      []netip.Addr `json:"vteps"`     // remote VTEPs: the flood list
	LocalMACs  int          `json:"local_macs"`
	RemoteMACs int          `json:"remote_macs"`
}

// RouteInfo is a route as ctl evpn lists it.
type RouteInfo struct {
	Type   int        `json:"type"` // 2 or 3
	RD     string     `json:"rd"`
	VNI    uint32     `json:"vni"`
	VTEP   netip.Addr `json:"vtep"`
	MAC    string     `json:"mac,omitempty"`
	IP     string     `json:"ip,omitempty"`
	Seq    uint32     `json:"seq,omitempty"`
	Switch string     `json:"switch,omitempty"`
	Peer   string     `json:"peer,omitempty"` // received routes: the neighbour
}

// Stats are the speaker's counters.
type Stats struct {
	Running    bool              `json:"running"`
	Neighbors  int               `json:"neighbors"`
	Up         int               `json:"established"`
	Received   int               `json:"routes_received"`
	Sent       int               `json:"routes_sent"`
	RemoteMACs int               `json:"remote_macs"`
	VTEPs      int               `json:"vteps"` // tunnels made, over every VNI
	Ignored    map[string]uint64 `json:"ignored"`
	Failures   uint64            `json:"dataplane_failures"`
}

// Config is the configuration the speaker runs on; nil when stopped.
func (s *Speaker) Config() *configs.EVPN {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cfg
}

// Neighbors lists the configured neighbours and their sessions.
func (s *Speaker) Neighbors() []Neighbor {
	s.mu.Lock()
	srv := s.srv
	// What this VTEP announces goes to every neighbour: counted here, not
	// by GoBGP walking its table per peer (EnableAdvertised) on its main
	// loop, which a scrape of a fabric of 100,000 routes would stall.
	sent := uint64(0)
	for _, v := range s.vnis {
		sent += 1 + uint64(len(v.local))
	}
	s.mu.Unlock()
	if srv == nil {
		return nil
	}
	var out []Neighbor
	_ = srv.ListPeer(context.Background(), &api.ListPeerRequest{}, func(p *api.Peer) {
		n := Neighbor{State: "unknown"}
		if p.Conf != nil {
			n.Address, _ = netip.ParseAddr(p.Conf.NeighborAddress)
			n.ASN = p.Conf.PeerAsn
		}
		if p.State != nil {
			n.State = sessionState(bgp.FSMState(p.State.SessionState - 1))
		}
		if p.Timers != nil && p.Timers.State != nil && p.Timers.State.Uptime != nil && n.State == "established" {
			n.Uptime = time.Since(p.Timers.State.Uptime.AsTime()).Truncate(time.Second).String()
		}
		for _, af := range p.AfiSafis {
			if af.State != nil {
				n.Received += af.State.Received
				n.Accepted += af.State.Accepted
			}
		}
		if n.State == "established" {
			n.Sent = sent
		}
		out = append(out, n)
	})
	slices.SortFunc(out, func(a, b Neighbor) int { return a.Address.Compare(b.Address) })
	return out
}

// VNIs lists the switches in the fabric.
func (s *Speaker) VNIs() []VNIInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []VNIInfo
	for _, id := range slices.Sorted(maps.Keys(s.vnis)) {
		v := s.vnis[id]
		in := VNIInfo{Switch: v.sw, VNI: id, RD: v.adv.rd.String(), LocalMACs: len(v.local), RemoteMACs: len(v.installed),
			VTEPs: slices.SortedFunc(maps.Keys(v.vteps), netip.Addr.Compare), Import: []string{}}
		for _, e := range v.adv.export {
			in.Export = append(in.Export, e.String())
		}
		for _, t := range v.imports {
			in.Import = append(in.Import, t.String())
		}
		out = append(out, in)
	}
	return out
}

func (t target) String() string {
	if t.anyAS {
		return "*:" + strconv.FormatUint(uint64(t.n), 10)
	}
	return t.ec.String()
}

// Routes lists the routes received (imported or not) and those sent.
func (s *Speaker) Routes() (received, sent []RouteInfo) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, key := range slices.Sorted(maps.Keys(s.routes)) {
		rc := s.routes[key]
		ri := routeInfo(&rc.r)
		if len(rc.vnis) == 0 {
			received = append(received, ri)
		}
		for _, v := range rc.vnis {
			ri.VNI, ri.Switch = v.id, v.sw
			received = append(received, ri)
		}
	}
	for _, id := range slices.Sorted(maps.Keys(s.vnis)) {
		v := s.vnis[id]
		sent = append(sent, RouteInfo{Type: 3, RD: v.adv.rd.String(), VNI: id, VTEP: v.adv.vtep, Switch: v.sw})
		for _, m := range slices.SortedFunc(maps.Keys(v.local), func(a, b frame.MAC) int { return slices.Compare(a[:], b[:]) }) {
			sent = append(sent, RouteInfo{Type: 2, RD: v.adv.rd.String(), VNI: id, VTEP: v.adv.vtep, MAC: m.String(),
				Seq: v.local[m], Switch: v.sw})
		}
	}
	return received, sent
}

func routeInfo(r *Route) RouteInfo {
	ri := RouteInfo{Type: int(r.Type), RD: r.RD, VNI: r.Label, VTEP: r.VTEP, Seq: r.Seq}
	if r.Peer.IsValid() {
		ri.Peer = r.Peer.String()
	}
	if r.Type == bgp.EVPN_ROUTE_TYPE_MAC_IP_ADVERTISEMENT {
		ri.MAC = r.MAC.String()
		if r.IP.IsValid() {
			ri.IP = r.IP.String()
		}
	}
	return ri
}

// Stats returns the speaker's counters.
func (s *Speaker) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Stats{Running: s.srv != nil, Received: len(s.routes), Ignored: maps.Clone(s.ignored), Failures: s.failures}
	if s.cfg != nil {
		st.Neighbors = len(s.cfg.Neighbors)
	}
	for _, state := range s.peers {
		if state == "established" {
			st.Up++
		}
	}
	for _, v := range s.vnis {
		st.Sent += 1 + len(v.local)
		st.RemoteMACs += len(v.installed)
		st.VTEPs += len(v.vteps)
	}
	return st
}
