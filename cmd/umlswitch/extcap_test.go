package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/gopacket/pcapgo"

	"github.com/umlswitch/umlswitch/frame"
	"github.com/umlswitch/umlswitch/instance"
	"github.com/umlswitch/umlswitch/topology"
	"github.com/umlswitch/umlswitch/transports/daemon"
	"github.com/umlswitch/umlswitch/transports/porttest"
)

func TestExtcapInterfaces(t *testing.T) {
	ctl := ctlSwitch(t)
	c, err := daemon.Dial(daemon.ClientConfig{Ctl: ctl})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	porttest.Eventually(t, "the client attached", func() bool {
		_, out, _ := ctlArgs("-s", ctl, "ports")
		return strings.Contains(out, "red.1")
	})
	t.Setenv(socketsEnv, filepath.Join(t.TempDir(), "none.ctl")+":"+ctl)
	t.Setenv(portsEnv, "")
	code, out, errs := runArgs("--extcap-interfaces", "--extcap-version=4.0")
	if code != 0 || !strings.Contains(out, "interface {value=umlswitch:red@"+ctl+"}{display=umlswitch red ("+ctl+")}\n") ||
		!strings.Contains(out, "interface {value=umlswitch:blue@"+ctl+"}") || strings.Contains(out, "red.1") {
		t.Errorf("interfaces: %d\n%s%s", code, out, errs)
	}
	t.Setenv(portsEnv, "1")
	if _, out, _ := runArgs("--extcap-interfaces"); !strings.Contains(out, "{value=umlswitch:red/red.1@"+ctl+"}") {
		t.Errorf("interfaces with ports:\n%s", out)
	}
	if _, out, _ := runArgs("--extcap-config", "--extcap-interface", "umlswitch:red@"+ctl); !strings.Contains(out, "value {arg=0}{value=red.1}") {
		t.Errorf("config:\n%s", out)
	}
	// umlswitch extcap list is the same list.
	if code, out, _ := runArgs("extcap", "list"); code != 0 || !strings.Contains(out, "umlswitch:red/red.1@"+ctl) {
		t.Errorf("extcap list: %d\n%s", code, out)
	}
}

// A capture through the extcap: the filter applies, and a switch removed
// ends it with a message and status 1.
func TestExtcapCapture(t *testing.T) {
	ctl := ctlSwitch(t)
	blue := filepath.Join(filepath.Dir(ctl), "blue.ctl")
	if code, _, errs := ctlArgs("-s", ctl, "port", "add", "-switch", "blue", "transport=daemon,path="+blue); code != 0 {
		t.Fatal(errs)
	}
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	type result struct {
		code      int
		out, errs string
	}
	done := make(chan result, 1)
	go func() {
		code, out, errs := runArgs("--capture", "--extcap-interface", "umlswitch:blue@"+ctl, "--fifo", fifo,
			"--extcap-capture-filter", "ether src 02:00:00:00:00:01")
		done <- result{code, out, errs}
	}()
	f, err := os.Open(fifo)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	c, err := daemon.Dial(daemon.ClientConfig{Ctl: blue})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// The reader joins the switch's capture a moment after the stream
	// starts, and the stream describes a port once it has a frame: send
	// until frames come, the one from ...:02 (which the filter drops)
	// first each time.
	stop, stopped := make(chan struct{}), make(chan struct{})
	defer func() { close(stop); <-stopped }() // before c closes
	go func() {
		defer close(stopped)
		for {
			c.Send(porttest.Ether(frame.Broadcast, frame.MAC{2, 0, 0, 0, 0, 2}, 60, 2))
			c.Send(porttest.Ether(frame.Broadcast, frame.MAC{2, 0, 0, 0, 0, 1}, 60, 1))
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	r, err := pcapgo.NewNgReader(f, pcapgo.DefaultNgReaderOptions)
	if err != nil {
		t.Fatalf("the fifo's pcapng: %v", err)
	}
	for i := 0; i < 5; i++ {
		data, _, err := r.ReadPacketData()
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if data[11] != 1 {
			t.Fatalf("the filter let %x through", data)
		}
	}
	if code, _, errs := ctlArgs("-s", ctl, "switch", "del", "blue"); code != 0 {
		t.Fatal(errs)
	}
	select {
	case res := <-done:
		if res.code != 1 || !strings.Contains(res.errs, "switch blue at "+ctl+": the capture ended") {
			t.Errorf("the switch removed: %d %q", res.code, res.errs)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the capture did not end when the switch was removed")
	}
}

func TestExtcapInstall(t *testing.T) {
	dir := t.TempDir()
	code, out, errs := runArgs("extcap", "install", "-dir", dir)
	link := filepath.Join(dir, "umlswitch")
	if code != 0 || !strings.Contains(out, "linked "+link) {
		t.Fatalf("install: %d %s%s", code, out, errs)
	}
	if _, err := os.Readlink(link); err != nil {
		t.Fatal(err)
	}
	if code, out, _ := runArgs("extcap", "uninstall", "-dir", dir); code != 0 || !strings.Contains(out, "removed "+link) {
		t.Errorf("uninstall: %d %s", code, out)
	}
	os.WriteFile(link, []byte("not ours"), 0o755)
	if code, _, errs := runArgs("extcap", "install", "-dir", dir); code != 1 || !strings.Contains(errs, "not replaced") {
		t.Errorf("install over a file: %d %s", code, errs)
	}
	// No tshark to name the folder: say so.
	old := tshark
	defer func() { tshark = old }()
	tshark = "/nonexistent/tshark"
	if code, _, errs := runArgs("extcap", "install"); code != 1 || !strings.Contains(errs, "install tshark") || !strings.Contains(errs, "-dir") {
		t.Errorf("no tshark: %d %s", code, errs)
	}
	for _, args := range [][]string{{"extcap"}, {"extcap", "frob"}, {"extcap", "install", "x"}} {
		if code, _, _ := runArgs(args...); code != 2 {
			t.Errorf("%q: status %d, want 2", args, code)
		}
	}
	if code, _, errs := runArgs("extcap", "-h"); code != 0 || !strings.Contains(errs, "UMLSWITCH_SOCKETS") {
		t.Errorf("extcap -h: %d %s", code, errs)
	}
}

func TestTopology(t *testing.T) {
	ctl := ctlSwitch(t)
	c, err := daemon.Dial(daemon.ClientConfig{Ctl: ctl})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Send(porttest.Ether(frame.Broadcast, frame.MAC{0xfe, 0xfd, 0, 0, 0, 1}, 60, 1))
	porttest.Eventually(t, "the address learned", func() bool {
		_, out, _ := ctlArgs("-s", ctl, "fdb")
		return strings.Contains(out, "fe:fd:00:00:00:01")
	})
	conf := filepath.Join(t.TempDir(), "lab.conf")
	os.WriteFile(conf, []byte("pc1[0]=red/fe:fd:00:00:00:01\n"), 0o644)
	code, out, errs := ctlArgs("-s", ctl, "topology", "-format", "json", "-lab", conf)
	var g topology.Graph
	if err := json.Unmarshal([]byte(out), &g); code != 0 || err != nil {
		t.Fatalf("topology: %d %v\n%s%s", code, err, out, errs)
	}
	if len(g.Switches) != 2 || g.Switches[0].Name != "red" || g.Switches[0].Socket != ctl || len(g.Links) != 1 ||
		len(g.Nodes) != 1 || g.Nodes[0].Label != "pc1" || g.Links[0].Label != "red.1 — eth0" {
		t.Errorf("topology:\n%s", out)
	}
	if _, out, _ := ctlArgs("-s", ctl, "-json", "topology"); !strings.HasPrefix(out, "{") {
		t.Errorf("-json topology:\n%s", out)
	}
	for format, want := range map[string]string{"dot": "graph umlswitch {", "mermaid": "graph LR\n"} {
		code, out, errs := ctlArgs("-s", ctl, "topology", "-format", format)
		if code != 0 || !strings.HasPrefix(out, want) || !strings.Contains(out, "fe:fd:00:00:00:01") {
			t.Errorf("-format %s: %d\n%s%s", format, code, out, errs)
		}
	}
	if code, _, errs := ctlArgs("-s", ctl, "topology", "-format", "svg"); code != 1 || !strings.Contains(errs, "want json, dot or mermaid") {
		t.Errorf("-format svg: %d %s", code, errs)
	}
	if code, _, errs := ctlArgs("-s", ctl, "topology", filepath.Join(t.TempDir(), "none.ctl")); code != 1 || !strings.Contains(errs, "none.ctl") {
		t.Errorf("a socket that does not answer: %d %s", code, errs)
	}
	if code, out, _ := ctlArgs("-s", ctl, "topology", "-h"); code != 0 || !strings.Contains(out, "-format") {
		t.Errorf("topology -h: %d %s", code, out)
	}
}

// The graph reads the API's own JSON: every field it uses has the name
// the API gives it.
func TestTopologyReadsTheAPI(t *testing.T) {
	in := instance.PortInfo{Name: "p", Switch: "s", Kind: "vxlan", Peer: "x", Spec: "transport=vxlan", Listener: "l",
		Listening: "/x", ID: 3, State: "absent", VTEP: "10.0.0.1"}
	b, _ := json.Marshal(in)
	var out topology.PortIn
	json.Unmarshal(b, &out)
	if out != (topology.PortIn{Name: "p", Switch: "s", Kind: "vxlan", Peer: "x", Spec: "transport=vxlan", Listener: "l",
		Listening: "/x", ID: 3, State: "absent", VTEP: "10.0.0.1"}) {
		t.Errorf("port: %+v from %s", out, b)
	}
	mb, _ := json.Marshal(instance.MACInfo{Switch: "s", MAC: "m", Port: "p", VLAN: 5, Static: true, Remote: true, VTEP: "v"})
	var mac topology.MACIn
	json.Unmarshal(mb, &mac)
	if mac != (topology.MACIn{Switch: "s", MAC: "m", Port: "p", VLAN: 5, Static: true, Remote: true, VTEP: "v"}) {
		t.Errorf("mac: %+v from %s", mac, mb)
	}
	sb, _ := json.Marshal(instance.SwitchInfo{Name: "s", Hub: true})
	var sw topology.SwitchIn
	json.Unmarshal(sb, &sw)
	if sw != (topology.SwitchIn{Name: "s", Hub: true}) {
		t.Errorf("switch: %+v from %s", sw, sb)
	}
}
