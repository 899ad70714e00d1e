// Package topology draws what runs in umlswitch processes: switches, their
// ports, the machines and addresses behind each port, and the links
// between switches (tunnels whose ends are both here, streams and
// datagram sockets one switch opens to another, host interfaces two
// switches share). It builds the graph from what the control API answers
// (switches, ports and the MAC table of each socket asked) and writes it
// as JSON, Graphviz dot or a Mermaid graph.
package topology

import (
	"cmp"
	"fmt"
	"net"
	"path"
	"regexp"
	"slices"
	"strings"
)

// Source is what one control socket's API answered: GET /v1/info's pid,
// GET /v1/switches, GET /v1/ports and GET /v1/fdb, as the API writes
// them (only the fields the graph uses are read).
type Source struct {
	Socket   string     `json:"socket"`
	PID      int        `json:"pid"`
	Switches []SwitchIn `json:"switches"`
	Ports    []PortIn   `json:"ports"`
	FDB      []MACIn    `json:"fdb"`
}

// SwitchIn is an entry of GET /v1/switches.
type SwitchIn struct {
	Name string `json:"name"`
	Hub  bool   `json:"hub"`
}

// PortIn is an entry of GET /v1/ports.
type PortIn struct {
	Name      string `json:"name"`
	Switch    string `json:"switch"`
	Kind      string `json:"kind"`
	Peer      string `json:"peer"`
	Spec      string `json:"spec"`
	Listener  string `json:"listener"`
	Listening string `json:"listening"`
	ID        int    `json:"id"`
	State     string `json:"state"`
	VTEP      string `json:"vtep"`
}

// MACIn is an entry of GET /v1/fdb.
type MACIn struct {
	Switch string `json:"switch"`
	MAC    string `json:"mac"`
	Port   string `json:"port"`
	VLAN   int    `json:"vlan"`
	Static bool   `json:"static"`
	Remote bool   `json:"remote"`
	VTEP   string `json:"vtep"`
}

// Machine is a machine's interface as a lab (lab.conf) names it.
type Machine struct {
	Name      string
	Interface string // eth0
	MAC       string // lowercase; "" when lab.conf gives none
	Socket    string // the base name of its vector interface's socket, MACHINE-ethN.sock
}

// Graph is the topology, as `ctl topology -format json` writes it
// (schema version 1; fields are only ever added).
type Graph struct {
	Version  int      `json:"version"`
	Switches []Switch `json:"switches"`
	// Nodes are what is outside the switches: machines (by lab.conf's
	// name), addresses whose machine is unknown, ports with nothing
	// learned behind them yet, host interfaces, and tunnel ends that no
	// switch asked owns.
	Nodes []Node `json:"nodes"`
	Links []Link `json:"links"`
}

// Switch is one switch and its ports.
type Switch struct {
	ID     string `json:"id"` // s0, s1, ...: what links name
	Name   string `json:"name"`
	Socket string `json:"socket"` // its own control socket (its first daemon listener's), else the one asked
	PID    int    `json:"pid"`
	Hub    bool   `json:"hub"`
	Ports  []Port `json:"ports"`
	asked  string // the socket whose answer it comes from
}

// Port is one port (listeners included).
type Port struct {
	Name      string            `json:"name"`
	Kind      string            `json:"kind"`
	Peer      string            `json:"peer,omitempty"`
	Listener  string            `json:"listener,omitempty"`  // a client: the listener it came through
	Listening string            `json:"listening,omitempty"` // a listener: its socket
	State     string            `json:"state,omitempty"`     // absent: its interface is gone
	Keys      map[string]string `json:"keys,omitempty"`      // VLAN, policy and link keys its spec sets
	Tunnel    *Tunnel           `json:"tunnel,omitempty"`
	Machine   string            `json:"machine,omitempty"` // the lab machine at its other end, where known
	Hosts     []Host            `json:"hosts,omitempty"`   // the MAC table's entries on it
	spec      map[string]string // every key of its spec
}

// Tunnel is a tunnel port's ends.
type Tunnel struct {
	Type   string `json:"type"` // vxlan, gre, l2tpv3
	Local  string `json:"local"`
	Remote string `json:"remote"`
	ID     string `json:"id,omitempty"` // vni 42, key 5/6, session 1/2 (received/sent)
	match  string // the key its other end has
	self   string // this end's key
}

// Host is an address learned (or set) on a port.
type Host struct {
	MAC       string `json:"mac"`
	VLAN      int    `json:"vlan,omitempty"`
	Static    bool   `json:"static,omitempty"`
	Remote    bool   `json:"remote,omitempty"` // an EVPN route's, behind VTEP
	VTEP      string `json:"vtep,omitempty"`
	Machine   string `json:"machine,omitempty"`
	Interface string `json:"interface,omitempty"`
}

// Node is something outside the switches.
type Node struct {
	ID    string `json:"id"`   // n0, n1, ...
	Kind  string `json:"kind"` // machine, mac, port, interface, remote
	Label string `json:"label"`
}

// Link joins a switch's port to another switch's port or to a node.
type Link struct {
	A     End    `json:"a"`
	B     End    `json:"b"`
	Kind  string `json:"kind"` // the port's: vxlan, gre, l2tpv3, stream, dgram, raw, tap, daemon, ...
	Label string `json:"label,omitempty"`
}

// End is one end of a link: a switch (by id) and its port, or a node.
type End struct {
	Switch string `json:"switch,omitempty"`
	Port   string `json:"port,omitempty"`
	Node   string `json:"node,omitempty"`
}

// shownKeys are the spec keys worth drawing: how the switch treats the
// port's frames and its link.
var shownKeys = []string{"vlan", "trunk", "native", "qinq", "split_horizon", "flood", "broadcast", "isolated",
	"mac_limit", "storm", "link_local", "link", "delay", "jitter", "loss", "dup", "corrupt", "rate"}

// Build makes the graph of what the sources answered; machines name the
// lab's machines behind ports (nil: none known). Switches that two
// sockets of one process both name are drawn once.
func Build(sources []Source, machines []Machine) *Graph {
	g := &Graph{Version: 1, Switches: []Switch{}, Nodes: []Node{}, Links: []Link{}}
	byMAC, bySocket := map[string]Machine{}, map[string]Machine{}
	for _, m := range machines {
		if m.MAC != "" {
			byMAC[strings.ToLower(m.MAC)] = m
		}
		if m.Socket != "" {
			bySocket[m.Socket] = m
		}
	}
	type swKey struct {
		pid  int
		name string
	}
	index := map[swKey]int{}
	for _, src := range sources {
		for _, s := range src.Switches {
			k := swKey{src.PID, s.Name}
			if _, dup := index[k]; dup || s.Name == "" {
				continue
			}
			index[k] = len(g.Switches)
			g.Switches = append(g.Switches, Switch{ID: fmt.Sprintf("s%d", len(g.Switches)), Name: s.Name,
				Socket: src.Socket, PID: src.PID, Hub: s.Hub, Ports: []Port{}, asked: src.Socket})
		}
	}
	for _, src := range sources {
		for _, p := range src.Ports {
			i, ok := index[swKey{src.PID, p.Switch}]
			if !ok || g.Switches[i].asked != src.Socket || p.Name == "" {
				continue // a switch drawn from another socket's answer
			}
			port := Port{Name: p.Name, Kind: p.Kind, Peer: p.Peer, Listener: p.Listener, Listening: p.Listening,
				State: p.State, Keys: shown(p.Spec), spec: pairs(p.Spec)}
			port.Tunnel = tunnelOf(p)
			if m, ok := bySocket[path.Base(lastField(p.Peer))]; ok && p.Kind == "bess" {
				port.Machine = m.Name + " " + m.Interface
			}
			g.Switches[i].Ports = append(g.Switches[i].Ports, port)
		}
		for _, e := range src.FDB {
			i, ok := index[swKey{src.PID, e.Switch}]
			if !ok || g.Switches[i].asked != src.Socket {
				continue
			}
			j := slices.IndexFunc(g.Switches[i].Ports, func(p Port) bool { return p.Name == e.Port })
			if j < 0 {
				continue // a port gone, not yet flushed
			}
			h := Host{MAC: strings.ToLower(e.MAC), VLAN: e.VLAN, Static: e.Static, Remote: e.Remote, VTEP: e.VTEP}
			if m, ok := byMAC[h.MAC]; ok {
				h.Machine, h.Interface = m.Name, m.Interface
			}
			port := &g.Switches[i].Ports[j]
			port.Hosts = append(port.Hosts, h)
		}
	}
	for i := range g.Switches {
		// A switch's own control socket, where it has one, names it best.
		if j := slices.IndexFunc(g.Switches[i].Ports, func(p Port) bool { return p.Kind == "daemon" && p.Listening != "" }); j >= 0 {
			g.Switches[i].Socket = g.Switches[i].Ports[j].Listening
		}
		for j := range g.Switches[i].Ports {
			slices.SortFunc(g.Switches[i].Ports[j].Hosts, func(a, b Host) int {
				return cmp.Or(cmp.Compare(a.MAC, b.MAC), cmp.Compare(a.VLAN, b.VLAN))
			})
		}
	}
	g.link()
	return g
}

// link finds the links and the nodes outside the switches.
func (g *Graph) link() {
	nodes := map[string]string{} // kind:label -> id
	node := func(kind, label string) string {
		key := kind + ":" + label
		if id, ok := nodes[key]; ok {
			return id
		}
		id := fmt.Sprintf("n%d", len(g.Nodes))
		nodes[key] = id
		g.Nodes = append(g.Nodes, Node{ID: id, Kind: kind, Label: label})
		return id
	}
	type end struct{ sw, port int }
	tunnels := map[string][]end{} // a tunnel end's own key -> ports with it
	listeners := map[string]end{} // a stream listener's address -> its port
	clients := map[string][]end{} // a stream listener's name (switch|port) -> its clients
	dgrams := map[string]end{}    // a dgram port's path|peer -> its port
	for i, s := range g.Switches {
		for j, p := range s.Ports {
			e := end{i, j}
			switch {
			case p.Tunnel != nil:
				tunnels[p.Tunnel.self] = append(tunnels[p.Tunnel.self], e)
			case p.Kind == "stream" && p.Listening != "":
				listeners[p.Listening] = e
			case p.Kind == "stream" && p.Listener != "":
				clients[s.Name+"|"+p.Listener] = append(clients[s.Name+"|"+p.Listener], e)
			case p.Kind == "dgram":
				if path, peer := specKey(p, "path"), specKey(p, "peer"); path != "" {
					dgrams[path+"|"+peer] = e
				}
			}
		}
	}
	done := map[end]bool{}
	join := func(a, b end, kind, label string) {
		done[a], done[b] = true, true
		pa, pb := g.Switches[a.sw].Ports[a.port], g.Switches[b.sw].Ports[b.port]
		g.Links = append(g.Links, Link{A: End{Switch: g.Switches[a.sw].ID, Port: pa.Name},
			B: End{Switch: g.Switches[b.sw].ID, Port: pb.Name}, Kind: kind, Label: label + "\n" + portLabel(pa) + " — " + portLabel(pb)})
	}
	out := func(a end, kind, nodeKind, nodeLabel, label string) {
		done[a] = true
		g.Links = append(g.Links, Link{A: End{Switch: g.Switches[a.sw].ID, Port: g.Switches[a.sw].Ports[a.port].Name},
			B: End{Node: node(nodeKind, nodeLabel)}, Kind: kind, Label: label})
	}
	// Links between switches first, then what is behind the other ports.
	for i, s := range g.Switches {
		for j, p := range s.Ports {
			e := end{i, j}
			if done[e] || p.Listening != "" {
				continue
			}
			switch t := p.Tunnel; {
			case t != nil:
				if other := slices.DeleteFunc(slices.Clone(tunnels[t.match]), func(o end) bool { return o == e || done[o] }); len(other) > 0 {
					join(e, other[0], p.Kind, strings.TrimSpace(t.Type+" "+t.ID))
				}
			case p.Kind == "stream" && p.Listener == "" && specKey(p, "connect") == "1":
				addr := streamAddr(p)
				l, ok := listeners[addr]
				if !ok {
					continue
				}
				// Its other end is one of the listener's clients: which one
				// the API does not say, so the first not drawn yet (a unix
				// client that bound no address first: a switch binds none),
				// or the listener.
				other := l
				cs := slices.DeleteFunc(slices.Clone(clients[g.Switches[l.sw].Name+"|"+g.Switches[l.sw].Ports[l.port].Name]),
					func(c end) bool { return done[c] })
				slices.SortStableFunc(cs, func(a, b end) int {
					return cmp.Compare(unbound(g.Switches[b.sw].Ports[b.port]), unbound(g.Switches[a.sw].Ports[a.port]))
				})
				if len(cs) > 0 {
					other = cs[0]
				}
				join(e, other, "stream", "stream "+addr)
			case p.Kind == "dgram":
				path, peer := specKey(p, "path"), specKey(p, "peer")
				if o, ok := dgrams[peer+"|"+path]; ok && o != e && !done[o] {
					join(e, o, "dgram", "dgram "+path+" ↔ "+peer)
				}
			}
		}
	}
	for i, s := range g.Switches {
		for j, p := range s.Ports {
			e := end{i, j}
			if done[e] || p.Listening != "" { // listeners carry no frames: their clients do
				continue
			}
			label := portLabel(p)
			switch t := p.Tunnel; {
			case t != nil:
				out(e, p.Kind, "remote", strings.TrimSpace(fmt.Sprintf("%s %s %s", t.Type, t.Remote, t.ID)), label)
			case p.Kind == "stream" && p.Listener == "":
				out(e, p.Kind, "remote", "stream "+streamAddr(p), label)
			case p.Kind == "raw" || p.Kind == "tap":
				name := cmp.Or(specKey(p, "ifname"), p.Peer, p.Name)
				out(e, p.Kind, "interface", p.Kind+" "+name, label)
			default: // clients (a stream's and a dgram's too): what is behind them
				g.behind(e.sw, e.port, node, label)
			}
		}
	}
}

// streamAddr is where a stream port listens or connects: its path, or
// host:port.
func streamAddr(p Port) string {
	if path := specKey(p, "path"); path != "" {
		return path
	}
	return cmp.Or(specKey(p, "host"), "127.0.0.1") + ":" + specKey(p, "port")
}

// unbound is 1 for a unix stream client that bound no address, as a
// switch connecting to another does not.
func unbound(p Port) int {
	if strings.HasSuffix(p.Peer, " unbound") {
		return 1
	}
	return 0
}

// behind links a client port to what is behind it: the machines and
// addresses of its MAC table entries, or the port itself when nothing has
// been learned there yet.
func (g *Graph) behind(sw, port int, node func(kind, label string) string, label string) {
	s, p := g.Switches[sw], g.Switches[sw].Ports[port]
	link := func(id, iface string) {
		l := label
		if iface != "" { // the machine's side: its interface
			l += " — " + iface
		}
		g.Links = append(g.Links, Link{A: End{Switch: s.ID, Port: p.Name}, B: End{Node: id}, Kind: p.Kind, Label: l})
	}
	machine, iface, _ := strings.Cut(p.Machine, " ")
	seen := map[string]bool{}
	for _, h := range p.Hosts {
		var id, ifc string
		switch {
		case h.Machine != "":
			id, ifc = node("machine", h.Machine), h.Interface
		case machine != "":
			id, ifc = node("machine", machine), iface
		default:
			id = node("mac", h.MAC)
		}
		if !seen[id] {
			seen[id] = true
			link(id, ifc)
		}
	}
	if len(seen) > 0 {
		return
	}
	if machine != "" {
		link(node("machine", machine), iface)
		return
	}
	// Nothing learned behind it yet: the port itself, named on its switch.
	what := p.Name + " on " + s.Name
	if p.State != "" {
		what += " (" + p.State + ")"
	}
	if p.Peer != "" {
		what += "\n" + p.Peer
	}
	link(node("port", what), "")
}

// portLabel is a link's label for a port: its name and the keys that
// shape its traffic.
func portLabel(p Port) string {
	var b strings.Builder
	b.WriteString(p.Name)
	for _, k := range shownKeys {
		if v, ok := p.Keys[k]; ok {
			fmt.Fprintf(&b, " %s=%s", k, v)
		}
	}
	return b.String()
}

// pairs splits a -port spec into its keys.
func pairs(spec string) map[string]string {
	kv := map[string]string{}
	for _, f := range strings.Split(spec, ",") {
		if k, v, ok := strings.Cut(strings.TrimSpace(f), "="); ok && k != "" {
			kv[k] = v
		}
	}
	return kv
}

func shown(spec string) map[string]string {
	all, keys := pairs(spec), map[string]string{}
	for _, k := range shownKeys {
		if v, ok := all[k]; ok {
			keys[k] = v
		}
	}
	if len(keys) == 0 {
		return nil
	}
	return keys
}

// specKey is a key of the port's spec ("" when unset).
func specKey(p Port, key string) string { return p.spec[key] }

// lastField is the last space-separated word of s.
func lastField(s string) string {
	f := strings.Fields(s)
	if len(f) == 0 {
		return ""
	}
	return f[len(f)-1]
}

// evpnPeer reads an EVPN tunnel's peer, "vxlan LOCAL:PORT->REMOTE:PORT vni N",
// for ports the control plane made, which have no spec.
var evpnPeer = regexp.MustCompile(`^vxlan (\S+)->(\S+) vni (\d+)$`)

// tunnelOf reads a tunnel port's ends from its spec (or an EVPN port's
// peer), with the keys that pair it with its other end.
func tunnelOf(p PortIn) *Tunnel {
	kv := pairs(p.Spec)
	t := &Tunnel{Type: p.Kind, Local: kv["src"], Remote: kv["dst"]}
	var mine, theirs string // what identifies this end, and what the other end's spec says
	switch p.Kind {
	case "vxlan":
		vni, port := kv["vni"], cmp.Or(kv["dstport"], "4789")
		if p.Spec == "" {
			m := evpnPeer.FindStringSubmatch(p.Peer)
			if m == nil {
				return nil
			}
			t.Local, t.Remote, vni = hostOf(m[1]), hostOf(m[2]), m[3]
		}
		t.ID = "vni " + vni
		mine, theirs = vni+"|"+port, vni+"|"+port
	case "gre":
		if kv["rx_key"] != "" || kv["tx_key"] != "" {
			t.ID = "key " + kv["rx_key"] + "/" + kv["tx_key"]
		}
		mine, theirs = kv["rx_key"]+"|"+kv["tx_key"], kv["tx_key"]+"|"+kv["rx_key"]
	case "l2tpv3":
		t.ID = "session " + kv["rx_session"] + "/" + kv["tx_session"]
		mine = kv["rx_session"] + "|" + kv["tx_session"] + "|" + kv["srcport"] + "|" + kv["dstport"]
		theirs = kv["tx_session"] + "|" + kv["rx_session"] + "|" + kv["dstport"] + "|" + kv["srcport"]
	default:
		return nil
	}
	if t.Local == "" || t.Remote == "" {
		return nil
	}
	t.self = p.Kind + "|" + t.Local + "|" + t.Remote + "|" + mine
	t.match = p.Kind + "|" + t.Remote + "|" + t.Local + "|" + theirs
	return t
}

// hostOf strips a :port from an address.
func hostOf(addr string) string {
	if host, _, err := net.SplitHostPort(addr); err == nil {
		return host
	}
	return strings.Trim(addr, "[]")
}
