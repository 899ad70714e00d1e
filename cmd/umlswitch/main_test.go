package main

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/umlswitch/umlswitch/configs"
	"github.com/umlswitch/umlswitch/transports/daemon"
)

func runArgs(args ...string) (code int, stdout, stderr string) {
	var out, errb strings.Builder
	code = run(args, &out, &errb)
	return code, out.String(), errb.String()
}

// Bad flags and port specs exit with status 2 and say what is wrong and
// what is accepted.
func TestBadArguments(t *testing.T) {
	tests := []struct {
		args []string
		want []string
	}{
		{[]string{"-nosuchflag"}, []string{"flag provided but not defined: -nosuchflag", "umlswitch -h"}},
		{[]string{"-port", "transport=tap,ifname=t0,colour=red"}, []string{`unknown key "colour" for transport tap`, "accepted: create, depth, ifname, mtu, name, owner, persist, queues, switch, up, vnet_hdr; and on every port: broadcast, corrupt, delay, dup, flood, isolated, jitter, link, link_local, loss, loss_burst, mac_limit, native, qinq, queue, rate, reorder, seed, split_horizon, storm, trunk, vlan"}},
		{[]string{"-port", "transport=gree,src=1"}, []string{`unknown transport "gree"`, "known transports: bess, daemon, dgram, gre, l2tpv3, nat, raw, stream, tap, vxlan"}},
		{[]string{"-port", "transport=daemon"}, []string{"transport daemon needs path="}},
		{[]string{"-tap", "a-name-longer-than-15"}, []string{"-tap", "longer than 15 bytes"}},
		{[]string{"-mtu", "10"}, []string{"-mtu: 10 is out of range 68..65513"}},
		{[]string{"-depth", "0"}, []string{"-depth: 0 is out of range 1..1024"}},
		{[]string{"-mac-age", "0s"}, []string{`-mac-age: "0s" is not a positive duration`}},
		{[]string{"-tx-hold", "-1ms"}, []string{"-tx-hold"}},
		{[]string{"-busy-poll", "-2"}, []string{"-busy-poll: -2 is out of range -1..1023"}},
		{[]string{"-busy-poll", "1023"}, []string{"busy-poll on CPU 1023: not a CPU this process may run on (it may use "}},
		{[]string{"-mode", "999"}, []string{`-mode: "999" is not an octal permission`}},
		{[]string{"-log-level", "loud"}, []string{`-log-level: "loud" is not one of debug, info, warn, error`}},
		{[]string{"-port", "transport=tap,ifname=t0,switch=nosuch"}, []string{"switch=nosuch: no such switch"}},
		{[]string{"-unix", "/tmp/x.ctl", "stray"}, []string{`unexpected argument "stray"`}},
		{[]string{"-config", "/nonexistent/lab.yaml"}, []string{"/nonexistent/lab.yaml"}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, _, stderr := runArgs(tt.args...)
			if code != 2 {
				t.Errorf("exit %d, want 2", code)
			}
			for _, w := range tt.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr)
				}
			}
		})
	}
}

func TestBadConfigFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "lab.yaml")
	os.WriteFile(p, []byte("ports:\n  - {transport: tap, ifname: t0, speed: 10}\n"), 0o644)
	code, _, stderr := runArgs("-config", p)
	if code != 2 || !strings.Contains(stderr, `unknown key "speed" for transport tap (accepted: create, depth, ifname, mtu, name, owner, persist, queues, switch, up, vnet_hdr; and on every port: broadcast, corrupt, delay, dup, flood, isolated, jitter, link, link_local, loss, loss_burst, mac_limit, native, qinq, queue, rate, reorder, seed, split_horizon, storm, trunk, vlan)`) {
		t.Fatalf("exit %d: %s", code, stderr)
	}
}

// -h documents every flag, each with an example, and exits 0.
func TestHelpDocumentsEveryFlag(t *testing.T) {
	code, _, help := runArgs("-h")
	if code != 0 {
		t.Fatalf("-h exit %d", code)
	}
	o, _ := parseFlags(nil, &strings.Builder{})
	o.fs.VisitAll(func(f *flag.Flag) {
		block := regexp.MustCompile(`(?s)\n  -` + regexp.QuoteMeta(f.Name) + `\b.*?Example: -` + regexp.QuoteMeta(f.Name))
		if !block.MatchString(help) {
			t.Errorf("-%s has no example in -h", f.Name)
		}
	})
	for _, tr := range configs.Transports() {
		if !strings.Contains(help, tr+": ") {
			t.Errorf("-h does not list transport %s and its keys", tr)
		}
	}
}

// -mirror's help documents every mirror key, from its declaration.
func TestHelpDocumentsEveryMirrorKey(t *testing.T) {
	_, _, help := runArgs("-h")
	block := regexp.MustCompile(`(?s)\n  -mirror SPEC\n.*?Example: -mirror`).FindString(help)
	if block == "" {
		t.Fatalf("-h has no -mirror block:\n%s", help)
	}
	for _, key := range configs.MirrorKeys() {
		if !regexp.MustCompile(`\n\s+` + key + `=\S+ +\S`).MatchString(block) {
			t.Errorf("-mirror's help does not document %s=:\n%s", key, block)
		}
	}
}

// uml_switch's -compat-v0 syntax puts the data path after the control path.
func TestCompatV0Syntax(t *testing.T) {
	o, err := parseFlags([]string{"-compat-v0", "-unix", "/tmp/c.ctl", "/tmp/c.data", "-hub"}, &strings.Builder{})
	if err != nil {
		t.Fatal(err)
	}
	p, err := o.plan()
	if err != nil {
		t.Fatal(err)
	}
	sw := p.Switch("default")
	if !sw.Hub || len(sw.Ports) != 1 || sw.Ports[0].String() != "transport=daemon,path=/tmp/c.ctl,compat_v0=1,data=/tmp/c.data" {
		t.Fatalf("plan %+v", sw)
	}
	if _, err := parseFlags([]string{"-unix", "/tmp/c.ctl", "/tmp/c.data"}, &strings.Builder{}); err == nil {
		t.Fatal("a data path was taken without -compat-v0")
	}
}

func TestPlanDefaultsAndOverrides(t *testing.T) {
	plan := func(args ...string) (*configs.File, *configs.Switch) {
		t.Helper()
		o, err := parseFlags(args, &strings.Builder{})
		if err != nil {
			t.Fatal(err)
		}
		p, err := o.plan()
		if err != nil {
			t.Fatal(err)
		}
		return p, p.Switch("default")
	}
	// No arguments: the built-in control socket, where Debian's UML looks.
	p, sw := plan()
	if len(sw.Ports) != 1 || path(sw.Ports[0]) != debianCtl || sw.MACAge != 300*time.Second || p.Depth != 64 {
		t.Fatalf("defaults: %+v %+v", p, sw)
	}
	// -tap alone keeps it, as with uml_switch.
	if _, sw = plan("-tap", "tap0"); len(sw.Ports) != 2 || path(sw.Ports[0]) != debianCtl || sw.Ports[1].String() != "transport=tap,ifname=tap0,create=1" {
		t.Fatalf("-tap: %+v", sw.Ports)
	}
	// -unix replaces it.
	if _, sw = plan("-unix", "/tmp/a,b.ctl", "-mode", "0660"); len(sw.Ports) != 1 || sw.Ports[0].String() != "transport=daemon,path=/tmp/a,b.ctl,mode=0660" {
		t.Fatalf("-unix: %+v", sw.Ports)
	}
	// A config file's settings apply, and flags given explicitly win.
	f := filepath.Join(t.TempDir(), "lab.yaml")
	os.WriteFile(f, []byte("hub: true\nmac_age: 60s\ntx_hold: 20ms\nports: [{transport: daemon, path: /tmp/b.ctl}]\n"), 0o644)
	if p, sw = plan("-config", f, "-mac-age", "90s"); !sw.Hub || sw.MACAge != 90*time.Second || p.TxHold != 20*time.Millisecond ||
		len(sw.Ports) != 1 || path(sw.Ports[0]) != "/tmp/b.ctl" {
		t.Fatalf("-config: %+v %+v", p, sw)
	}
	// A file with only switches: has no default switch; -port with
	// switch= joins one of them.
	os.WriteFile(f, []byte("switches: [{name: red, ports: [{transport: daemon, path: /tmp/r.ctl}]}]\n"), 0o644)
	if p, sw = plan("-config", f, "-port", "transport=bess,path=/tmp/r.bess,switch=red"); sw != nil || len(p.Switch("red").Ports) != 2 {
		t.Fatalf("switches only: %+v", p)
	}
}

// path is a daemon port's socket.
func path(p configs.Port) string { return p.Options.(*daemon.Options).Path }

// A metrics address that cannot be served stops the switch at start, and
// its control socket is removed again.
func TestBadMetricsAddress(t *testing.T) {
	ctl := filepath.Join(t.TempDir(), "sw.ctl")
	code, _, stderr := runArgs("-unix", ctl, "-metrics", "nowhere")
	if code != 1 || !strings.Contains(stderr, "metrics: listen nowhere: want host:port or unix:PATH") {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if _, err := os.Lstat(ctl); err == nil {
		t.Fatalf("%s left behind", ctl)
	}
}

// A raw port's bpffile is read and checked when the spec is parsed: one
// that is missing or bad is a bad argument, named in the message, and no
// socket is opened.
func TestBadFilterFiles(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.bpf")
	os.WriteFile(bad, []byte{0x15, 0, 5, 0, 0, 8, 0, 0}, 0o644) // jeq past the end
	for _, c := range []struct{ port, want string }{
		{"transport=raw,ifname=lo,bpffile=" + filepath.Join(dir, "missing.bpf"), `key "bpffile": bpf: open ` + filepath.Join(dir, "missing.bpf")},
		{"transport=raw,ifname=lo,bpffile=" + bad, bad + ": bpf: instruction 0"},
	} {
		t.Run(c.port, func(t *testing.T) {
			ctl := filepath.Join(dir, "sw.ctl")
			code, _, stderr := runArgs("-unix", ctl, "-port", c.port)
			if code != 2 || !strings.Contains(stderr, "-port: ") || !strings.Contains(stderr, c.want) {
				t.Fatalf("exit %d, want 2 and an error containing %q:\n%s", code, c.want, stderr)
			}
			if _, err := os.Lstat(ctl); err == nil {
				t.Fatalf("%s created", ctl)
			}
		})
	}
}

// Ports that cannot open stop the switch at start with a message that says
// why, and what was already opened is closed again (no socket file left).
func TestPortsThatCannotOpen(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct{ port, want string }{
		{"transport=raw,ifname=nosuch0", `interface "nosuch0"`},
		{"transport=tap,ifname=nosuch1", "add create=1"},
		{"transport=vxlan,src=192.0.2.77,dst=192.0.2.78,vni=1", "192.0.2.77"},
	} {
		t.Run(c.port, func(t *testing.T) {
			ctl := filepath.Join(dir, "sw.ctl")
			code, _, stderr := runArgs("-unix", ctl, "-port", c.port)
			if code == 0 || !strings.Contains(stderr, c.want) {
				t.Fatalf("exit %d, want an error containing %q:\n%s", code, c.want, stderr)
			}
			if _, err := os.Lstat(ctl); err == nil {
				t.Fatalf("%s left behind", ctl)
			}
		})
	}
}

// A configuration path that is a FIFO is refused with a clear error, at
// start and on reload (SIGHUP and the API's reload both call plan), and
// the refusal does not wait for a writer.
func TestConfigFIFO(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo.yaml")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	within := func(what string, f func() error) error {
		t.Helper()
		done := make(chan error, 1)
		go func() { done <- f() }()
		select {
		case err := <-done:
			return err
		case <-time.After(10 * time.Second):
			t.Fatalf("%s with a FIFO as configuration hangs", what)
			return nil
		}
	}
	var stderr string
	code := 0
	within("start", func() error { code, _, stderr = runArgs("-config", fifo); return nil })
	if code == 0 || !strings.Contains(stderr, "not a regular file (a FIFO)") {
		t.Fatalf("start: exit %d: %s", code, stderr)
	}

	conf := filepath.Join(dir, "umlswitch.yaml")
	os.WriteFile(conf, []byte("ports:\n  - {transport: daemon, path: "+filepath.Join(dir, "ctl")+"}\n"), 0o644)
	o, err := parseFlags([]string{"-config", conf}, &strings.Builder{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := o.plan(); err != nil {
		t.Fatal(err)
	}
	os.Remove(conf)
	if err := syscall.Mkfifo(conf, 0o600); err != nil {
		t.Fatal(err)
	}
	err = within("reload", func() error { _, err := o.plan(); return err })
	if err == nil || !strings.Contains(err.Error(), "not a regular file (a FIFO)") {
		t.Fatalf("reload: %v", err)
	}
}

// The run state lives where -state says, else next to the default
// switch's first daemon control socket (a VDE directory's ctl), else
// nowhere; -state none keeps none.
func TestRunStatePath(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-unix", "/tmp/x/uml.ctl"}, "/tmp/x/uml.ctl.run"},
		{[]string{"-unix", dir}, dir + "/ctl.run"},
		{[]string{"-unix", "/tmp/x/uml.ctl", "-state", "/run/lab.run"}, "/run/lab.run"},
		{[]string{"-unix", "/tmp/x/uml.ctl", "-state", "none"}, ""},
		{[]string{"-port", "transport=bess,path=/tmp/x/b.sock"}, ""},
	} {
		o, err := parseFlags(tc.args, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		plan, err := o.plan()
		if err != nil {
			t.Fatal(err)
		}
		if got := runStatePath(plan); got != tc.want {
			t.Errorf("%v: run state %q, want %q", tc.args, got, tc.want)
		}
	}
}
