package configs

import (
	"strings"
	"testing"
	"time"
)

func TestSwitchesInFile(t *testing.T) {
	f, err := Parse([]byte(`
switches:
  - name: red
    hub: true
    ports: [{transport: daemon, path: /tmp/red.ctl, name: red-ctl}]
    mirrors: [{stream: /tmp/red.pcap}]
  - name: blue
    mac_age: 5s
    ports: [{transport: bess, path: /tmp/blue.bess}]
`))
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Switches) != 2 || f.Switch("default") != nil {
		t.Fatalf("a file with only switches: has no default switch: %+v", f.Switches)
	}
	red, blue := f.Switch("red"), f.Switch("blue")
	if !red.Hub || red.Ports[0].Name != "red-ctl" || len(red.Mirrors) != 1 || blue.MACAge != 5*time.Second || blue.Hub {
		t.Fatalf("red %+v blue %+v", red, blue)
	}
	// Top-level ports make a default switch beside the listed ones.
	f, err = Parse([]byte("ports: [{transport: daemon, path: /a}]\nswitches: [{name: b}]"))
	if err != nil || len(f.Switches) != 2 || f.Switches[0].Name != "default" {
		t.Fatalf("%+v %v", f, err)
	}
}

func TestMerge(t *testing.T) {
	base := Default()
	unix, _ := ParsePort("transport=daemon,path=/tmp/a.ctl")
	own, _ := ParsePort("transport=daemon,path=/tmp/b.ctl,mode=0600")
	tap, _ := ParsePort("transport=tap,ifname=t0,switch=default")
	m, err := Merge(base, Overrides{
		Settings:     [][2]string{{"hub", "1"}, {"mac_age", "60s"}, {"mtu", "9000"}, {"log_level", "debug"}},
		Ports:        []Port{unix, own, tap},
		ReplacePorts: true,
		Mode:         0o660,
	})
	if err != nil {
		t.Fatal(err)
	}
	d := m.Switch("default")
	if !d.Hub || d.MACAge != 60*time.Second || m.MTU != 9000 || m.LogLevel != "debug" || len(d.Ports) != 3 {
		t.Fatalf("merged %+v default %+v", m, d)
	}
	if d.Ports[0].Mode != 0o660 || d.Ports[1].Mode != 0o600 || d.Ports[2].Switch != "" {
		t.Fatalf("ports %+v", d.Ports)
	}
	if base.Switches[0].Hub || len(base.Switches[0].Ports) != 1 {
		t.Fatal("Merge changed its input")
	}
	// The built-in socket stays without ReplacePorts and takes -mode.
	m, err = Merge(base, Overrides{Mode: 0o600, CompatV0: true})
	if err != nil || m.Switches[0].Ports[0].Mode != 0o600 || !m.Switches[0].Ports[0].CompatV0 {
		t.Fatalf("%+v %v", m, err)
	}

	only, _ := Parse([]byte("switches: [{name: red, ports: [{transport: daemon, path: /r}]}]"))
	for _, tt := range []struct {
		o   Overrides
		err string
	}{
		{Overrides{Settings: [][2]string{{"mac_age", "-1s"}}}, "-mac-age: "},
		{Overrides{Settings: [][2]string{{"depth", "0"}}}, "-depth: 0 is out of range"},
		{Overrides{Ports: []Port{{Transport: "tap", Ifname: "t", Switch: "green"}}}, "no such switch"},
		{Overrides{DataPath: "/tmp/d"}, "only taken with -compat-v0"},
		{Overrides{ReplacePorts: true}, "no ports configured"},
	} {
		if _, err := Merge(only, tt.o); err == nil || !strings.Contains(err.Error(), tt.err) {
			t.Errorf("%+v: err %v, want %q", tt.o, err, tt.err)
		}
	}
	// -port with switch= joins a listed switch; one without makes a default.
	m, err = Merge(only, Overrides{Ports: []Port{{Transport: "tap", Ifname: "t", Switch: "red"}, {Transport: "tap", Ifname: "u"}}})
	if err != nil || len(m.Switch("red").Ports) != 2 || m.Switch("default") == nil || len(m.Switches) != 2 {
		t.Fatalf("%+v %v", m, err)
	}
}
