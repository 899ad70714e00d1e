package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/umlswitch/umlswitch/internal/nstest"
)

// Wireshark's own tools capture a switch through the extcap: umlswitch
// extcap install links the binary into a folder of the test's, which
// tshark reads from WIRESHARK_EXTCAP_DIR (it honours it for users other
// than root only, so tshark runs as nobody, whom the switch's -api-uid
// lets capture, as a Wireshark user would be let). While two UMLs ping
// and the host ARPs into the switch through a tap: tshark -D lists the
// switch; an unfiltered capture records echo requests, replies and ARP;
// -f icmp only ICMP; -f for echo requests none of the replies. A switch
// killed during a capture ends tshark, with the extcap's message.
func TestExtcapTshark(t *testing.T) {
	requireRoot(t)
	needTool(t, "tshark", "tshark")
	needTool(t, "tcpdump", "tcpdump")
	ns := nstest.New(t)
	d := publicScratch(t, false)
	out := publicScratch(t, true) // tshark's files, written as nobody
	ext := publicScratch(t, false)
	ctl := filepath.Join(d, "sw.ctl")
	if got, err := exec.Command(env.umlswitch, "extcap", "install", "-dir", ext).CombinedOutput(); err != nil ||
		!strings.Contains(string(got), "linked "+filepath.Join(ext, "umlswitch")) {
		t.Fatalf("extcap install: %v\n%s", err, got)
	}
	sw := startSwitch(t, ns, nil, "-unix", ctl, "-mode", "0777", "-api-uid", fmt.Sprint(nobody), "-state", "none",
		"-port", "transport=tap,ifname=ext0,create=1,up=1")
	ns.MustRun(t, "ip", "addr", "add", "10.0.0.254/24", "dev", "ext0")
	ns.MustRun(t, "sysctl", "-qw", "net.ipv6.conf.ext0.disable_ipv6=1")
	wireshark := func(args ...string) *exec.Cmd { // tshark as a Wireshark user runs it
		cmd := asNobody(exec.Command("tshark", args...))
		cmd.Env = append(cmd.Env, "WIRESHARK_EXTCAP_DIR="+ext, "UMLSWITCH_SOCKETS="+ctl)
		cmd.Dir = out
		return cmd
	}
	ifname := "umlswitch:default@" + ctl
	list, err := wireshark("-D").CombinedOutput()
	if err != nil || !strings.Contains(string(list), ifname+" (umlswitch default ("+ctl+"))") {
		t.Fatalf("tshark -D does not list %s: %v\n%s", ifname, err, list)
	}

	const flood = 600 // 12 s of pings every 20 ms: the captures run meanwhile
	u1 := bootUML(t, umlConfig{ns: ns, net: daemonNet(1, ctl), ip: ip(1), peers: []string{ip(2)},
		vars: map[string]string{"flood": fmt.Sprintf("%d,%s", flood, ip(2)), "noipv6": "1"}})
	u2 := bootUML(t, umlConfig{ns: ns, net: daemonNet(2, ctl), ip: ip(2), peers: []string{ip(1)}, vars: map[string]string{"noipv6": "1"}})
	expectAllOK(t, []*uml{u1, u2}, [][]string{{ip(2)}, {ip(1)}})

	captures := map[string][]string{ // file -> tshark's capture filter arguments
		"all.pcapng":      nil,
		"icmp.pcapng":     {"-f", "icmp"},
		"requests.pcapng": {"-f", "icmp[icmptype] = icmp-echo"},
	}
	done := make(chan string, len(captures))
	for file, filter := range captures {
		cmd := wireshark(append([]string{"-i", ifname, "-a", "duration:3", "-w", filepath.Join(out, file)}, filter...)...)
		go func() {
			got, err := runBounded(cmd, 30*time.Second)
			if err != nil {
				done <- fmt.Sprintf("tshark -w %s: %v\n%s", file, err, got)
				return
			}
			done <- ""
		}()
	}
	// The host's ARP requests into the switch while the captures run.
	arping := ns.Cmd("busybox", "arping", "-c", "4", "-I", "ext0", ip(1))
	if got, err := runBounded(arping, 20*time.Second); err != nil {
		t.Errorf("arping: %v\n%s", err, got)
	}
	for range captures {
		if msg := <-done; msg != "" {
			t.Error(msg)
		}
	}
	count := func(file, filter string) int {
		lines := tshark(t, filepath.Join(out, file), "-Y", filter, "-T", "fields", "-e", "frame.number")
		if len(lines) == 1 && lines[0] == "" {
			return 0
		}
		return len(lines)
	}
	type counts struct{ frames, requests, replies, arp int }
	got := map[string]counts{}
	for file := range captures {
		got[file] = counts{count(file, "frame"), count(file, "icmp.type == 8"), count(file, "icmp.type == 0"), count(file, "arp")}
	}
	t.Logf("frames, echo requests, replies and ARP captured: %+v", got)
	if c := got["all.pcapng"]; c.requests < 20 || c.replies < 20 || c.arp == 0 {
		t.Errorf("the unfiltered capture: %+v, want echo requests, replies and ARP", c)
	}
	if c := got["icmp.pcapng"]; c.requests < 20 || c.replies < 20 || c.arp != 0 || c.frames != c.requests+c.replies {
		t.Errorf("-f icmp: %+v, want ICMP echo requests and replies only", c)
	}
	if c := got["requests.pcapng"]; c.requests < 20 || c.replies != 0 || c.frames != c.requests {
		t.Errorf("-f echo requests: %+v, want requests only", c)
	}
	u1.waitLine(t, "^FLOODED ")
	u1.release(t)
	u2.release(t)

	// The switch killed during a capture: tshark ends and says why.
	live := wireshark("-i", ifname, "-a", "duration:60", "-w", filepath.Join(out, "killed.pcapng"))
	liveOut, exited, err := startCollecting(live)
	if err != nil {
		t.Fatal(err)
	}
	joined := func() int { return strings.Count(sw.log.text(), "mirror reader joined") }
	before := joined()
	for deadline := time.Now().Add(20 * time.Second); joined() == before; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the extcap's capture never joined:\n%s", liveOut.text())
		}
	}
	start := time.Now()
	sw.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-exited:
	case <-time.After(20 * time.Second):
		live.Process.Kill()
		t.Fatalf("tshark still captures 20s after the switch was killed:\n%s", liveOut.text())
	}
	if _, ok := liveOut.wait(regexp.MustCompile(`the capture ended: the switch stopped`), 5*time.Second); !ok {
		t.Errorf("tshark ended (%v) after %v without the extcap's message:\n%s", live.ProcessState, time.Since(start), liveOut.text())
	}
	if _, err := exec.Command(env.umlswitch, "extcap", "uninstall", "-dir", ext).CombinedOutput(); err != nil {
		t.Errorf("extcap uninstall: %v", err)
	}
}

// A lab of two collision domains joined by a VXLAN tunnel (over the
// namespace's loopback), pc1 on A and pc2 on B pinging across it: ctl
// topology draws both switches, the tunnel between them and each machine
// by its lab.conf name, and Graphviz draws what it writes.
func TestTopologyLabDot(t *testing.T) {
	requireE2E(t)
	needTool(t, "dot", "graphviz")
	t.Parallel()
	ns := nstest.New(t)
	d := scratch(t)
	conf := filepath.Join(d, "lab.conf")
	os.WriteFile(conf, []byte("pc1[0]=A/"+mac(1)+"\npc2[0]=B/"+mac(2)+"\n"), 0o644)
	run := filepath.Join(d, "run")
	sw := startSwitchCmd(t, ns.Cmd(env.umlswitch, "lab", "-dir", run, conf), nil)
	a := filepath.Join(run, "A.ctl")
	for _, add := range [][]string{
		{"-switch", "A", "transport=vxlan,src=127.0.0.1,dst=127.0.0.2,vni=42,name=vx-a"},
		{"-switch", "B", "transport=vxlan,src=127.0.0.2,dst=127.0.0.1,vni=42,name=vx-b"},
	} {
		if got, err := exec.Command(env.umlswitch, append([]string{"ctl", "-s", a, "port", "add"}, add...)...).CombinedOutput(); err != nil {
			t.Fatalf("port add %q: %v\n%s\n%s", add, err, got, sw.log.text())
		}
	}
	daemonOpts, _ := labOptions(sw)
	u1 := bootUML(t, umlConfig{ns: ns, net: daemonOpts["pc1"][0], ip: ip(1), peers: []string{ip(2)}})
	u2 := bootUML(t, umlConfig{ns: ns, net: daemonOpts["pc2"][0], ip: ip(2), peers: []string{ip(1)}})
	expectAllOK(t, []*uml{u1, u2}, [][]string{{ip(2)}, {ip(1)}})

	ctl := func(args ...string) string {
		t.Helper()
		got, err := exec.Command(env.umlswitch, append([]string{"ctl", "-s", a, "topology", "-lab", conf}, args...)...).Output()
		if err != nil {
			t.Fatalf("ctl topology %q: %v\n%s", args, err, got)
		}
		return string(got)
	}
	dot := ctl("-format", "dot")
	draw := exec.Command("dot", "-Tsvg")
	draw.Stdin = strings.NewReader(dot)
	svg, err := draw.CombinedOutput()
	if err != nil || !strings.Contains(string(svg), "</svg>") {
		t.Fatalf("dot -Tsvg: %v\n%s\n%s", err, svg, dot)
	}
	for _, want := range []string{"switch A", "switch B", "vxlan vni 42", "pc1", "pc2", "vx&#45;a"} {
		if !strings.Contains(string(svg), want) {
			t.Errorf("the drawing lacks %q:\n%s", want, dot)
		}
	}
	var g struct {
		Switches []struct{ ID, Name string }
		Nodes    []struct{ ID, Kind, Label string }
		Links    []struct {
			A, B struct{ Switch, Port, Node string }
			Kind string
		}
	}
	js := ctl("-format", "json")
	if err := json.Unmarshal([]byte(js), &g); err != nil {
		t.Fatal(err)
	}
	ids := map[string]string{}
	for _, s := range g.Switches {
		ids[s.ID] = s.Name
	}
	for _, n := range g.Nodes {
		ids[n.ID] = n.Kind + " " + n.Label
	}
	var links []string
	for _, l := range g.Links {
		links = append(links, ids[l.A.Switch]+":"+l.A.Port+" -- "+ids[l.B.Switch+l.B.Node]+":"+l.B.Port+" "+l.Kind)
	}
	want := []string{"A:vx-a -- B:vx-b vxlan", "A:A.1 -- machine pc1: daemon", "B:B.1 -- machine pc2: daemon"}
	if strings.Join(links, "\n") != strings.Join(want, "\n") {
		t.Errorf("links:\n%s\nwant\n%s\n%s", strings.Join(links, "\n"), strings.Join(want, "\n"), js)
	}
	if mm := ctl("-format", "mermaid"); !strings.HasPrefix(mm, "graph LR\n") || !strings.Contains(mm, "===") {
		t.Errorf("mermaid:\n%s", mm)
	}
	u1.release(t)
	u2.release(t)
}
