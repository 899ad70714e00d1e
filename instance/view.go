package instance

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/umlswitch/umlswitch/configs"
	"github.com/umlswitch/umlswitch/evpn"
	"github.com/umlswitch/umlswitch/fabric"
	"github.com/umlswitch/umlswitch/frame"
	"github.com/umlswitch/umlswitch/impair"
	"github.com/umlswitch/umlswitch/policy"
	"github.com/umlswitch/umlswitch/transports"
)

// What the control API, `umlswitch ctl` and the metrics see of a running
// instance. JSON names are snake_case and stable: scripts read them.

// SwitchInfo is one switch and its table's counters.
type SwitchInfo struct {
	Name         string       `json:"name"`
	Hub          bool         `json:"hub"`
	MACAgeS      float64      `json:"mac_age_s"`
	MACTableSize int          `json:"mac_table_size"`
	MACs         int          `json:"macs"`        // addresses learned now
	Statics      int          `json:"static_macs"` // static entries
	MACLearned   uint64       `json:"mac_learned"` // addresses first seen, ever
	MACMoved     uint64       `json:"mac_moved"`   // addresses seen on another port than before
	MACRefused   uint64       `json:"mac_refused"` // not learned: the table was full with nothing to evict
	MACEvicted   uint64       `json:"mac_evicted"` // evicted to make room
	Ports        int          `json:"ports"`       // attached ports (listeners not counted)
	Mirrors      int          `json:"mirrors"`
	Capture      *CaptureInfo `json:"capture,omitempty"` // live capture through the API, once someone asked
}

// CaptureInfo counts a mirror's frames.
type CaptureInfo struct {
	Captured uint64 `json:"captured"`
	Dropped  uint64 `json:"dropped"`
}

// PortInfo is one port: an attached port with counters, or a listener
// (daemon, bess, a listening stream) whose clients are ports of their own.
type PortInfo struct {
	Name      string            `json:"name"`
	Switch    string            `json:"switch"`
	Kind      string            `json:"kind"`                // transport: daemon, bess, tap, raw, gre, l2tpv3, vxlan
	Peer      string            `json:"peer,omitempty"`      // who is at the other end, as the transport names it
	Spec      string            `json:"spec,omitempty"`      // configured ports and listeners: the -port spec
	Listener  string            `json:"listener,omitempty"`  // a client's port: the listener it came through
	Listening string            `json:"listening,omitempty"` // a listener: its socket
	Clients   int               `json:"clients,omitempty"`   // a listener: ports attached through it now
	ID        int               `json:"id"`                  // the switch's port number; -1 for a listener or an absent port
	RxFrames  uint64            `json:"rx_frames"`
	RxBytes   uint64            `json:"rx_bytes"`
	TxFrames  uint64            `json:"tx_frames"`
	TxBytes   uint64            `json:"tx_bytes"`
	Drops     map[string]uint64 `json:"drops"` // by reason; reasons with no drops left out
	Stalls    uint64            `json:"stalls"`
	Slowed    uint64            `json:"slowed"`
	HeldS     float64           `json:"held_s"`         // time senders waited for it to take frames
	Link      *LinkInfo         `json:"link,omitempty"` // an impaired port: how, and what it did
	// LinkState is "down" while the port's link is broken on purpose
	// (link=down: it passes nothing; on a listener, for every client),
	// "up" otherwise.
	LinkState string `json:"link_state"`
	// State is "absent" for a configured port whose interface is gone (a
	// deleted tap or veth), which is attached again when an interface of
	// its name is back; Reason says why. Empty otherwise.
	State  string `json:"state,omitempty"`
	Reason string `json:"reason,omitempty"`
	// VTEP is the remote VTEP of a fabric tunnel (a vxlan port the EVPN
	// control plane made, named evpn-VNI-VTEP); empty for other ports.
	VTEP string `json:"vtep,omitempty"`
	// Details are what the port's kind reports of it beyond the counters:
	// a nat port's leases and forwards (see that kind's Info).
	Details any `json:"details,omitempty"`
}

// LinkInfo is an impaired port's link (delay=, loss=, ...) and its counts.
type LinkInfo struct {
	DelayS     float64 `json:"delay_s"`
	JitterS    float64 `json:"jitter_s"`
	Loss       float64 `json:"loss"` // shares, 0..1
	Dup        float64 `json:"dup"`
	Corrupt    float64 `json:"corrupt"`
	RateBPS    int64   `json:"rate_bps"`
	Delayed    uint64  `json:"delayed"` // frames that went through its queue
	Lost       uint64  `json:"lost"`
	Duplicated uint64  `json:"duplicated"`
	Corrupted  uint64  `json:"corrupted"`
	Overflowed uint64  `json:"overflowed"`
}

func linkInfo(w *impair.Port) *LinkInfo {
	c, st := w.Config(), w.Stats()
	return &LinkInfo{DelayS: c.Delay.Seconds(), JitterS: c.Jitter.Seconds(), Loss: c.Loss, Dup: c.Dup, Corrupt: c.Corrupt,
		RateBPS: c.Rate, Delayed: st.Delayed, Lost: st.Lost, Duplicated: st.Duplicated, Corrupted: st.Corrupted, Overflowed: st.Overflowed}
}

// MACInfo is one MAC table entry.
type MACInfo struct {
	Switch string  `json:"switch"`
	MAC    string  `json:"mac"`
	Port   string  `json:"port"` // empty: a port that has gone, not yet flushed
	VLAN   int     `json:"vlan"` // 0: untagged frames of ports without VLAN keys
	AgeS   float64 `json:"age_s"`
	Static bool    `json:"static"`
	// Remote: put there by the EVPN control plane for an address a remote
	// VTEP announced (a type-2 route); VTEP is that VTEP. Remote entries
	// do not age: they go when the route is withdrawn.
	Remote bool   `json:"remote"`
	VTEP   string `json:"vtep,omitempty"`
}

// MirrorInfo is one mirror.
type MirrorInfo struct {
	Name     string `json:"name"`
	Switch   string `json:"switch"`
	Spec     string `json:"spec"`
	Captured uint64 `json:"captured"`
	Dropped  uint64 `json:"dropped"`
}

func portInfoFrom(st fabric.PortStats, p *PortInfo) {
	p.ID = int(st.ID)
	p.RxFrames, p.RxBytes, p.TxFrames, p.TxBytes = st.RxFrames, st.RxBytes, st.TxFrames, st.TxBytes
	p.Stalls, p.Slowed, p.HeldS = st.Stalls, st.Slowed, st.Held.Seconds()
	p.Drops = make(map[string]uint64)
	for r := fabric.DropReason(1); r < fabric.NumDropReasons; r++ {
		if n := st.Drops[r]; n > 0 {
			p.Drops[r.String()] = n
		}
	}
}

// naturalCompare orders names with numbers in them as people do:
// daemon0.2 before daemon0.10.
func naturalCompare(a, b string) int {
	for a != "" && b != "" {
		da, db := digits(a), digits(b)
		if da > 0 && db > 0 {
			na, nb := strings.TrimLeft(a[:da], "0"), strings.TrimLeft(b[:db], "0")
			if c := cmp.Compare(len(na), len(nb)); c != 0 {
				return c
			}
			if c := strings.Compare(na, nb); c != 0 {
				return c
			}
			a, b = a[da:], b[db:]
			continue
		}
		if a[0] != b[0] {
			return cmp.Compare(a[0], b[0])
		}
		a, b = a[1:], b[1:]
	}
	return cmp.Compare(len(a), len(b))
}

func digits(s string) int {
	n := 0
	for n < len(s) && s[n] >= '0' && s[n] <= '9' {
		n++
	}
	return n
}

// Switches lists the switches in the order they were added.
func (in *Instance) Switches() []SwitchInfo {
	in.mu.Lock()
	sws := slices.Clone(in.switches)
	counts := make(map[*switchState]int)
	mirrors := make(map[*switchState]int)
	for _, p := range in.ports {
		if p.port != nil || (p.parent != nil && p.id != frame.NoPort) {
			counts[p.sw]++
		}
	}
	for _, m := range in.mirrors {
		mirrors[m.sw]++
	}
	lives := make(map[*switchState][]*liveCapture)
	for _, sw := range sws {
		for _, l := range sw.lives {
			lives[sw] = append(lives[sw], l)
		}
	}
	in.mu.Unlock()
	out := make([]SwitchInfo, 0, len(sws))
	for _, sw := range sws {
		t := sw.core.Table()
		si := SwitchInfo{Name: sw.name, Hub: sw.core.Hub(), MACAgeS: sw.core.MACAge().Seconds(),
			MACTableSize: sw.core.MACTableSize(), MACs: t.Len(), Statics: t.Statics(), MACLearned: t.Learned(),
			MACMoved: t.Moved(), MACRefused: t.Refused(), MACEvicted: t.Evicted(), Ports: counts[sw], Mirrors: mirrors[sw]}
		for _, l := range lives[sw] { // every live capture of it, narrowed or not
			st := l.m.Stats()
			if si.Capture == nil {
				si.Capture = &CaptureInfo{}
			}
			si.Capture.Captured += st.Captured
			si.Capture.Dropped += st.Dropped
		}
		out = append(out, si)
	}
	return out
}

// Ports lists the ports of switch sw ("" for every switch), listeners
// included, sorted by switch and name.
func (in *Instance) Ports(sw string) []PortInfo {
	in.mu.Lock()
	var ps []*portState
	order := make(map[string]int)
	for i, s := range in.switches {
		order[s.name] = i
	}
	clients := make(map[*portState]int)
	for _, p := range in.ports {
		if sw == "" || p.sw.name == sw {
			ps = append(ps, p)
		}
		if p.parent != nil && p.id != frame.NoPort {
			clients[p.parent]++
		}
	}
	infos := make([]PortInfo, len(ps))
	links := make([]*impair.Port, len(ps))
	opened := make([]*transports.Opened, len(ps))
	for i, p := range ps {
		links[i], opened[i] = p.impaired, p.opened
		pi := &infos[i]
		pi.Name, pi.Switch, pi.Kind, pi.Peer, pi.ID = p.name, p.sw.name, p.kind, p.peer, int(p.id)
		pi.LinkState = "up"
		spec, err := p.effective(nil)
		if err == nil && policy.Of(spec).LinkDown {
			pi.LinkState = "down"
		}
		if p.parent != nil {
			pi.Listener = p.parent.name
		} else if err == nil {
			pi.Spec = spec.String() // with the keys changed at run time
		}
		if p.listener {
			pi.ID, pi.Clients = -1, clients[p]
			if p.opened != nil {
				pi.Listening = p.opened.Path()
			}
		}
		if p.id == frame.NoPort {
			pi.ID = -1
		}
		if p.absent != "" {
			pi.State, pi.Reason = "absent", p.absent
		}
		if p.vtep.IsValid() {
			pi.VTEP = p.vtep.String()
		}
	}
	in.mu.Unlock()
	for i := range infos {
		pi := &infos[i]
		pi.Drops = map[string]uint64{}
		if links[i] != nil {
			pi.Link = linkInfo(links[i])
		}
		if opened[i] != nil {
			pi.Details = opened[i].Info()
		}
		if pi.ID < 0 {
			continue
		}
		if st, ok := in.fab.PortStats(frame.PortID(pi.ID)); ok && st.Name == pi.Name {
			portInfoFrom(st, pi)
		}
	}
	slices.SortFunc(infos, func(a, b PortInfo) int {
		if a.Switch != b.Switch {
			return order[a.Switch] - order[b.Switch]
		}
		return naturalCompare(a.Name, b.Name)
	})
	return infos
}

// FDB lists the MAC table of switch sw, or of every switch for "".
func (in *Instance) FDB(sw string) ([]MACInfo, error) {
	in.mu.Lock()
	var sws []*switchState
	for _, s := range in.switches {
		if sw == "" || s.name == sw {
			sws = append(sws, s)
		}
	}
	// The fabric tunnels' remote VTEPs, for the remote entries behind them.
	vteps := make(map[frame.PortID]netip.Addr, len(in.tunnels))
	for _, ps := range in.tunnels {
		if ps.id != frame.NoPort {
			vteps[ps.id] = ps.vtep
		}
	}
	in.mu.Unlock()
	if sw != "" && len(sws) == 0 {
		return nil, fmt.Errorf("switch %s: %w", sw, ErrNotFound)
	}
	out := []MACInfo{}
	for _, s := range sws {
		for _, e := range s.core.Entries() {
			mi := MACInfo{Switch: s.name, MAC: e.MAC.String(), VLAN: int(e.VLAN), AgeS: time.Duration(e.Age).Seconds(),
				Static: e.Static, Remote: e.Remote}
			if e.Port != frame.NoPort {
				mi.Port = in.fab.PortName(e.Port)
				if v, ok := vteps[e.Port]; ok {
					mi.VTEP = v.String()
				}
			}
			out = append(out, mi)
		}
	}
	return out, nil
}

// Mirrors lists the mirrors, sorted by switch and name.
func (in *Instance) Mirrors() []MirrorInfo {
	in.mu.Lock()
	out := make([]MirrorInfo, 0, len(in.mirrors))
	for _, m := range in.mirrors {
		mi := MirrorInfo{Name: m.name, Switch: m.sw.name, Spec: m.spec.String()}
		if m.m != nil {
			st := m.m.Stats()
			mi.Captured, mi.Dropped = st.Captured, st.Dropped
		}
		out = append(out, mi)
	}
	in.mu.Unlock()
	slices.SortFunc(out, func(a, b MirrorInfo) int {
		return cmp.Or(strings.Compare(a.Switch, b.Switch), naturalCompare(a.Name, b.Name))
	})
	return out
}

// BGPInfo is the EVPN control plane's BGP side: GET /v1/bgp, ctl bgp.
type BGPInfo struct {
	ASN        uint32 `json:"asn"`
	RouterID   string `json:"router_id"`
	VTEP       string `json:"vtep"`
	ListenPort int    `json:"listen_port"` // 0: connects out only
	// Neighbors are the configured neighbours and their sessions; while
	// the speaker is not running (stats.running false: it failed to
	// start) they are listed idle.
	Neighbors []evpn.Neighbor `json:"neighbors"`
	Stats     evpn.Stats      `json:"stats"`
}

// EVPNInfo is the fabric the EVPN control plane made: GET /v1/evpn, ctl
// evpn.
type EVPNInfo struct {
	VTEP string         `json:"vtep"` // this host's
	VNIs []evpn.VNIInfo `json:"vnis"`
	// Unknown counts the VXLAN packets that reached this VTEP from an
	// address or with a VNI no tunnel has: VTEPs the control plane does
	// not know. They are dropped.
	Unknown uint64 `json:"unknown_packets"`
	// Received are the routes the neighbours sent, one per VNI it was
	// imported into (one without a switch was imported nowhere); Sent are
	// this VTEP's.
	Received []evpn.RouteInfo `json:"received"`
	Sent     []evpn.RouteInfo `json:"sent"`
}

// evpnConfig is the configuration's evpn: block, or ErrNoEVPN.
func (in *Instance) evpnConfig() (*configs.EVPN, error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.plan == nil || in.plan.EVPN == nil {
		return nil, ErrNoEVPN
	}
	return in.plan.EVPN, nil
}

// BGPView is the speaker's neighbours and counters; ErrNoEVPN when the
// configuration has no evpn: block.
func (in *Instance) BGPView() (BGPInfo, error) {
	cfg, err := in.evpnConfig()
	if err != nil {
		return BGPInfo{}, err
	}
	b := BGPInfo{ASN: cfg.ASN, RouterID: cfg.RouterID.String(), VTEP: cfg.VTEP.String(), ListenPort: cfg.ListenPort,
		Neighbors: in.speaker.Neighbors(), Stats: in.speaker.Stats()}
	if len(b.Neighbors) == 0 && !b.Stats.Running {
		for _, n := range cfg.Neighbors {
			b.Neighbors = append(b.Neighbors, evpn.Neighbor{Address: n.Address, ASN: n.ASN, State: "idle"})
		}
	}
	if b.Neighbors == nil {
		b.Neighbors = []evpn.Neighbor{}
	}
	if b.Stats.Ignored == nil {
		b.Stats.Ignored = map[string]uint64{}
	}
	return b, nil
}

// EVPNView is the fabric's VNIs and routes; ErrNoEVPN when the
// configuration has no evpn: block.
func (in *Instance) EVPNView() (EVPNInfo, error) {
	e, err := in.EVPNFabric()
	if err != nil {
		return e, err
	}
	e.Received, e.Sent = in.speaker.Routes()
	e.Received, e.Sent = nonNil(e.Received), nonNil(e.Sent)
	return e, nil
}

// EVPNFabric is EVPNView without the routes (empty lists): what a
// metrics scrape needs, without listing every route of the fabric.
func (in *Instance) EVPNFabric() (EVPNInfo, error) {
	cfg, err := in.evpnConfig()
	if err != nil {
		return EVPNInfo{}, err
	}
	e := EVPNInfo{VTEP: cfg.VTEP.String(), VNIs: in.speaker.VNIs()}
	local := netip.AddrPortFrom(cfg.VTEP, uint16(cfg.VXLANPort))
	for _, st := range in.set.TunnelStats() {
		if st.Kind == "vxlan" && st.Local == local {
			e.Unknown += st.Unknown
		}
	}
	// Empty lists, never null: scripts index them.
	for i := range e.VNIs {
		v := &e.VNIs[i]
		v.Export, v.Import, v.VTEPs = nonNil(v.Export), nonNil(v.Import), nonNil(v.VTEPs)
	}
	e.VNIs, e.Received, e.Sent = nonNil(e.VNIs), nonNil(e.Received), nonNil(e.Sent)
	return e, nil
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
