package configs_test

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/umlswitch/umlswitch/configs"
)

const evpnBlock = `
evpn:
  asn: 65000
  router_id: 172.31.0.1
  vtep: 172.31.0.1
  neighbors:
    - {address: 172.31.0.254, asn: 65000}
`

// The example: every key, the defaults filled in, the route
// targets as a list or one value, normalized.
func TestParseEVPN(t *testing.T) {
	f, err := configs.Parse([]byte(`
vni: 100
rd: " 172.31.0.1:7 "
import_rt: ["65000:100", "*:200"]
export_rt: 65000:100
ports: [{transport: daemon, path: /tmp/a.ctl}]
switches:
  - {name: b, vni: 0x65, ports: [{transport: daemon, path: /tmp/b.ctl}]}
  - {name: c}
evpn:
  asn: 4200000000
  router_id: 172.31.0.1
  vtep: "::ffff:172.31.0.2"
  vxlan_port: 4790
  listen_port: 0
  hold_time: 9s
  neighbors:
    - {address: 172.31.0.254, asn: 65000}
    - {address: "fd00::2", asn: 65001, port: 1179, passive: true}
`))
	if err != nil {
		t.Fatal(err)
	}
	want := &configs.EVPN{ASN: 4200000000, RouterID: netip.MustParseAddr("172.31.0.1"), VTEP: netip.MustParseAddr("172.31.0.2"),
		VXLANPort: 4790, ListenPort: 0, HoldTime: 9 * time.Second, RestartTime: configs.DefaultRestartTime, Neighbors: []configs.Neighbor{
			{Address: netip.MustParseAddr("172.31.0.254"), ASN: 65000},
			{Address: netip.MustParseAddr("fd00::2"), ASN: 65001, Port: 1179, Passive: true},
		}}
	if !reflect.DeepEqual(f.EVPN, want) {
		t.Fatalf("evpn %+v\nwant %+v", f.EVPN, want)
	}
	def, b, c := f.Switch("default"), f.Switch("b"), f.Switch("c")
	if def.VNI != 100 || def.RD != "172.31.0.1:7" || !reflect.DeepEqual(def.ImportRT, []string{"65000:100", "*:200"}) ||
		!reflect.DeepEqual(def.ExportRT, []string{"65000:100"}) {
		t.Errorf("default switch %+v", def)
	}
	if b.VNI != 101 || b.RD != "" || b.ImportRT != nil || b.ExportRT != nil || c.VNI != 0 {
		t.Errorf("b %+v c %+v", b, c)
	}

	// Left out: the defaults.
	f, err = configs.Parse([]byte("vni: 1" + evpnBlock))
	if err != nil {
		t.Fatal(err)
	}
	if e := f.EVPN; e.VXLANPort != configs.DefaultVXLANPort || e.ListenPort != 179 || e.HoldTime != 90*time.Second ||
		e.Neighbors[0].Port != 0 || e.Neighbors[0].Passive || f.Switches[0].VNI != 1 {
		t.Errorf("defaults: %+v", e)
	}
	// An evpn: block with no switch in the fabric, and no evpn: at all.
	if f, err := configs.Parse([]byte(evpnBlock)); err != nil || f.EVPN == nil || f.Switches[0].VNI != 0 {
		t.Errorf("%+v %v", f, err)
	}
	if f, err := configs.Parse([]byte("hub: true")); err != nil || f.EVPN != nil {
		t.Errorf("%+v %v", f, err)
	}
	// No neighbour: it may wait for none (a lone VTEP), or listen only.
	if _, err := configs.Parse([]byte("vni: 5\nevpn: {asn: 1, router_id: 10.0.0.1, vtep: 'fd00::1'}")); err != nil {
		t.Error(err)
	}
}

// Each mistake is refused with a message that names its key.
func TestParseEVPNErrors(t *testing.T) {
	ok := map[string]string{"asn": "65000", "router_id": "172.31.0.1", "vtep": "172.31.0.1"}
	block := func(kv ...string) string {
		m := map[string]string{}
		for k, v := range ok {
			m[k] = v
		}
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i+1] == "" {
				delete(m, kv[i])
			} else {
				m[kv[i]] = kv[i+1]
			}
		}
		var b strings.Builder
		b.WriteString("evpn:\n")
		for k, v := range m {
			b.WriteString("  " + k + ": " + v + "\n")
		}
		return b.String()
	}
	nb := func(entries ...string) string {
		return block() + "  neighbors:\n" + "    - " + strings.Join(entries, "\n    - ") + "\n"
	}
	tests := []struct{ doc, err string }{
		{block("asn", ""), "config: evpn.asn: required"},
		{block("asn", "0"), "config: evpn.asn: 0 is out of range 1..4294967295"},
		{block("asn", "4294967296"), "config: evpn.asn: 4294967296 is out of range"},
		{block("asn", "lots"), `config: evpn.asn: "lots" is not a number`},
		{block("router_id", ""), "config: evpn.router_id: required"},
		{block("router_id", "'fd00::1'"), `config: evpn.router_id: "fd00::1" is not a BGP identifier`},
		{block("router_id", "0.0.0.0"), `config: evpn.router_id: "0.0.0.0" is not a BGP identifier`},
		{block("router_id", "1.2.3"), `config: evpn.router_id: "1.2.3" is not an IP address`},
		{block("vtep", ""), "config: evpn.vtep: required"},
		{block("vtep", "0.0.0.0"), `config: evpn.vtep: "0.0.0.0" is not a unicast address`},
		{block("vtep", "'::'"), `config: evpn.vtep: "::" is not a unicast address`},
		{block("vtep", "239.1.1.1"), `config: evpn.vtep: "239.1.1.1" is not a unicast address`},
		{block("vtep", "'ff02::1'"), `config: evpn.vtep: "ff02::1" is not a unicast address`},
		{block("vtep", "255.255.255.255"), `config: evpn.vtep: "255.255.255.255" is not a unicast address`},
		{block("vtep", "'fe80::1%eth0'"), `config: evpn.vtep: "fe80::1%eth0" is not an IP address`},
		{block("vtep", "host.example"), `config: evpn.vtep: "host.example" is not an IP address`},
		{block("vxlan_port", "0"), "config: evpn.vxlan_port: 0 is out of range 1..65535"},
		{block("vxlan_port", "65536"), "config: evpn.vxlan_port: 65536 is out of range"},
		{block("listen_port", "-1"), "config: evpn.listen_port: -1 is out of range 0..65535"},
		{block("listen_port", "65536"), "config: evpn.listen_port: 65536 is out of range"},
		{block("hold_time", "0s"), "config: evpn.hold_time: 0s is out of range 3s..65535s (0, which sends no keepalives, is refused"},
		{block("hold_time", "0"), "config: evpn.hold_time: 0s is out of range"},
		{block("hold_time", "2s"), "config: evpn.hold_time: 2s is out of range"},
		{block("hold_time", "9.5s"), "config: evpn.hold_time: 9.5s is not a whole number"},
		{block("graceful_restart", "4096s"), "config: evpn.graceful_restart: 1h8m16s is not whole seconds in 0s..4095s"},
		{block("graceful_restart", "1.5s"), "config: evpn.graceful_restart: 1.5s is not whole seconds"},
		{block("graceful_restart", "soon"), "config: evpn.graceful_restart: \"soon\" is not a duration"},
		{block("hold_time", "65536s"), "config: evpn.hold_time: 18h12m16s is out of range 3s..65535s"},
		{block("hold_time", "90"), `config: evpn.hold_time: "90" is not a duration`},
		{block("hold_time", "-9s"), "config: evpn.hold_time: -9s is out of range"},
		{block("bogus", "1"), "field bogus not found"},
		{block("asn", "[1, 2]"), "must be a single value"},
		{"evpn: 3", "cannot unmarshal"},
		{nb("{asn: 1}"), "config: evpn.neighbors[0].address: required"},
		{nb("{address: 10.0.0.2, asn: 1}", "{address: 1.2.3, asn: 1}"), `config: evpn.neighbors[1].address: "1.2.3" is not an IP address`},
		{nb("{address: 224.0.0.5, asn: 1}"), `config: evpn.neighbors[0].address: "224.0.0.5" is not a unicast address`},
		{nb("{address: 'fe80::1%eth0', asn: 1}"), `config: evpn.neighbors[0].address: "fe80::1%eth0" is not an IP address`},
		{nb("{address: 10.0.0.2}"), "config: evpn.neighbors[0].asn: required"},
		{nb("{address: 10.0.0.2, asn: 0}"), "config: evpn.neighbors[0].asn: 0 is out of range"},
		{nb("{address: 10.0.0.2, asn: 1, port: 0}"), "config: evpn.neighbors[0].port: 0 is out of range 1..65535"},
		{nb("{address: 10.0.0.2, asn: 1, port: 70000}"), "config: evpn.neighbors[0].port: 70000 is out of range"},
		{nb("{address: 10.0.0.2, asn: 1, passive: maybe}"), `config: evpn.neighbors[0].passive: "maybe" is not a boolean`},
		{nb("{address: 10.0.0.2, asn: 1, hold_time: 3s}"), "field hold_time not found"},
		{nb("{address: 10.0.0.2, asn: 1}", "{address: 10.0.0.3, asn: 1}", "{address: '::ffff:10.0.0.2', asn: 2}"),
			"config: evpn.neighbors[2].address: 10.0.0.2 is already evpn.neighbors[0]"},
		{nb("{address: 'fd00::2', asn: 1}", "{address: 'fd00:0::2', asn: 1}"), "config: evpn.neighbors[1].address: fd00::2 is already evpn.neighbors[0]"},

		// The switches' keys.
		{"vni: 100", "config: vni: needs an evpn: block"},
		{"rd: 1:1", "config: rd: needs an evpn: block"},
		{"switches: [{name: a}, {name: b, import_rt: '1:1'}]", "config: switches[1].import_rt: needs an evpn: block"},
		{"switches: [{name: a, export_rt: []}]", "config: switches[0].export_rt: needs an evpn: block"},
		{"rd: 1:1" + evpnBlock, "config: rd: needs vni:"},
		{"switches: [{name: a, export_rt: '1:1'}]" + evpnBlock, "config: switches[0].export_rt: needs vni:"},
		{"vni: 0" + evpnBlock, "config: vni: 0 is out of range 1..16777215"},
		{"vni: 16777216" + evpnBlock, "config: vni: 16777216 is out of range"},
		{"vni: [1]" + evpnBlock, "must be a single value"},
		{"vni: 100\nports: [{transport: daemon, path: /a}]\nswitches: [{name: a, vni: 7}, {name: b, vni: 0x64}]" + evpnBlock,
			`config: switches[1].vni: 100 is already switch "default"'s VNI`},
		{"switches: [{name: a, vni: 7}, {name: b}, {name: c, vni: 7}]" + evpnBlock, `config: switches[2].vni: 7 is already switch "a"'s VNI`},
		{"vni: 7\nswitches: [{name: a}]" + evpnBlock, "config: vni: at the top level, keys describe the default switch, which has no ports here"},
		{"vni: 7\nrd: 1:1\nswitches: [{name: a}]" + evpnBlock, "config: vni, rd: at the top level"},
		{"vni: 7\nrd: 65536:65536" + evpnBlock, `config: rd: "65536:65536" is not a route distinguisher (ASN:N or IPV4:N): "65536" is not a number from 0 to 65535`},
		{"vni: 7\nrd: '*:1'" + evpnBlock, `config: rd: "*:1" is not a route distinguisher`},
		{"vni: 7\nrd: [1:1]" + evpnBlock, "must be a single value"},
		{"vni: 7\nimport_rt: [1:1, x]" + evpnBlock, `config: import_rt: "x" is not a route target (ASN:N, IPV4:N or *:N): no ':'`},
		{"vni: 7\nimport_rt: [1:1, ' 1:1']" + evpnBlock, `config: import_rt: 1:1 given twice`},
		{"vni: 7\nimport_rt: [[1:1]]" + evpnBlock, "a list of single values"},
		{"vni: 7\nimport_rt: {a: 1}" + evpnBlock, "a single value or a list of them"},
		{"vni: 7\nexport_rt: '*:100'" + evpnBlock, `config: export_rt: "*:100" is not a route target (ASN:N or IPV4:N)`},
		{"vni: 7\nexport_rt: ''" + evpnBlock, `config: export_rt: "" is not a route target`},
	}
	for _, tt := range tests {
		t.Run(tt.doc, func(t *testing.T) {
			_, err := configs.Parse([]byte(tt.doc))
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.err)
			}
		})
	}
}

func TestParseRDRT(t *testing.T) {
	for _, tt := range []struct {
		s            string
		rd, rt, rtIn bool // taken as an RD, an export target, an import target
	}{
		{"65000:100", true, true, true},
		{"0:0", true, true, true},
		{"65535:4294967295", true, true, true},
		{"65535:4294967296", false, false, false},
		{"65536:65535", true, true, true},
		{"4294967295:65535", true, true, true},
		{"4294967296:1", false, false, false},
		{"65536:65536", false, false, false},
		{"172.31.0.1:7", true, true, true},
		{"172.31.0.1:65535", true, true, true},
		{"172.31.0.1:65536", false, false, false},
		{"0.0.0.0:1", true, true, true},
		{"*:200", false, false, true},
		{"*:4294967295", false, false, true},
		{"*:4294967296", false, false, false},
		{"*:*", false, false, false},
		{"*", false, false, false},
		{"fd00::1:5", false, false, false},
		{"::ffff:1.2.3.4:5", false, false, false},
		{"1.2.3:5", false, false, false},
		{"172.031.0.1:7", false, false, false},
		{"065000:100", false, false, false},
		{"65000:0100", false, false, false},
		{"+1:1", false, false, false},
		{"1:-1", false, false, false},
		{"1:0x10", false, false, false},
		{"1.10:5", false, false, false},
		{" 1:1", false, false, false},
		{"1:", false, false, false},
		{":1", false, false, false},
		{"1:1:1", false, false, false},
		{"", false, false, false},
	} {
		if err := configs.ParseRD(tt.s); (err == nil) != tt.rd {
			t.Errorf("ParseRD(%q) = %v", tt.s, err)
		}
		if err := configs.ParseRT(tt.s, false); (err == nil) != tt.rt {
			t.Errorf("ParseRT(%q, false) = %v", tt.s, err)
		}
		if err := configs.ParseRT(tt.s, true); (err == nil) != tt.rtIn {
			t.Errorf("ParseRT(%q, true) = %v", tt.s, err)
		}
	}
}

func TestEVPNEqual(t *testing.T) {
	parse := func(doc string) *configs.EVPN {
		t.Helper()
		f, err := configs.Parse([]byte(doc))
		if err != nil {
			t.Fatal(err)
		}
		return f.EVPN
	}
	base := parse(`evpn:
  asn: 65000
  router_id: 10.0.0.1
  vtep: 10.0.0.1
  neighbors: [{address: 10.0.0.2, asn: 65000}, {address: 'fd00::2', asn: 65001, passive: 1}]`)
	same := parse(`evpn:
  asn: 65000
  router_id: 10.0.0.1
  vtep: 10.0.0.1
  vxlan_port: 4789
  listen_port: 179
  hold_time: 90s
  neighbors: [{address: 'fd00::2', asn: 65001, passive: yes}, {address: 10.0.0.2, asn: 65000, port: 179}]`)
	if !base.Equal(same) || !same.Equal(base) || !base.Equal(base) {
		t.Errorf("the same block written two ways differs")
	}
	var none *configs.EVPN
	if !none.Equal(nil) || none.Equal(base) || base.Equal(nil) {
		t.Errorf("nil")
	}
	for _, change := range []func(e *configs.EVPN){
		func(e *configs.EVPN) { e.ASN++ },
		func(e *configs.EVPN) { e.RouterID = netip.MustParseAddr("10.0.0.9") },
		func(e *configs.EVPN) { e.VTEP = netip.MustParseAddr("fd00::1") },
		func(e *configs.EVPN) { e.VXLANPort = 4790 },
		func(e *configs.EVPN) { e.ListenPort = 0 },
		func(e *configs.EVPN) { e.HoldTime = 9 * time.Second },
		func(e *configs.EVPN) { e.Neighbors = e.Neighbors[:1] },
		func(e *configs.EVPN) { e.Neighbors[0].ASN = 1 },
		func(e *configs.EVPN) { e.Neighbors[0].Port = 1179 },
		func(e *configs.EVPN) { e.Neighbors[1].Passive = false },
		func(e *configs.EVPN) { e.Neighbors[1].Address = netip.MustParseAddr("fd00::3") },
	} {
		c := *base
		c.Neighbors = append([]configs.Neighbor(nil), base.Neighbors...)
		change(&c)
		if base.Equal(&c) || c.Equal(base) {
			t.Errorf("%+v equals %+v", c, *base)
		}
	}
	n := configs.Neighbor{Address: netip.MustParseAddr("10.0.0.2"), ASN: 1}
	if m := n; !n.Equal(m) {
		t.Error("a neighbour differs from itself")
	}
	m := n
	m.Port = 179
	if !n.Equal(m) {
		t.Error("port 0 is port 179")
	}
}

// Merge carries the fabric's settings into the plan, sharing nothing with
// the file's.
func TestMergeEVPN(t *testing.T) {
	f, err := configs.Parse([]byte("vni: 9\nrd: 1:1\nimport_rt: ['*:9']\nexport_rt: 1:9\nports: [{transport: daemon, path: /a}]" + evpnBlock))
	if err != nil {
		t.Fatal(err)
	}
	m, err := configs.Merge(f, configs.Overrides{Settings: [][2]string{{"hub", "1"}}})
	if err != nil {
		t.Fatal(err)
	}
	if !m.EVPN.Equal(f.EVPN) || !reflect.DeepEqual(m.Switches[0].ImportRT, []string{"*:9"}) ||
		m.Switches[0].VNI != 9 || m.Switches[0].RD != "1:1" || !reflect.DeepEqual(m.Switches[0].ExportRT, []string{"1:9"}) {
		t.Fatalf("merged %+v %+v", m.Switches[0], m.EVPN)
	}
	m.EVPN.Neighbors[0].ASN = 1
	m.Switches[0].ImportRT[0] = "x"
	if f.EVPN.Neighbors[0].ASN != 65000 || f.Switches[0].ImportRT[0] != "*:9" {
		t.Fatal("the merged plan shares the file's slices")
	}
	if _, err := configs.Merge(f, configs.Overrides{Settings: [][2]string{{"vni", "5"}}}); err == nil {
		t.Error("a flag set the VNI")
	}
	if _, err := configs.NewSwitch("x", [][2]string{{"vni", "5"}}); err == nil {
		t.Error("the API's switch add took a VNI")
	}
}
