package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/umlswitch/umlswitch/frame"
	"github.com/umlswitch/umlswitch/internal/nstest"
)

// ctlJSON runs `umlswitch ctl -s CTL -json ARGS` and decodes its output.
func ctlJSON(t *testing.T, ctl string, out any, args ...string) {
	t.Helper()
	if err := ctlJSONErr(ctl, out, args...); err != nil {
		t.Fatal(err)
	}
}

// ctlJSONErr is ctlJSON for a goroutine other than the test's.
func ctlJSONErr(ctl string, out any, args ...string) error {
	b, err := exec.Command(env.umlswitch, append([]string{"ctl", "-s", ctl, "-json"}, args...)...).CombinedOutput()
	if err == nil && out != nil {
		err = json.Unmarshal(b, out)
	}
	if err != nil {
		return fmt.Errorf("umlswitch ctl %s: %w\n%s", strings.Join(args, " "), err, b)
	}
	return nil
}

// ctlRun runs `umlswitch ctl -s CTL ARGS` and returns its output.
func ctlRun(t *testing.T, ctl string, args ...string) string {
	t.Helper()
	b, err := exec.Command(env.umlswitch, append([]string{"ctl", "-s", ctl}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("umlswitch ctl %s: %v\n%s", strings.Join(args, " "), err, b)
	}
	return string(b)
}

type ctlPort struct {
	Name     string            `json:"name"`
	Switch   string            `json:"switch"`
	Kind     string            `json:"kind"`
	Listener string            `json:"listener"`
	ID       int               `json:"id"`
	RxFrames uint64            `json:"rx_frames"`
	TxFrames uint64            `json:"tx_frames"`
	RxBytes  uint64            `json:"rx_bytes"`
	Drops    map[string]uint64 `json:"drops"`
}

type ctlMAC struct {
	Switch string  `json:"switch"`
	MAC    string  `json:"mac"`
	Port   string  `json:"port"`
	VLAN   int     `json:"vlan"`
	AgeS   float64 `json:"age_s"`
	Static bool    `json:"static"`
}

// waiting returns the counters a UML printed when it finished: packets it
// sent and received.
func (u *uml) waiting(t *testing.T) (tx, rx uint64) {
	t.Helper()
	f := strings.Fields(u.waitLine(t, `^UML-WAITING \d+ \d+`))
	tx, _ = strconv.ParseUint(f[1], 10, 64)
	rx, _ = strconv.ParseUint(f[2], 10, 64)
	return tx, rx
}

// Two switches from one configuration in one daemon, two UMLs on each:
// each reaches its partner and never the other switch's UMLs, whose live
// capture sees none of their frames. `ctl ports -json` and `fdb -json` show
// each UML's port and address, with counters equal to what the UML itself
// counted.
func TestTwoSwitchesInOneDaemon(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	needTool(t, "tcpdump", "tcpdump")
	d := scratch(t)
	red, blue := filepath.Join(d, "red.ctl"), filepath.Join(d, "blue.ctl")
	conf := filepath.Join(d, "lab.yaml")
	os.WriteFile(conf, []byte(fmt.Sprintf(`
switches:
  - name: red
    ports: [{transport: daemon, path: %s, name: red}]
  - name: blue
    ports: [{transport: daemon, path: %s, name: blue}]
`, red, blue)), 0o644)
	startSwitch(t, nil, []string{red, blue}, "-config", conf)

	// The blue switch's live capture, for the whole run.
	pcap := filepath.Join(d, "blue.pcapng")
	capture := exec.Command(env.umlswitch, "capture", "-s", blue, "-w", pcap)
	if err := capture.Start(); err != nil {
		t.Fatal(err)
	}
	defer capture.Process.Kill()

	// UMLs 1 and 2 on red, 3 and 4 on blue; each pings its partner, then
	// the other switch's two, which must not answer.
	var umls []*uml
	for i := 1; i <= 4; i++ {
		ctl, partner, others := red, 3-i, []string{ip(3), ip(4)}
		if i > 2 {
			ctl, partner, others = blue, 7-i, []string{ip(1), ip(2)}
		}
		vars := map[string]string{"nopeers": strings.Join(others, ","), "noipv6": "1"}
		if i == 1 {
			vars["flood"] = "100," + ip(2)
		}
		umls = append(umls, bootUML(t, umlConfig{net: daemonNet(i, ctl), ip: ip(i), peers: []string{ip(partner)}, vars: vars}))
	}
	for i, u := range umls {
		partner := []int{2, 1, 4, 3}[i]
		if r := u.results(t, []string{ip(partner)}); r[ip(partner)] != "ok" {
			t.Errorf("UML %d did not reach its partner %d", i+1, partner)
		}
	}
	for i, u := range umls {
		for _, o := range map[bool][]int{true: {3, 4}, false: {1, 2}}[i < 2] {
			if !u.unreached(t, ip(o)) {
				t.Errorf("UML %d reached %s on the other switch", i+1, ip(o))
			}
		}
	}
	if line := umls[0].waitLine(t, `^FLOODED `); !strings.Contains(line, "100 packets received") {
		t.Errorf("flood: %s", line)
	}
	// Once every UML waits, nothing is sent any more (a partner answers
	// pings until then): the ports' counters are read now and compared with
	// the UMLs' own at power-off.
	for _, u := range umls {
		u.waiting(t)
	}
	time.Sleep(500 * time.Millisecond) // the last frames reach their ports' counters

	// Each UML's address is in its own switch's table, on its port, and
	// the port counted exactly what the UML sent and received.
	var fdb []ctlMAC
	ctlJSON(t, red, &fdb, "-all", "fdb")
	portOf := map[string]ctlMAC{}
	for _, e := range fdb {
		portOf[e.MAC] = e
	}
	var ports []ctlPort
	ctlJSON(t, red, &ports, "-all", "ports")
	byName := map[string]ctlPort{}
	for _, p := range ports {
		byName[p.Name] = p
	}
	for i := 1; i <= 4; i++ {
		want := map[bool]string{true: "red", false: "blue"}[i <= 2]
		e, ok := portOf[mac(i)]
		if !ok || e.Switch != want || !strings.HasPrefix(e.Port, want+".") {
			t.Errorf("UML %d's address %s: %+v, want it on a port of %s (fdb %+v)", i, mac(i), e, want, fdb)
			continue
		}
		p := byName[e.Port]
		if p.Switch != want || p.Kind != "daemon" || p.Listener != want {
			t.Errorf("port %+v", p)
		}
		if len(p.Drops) > 0 {
			t.Errorf("port %s dropped %v", p.Name, p.Drops)
		}
	}
	if p := byName["red.1"]; p.RxFrames < 100 { // UML 1 sent 100 pings and more
		t.Errorf("red.1 received %d frames", p.RxFrames)
	}
	// Without -all, ctl means the socket's own switch.
	var own []ctlMAC
	ctlJSON(t, blue, &own, "fdb")
	if len(own) != 2 || own[0].Switch != "blue" {
		t.Errorf("blue's table from blue's socket: %+v", own)
	}

	// Blue's capture saw blue's UMLs and never red's.
	capture.Process.Signal(syscall.SIGINT)
	capture.Wait()
	lines := tshark(t, pcap, "-T", "fields", "-e", "ip.src", "-e", "arp.src.proto_ipv4")
	seen := map[string]int{}
	for _, l := range lines {
		for _, f := range strings.Split(l, "\t") {
			if f != "" {
				seen[f]++
			}
		}
	}
	if seen[ip(3)] == 0 || seen[ip(4)] == 0 || seen[ip(1)] != 0 || seen[ip(2)] != 0 {
		t.Errorf("blue's capture holds frames from %v; want 10.0.0.3 and .4 only", seen)
	}
	for i, u := range umls {
		rx, tx := u.releaseCounting(t)
		p := byName[portOf[mac(i+1)].Port]
		if uint64(rx) != p.TxFrames || uint64(tx) != p.RxFrames {
			t.Errorf("UML %d received %d and sent %d packets; its port %s counted tx %d, rx %d", i+1, rx, tx, p.Name, p.TxFrames, p.RxFrames)
		}
	}
}

// At run time: a tap added with `ctl port add` reaches a UML already
// attached; `ctl fdb flush` empties the table and traffic learns it again;
// `ctl port del` removes the tap and the switch serves on; `ctl events`
// shows the UML's attach, its address learned, and its detach.
func TestRuntimePortsFlushAndEvents(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	ns := nstest.New(t)
	ctl := filepath.Join(scratch(t), "sw.ctl")
	startSwitch(t, ns, []string{ctl}, "-unix", ctl)
	events := startBackground(t, exec.Command(env.umlswitch, "ctl", "-s", ctl, "-json", "events"))
	time.Sleep(200 * time.Millisecond) // subscribed before the UML comes

	const host = "10.0.0.100"
	u1 := bootUML(t, umlConfig{ns: ns, net: daemonNet(1, ctl), ip: ip(1), peers: []string{host}})
	u1.waitLine(t, "^UML-UP")
	out := ctlRun(t, ctl, "port", "add", "transport=tap,ifname=lab0,create=1,up=1,name=lab")
	if strings.TrimSpace(out) != "lab" {
		t.Fatalf("port add: %q", out)
	}
	ns.MustRun(t, "ip", "addr", "add", host+"/24", "dev", "lab0")
	if r := u1.results(t, []string{host}); r[host] != "ok" {
		t.Fatal("the UML did not reach the tap added at run time")
	}
	var fdb []ctlMAC
	ctlJSON(t, ctl, &fdb, "fdb")
	if len(fdb) != 2 {
		t.Fatalf("table after the pings: %+v", fdb)
	}
	if out := ctlRun(t, ctl, "fdb", "flush"); !strings.Contains(out, "flushed 2") {
		t.Fatalf("flush: %q", out)
	}
	ctlJSON(t, ctl, &fdb, "fdb")
	if len(fdb) != 0 {
		t.Fatalf("table after the flush: %+v", fdb)
	}
	ns.MustRun(t, "busybox", "ping", "-c", "2", "-W", "2", ip(1))
	ctlJSON(t, ctl, &fdb, "fdb")
	if len(fdb) != 2 {
		t.Fatalf("table after traffic again: %+v", fdb)
	}
	ctlRun(t, ctl, "port", "del", "lab")
	if err := ns.Cmd("ip", "link", "show", "lab0").Run(); err == nil {
		t.Fatal("the tap is still there after port del")
	}
	var ports []ctlPort
	ctlJSON(t, ctl, &ports, "ports")
	for _, p := range ports {
		if p.Name == "lab" {
			t.Fatalf("port lab still listed: %+v", ports)
		}
	}
	// The switch serves on: a second UML reaches the first.
	u2 := bootUML(t, umlConfig{ns: ns, net: daemonNet(2, ctl), ip: ip(2), peers: []string{ip(1)}})
	if r := u2.results(t, []string{ip(1)}); r[ip(1)] != "ok" {
		t.Fatal("the switch stopped serving after port del")
	}
	u1.waiting(t)
	u2.waiting(t)
	u1.release(t)
	u2.release(t)

	// The events: u1's port attached, its address learned, its port detached.
	var attached string
	for _, want := range []string{`"type":"port-attached"`, `"type":"mac-learned"`, `"type":"port-detached"`} {
		re := regexp.MustCompile(regexp.QuoteMeta(want) + `.*"port":"(daemon0\.\d+)"`)
		if want == `"type":"mac-learned"` {
			re = regexp.MustCompile(`"type":"mac-learned".*"port":"(daemon0\.\d+)".*"mac":"` + mac(1))
		}
		line, ok := events.wait(re, 10*time.Second)
		if !ok {
			t.Fatalf("no %s event:\n%s", want, events.text())
		}
		port := re.FindStringSubmatch(line)[1]
		if attached == "" {
			attached = port
		} else if port != attached {
			t.Errorf("%s names %s, the attach named %s", want, port, attached)
		}
	}
	if !strings.Contains(events.text(), `"type":"port-attached","switch":"default","port":"lab"`) {
		t.Errorf("no attach event for the tap:\n%s", events.text())
	}
}

// SIGHUP after the configuration changed adds and removes ports, and a UML
// whose port did not change keeps pinging through it without a loss.
// Metrics scraped meanwhile parse, carry their labels, and grow.
func TestReloadLeavesUnchangedPortsAlone(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	d := scratch(t)
	a, b, c := filepath.Join(d, "a.ctl"), filepath.Join(d, "b.bess"), filepath.Join(d, "c.ctl")
	metricsSock := filepath.Join(d, "metrics.sock")
	conf := filepath.Join(d, "lab.yaml")
	write := func(ports ...string) {
		os.WriteFile(conf, []byte("ports:\n  - "+strings.Join(ports, "\n  - ")+"\n"), 0o644)
	}
	write("{transport: daemon, path: "+a+"}", "{transport: bess, path: "+b+"}")
	sw := startSwitch(t, nil, []string{a, c, metricsSock}, "-config", conf, "-metrics", "unix:"+metricsSock)

	u1 := bootUML(t, umlConfig{net: daemonNet(1, a), ip: ip(1), peers: []string{ip(2)},
		vars: map[string]string{"flood": "400," + ip(2)}})
	u2 := bootUML(t, umlConfig{net: daemonNet(2, a), ip: ip(2), peers: []string{ip(1)}})
	expectAllOK(t, []*uml{u1, u2}, [][]string{{ip(2)}, {ip(1)}})
	first := scrape(t, metricsSock)

	// During the flood (400 pings, 8 s): swap the bess port for a daemon one.
	time.Sleep(time.Second)
	write("{transport: daemon, path: "+a+"}", "{transport: daemon, path: "+c+"}")
	sw.cmd.Process.Signal(syscall.SIGHUP)
	if _, ok := sw.log.wait(regexp.MustCompile(`msg="configuration reloaded" changes="switches \+0 -0, ports \+1 -1 \(1 unchanged\)`), 10*time.Second); !ok {
		t.Fatalf("no reload:\n%s", sw.log.text())
	}
	if _, err := os.Lstat(b); err == nil {
		t.Error("the removed bess socket is still there")
	}
	var info struct{ Listener string }
	ctlJSON(t, c, &info, "info")
	if info.Listener == "" {
		t.Error("the added control socket does not answer")
	}
	if line := u1.waitLine(t, `^FLOODED `); !strings.Contains(line, "400 packets received") {
		t.Errorf("the UML on the unchanged port lost pings across the reload: %s", line)
	}
	// A broken file is refused and changes nothing.
	os.WriteFile(conf, []byte("ports: [\n"), 0o644)
	sw.cmd.Process.Signal(syscall.SIGHUP)
	if _, ok := sw.log.wait(regexp.MustCompile(`msg="reload failed: running on as before"`), 10*time.Second); !ok {
		t.Errorf("a broken file was not refused:\n%s", sw.log.text())
	}
	second := scrape(t, metricsSock)
	if second["umlswitch_mac_learned_total"] != 2 || second["umlswitch_switch_ports"] != 2 {
		t.Errorf("learned %v addresses on %v ports, want 2 on 2", second["umlswitch_mac_learned_total"], second["umlswitch_switch_ports"])
	}
	for _, name := range []string{"umlswitch_port_rx_frames_total", "umlswitch_port_tx_bytes_total", "umlswitch_port_tx_frames_total"} {
		if second[name] <= first[name] || first[name] == 0 {
			t.Errorf("%s: %v then %v, want it to grow", name, first[name], second[name])
		}
	}
	u1.waiting(t)
	u2.waiting(t)
	u1.release(t)
	u2.release(t)
}

// scrape reads /metrics over a unix socket, parses it with Prometheus' own
// text parser, checks the per-port series' labels and returns each family's
// sum.
func scrape(t *testing.T, sock string) map[string]float64 {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		}}}
	resp, err := client.Get("http://x/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(bufio.NewReader(resp.Body))
	if err != nil {
		t.Fatalf("metrics do not parse: %v", err)
	}
	sums := map[string]float64{}
	for name, f := range fams {
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if strings.HasPrefix(name, "umlswitch_port_") && (labels["switch"] != "default" || labels["port"] == "" || labels["kind"] != "daemon") {
				t.Errorf("%s has labels %v", name, labels)
			}
			if c := m.GetCounter(); c != nil {
				sums[name] += c.GetValue()
			}
			if g := m.GetGauge(); g != nil {
				sums[name] += g.GetValue()
			}
		}
	}
	return sums
}

// -daemon returns 0 once the switch serves, the pidfile names the live
// switch, and SIGTERM removes the socket and the pidfile. Idle, the switch
// holds one open file whose path holds the control socket's, and no more
// sockets than uml_switch (two): Netkit's vclean counts them.
func TestDaemonModeAndOpenFiles(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	d := scratch(t)
	ctl, pidf := filepath.Join(d, "sw.ctl"), filepath.Join(d, "sw.pid")
	out, err := exec.Command(env.umlswitch, "-daemon", "-pidfile", pidf, "-unix", ctl).CombinedOutput()
	if err != nil {
		t.Fatalf("-daemon: %v\n%s", err, out)
	}
	b, err := os.ReadFile(pidf)
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	if pid <= 0 || syscall.Kill(pid, 0) != nil {
		t.Fatalf("pidfile %q names no live process", b)
	}
	defer syscall.Kill(pid, syscall.SIGKILL)
	if _, err := os.Stat(ctl); err != nil {
		t.Fatalf("-daemon returned before the socket existed: %v", err)
	}
	withPath, sockets := openFiles(t, pid, ctl)
	if withPath != 1 || sockets > 2 {
		t.Errorf("idle switch: %d open files with %s in their path (want 1), %d sockets (want at most 2)", withPath, ctl, sockets)
	}
	// The API and a capture reader come and go through the same socket.
	ctlRun(t, ctl, "ports")
	if withPath, _ := openFiles(t, pid, ctl); withPath != 1 {
		t.Errorf("after an API request: %d open files with the path", withPath)
	}
	// A second -daemon on the same pidfile is refused, with the reason.
	out, err = exec.Command(env.umlswitch, "-daemon", "-pidfile", pidf, "-unix", ctl+"2").CombinedOutput()
	if err == nil || !strings.Contains(string(out), fmt.Sprint(pid)) {
		t.Errorf("second switch on a live pidfile: %v\n%s", err, out)
	}
	syscall.Kill(pid, syscall.SIGTERM)
	deadline := time.Now().Add(10 * time.Second)
	for syscall.Kill(pid, 0) == nil && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	for _, f := range []string{ctl, pidf, ctl + "2"} {
		if _, err := os.Lstat(f); err == nil {
			t.Errorf("%s left behind after SIGTERM", f)
		}
	}
	// A switch that cannot start says why, and -daemon returns non-zero.
	out, err = exec.Command(env.umlswitch, "-daemon", "-unix", filepath.Join(d, "no", "such", "dir.ctl")).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "no such file or directory") {
		t.Errorf("-daemon with a bad path: %v\n%s", err, out)
	}
}

// openFiles counts pid's open files whose path contains path (sockets by
// their bound path, as lsof shows them) and its sockets.
func openFiles(t *testing.T, pid int, path string) (withPath, sockets int) {
	t.Helper()
	unixPaths := map[string]string{} // inode -> path
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/unix", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(data), "\n")[1:] {
		f := strings.Fields(l)
		if len(f) >= 8 {
			unixPaths[f[6]] = f[7]
		}
	}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, fd := range fds {
		target, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
		if err != nil {
			continue
		}
		if strings.HasPrefix(target, "socket:[") {
			sockets++
			target = unixPaths[strings.TrimSuffix(strings.TrimPrefix(target, "socket:["), "]")]
		}
		if strings.Contains(target, path) {
			withPath++
		}
	}
	return withPath, sockets
}

// A daemon with 100 switches and 1,000 attached daemon clients, ten per
// switch, each of which has sent a frame: `ctl ports -json` lists them all
// quickly, the idle daemon uses almost no CPU, and its memory stays small.
// The figures are logged; the bounds are generous (the machine is shared),
// the targets are 100 ms, 1 % and 200 MB.
func TestThousandClientsOverHundredSwitches(t *testing.T) {
	requireE2E(t)
	d := scratch(t)
	var conf strings.Builder
	conf.WriteString("switches:\n")
	const switches, perSwitch = 100, 10
	ctls := make([]string, switches)
	for i := range ctls {
		ctls[i] = filepath.Join(d, fmt.Sprintf("s%d.ctl", i))
		fmt.Fprintf(&conf, "  - {name: s%d, ports: [{transport: daemon, path: %s}]}\n", i, ctls[i])
	}
	f := filepath.Join(d, "lab.yaml")
	os.WriteFile(f, []byte(conf.String()), 0o644)
	sw := startSwitch(t, nil, ctls, "-config", f)
	pid := sw.cmd.Process.Pid
	rss0 := settleRSS(t, pid)
	buf := make([]byte, 64)
	for i := 0; i < switches*perSwitch; i++ {
		c := dialLAN(t, ctls[i%switches], "", 0x1000+i, false)
		if err := c.Send(testFrame(buf, frame.Broadcast, c.mac, 0)); err != nil {
			t.Fatal(err)
		}
	}
	var ports []ctlPort
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctlJSON(t, ctls[0], &ports, "-all", "ports")
		if len(ports) == switches*(perSwitch+1) || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(ports) != switches*(perSwitch+1) {
		t.Fatalf("%d ports listed, want %d clients and %d listeners", len(ports), switches*perSwitch, switches)
	}
	var rx uint64
	for _, p := range ports {
		rx += p.RxFrames
	}
	if rx != switches*perSwitch {
		t.Errorf("the ports received %d frames, want %d", rx, switches*perSwitch)
	}

	// The API's answer, and the whole ctl command, timed.
	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", ctls[0])
	}}}
	var api, cmd []time.Duration
	for i := 0; i < 5; i++ {
		start := time.Now()
		resp, err := client.Get("http://x/v1/ports")
		if err != nil {
			t.Fatal(err)
		}
		var got []ctlPort
		json.NewDecoder(resp.Body).Decode(&got)
		resp.Body.Close()
		api = append(api, time.Since(start))
		start = time.Now()
		ctlJSON(t, ctls[0], nil, "-all", "ports")
		cmd = append(cmd, time.Since(start))
	}
	slices.Sort(api)
	slices.Sort(cmd)

	rss1 := settleRSS(t, pid)
	cpu := func() time.Duration {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			t.Fatal(err)
		}
		f := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+2:]))
		ut, _ := strconv.ParseUint(f[11], 10, 64)
		st, _ := strconv.ParseUint(f[12], 10, 64)
		return time.Duration(ut+st) * 10 * time.Millisecond // USER_HZ is 100
	}
	c0, w0 := cpu(), time.Now()
	time.Sleep(5 * time.Second)
	busy := float64(cpu()-c0) / float64(time.Since(w0))
	t.Logf("100 switches, 1,000 clients: GET /v1/ports %v (median of 5, fastest %v), umlswitch ctl -all -json ports %v; "+
		"idle CPU %.2f %%; resident memory %d MB (%d MB before the clients: %.1f kB per attached port)",
		api[2], api[0], cmd[2], 100*busy, rss1/1024, rss0/1024, float64(rss1-rss0)/float64(switches*perSwitch))
	if api[2] > time.Second {
		t.Errorf("GET /v1/ports took %v", api[2])
	}
	if busy > 0.05 {
		t.Errorf("the idle daemon used %.1f %% of a CPU", 100*busy)
	}
	if rss1 > 200<<10 {
		t.Errorf("resident memory %d MB, want under 200", rss1/1024)
	}
}

// vde_plug vde://DIR[N] asks for port N: it becomes port N of the
// listener (its name ends in .N), and a second vde_plug asking for N is
// refused, as vde_switch refuses a port in use.
func TestVDEPortRequest(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	needTool(t, "vde_plug", "vdeplug")
	dir := filepath.Join(scratch(t), "vde")
	os.MkdirAll(dir, 0o755)
	ctl := filepath.Join(dir, "ctl")
	sw := startSwitch(t, nil, []string{ctl}, "-unix", dir+"/")
	plug := func() *exec.Cmd {
		c := exec.Command("sh", "-c", fmt.Sprintf("sleep 30 | vde_plug 'vde://%s[3]' >/dev/null", dir))
		c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { syscall.Kill(-c.Process.Pid, syscall.SIGKILL); c.Wait() })
		return c
	}
	plug()
	var ports []ctlPort
	deadline := time.Now().Add(10 * time.Second)
	for len(ports) < 2 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		ctlJSON(t, ctl, &ports, "ports")
	}
	if len(ports) != 2 || ports[1].Name != "daemon0.3" {
		t.Fatalf("ports %+v, want daemon0 and daemon0.3", ports)
	}
	plug()
	if _, ok := sw.log.wait(regexp.MustCompile(`msg="client rejected" .*port 3 of daemon0 is in use`), 10*time.Second); !ok {
		t.Fatalf("a second vde_plug asking for port 3 was not refused:\n%s", sw.log.text())
	}
	ctlJSON(t, ctl, &ports, "ports")
	if len(ports) != 2 {
		t.Fatalf("ports %+v", ports)
	}
}
