package e2e

import (
	"errors"
	"fmt"
	"io"
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

	"github.com/umlswitch/umlswitch/frame"
	"github.com/umlswitch/umlswitch/internal/nstest"
	"github.com/umlswitch/umlswitch/transports/daemon"
	"github.com/umlswitch/umlswitch/transports/porttest"
)

// ctl upgrade during a ping flood between two UMLs: the new process of the
// binary takes every socket over (the control socket, each client's data
// socket and control connection), the old one leaves, and the UMLs never
// notice; the flood's loss is what the hand-over cost. The new switch then
// stops as any does, removing the control socket.
func TestUpgradeKeepsUMLsAttached(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	ctl := filepath.Join(scratch(t), "sw.ctl")
	old := startSwitch(t, nil, nil, "-unix", ctl)
	u1, u2 := floodingPair(t, ctl)

	started := time.Now()
	if out, err := ctlOutput(ctl, "upgrade"); err != nil {
		t.Fatalf("ctl upgrade: %v\n%s\n%s", err, out, old.log.text())
	}
	took := time.Since(started)
	select {
	case <-old.exited:
	case <-time.After(10 * time.Second):
		t.Fatalf("the old switch did not leave:\n%s", old.log.text())
	}
	followUpgrade(t, old, ctl)
	waitLog(t, old, `msg="clients taken back" .*clients=2 of=2`, "the new switch did not take both UMLs over")
	var ports []struct{ Name, Peer string }
	ctlJSON(t, ctl, &ports, "ports")
	if len(ports) != 3 { // daemon0 and its two clients
		t.Fatalf("after the upgrade ctl ports lists %+v", ports)
	}

	sent, received, flood := u1.flooded(t)
	t.Logf("ctl upgrade answered in %v; %d of %d pings lost across the hand-over", took.Round(time.Millisecond), sent-received, sent)
	if sent != pings || sent-received > 10 {
		t.Errorf("%s: the hand-over cut the link", flood)
	}
	u1.release(t)
	u2.release(t)
}

// ctlOutput runs umlswitch ctl against ctl.
func ctlOutput(ctl string, args ...string) ([]byte, error) {
	return exec.Command(env.umlswitch, append([]string{"ctl", "-s", ctl}, args...)...).CombinedOutput()
}

// stopPID stops a switch the test did not start itself (the new process of
// an upgrade): SIGTERM, a clean exit, its control socket removed.
func stopPID(t *testing.T, pid int, ctl string) {
	t.Helper()
	syscall.Kill(pid, syscall.SIGTERM)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err != nil {
			break
		}
		if time.Now().After(deadline) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("the new switch (pid %d) did not stop on SIGTERM", pid)
		}
	}
	if _, err := os.Lstat(ctl); err == nil {
		t.Errorf("%s left behind by the new switch", ctl)
	}
}

// An upgrade whose new binary does not serve leaves the old switch as it
// was: ctl upgrade says why, and the switch answers and keeps its clients.
func TestUpgradeThatFailsChangesNothing(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	dir := scratch(t)
	ctl, bin := filepath.Join(dir, "sw.ctl"), filepath.Join(dir, "umlswitch")
	copyBinary(t, bin)
	sw := startSwitchCmd(t, exec.Command(bin, "-log-level", "debug", "-unix", ctl), []string{ctl})
	u := bootUML(t, umlConfig{net: daemonNet(1, ctl), ip: ip(1)})
	waitLog(t, sw, `msg="port attached" .*name=daemon0\.1 `, "the UML did not attach")
	// The binary on disk is now one that fails at once (put in place as a
	// package upgrade does: renamed over the running one).
	if err := os.WriteFile(bin+".new", []byte("#!/bin/sh\necho broken build >&2\nexit 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(bin+".new", bin); err != nil {
		t.Fatal(err)
	}
	out, err := ctlOutput(ctl, "upgrade")
	if err == nil || !regexp.MustCompile(`ended before it served`).Match(out) {
		t.Fatalf("ctl upgrade with a broken binary: %v\n%s", err, out)
	}
	select {
	case <-sw.exited:
		t.Fatalf("the switch left after a failed upgrade:\n%s", sw.log.text())
	default:
	}
	var ports []struct{ Name string }
	ctlJSON(t, ctl, &ports, "ports")
	if len(ports) != 2 {
		t.Fatalf("after a failed upgrade ctl ports lists %+v", ports)
	}
	waitLog(t, sw, `msg="upgrade failed: running on as before"`, "no word of the failed upgrade")
	u.release(t)
}

// The test: ctl upgrade during a ping flood between a daemon UML
// and a BESS UML (and one from an L2TPv3-over-UDP UML), and during a TCP
// stream from the host to the daemon UML through a tap the switch created.
// The new switch takes over the control socket, the BESS listener and the
// BESS UML's connection, the daemon UML's sockets, the tunnel's UDP socket
// and the tap's queue; the UMLs stay attached, the stream arrives byte for
// byte, and the floods' loss is what the hand-over cost.
func TestUpgradeUnderLoad(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	ns := nstest.New(t)
	d := scratch(t)
	ctl, bess := filepath.Join(d, "sw.ctl"), filepath.Join(d, "sw.bess")
	old := startSwitch(t, ns, nil, "-unix", ctl, "-port", "transport=bess,path="+bess,
		"-port", "transport=tap,ifname=host0,create=1,up=1",
		"-port", "transport=l2tpv3,udp=1,src=127.0.0.2,dst=127.0.0.4,srcport=17001,dstport=17002,rx_session=11,tx_session=12")
	ns.MustRun(t, "ip", "addr", "add", "10.0.0.254/24", "dev", "host0")
	const pings = 400 // 0.02 s apart: 8 s
	u1 := bootUML(t, umlConfig{ns: ns, net: daemonNet(1, ctl), ip: ip(1), peers: []string{ip(2), "10.0.0.254"},
		vars: map[string]string{"sink": "5001", "flood": fmt.Sprintf("%d,%s", pings, ip(2))}})
	u2 := bootUML(t, umlConfig{ns: ns, net: vec(2, "transport=bess,src="+filepath.Join(d, "uml2.sock")+",dst="+bess),
		iface: "vec0", ip: ip(2), peers: []string{ip(1)}})
	u3 := bootUML(t, umlConfig{ns: ns, net: vec(3, "transport=l2tpv3,udp=1,src=127.0.0.4,dst=127.0.0.2,srcport=17002,dstport=17001,rx_session=12,tx_session=11"),
		iface: "vec0", ip: ip(3), peers: []string{ip(1)}, vars: map[string]string{"flood": fmt.Sprintf("%d,%s", pings, ip(1))}})
	expectAllOK(t, []*uml{u1, u2, u3}, [][]string{{ip(2), "10.0.0.254"}, {ip(1)}, {ip(1)}})

	const total = 64 << 20
	streamed := make(chan error, 1)
	go func() { streamed <- streamTo(ns, net.JoinHostPort(ip(1), "5001"), total) }()
	time.Sleep(time.Second) // into the flood and the stream
	started := time.Now()
	if out, err := ctlOutput(ctl, "upgrade"); err != nil {
		t.Fatalf("ctl upgrade: %v\n%s\n%s", err, out, old.log.text())
	}
	took := time.Since(started)
	followUpgrade(t, old, ctl)
	select {
	case <-old.exited:
	case <-time.After(10 * time.Second):
		t.Fatalf("the old switch did not leave:\n%s", old.log.text())
	}
	if err := <-streamed; err != nil {
		t.Fatalf("the TCP stream through the tap: %v", err)
	}
	if got := u1.waitLine(t, "^SINK "); got != "SINK "+strconv.Itoa(total) {
		t.Fatalf("the UML read %q, want %d bytes", got, total)
	}
	sent, received, flood := u1.flooded(t)
	sent3, received3, flood3 := u3.flooded(t)
	var ports []struct{ Name string }
	ctlJSON(t, ctl, &ports, "ports")
	names := map[string]bool{}
	for _, p := range ports {
		names[p.Name] = true
	}
	t.Logf("ctl upgrade answered in %v; pings lost across it: %d of %d (daemon to BESS), %d of %d (L2TPv3 to daemon); "+
		"%d MiB streamed whole; ports after: %v", took.Round(time.Millisecond), sent-received, sent, sent3-received3, sent3, total>>20, names)
	if !names["daemon0.1"] || !names["bess0.1"] || !names["tap0"] || !names["l2tpv30"] {
		t.Errorf("after the upgrade the UMLs or the tap are not attached: %v", names)
	}
	if sent != pings || sent-received > 10 {
		t.Errorf("%s: the hand-over cut the link", flood)
	}
	if sent3 != pings || sent3-received3 > 10 {
		t.Errorf("%s: the hand-over cut the tunnel", flood3)
	}
	u1.release(t)
	u2.release(t)
	u3.release(t)
}

// TCP sockets go across an upgrade too: a stream listener on a TCP port
// with a QEMU connected to it, a stream port connected to a QEMU that
// listens, and the metrics on a TCP port. After ctl upgrade the QEMUs are
// still the switch's ports (a UML booted then reaches each), and the
// metrics answer on the same port.
func TestUpgradeKeepsTCPSockets(t *testing.T) {
	requireE2E(t)
	needTool(t, "qemu-system-x86_64", "qemu-system-x86")
	t.Parallel()
	for _, c := range []struct{ name, port, qemu string }{
		{"qemu connects", "transport=stream,port=%d", "socket,id=v,connect=127.0.0.1:%d"},
		{"qemu listens", "transport=stream,port=%d,connect=1", "socket,id=v,listen=127.0.0.1:%d"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			ctl, port, mport, wport := filepath.Join(scratch(t), "sw.ctl"), freeTCPPort(t), freeTCPPort(t), freeTCPPort(t)
			if c.name == "qemu listens" {
				startQEMU(t, fmt.Sprintf(c.qemu, port))
			}
			old := startSwitch(t, nil, nil, "-unix", ctl, "-port", fmt.Sprintf(c.port, port),
				"-metrics", fmt.Sprintf("127.0.0.1:%d", mport), "-web", fmt.Sprintf("127.0.0.1:%d", wport))
			oldToken, _ := os.ReadFile(ctl + ".web-token")
			if c.name == "qemu connects" {
				startQEMU(t, fmt.Sprintf(c.qemu, port))
			}
			waitLog(t, old, `msg="port attached" .*peer="stream`, "QEMU did not attach")
			if out, err := ctlOutput(ctl, "upgrade"); err != nil {
				t.Fatalf("ctl upgrade: %v\n%s\n%s", err, out, old.log.text())
			}
			followUpgrade(t, old, ctl)
			<-old.exited
			pingQEMU(t, ctl)
			resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", mport))
			if err != nil {
				t.Fatalf("metrics after the upgrade: %v", err)
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("metrics after the upgrade: %s", resp.Status)
			}
			// The web page on the same port, with the new switch's token
			// (the old one's is no longer good).
			token, err := os.ReadFile(ctl + ".web-token")
			if err != nil || len(token) == 0 || string(token) == string(oldToken) {
				t.Fatalf("the web token after the upgrade: %q (before: %q), %v", token, oldToken, err)
			}
			for _, c := range []struct {
				token string
				want  string
			}{{string(token), `"capture":true`}, {string(oldToken), `"capture":false`}} {
				req, _ := http.NewRequest("GET", fmt.Sprintf("http://127.0.0.1:%d/web/access", wport), nil)
				req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(c.token))
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatalf("the web page after the upgrade: %v", err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if !strings.Contains(string(body), c.want) {
					t.Errorf("the web page after the upgrade: %s, want %s", body, c.want)
				}
			}
		})
	}
}

// Two upgrades asked at once run one after the other: the second, asked
// while the first's new switch is starting, waits in the control socket's
// backlog (the old switch accepts nothing meanwhile), and the new switch
// answers it with an upgrade of its own. The UML stays attached to the
// last.
func TestTwoUpgradesAtOnce(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	dir := scratch(t)
	ctl, bin := filepath.Join(dir, "sw.ctl"), filepath.Join(dir, "umlswitch")
	copyBinary(t, bin)
	old := startSwitchCmd(t, exec.Command(bin, "-log-level", "debug", "-unix", ctl), []string{ctl})
	openGate := gateUpgrades(t, bin)
	u := bootUML(t, umlConfig{net: daemonNet(1, ctl), ip: ip(1), peers: []string{"10.0.0.254"},
		vars: map[string]string{"watch": "10.0.0.254"}})
	waitLog(t, old, `msg="port attached" .*name=daemon0\.1 `, "the UML did not attach")
	first := upgradeAsync(ctl)
	waitLog(t, old, `msg="upgrade: starting the new switch"`, "the first upgrade did not start")
	second := upgradeAsync(ctl)
	waitBacklog(t, ctl, 1, "the second ctl upgrade")
	openGate()
	for i, done := range []<-chan error{first, second} {
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("upgrade %d: %v", i+1, err)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("upgrade %d did not answer", i+1)
		}
	}
	followUpgrade(t, old, ctl)
	var info struct{ PID int }
	ctlJSON(t, ctl, &info, "info")
	t.Cleanup(func() { stopPID(t, info.PID, ctl) })
	// The log has the new switches' lines too (they write where the old
	// one did), in whatever order they came.
	var news []int
	for _, m := range regexp.MustCompile(`msg="upgrade: the new switch serves; this one leaves" pid=(\d+)`).FindAllStringSubmatch(old.log.text(), -1) {
		pid, _ := strconv.Atoi(m[1])
		news = append(news, pid)
	}
	if len(news) != 2 || news[0] == news[1] || !slices.Contains(news, info.PID) {
		t.Fatalf("two upgrades: new switches %v, and pid %d answers\n%s", news, info.PID, old.log.text())
	}
	between := news[0] + news[1] - info.PID
	withinFor(t, 10*time.Second, "the first new switch leaving", func() bool {
		_, err := os.Stat(fmt.Sprintf("/proc/%d", between))
		return err != nil
	})
	var ports []struct{ Name string }
	ctlJSON(t, ctl, &ports, "ports")
	if len(ports) != 2 {
		t.Fatalf("after two upgrades ctl ports lists %+v", ports)
	}
	u.release(t)
}

// Clients that connect while an upgrade is under way (a UML on the daemon
// socket, another on a BESS listener) are not attached to the old switch,
// which would list them for the new one too late and cut them off as it
// left: they wait in the sockets' backlogs and attach to the new switch.
func TestClientsWhoComeDuringAnUpgrade(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	dir := scratch(t)
	ctl, bess, bin := filepath.Join(dir, "sw.ctl"), filepath.Join(dir, "sw.bess"), filepath.Join(dir, "umlswitch")
	copyBinary(t, bin)
	old := startSwitchCmd(t, exec.Command(bin, "-log-level", "debug", "-unix", ctl, "-port", "transport=bess,path="+bess),
		[]string{ctl, bess})
	openGate := gateUpgrades(t, bin)
	u1 := bootUML(t, umlConfig{net: daemonNet(1, ctl), ip: ip(1), peers: []string{ip(2), ip(3)}})
	waitLog(t, old, `msg="port attached" .*name=daemon0\.1 `, "the first UML did not attach")
	attached := func() int { return strings.Count(old.log.text(), `msg="port attached"`) }
	before := attached()
	upgraded := upgradeAsync(ctl)
	waitLog(t, old, `msg="upgrade: starting the new switch"`, "the upgrade did not start")
	watch := map[string]string{"watch": ip(1)}
	late := []*uml{
		bootUML(t, umlConfig{net: daemonNet(2, ctl), ip: ip(2), peers: []string{ip(1)}, vars: watch}),
		bootUML(t, umlConfig{net: vec(3, "transport=bess,src="+filepath.Join(dir, "uml3.sock")+",dst="+bess),
			iface: "vec0", ip: ip(3), peers: []string{ip(1)}, vars: watch}),
	}
	// Each waits to be accepted, or (the fault this test is for) the old
	// switch took it.
	withinFor(t, time.Minute, "the late UMLs connecting", func() bool {
		return attached() > before || backlog(t, ctl) >= 1 && backlog(t, bess) >= 1
	})
	if n := attached() - before; n != 0 {
		t.Errorf("the old switch attached %d ports, and should have attached none once the upgrade began\n%s", n, old.log.text())
	}
	openGate() // only now may the new switch write to the log
	if err := <-upgraded; err != nil {
		t.Fatalf("ctl upgrade: %v\n%s", err, old.log.text())
	}
	followUpgrade(t, old, ctl)
	for _, u := range late {
		u.waitAnsweredSince(t, "the old switch left")
	}
	expectAllOK(t, append([]*uml{u1}, late...), [][]string{{ip(2), ip(3)}, {ip(1)}, {ip(1)}})
}

// upgradeAsync runs ctl upgrade against ctl; its error comes on the
// channel. It waits as long as the switch waits for a new one to serve
// (30 s): a test holds the new switch at a gate meanwhile.
func upgradeAsync(ctl string) <-chan error {
	done := make(chan error, 1)
	go func() {
		out, err := ctlOutput(ctl, "-timeout", "40s", "upgrade")
		if err != nil {
			err = fmt.Errorf("%w: %s", err, out)
		}
		done <- err
	}()
	return done
}

// gatedHandedOver waits until the new switch of an upgrade, started from
// gateUpgrades's script and waiting at its gate, has been handed the old
// switch's list of sockets (it waits, unread, on its fd 3), and returns
// its pid. ns is where the switches run (nil: here).
func gatedHandedOver(t *testing.T, ns *nstest.NS, bin string) int {
	t.Helper()
	pid := 0
	withinFor(t, 30*time.Second, "the new switch started", func() bool {
		b, err := os.ReadFile(bin + ".started")
		pid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		return err == nil && pid > 0
	})
	withinFor(t, 10*time.Second, "the list of sockets handed to the new switch", func() bool {
		ss := exec.Command("ss", "-xpH")
		if ns != nil {
			ss = ns.Cmd("ss", "-xpH")
		}
		out, err := ss.Output()
		if err != nil {
			t.Fatalf("ss: %v", err)
		}
		for _, l := range strings.Split(string(out), "\n") {
			if f := strings.Fields(l); len(f) > 2 && strings.Contains(l, fmt.Sprintf("pid=%d,fd=3)", pid)) {
				n, _ := strconv.Atoi(f[2])
				return n > 0
			}
		}
		return false
	})
	return pid
}

// gateUpgrades renames over bin, the binary a running switch was started
// from, a script that waits for a gate file before it runs the real
// binary: the new switch of an upgrade then waits until openGate, so that
// the upgrade is surely under way meanwhile.
func gateUpgrades(t *testing.T, bin string) (openGate func()) {
	t.Helper()
	gate := bin + ".gate"
	copyBinary(t, bin+".real")
	script := fmt.Sprintf("#!/bin/sh\necho $$ > %s.started\nwhile [ ! -e %s ]; do sleep 0.05; done\nexec %s.real \"$@\"\n", bin, gate, bin)
	if err := os.WriteFile(bin+".new", []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(bin+".new", bin); err != nil {
		t.Fatal(err)
	}
	return func() {
		if err := os.WriteFile(gate, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// backlog is how many connections wait to be accepted on the listening
// unix socket at path (ss's Recv-Q of a listener).
func backlog(t *testing.T, path string) int {
	t.Helper()
	out, err := exec.Command("ss", "-xlnH", "src", path).Output()
	if err != nil {
		t.Fatalf("ss: %v", err)
	}
	f := strings.Fields(string(out))
	if len(f) < 3 {
		return 0
	}
	n, _ := strconv.Atoi(f[2])
	return n
}

// waitBacklog waits until at least n connections (what) wait on path.
func waitBacklog(t *testing.T, path string, n int, what string) {
	t.Helper()
	withinFor(t, 30*time.Second, what+" waiting to be accepted", func() bool { return backlog(t, path) >= n })
}

// followUpgrade waits for old to hand over to a new switch and to exit,
// and stops the new switch when the test ends; it returns its pid.
func followUpgrade(t *testing.T, old *switchProc, ctl string) int {
	t.Helper()
	line := waitLog(t, old, `msg="upgrade: the new switch serves; this one leaves" pid=\d+`, "no new switch")
	pid, _ := strconv.Atoi(regexp.MustCompile(`pid=(\d+)`).FindStringSubmatch(line)[1])
	t.Cleanup(func() { stopPID(t, pid, ctl) })
	select {
	case <-old.exited:
	case <-time.After(10 * time.Second):
		t.Fatalf("the old switch did not leave:\n%s", old.log.text())
	}
	return pid
}

// copyBinary puts the switch's binary at path, for a test that replaces
// the binary under a running switch. A hard link where it can: a copy
// written here may be held open for writing by a child another test is
// forking at that moment, and its exec would then fail with "text file
// busy".
func copyBinary(t *testing.T, path string) {
	t.Helper()
	if os.Link(env.umlswitch, path) == nil {
		return
	}
	data, err := os.ReadFile(env.umlswitch)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o755); err != nil {
		t.Fatal(err)
	}
}

// The old switch killed in the middle of an upgrade, once it has handed
// its sockets over but before the new switch serves: the new switch takes
// them over all the same. The UML attached before stays attached, and an
// xdp=1 port, which a new switch opens once its old switch has gone, opens:
// the new switch must see that its old switch is gone, though another
// process is its parent now.
func TestOldSwitchKilledDuringAnUpgrade(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	ns := nstest.New(t)
	hostVeth(t, ns)
	dir := scratch(t)
	ctl, bin := filepath.Join(dir, "sw.ctl"), filepath.Join(dir, "umlswitch")
	copyBinary(t, bin)
	old := startSwitchCmd(t, ns.Cmd(bin, "-log-level", "debug", "-state", "none", "-unix", ctl,
		"-port", "transport=raw,name=up,ifname=sw0,xdp=1"), nil)
	openGate := gateUpgrades(t, bin)
	u := bootUML(t, umlConfig{ns: ns, net: daemonNet(1, ctl), ip: ip(1), peers: []string{"10.0.0.254"},
		vars: map[string]string{"watch": "10.0.0.254"}})
	expectAllOK(t, []*uml{u}, [][]string{{"10.0.0.254"}})
	upgradeAsync(ctl) // its connection dies with the old switch
	gatedHandedOver(t, ns, bin)
	oldPID := old.cmd.Process.Pid
	old.cmd.Process.Kill()
	<-old.exited
	openGate()
	waitLog(t, old, fmt.Sprintf(`msg="took over from the old switch" pid=%d `, oldPID), "the new switch did not serve")
	var info struct{ PID int }
	ctlJSON(t, ctl, &info, "info")
	t.Cleanup(func() { stopPID(t, info.PID, ctl) })
	waitXDPPortOpen(t, ns, ctl, old)
	u.waitAnsweredSince(t, "the old switch was killed")
	u.release(t)
}

// An upgrade of a switch with a thousand clients while more come and go
// all the while: every client is taken back and still reaches the others,
// and every client that came meanwhile got an answer (from one switch or
// the other, never a refusal).
func TestUpgradeWithAThousandClients(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	ctl := filepath.Join(scratch(t), "sw.ctl")
	old := startSwitch(t, nil, nil, "-unix", ctl)
	const clients = 1000
	var cs []*daemon.Client
	t.Cleanup(func() {
		for _, c := range cs {
			c.Close()
		}
	})
	for i := range clients {
		c, err := daemon.Dial(daemon.ClientConfig{Ctl: ctl})
		if err != nil {
			t.Fatalf("client %d: %v", i, err)
		}
		cs = append(cs, c)
	}
	stop, churned := make(chan struct{}), make(chan error, 1)
	go func() {
		n := 0
		for {
			select {
			case <-stop:
				if n == 0 {
					churned <- errors.New("no client came and went")
				}
				churned <- nil
				return
			default:
			}
			c, err := daemon.Dial(daemon.ClientConfig{Ctl: ctl})
			if err != nil {
				churned <- fmt.Errorf("a client coming after %d others: %w", n, err)
				return
			}
			n++
			c.Close()
		}
	}()
	started := time.Now()
	if out, err := ctlOutput(ctl, "upgrade"); err != nil {
		t.Fatalf("ctl upgrade: %v\n%s", err, out)
	}
	took := time.Since(started)
	followUpgrade(t, old, ctl)
	close(stop)
	if err := <-churned; err != nil {
		t.Fatal(err)
	}
	waitLog(t, old, fmt.Sprintf(`msg="clients taken back" .*clients=%d of=%d`, clients, clients), "the new switch did not take every client back")
	bcast := porttest.Ether(frame.Broadcast, frame.MAC{2, 0, 0, 0, 0, 1}, 60, 1)
	if err := cs[0].Send(bcast); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2048)
	for i, c := range cs[1:] {
		if _, err := c.Recv(buf, 5*time.Second); err != nil {
			t.Fatalf("client %d after the upgrade: %v", i+1, err)
		}
	}
	t.Logf("ctl upgrade with %d clients answered in %v", clients, took.Round(time.Millisecond))
}
