package configs_test

import (
	"strings"
	"testing"
	"time"

	"github.com/umlswitch/umlswitch/configs"
	"github.com/umlswitch/umlswitch/transports/daemon"
)

func port(t *testing.T, spec string) configs.Port {
	t.Helper()
	p, err := configs.ParsePort(spec)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestSwitchesInFile(t *testing.T) {
	f, err := configs.Parse([]byte(`
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
	f, err = configs.Parse([]byte("ports: [{transport: daemon, path: /a}]\nswitches: [{name: b}]"))
	if err != nil || len(f.Switches) != 2 || f.Switches[0].Name != "default" {
		t.Fatalf("%+v %v", f, err)
	}
}

func TestMerge(t *testing.T) {
	base := configs.Default()
	unix, _ := configs.ParsePort("transport=daemon,path=/tmp/a.ctl")
	own, _ := configs.ParsePort("transport=daemon,path=/tmp/b.ctl,mode=0600")
	tap, _ := configs.ParsePort("transport=tap,ifname=t0,switch=default")
	m, err := configs.Merge(base, configs.Overrides{
		Settings:     [][2]string{{"hub", "1"}, {"mac_age", "60s"}, {"mtu", "9000"}, {"log_level", "debug"}},
		Ports:        []configs.Port{unix, own, tap},
		ReplacePorts: true,
		Mode:         0o660,
		Mirrors:      []configs.Mirror{{Stream: "/tmp/cap.sock"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	d := m.Switch("default")
	if !d.Hub || d.MACAge != 60*time.Second || m.MTU != 9000 || m.LogLevel != "debug" || len(d.Ports) != 3 {
		t.Fatalf("merged %+v default %+v", m, d)
	}
	if d.Ports[0].String() != "transport=daemon,path=/tmp/a.ctl,mode=0660" || d.Ports[1].String() != "transport=daemon,path=/tmp/b.ctl,mode=0600" ||
		d.Ports[2].String() != "transport=tap,ifname=t0" {
		t.Fatalf("ports %v", d.Ports)
	}
	if len(d.Mirrors) != 1 || d.Mirrors[0].Mode != 0 {
		t.Fatalf("-mode reached a capture socket: %+v", d.Mirrors)
	}
	if base.Switches[0].Hub || len(base.Switches[0].Ports) != 1 {
		t.Fatal("Merge changed its input")
	}
	// The built-in socket stays without ReplacePorts and takes -mode and
	// -compat-v0 (a file's mode= gives way to -mode); ports of kinds
	// without those keys are left alone.
	builtIn := base.Switches[0].Ports[0].String()
	file, _ := configs.Parse([]byte("ports: [{transport: daemon, path: /f, mode: '0666'}, {transport: tap, ifname: t1}]"))
	for _, b := range []*configs.File{base, file} {
		m, err = configs.Merge(b, configs.Overrides{Mode: 0o600, CompatV0: true, DataPath: "/tmp/v0.data", Ports: []configs.Port{own}})
		if err != nil {
			t.Fatal(err)
		}
		ports := m.Switches[0].Ports
		if mode, _ := ports[0].Get("mode"); mode != "0600" || ports[0].Options.(*daemon.Options).DataPath != "/tmp/v0.data" ||
			ports[len(ports)-1].String() != "transport=daemon,path=/tmp/b.ctl,mode=0600,compat_v0=1,data=/tmp/v0.data" {
			t.Fatalf("%v", ports)
		}
		if b == file && ports[1].String() != "transport=tap,ifname=t1" {
			t.Fatalf("%v", ports)
		}
	}
	if base.Switches[0].Ports[0].String() != builtIn || file.Switches[0].Ports[0].String() != "transport=daemon,path=/f,mode=0666" {
		t.Fatal("Merge changed its input's ports")
	}

	only, _ := configs.Parse([]byte("switches: [{name: red, ports: [{transport: daemon, path: /r}]}]"))
	for _, tt := range []struct {
		o   configs.Overrides
		err string
	}{
		{configs.Overrides{Settings: [][2]string{{"mac_age", "-1s"}}}, "-mac-age: "},
		{configs.Overrides{Settings: [][2]string{{"depth", "0"}}}, "-depth: 0 is out of range"},
		{configs.Overrides{Ports: []configs.Port{port(t, "transport=tap,ifname=t,switch=green")}}, "no such switch"},
		{configs.Overrides{DataPath: "/tmp/d"}, "only taken with -compat-v0"},
		{configs.Overrides{ReplacePorts: true}, "no ports configured"},
	} {
		if _, err := configs.Merge(only, tt.o); err == nil || !strings.Contains(err.Error(), tt.err) {
			t.Errorf("%+v: err %v, want %q", tt.o, err, tt.err)
		}
	}
	// -port with switch= joins a listed switch; one without makes a default.
	m, err = configs.Merge(only, configs.Overrides{Ports: []configs.Port{port(t, "transport=tap,ifname=t,switch=red"), port(t, "transport=tap,ifname=u")}})
	if err != nil || len(m.Switch("red").Ports) != 2 || m.Switch("default") == nil || len(m.Switches) != 2 {
		t.Fatalf("%+v %v", m, err)
	}
}

// busy_poll names a CPU in the file; -busy-poll overrides it, and -1 turns
// it off.
func TestBusyPoll(t *testing.T) {
	f, err := configs.Parse([]byte("busy_poll: 3\nports: [{transport: daemon, path: /tmp/a.ctl}]"))
	if err != nil || f.BusyPoll == nil || *f.BusyPoll != 3 {
		t.Fatalf("busy_poll: 3 parsed as %v, %v", f.BusyPoll, err)
	}
	for v, want := range map[string]int{"-1": -1, "0": 0, "5": 5} {
		m, err := configs.Merge(f, configs.Overrides{Settings: [][2]string{{"busy_poll", v}}})
		if err != nil {
			t.Fatal(err)
		}
		got := -1
		if m.BusyPoll != nil {
			got = *m.BusyPoll
		}
		if got != want || *f.BusyPoll != 3 {
			t.Errorf("-busy-poll %s over busy_poll: 3: %d (the file's now %d)", v, got, *f.BusyPoll)
		}
	}
	for _, doc := range []string{"busy_poll: -2", "busy_poll: 1024", "busy_poll: first"} {
		if _, err := configs.Parse([]byte(doc)); err == nil || !strings.Contains(err.Error(), "busy_poll") {
			t.Errorf("%s: %v", doc, err)
		}
	}
	if _, err := configs.Merge(f, configs.Overrides{Settings: [][2]string{{"busy_poll", "-3"}}}); err == nil ||
		!strings.Contains(err.Error(), "-busy-poll") {
		t.Errorf("-busy-poll -3: %v", err)
	}
}
