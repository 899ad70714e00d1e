package lab

import (
	"reflect"
	"strings"
	"testing"

	"github.com/umlswitch/umlswitch/configs"
	"github.com/umlswitch/umlswitch/transports/bess"
	"github.com/umlswitch/umlswitch/transports/daemon"
	"github.com/umlswitch/umlswitch/transports/raw"
	"github.com/umlswitch/umlswitch/transports/tap"
)

const netkitLab = `LAB_DESCRIPTION="two routers"
LAB_AUTHOR=someone
# machines
pc1[0]=A
pc1[mem]=128

r1[0]="A"
r1[2]="B/02:00:00:00:00:01"   
r1[image]=debian
pc2[0]=B # the other side
pc3[0]='C/02:00:00:00:00:AB'
pc3[bridged]=true
`

func TestParse(t *testing.T) {
	l, err := Parse(strings.NewReader(netkitLab))
	if err != nil {
		t.Fatal(err)
	}
	want := []Machine{
		{"pc1", []Interface{{0, "A", "", 4}}},
		{"pc2", []Interface{{0, "B", "", 10}}},
		{"pc3", []Interface{{0, "C", "02:00:00:00:00:ab", 11}}},
		{"r1", []Interface{{0, "A", "", 7}, {2, "B", "02:00:00:00:00:01", 8}}},
	}
	if !reflect.DeepEqual(l.Machines, want) {
		t.Fatalf("machines:\n%+v\nwant\n%+v", l.Machines, want)
	}
	if d := l.Domains(); !reflect.DeepEqual(d, []string{"A", "B", "C"}) {
		t.Fatalf("domains %v", d)
	}
	// It renders back to a lab.conf that means the same.
	back, err := Parse(strings.NewReader(l.String()))
	if err != nil || !sameMachines(back, l) {
		t.Fatalf("rendered %q: %v %+v", l.String(), err, back)
	}
}

func TestParseErrorsNameTheLine(t *testing.T) {
	for _, c := range []struct{ conf, want string }{
		{"pc1[0]=A\nthis is not a setting\n", `line 2: "this is not a setting" is not KEY=VALUE`},
		{"pc1[0]=A\npc1[0]=B\n", "line 2: pc1[0] given twice (first on line 1)"},
		{"\n\npc/1[0]=A\n", `line 3: machine name "pc/1"`},
		{"pc1[0]=A:B\n", `line 1: pc1[0]: collision domain name "A:B"`},
		{"pc1[0]=\n", `line 1: pc1[0]: collision domain name ""`},
		{"pc1[0]=" + strings.Repeat("d", 60) + "\n", `line 1: pc1[0]: collision domain "ddd`},
		{"pc1[0]=A/02:00:00:00:00\n", `line 1: pc1[0]: MAC "02:00:00:00:00"`},
		{"pc1[0]=A/01:00:5e:00:00:01\n", "multicast"},
		{"pc1[999]=A\n", "line 1: pc1[999]: interface numbers go from 0 to 255"},
		{"pc1[0]=" + strings.Repeat("x", 65) + "\n", "line 1"},
	} {
		_, err := Parse(strings.NewReader(c.conf))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want %q", c.conf, err, c.want)
		}
	}
}

func TestParseExt(t *testing.T) {
	l, _ := Parse(strings.NewReader("pc1[0]=A\npc2[0]=B\n"))
	if err := l.ParseExt(strings.NewReader("# host links\nA eth1\n\nB  veth0 \n")); err != nil {
		t.Fatal(err)
	}
	if want := []Bridge{{"A", "eth1", 2}, {"B", "veth0", 4}}; !reflect.DeepEqual(l.Bridges, want) {
		t.Fatalf("bridges %+v", l.Bridges)
	}
	for _, c := range []struct{ ext, want string }{
		{"A\n", `line 1: "A" is not DOMAIN INTERFACE`},
		{"Z eth1\n", `line 1: no machine of lab.conf is on collision domain "Z"`},
		{"A eth1\nB eth1\n", "line 2: interface eth1 is bridged already (line 1)"},
		{"A a-name-longer-than-15\n", "is not an interface name"},
	} {
		l, _ := Parse(strings.NewReader("pc1[0]=A\npc2[0]=B\n"))
		if err := l.ParseExt(strings.NewReader(c.ext)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want %q", c.ext, err, c.want)
		}
	}
}

var realInterfaceExists = interfaceExists

func TestPlan(t *testing.T) {
	l, _ := Parse(strings.NewReader(netkitLab))
	l.ParseExt(strings.NewReader("B eth1\nC lab-tap\n"))
	interfaceExists = func(name string) bool { return name == "eth1" }
	defer func() { interfaceExists = realInterfaceExists }()
	f, err := l.Plan("/run/lab", true)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Switches) != 3 {
		t.Fatalf("switches %+v", f.Switches)
	}
	for _, sw := range f.Switches {
		if !sw.Hub {
			t.Errorf("switch %s is no hub", sw.Name)
		}
		d, ok := sw.Ports[0].Options.(*daemon.Options)
		if !ok || d.Path != "/run/lab/"+sw.Name+".ctl" || sw.Ports[0].Name != sw.Name {
			t.Errorf("switch %s: first port %s", sw.Name, sw.Ports[0])
		}
		if b, ok := sw.Ports[1].Options.(*bess.Options); !ok || b.Path != "/run/lab/"+sw.Name+".bess" || sw.Ports[1].Name != sw.Name+".bess" {
			t.Errorf("switch %s: second port %s", sw.Name, sw.Ports[1])
		}
		wantPorts := 2
		switch sw.Name {
		case "B": // eth1 exists: bridged with a raw port
			wantPorts = 3
			if r, ok := sw.Ports[2].Options.(*raw.Options); !ok || r.Ifname != "eth1" {
				t.Errorf("B's bridge: %s", sw.Ports[2])
			}
		case "C": // lab-tap does not: a tap the switch creates
			wantPorts = 3
			if tp, ok := sw.Ports[2].Options.(*tap.Options); !ok || tp.Ifname != "lab-tap" || !tp.Create {
				t.Errorf("C's bridge: %s", sw.Ports[2])
			}
		}
		if len(sw.Ports) != wantPorts {
			t.Errorf("switch %s: %d ports", sw.Name, len(sw.Ports))
		}
	}
	if f, _ := l.Plan("/run/lab", false); f.Switches[0].Hub {
		t.Error("learning is not the default")
	}
	if _, err := l.Plan("/"+strings.Repeat("d", 100), false); err == nil || !strings.Contains(err.Error(), "choose a shorter directory") {
		t.Errorf("long directory: %v", err)
	}
	if _, err := (&Lab{}).Plan("/run/lab", false); err == nil {
		t.Error("an empty lab planned")
	}
}

// A lab.ext line IFNAME.VLAN on an interface the host has bridges the
// domain to that VLAN: the domain's ports become access ports of it and the
// bridge a trunk of it on IFNAME; two VLANs for one domain are refused.
func TestPlanVLANBridge(t *testing.T) {
	interfaceExists = func(name string) bool { return name == "eth0" || name == "eth1" }
	defer func() { interfaceExists = realInterfaceExists }()
	l, _ := Parse(strings.NewReader("pc1[0]=A\npc2[0]=B\n"))
	if err := l.ParseExt(strings.NewReader("A eth0.100\nA eth1\nB nosuch.7\n")); err != nil {
		t.Fatal(err)
	}
	f, err := l.Plan("/run/lab", false)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, sw := range f.Switches {
		for _, p := range sw.Ports {
			got = append(got, sw.Name+": "+p.String())
		}
	}
	want := []string{
		"A: transport=daemon,name=A,path=/run/lab/A.ctl,vlan=100",
		"A: transport=bess,name=A.bess,path=/run/lab/A.bess,vlan=100",
		"A: transport=raw,ifname=eth0,trunk=100",
		"A: transport=raw,ifname=eth1,vlan=100",
		"B: transport=daemon,name=B,path=/run/lab/B.ctl",
		"B: transport=bess,name=B.bess,path=/run/lab/B.bess",
		"B: transport=tap,ifname=nosuch.7,create=1,up=1",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("plan:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	l.ParseExt(strings.NewReader("A eth1.200\n"))
	if _, err := l.Plan("/run/lab", false); err == nil || !strings.Contains(err.Error(), "a domain is one VLAN") {
		t.Errorf("two VLANs for one domain: %v", err)
	}
}

func TestWriteOptions(t *testing.T) {
	l, _ := Parse(strings.NewReader("pc1[0]=A\nr1[0]=A\nr1[2]=B/02:00:00:00:00:01\n"))
	var b strings.Builder
	l.WriteOptions(&b, "/run/lab")
	want := `pc1 eth0=daemon,,unix,/run/lab/A.ctl
pc1 vec: vec0:transport=bess,dst=/run/lab/A.bess,src=/run/lab/pc1-eth0.sock
r1 eth0=daemon,,unix,/run/lab/A.ctl eth2=daemon,02:00:00:00:00:01,unix,/run/lab/B.ctl
r1 vec: vec0:transport=bess,dst=/run/lab/A.bess,src=/run/lab/r1-eth0.sock vec2:transport=bess,dst=/run/lab/B.bess,src=/run/lab/r1-eth2.sock,mac=02:00:00:00:00:01
`
	if b.String() != want {
		t.Fatalf("got\n%swant\n%s", b.String(), want)
	}
}

func sameMachines(a, b *Lab) bool {
	strip := func(l *Lab) []Machine {
		var ms []Machine
		for _, m := range l.Machines {
			m.Interfaces = append([]Interface(nil), m.Interfaces...)
			for i := range m.Interfaces {
				m.Interfaces[i].Line = 0
			}
			ms = append(ms, m)
		}
		return ms
	}
	return reflect.DeepEqual(strip(a), strip(b))
}

// Any input: no panic; what parses renders back to the same lab, plans
// without error and gives every interface its options.
func FuzzParse(f *testing.F) {
	f.Add(netkitLab)
	f.Add("pc1[0]=A\npc1[1]=\"B/02:00:00:00:00:01\"\n")
	f.Add("a[0]=b/02:00:00:00:00:01 # x\n")
	f.Add("x[1]='y'\nLAB=\"1\"\n")
	f.Fuzz(func(t *testing.T, conf string) {
		l, err := Parse(strings.NewReader(conf))
		if err != nil {
			return
		}
		back, err := Parse(strings.NewReader(l.String()))
		if err != nil || !sameMachines(back, l) {
			t.Fatalf("%q rendered as %q: %v", conf, l.String(), err)
		}
		if len(l.Machines) == 0 {
			return
		}
		plan, err := l.Plan("/run/lab", false)
		if err != nil {
			t.Fatalf("%q: plan: %v", conf, err)
		}
		if len(plan.Switches) != len(l.Domains()) {
			t.Fatalf("%q: %d switches for %d domains", conf, len(plan.Switches), len(l.Domains()))
		}
		for _, m := range l.Machines {
			if len(m.DaemonOptions("/run/lab")) != len(m.Interfaces) || len(m.VectorOptions("/run/lab")) != len(m.Interfaces) {
				t.Fatalf("%q: options of %s", conf, m.Name)
			}
		}
	})
}

// acrossHosts is a lab split over two hosts: A and B span both, C is
// host 2's alone, Z (sorted last) host 1's alone.
const acrossHosts = "pc1[0]=A\npc1[1]=Z\npc2[0]=B\npc3[0]=A\npc3[1]=C\npc4[0]=B\npc4[1]=C\n"

// Only keeps the named machines, the bridges of their domains, and plans
// switches for those domains only; names the lab lacks are an error
// naming them.
func TestOnly(t *testing.T) {
	l, _ := Parse(strings.NewReader(acrossHosts))
	if err := l.ParseExt(strings.NewReader("A eth1\nC eth2\nZ eth3\n")); err != nil {
		t.Fatal(err)
	}
	part, err := l.Only([]string{"pc2", "pc1", "pc2"})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range part.Machines {
		names = append(names, m.Name)
	}
	if !reflect.DeepEqual(names, []string{"pc1", "pc2"}) || !reflect.DeepEqual(part.Domains(), []string{"A", "B", "Z"}) {
		t.Errorf("machines %v, domains %v", names, part.Domains())
	}
	if len(part.Bridges) != 2 || part.Bridges[0].Ifname != "eth1" || part.Bridges[1].Ifname != "eth3" {
		t.Errorf("bridges %+v, want A's and Z's", part.Bridges)
	}
	if len(l.Machines) != 4 || len(l.Bridges) != 3 {
		t.Errorf("Only changed the lab: %+v", l)
	}
	for _, c := range []struct {
		names []string
		want  string
	}{
		{[]string{"pc1", "pc9", "r1", "pc9"}, "no machine pc9, r1 in lab.conf (it has pc1, pc2, pc3, pc4)"},
		{nil, "no machine named"},
	} {
		if _, err := l.Only(c.names); err == nil || err.Error() != c.want {
			t.Errorf("Only(%q): %v, want %q", c.names, err, c.want)
		}
	}
}

// Every host numbers the domains alike, whichever machines it runs: VNI
// base + the domain's index among all the lab's domains, by name.
func TestSpanNumbersDomainsAlikeOnEveryHost(t *testing.T) {
	l, _ := Parse(strings.NewReader(acrossHosts))
	e := &configs.EVPN{ASN: 65000}
	want := map[string]uint32{"A": 100, "B": 101, "C": 102, "Z": 103}
	for _, machines := range [][]string{nil, {"pc1", "pc2"}, {"pc3", "pc4"}, {"pc4"}, {"pc2"}, {"pc1", "pc2", "pc3", "pc4"}} {
		part := l
		if machines != nil {
			var err error
			if part, err = l.Only(machines); err != nil {
				t.Fatal(err)
			}
		}
		plan, err := part.Plan("/run/lab", false)
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Span(plan, e, 100); err != nil {
			t.Fatal(err)
		}
		if plan.EVPN != e {
			t.Errorf("%v: evpn %+v", machines, plan.EVPN)
		}
		for _, sw := range plan.Switches {
			if sw.VNI != want[sw.Name] {
				t.Errorf("%v: domain %s has VNI %d, want %d", machines, sw.Name, sw.VNI, want[sw.Name])
			}
		}
		if got := len(plan.Switches); got != len(part.Domains()) {
			t.Errorf("%v: %d switches for domains %v", machines, got, part.Domains())
		}
	}
	if vnis, err := l.VNIs(configs.MaxVNI - 3); err != nil || vnis["Z"] != configs.MaxVNI {
		t.Errorf("the last VNIs: %v %v", vnis, err)
	}
	for _, base := range []uint32{0, configs.MaxVNI - 2, configs.MaxVNI, 1 << 31} {
		if _, err := l.VNIs(base); err == nil || !strings.Contains(err.Error(), "4 collision domains") {
			t.Errorf("vni_base %d: %v", base, err)
		}
		plan, _ := l.Plan("/run/lab", false)
		if err := l.Span(plan, e, base); err == nil || plan.EVPN != nil {
			t.Errorf("vni_base %d spanned", base)
		}
	}
	// A plan of another lab: a switch no domain of l.
	other, _ := Parse(strings.NewReader("pc1[0]=Q\n"))
	plan, _ := other.Plan("/run/lab", false)
	if err := l.Span(plan, e, 1); err == nil || !strings.Contains(err.Error(), "switch Q") {
		t.Errorf("foreign plan: %v", err)
	}
}
