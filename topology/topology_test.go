package topology

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

// labSources is a lab of two switches, A and B, in one process (asked
// through both sockets), and a switch also called A in another.
func labSources() []Source {
	a := Source{Socket: "/lab/A.ctl", PID: 7,
		Switches: []SwitchIn{{Name: "A"}, {Name: "B", Hub: true}},
		Ports: []PortIn{
			{Name: "A", Switch: "A", Kind: "daemon", Spec: "transport=daemon,path=/lab/A.ctl,name=A", Listening: "/lab/A.ctl", ID: -1},
			{Name: "A.1", Switch: "A", Kind: "daemon", Peer: "daemon#1 pid=5", Listener: "A", ID: 1},
			{Name: "A.bess", Switch: "A", Kind: "bess", Spec: "transport=bess,path=/lab/A.bess,vlan=10", Listening: "/lab/A.bess", ID: -1},
			{Name: "A.bess.1", Switch: "A", Kind: "bess", Peer: "bess#2 /lab/pc2-eth0.sock", Listener: "A.bess", ID: 2},
			{Name: "vx-a", Switch: "A", Kind: "vxlan", Spec: "transport=vxlan,src=10.0.0.1,dst=10.0.0.2,vni=42,name=vx-a,vlan=10", ID: 3},
			{Name: "raw0", Switch: "A", Kind: "raw", Spec: "transport=raw,ifname=eth1", ID: 4},
			{Name: "tap0", Switch: "A", Kind: "tap", Spec: "transport=tap,ifname=tap0,create=1", ID: 5, State: "absent"},
			{Name: "st", Switch: "A", Kind: "stream", Spec: "transport=stream,path=/lab/s.sock,name=st", Listening: "/lab/s.sock", ID: -1},
			{Name: "st.1", Switch: "A", Kind: "stream", Peer: "stream#3 unbound", Listener: "st", ID: 6},
			{Name: "A.2", Switch: "A", Kind: "daemon", Peer: "daemon#4 pid=6", Listener: "A", ID: 7},
			{Name: "dg", Switch: "A", Kind: "dgram", Spec: "transport=dgram,path=/lab/x.sock,peer=/lab/y.sock", ID: 8},
		},
		FDB: []MACIn{
			{Switch: "A", MAC: "FE:FD:00:00:00:01", Port: "A.1"},
			{Switch: "A", MAC: "02:00:00:00:00:02", Port: "A.bess.1", VLAN: 10},
			{Switch: "A", MAC: "02:00:00:00:00:99", Port: "gone"},
			{Switch: "A", MAC: "02:00:00:00:00:42", Port: "vx-a"},
		},
	}
	b := Source{Socket: "/lab/A.ctl", PID: 7,
		Ports: []PortIn{
			{Name: "B", Switch: "B", Kind: "daemon", Listening: "/lab/B.ctl", Spec: "transport=daemon,path=/lab/B.ctl", ID: -1},
			{Name: "B.1", Switch: "B", Kind: "daemon", Listener: "B", ID: 10},
			{Name: "vx-b", Switch: "B", Kind: "vxlan", Spec: "transport=vxlan,src=10.0.0.2,dst=10.0.0.1,vni=42,name=vx-b", ID: 11},
			{Name: "raw1", Switch: "B", Kind: "raw", Spec: "transport=raw,ifname=eth1,trunk=10;20", ID: 12},
			{Name: "l2", Switch: "B", Kind: "l2tpv3", Spec: "transport=l2tpv3,src=10.0.0.2,dst=192.0.2.9,udp=1,rx_session=1,tx_session=2", ID: 13},
			{Name: "stc", Switch: "B", Kind: "stream", Spec: "transport=stream,path=/lab/s.sock,connect=1,name=stc", ID: 14},
			{Name: "dg2", Switch: "B", Kind: "dgram", Spec: "transport=dgram,path=/lab/y.sock,peer=/lab/x.sock", ID: 15},
			{Name: "evpn-100-10.0.0.9", Switch: "B", Kind: "vxlan", Peer: "vxlan 10.0.0.2:4789->10.0.0.9:4789 vni 100", VTEP: "10.0.0.9", ID: 16},
		},
		FDB: []MACIn{{Switch: "B", MAC: "fe:fd:00:00:00:11", Port: "B.1"}},
	}
	// One source holds what the API answers for every switch: the test
	// splits them only to read better.
	a.Ports = append(a.Ports, b.Ports...)
	a.FDB = append(a.FDB, b.FDB...)
	again := a // the same process through B's socket: drawn once
	again.Socket = "/lab/B.ctl"
	other := Source{Socket: "/other/A.ctl", PID: 9, Switches: []SwitchIn{{Name: "A"}},
		Ports: []PortIn{{Name: "x", Switch: "A", Kind: "vxlan", Spec: "transport=vxlan,src=10.0.0.9,dst=10.0.0.2,vni=100", ID: 1}}}
	return []Source{a, again, other}
}

var labMachines = []Machine{
	{Name: "pc1", Interface: "eth0", MAC: "fe:fd:00:00:00:01", Socket: "pc1-eth0.sock"},
	{Name: "pc1", Interface: "eth1", MAC: "fe:fd:00:00:00:11", Socket: "pc1-eth1.sock"},
	{Name: "pc2", Interface: "eth0", Socket: "pc2-eth0.sock"},
}

// links writes g's links as "A:port -- B:port kind" and "A:port -- label".
func links(g *Graph) []string {
	name := func(e End) string {
		if e.Node != "" {
			for _, n := range g.Nodes {
				if n.ID == e.Node {
					return n.Kind + " " + n.Label
				}
			}
		}
		for _, s := range g.Switches {
			if s.ID == e.Switch {
				return s.Name + "@" + s.Socket + ":" + e.Port
			}
		}
		return "?"
	}
	var out []string
	for _, l := range g.Links {
		out = append(out, name(l.A)+" -- "+name(l.B)+" "+l.Kind)
	}
	return out
}

func TestBuild(t *testing.T) {
	g := Build(labSources(), labMachines)
	if len(g.Switches) != 3 || g.Switches[0].Name != "A" || g.Switches[1].Name != "B" || g.Switches[2].Socket != "/other/A.ctl" {
		t.Fatalf("switches: %+v", g.Switches)
	}
	if g.Switches[1].Socket != "/lab/B.ctl" || !g.Switches[1].Hub {
		t.Errorf("B: socket %s, hub %v", g.Switches[1].Socket, g.Switches[1].Hub)
	}
	want := []string{
		"A@/lab/A.ctl:vx-a -- B@/lab/B.ctl:vx-b vxlan",
		"A@/lab/A.ctl:dg -- B@/lab/B.ctl:dg2 dgram",
		"B@/lab/B.ctl:stc -- A@/lab/A.ctl:st.1 stream",
		"B@/lab/B.ctl:evpn-100-10.0.0.9 -- A@/other/A.ctl:x vxlan",
		"A@/lab/A.ctl:A.1 -- machine pc1 daemon",
		"A@/lab/A.ctl:A.bess.1 -- machine pc2 bess",
		"A@/lab/A.ctl:raw0 -- interface raw eth1 raw",
		"A@/lab/A.ctl:tap0 -- interface tap tap0 tap",
		"A@/lab/A.ctl:A.2 -- port A.2 on A\ndaemon#4 pid=6 daemon",
		"B@/lab/B.ctl:B.1 -- machine pc1 daemon",
		"B@/lab/B.ctl:raw1 -- interface raw eth1 raw",
		"B@/lab/B.ctl:l2 -- remote l2tpv3 192.0.2.9 session 1/2 l2tpv3",
	}
	got := links(g)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("links:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	a := g.Switches[0]
	var vx, bess Port
	for _, p := range a.Ports {
		switch p.Name {
		case "vx-a":
			vx = p
		case "A.bess.1":
			bess = p
		}
	}
	if vx.Tunnel == nil || *vx.Tunnel != (Tunnel{Type: "vxlan", Local: "10.0.0.1", Remote: "10.0.0.2", ID: "vni 42",
		self: vx.Tunnel.self, match: vx.Tunnel.match}) || vx.Keys["vlan"] != "10" || len(vx.Hosts) != 1 {
		t.Errorf("vx-a: %+v %+v", vx, vx.Tunnel)
	}
	if bess.Machine != "pc2 eth0" || len(bess.Hosts) != 1 || bess.Hosts[0].VLAN != 10 {
		t.Errorf("A.bess.1: %+v", bess)
	}
	if h := a.Ports[1].Hosts; len(h) != 1 || h[0].MAC != "fe:fd:00:00:00:01" || h[0].Machine != "pc1" || h[0].Interface != "eth0" {
		t.Errorf("A.1's hosts: %+v", h)
	}
	// The same lab without lab.conf: addresses instead of machines.
	got = links(Build(labSources(), nil))
	if got[4] != "A@/lab/A.ctl:A.1 -- mac fe:fd:00:00:00:01 daemon" || got[5] != "A@/lab/A.ctl:A.bess.1 -- mac 02:00:00:00:00:02 bess" {
		t.Errorf("without a lab: %q", got[4:6])
	}
}

func TestJSON(t *testing.T) {
	var b bytes.Buffer
	if err := Build(labSources(), labMachines).Write(&b, "json"); err != nil {
		t.Fatal(err)
	}
	var back struct {
		Version  int
		Switches []struct {
			ID, Name, Socket string
			Ports            []map[string]any
		}
		Nodes []map[string]string
		Links []struct {
			A, B        map[string]string
			Kind, Label string
		}
	}
	if err := json.Unmarshal(b.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if back.Version != 1 || len(back.Switches) != 3 || back.Switches[1].ID != "s1" || len(back.Links) != 12 ||
		back.Links[0].A["switch"] != "s0" || back.Links[0].B["port"] != "vx-b" || back.Links[0].Label != "vxlan vni 42\nvx-a vlan=10 — vx-b" {
		t.Errorf("json:\n%s", b.String())
	}
	// Empty: lists, never null.
	b.Reset()
	Build(nil, nil).Write(&b, "json")
	if !strings.Contains(b.String(), `"switches": []`) || !strings.Contains(b.String(), `"links": []`) {
		t.Errorf("an empty graph:\n%s", b.String())
	}
	if err := Build(nil, nil).Write(&b, "svg"); err == nil {
		t.Error("format svg: no error")
	}
}

// awkward has names that dot and Mermaid must be given escaped.
func awkward() []Source {
	return []Source{{Socket: `/tmp/a "lab"\x.ctl`, PID: 1, Switches: []SwitchIn{{Name: `sw-1.a"b`}, {Name: "sw|2#x<y>`z"}},
		Ports: []PortIn{
			{Name: `p"1\`, Switch: `sw-1.a"b`, Kind: "tap", Spec: "transport=tap,ifname=t\"a\\p\n", ID: 1},
			{Name: "p-2.x", Switch: "sw|2#x<y>`z", Kind: "daemon", Peer: "a\nb", ID: 2},
		}}}
}

func TestDotAndMermaidEscape(t *testing.T) {
	g := Build(awkward(), nil)
	var dot, mm bytes.Buffer
	g.Write(&dot, "dot")
	g.Write(&mm, "mermaid")
	for i, l := range strings.Split(strings.TrimSpace(dot.String()), "\n") {
		if !dotBalanced(l) {
			t.Errorf("dot line %d has an open string: %s", i, l)
		}
	}
	if !strings.Contains(dot.String(), `label="switch sw-1.a\"b\n/tmp/a \"lab\"\\x.ctl"`) {
		t.Errorf("dot:\n%s", dot.String())
	}
	lines := strings.Split(strings.TrimSpace(mm.String()), "\n")
	if lines[0] != "graph LR" {
		t.Errorf("mermaid starts %q", lines[0])
	}
	for _, l := range lines[1:] {
		if !mermaidLine(l) {
			t.Errorf("mermaid line %q", l)
		}
	}
	if !strings.Contains(mm.String(), `s1["switch sw#124;2#35;x#lt;y#gt;#96;z<br/>/tmp/a #quot;lab#quot;\x.ctl"]`) {
		t.Errorf("mermaid:\n%s", mm.String())
	}
	graphviz(t, dot.Bytes())
	var lab bytes.Buffer
	Build(labSources(), labMachines).Write(&lab, "dot")
	graphviz(t, lab.Bytes())
}

// graphviz has dot draw the graph (Graphviz is one of scripts/deps').
func graphviz(t *testing.T, src []byte) {
	t.Helper()
	if _, err := exec.LookPath("dot"); err != nil {
		t.Fatalf("no Graphviz (dot) to check the drawing: scripts/deps install installs it")
	}
	cmd := exec.Command("dot", "-Tsvg")
	cmd.Stdin = bytes.NewReader(src)
	out, err := cmd.CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("<svg")) || bytes.Contains(out, []byte("Warning")) {
		t.Errorf("dot -Tsvg: %v\n%s\n%s", err, out, src)
	}
}

// dotBalanced reports whether a line of dot closes every quoted string it
// opens.
func dotBalanced(l string) bool {
	in := false
	for i := 0; i < len(l); i++ {
		switch {
		case in && l[i] == '\\':
			i++
		case l[i] == '"':
			in = !in
		}
	}
	return !in
}

// mermaidLine reports whether a line is a node or a link whose quoted
// text holds no quote, pipe or line break of its own.
func mermaidLine(l string) bool {
	if strings.Count(l, `"`)%2 != 0 {
		return false
	}
	parts := strings.Split(l, `"`)
	for i := 1; i < len(parts); i += 2 {
		if strings.ContainsAny(parts[i], "|\n<>`") && !strings.Contains(parts[i], "<br/>") {
			return false
		}
		if strings.ContainsAny(strings.ReplaceAll(parts[i], "<br/>", ""), "<>|`") {
			return false
		}
	}
	return true
}

// FuzzBuild: whatever the API answers (any JSON), the graph builds and
// every format writes without panicking, with dot's strings closed on
// every line and Mermaid's text escaped.
func FuzzBuild(f *testing.F) {
	for _, s := range [][]Source{labSources(), awkward()} {
		b, _ := json.Marshal(s)
		f.Add(b)
	}
	f.Add([]byte(`[{"ports":[{"name":"x","switch":"y","kind":"vxlan","peer":"vxlan a->b vni 1"}]}]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var srcs []Source
		if json.Unmarshal(data, &srcs) != nil {
			return
		}
		g := Build(srcs, labMachines)
		var dot, mm, js bytes.Buffer
		if err := g.Write(&js, "json"); err != nil || !json.Valid(js.Bytes()) {
			t.Fatalf("json: %v", err)
		}
		g.Write(&dot, "dot")
		for _, l := range strings.Split(dot.String(), "\n") {
			if !dotBalanced(l) {
				t.Fatalf("dot line %q", l)
			}
		}
		g.Write(&mm, "mermaid")
		for _, l := range strings.Split(strings.TrimSpace(mm.String()), "\n")[1:] {
			if !mermaidLine(l) {
				t.Fatalf("mermaid line %q", l)
			}
		}
	})
}
