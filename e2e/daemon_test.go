package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/umlswitch/umlswitch/internal/nstest"
)

// daemonNet is UML i's interface on the daemon transport.
func daemonNet(i int, ctl string) string {
	return fmt.Sprintf("eth0=daemon,%s,unix,%s", mac(i), ctl)
}

func ip(i int) string { return fmt.Sprintf("10.0.0.%d", i) }

func others(i, n int) []string {
	var p []string
	for j := 1; j <= n; j++ {
		if j != i {
			p = append(p, ip(j))
		}
	}
	return p
}

// Three UMLs on the daemon transport all reach each other.
func TestDaemonUMLsReachEachOther(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	ctl := filepath.Join(scratch(t), "sw.ctl")
	sw := startSwitch(t, nil, []string{ctl}, "-unix", ctl)
	const n = 3
	var umls []*uml
	var peers [][]string
	for i := 1; i <= n; i++ {
		peers = append(peers, others(i, n))
		umls = append(umls, bootUML(t, umlConfig{net: daemonNet(i, ctl), ip: ip(i), peers: peers[i-1]}))
	}
	expectAllOK(t, umls, peers)
	for _, u := range umls {
		u.release(t)
	}
	// Each UML that left was detached, with its addresses flushed.
	for i := 0; i < n; i++ {
		if _, ok := sw.log.wait(regexp.MustCompile(fmt.Sprintf(`msg="port detached" port=%d .*macs_flushed=1`, i)), 10*time.Second); !ok {
			t.Errorf("no detach line for port %d:\n%s", i, sw.log.text())
		}
	}
}

// A busy-polling switch (-busy-poll, or busy_poll in the file) serves
// UMLs as a sleeping one does, the API answers beside its spinning
// readers, and SIGTERM stops it. Every thread is pinned to the CPU named
// and the switch spends CPU time while nothing flows: it spins.
func TestBusyPollingSwitch(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	for _, how := range []string{"flag", "config"} {
		t.Run(how, func(t *testing.T) {
			t.Parallel()
			d := scratch(t)
			ctl := filepath.Join(d, "sw.ctl")
			args := []string{"-unix", ctl, "-busy-poll", "0"}
			if how == "config" {
				conf := filepath.Join(d, "sw.yaml")
				if err := os.WriteFile(conf, []byte("busy_poll: 0\nports: [{transport: daemon, path: "+ctl+"}]\n"), 0o644); err != nil {
					t.Fatal(err)
				}
				args = []string{"-config", conf}
			}
			sw := startSwitch(t, nil, []string{ctl}, args...)
			waitLog(t, sw, `msg="umlswitch running" .*busy_poll=0`, "the switch does not say it busy-polls")
			umls := []*uml{
				bootUML(t, umlConfig{net: daemonNet(1, ctl), ip: ip(1), peers: others(1, 2)}),
				bootUML(t, umlConfig{net: daemonNet(2, ctl), ip: ip(2), peers: others(2, 2)}),
			}
			expectAllOK(t, umls, [][]string{others(1, 2), others(2, 2)})
			if out := ctlRun(t, ctl, "ports"); !strings.Contains(out, "daemon") {
				t.Errorf("ctl ports:\n%s", out)
			}
			pid := sw.cmd.Process.Pid
			tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/status", pid))
			if err != nil || len(tasks) == 0 {
				t.Fatalf("the switch's threads: %v", err)
			}
			for _, task := range tasks {
				status, err := os.ReadFile(task)
				if err != nil {
					continue // a thread that ended
				}
				if m := regexp.MustCompile(`(?m)^Cpus_allowed_list:\s*(\S+)$`).FindSubmatch(status); m == nil || string(m[1]) != "0" {
					t.Errorf("%s: not pinned to CPU 0: %q", task, m)
				}
			}
			// The UMLs are idle now: a sleeping switch would use next to
			// no CPU, a spinning one uses what its CPU gives it.
			before := cpuTicks(t, pid)
			time.Sleep(2 * time.Second)
			used := cpuTicks(t, pid) - before
			t.Logf("the switch used %d clock ticks (10 ms) of CPU in 2 s", used)
			if used < 10 {
				t.Errorf("the switch used %d clock ticks in 2 s: it does not spin", used)
			}
			for _, u := range umls {
				u.release(t)
			}
		})
	}
}

// cpuTicks is the CPU time (user and system, in clock ticks) process pid
// has used.
func cpuTicks(t *testing.T, pid int) int {
	t.Helper()
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// Fields after the command's closing parenthesis; utime and stime are
	// the 14th and 15th of the whole line.
	f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
	utime, _ := strconv.Atoi(f[11])
	stime, _ := strconv.Atoi(f[12])
	return utime + stime
}

// A bystander UML overhears unicast between two others in hub mode, and
// only broadcast and multicast when the switch learns.
func TestHubFloodsLearningSwitchDoesNot(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	for _, hub := range []bool{true, false} {
		t.Run(map[bool]string{true: "hub", false: "switch"}[hub], func(t *testing.T) {
			t.Parallel()
			ctl := filepath.Join(scratch(t), "sw.ctl")
			args := []string{"-unix", ctl}
			if hub {
				args = append(args, "-hub")
			}
			startSwitch(t, nil, []string{ctl}, args...)
			// A reaches the bystander too before it floods: a UML that is
			// still booting reads nothing, and the flood would find its
			// queue full.
			a := bootUML(t, umlConfig{net: daemonNet(1, ctl), ip: ip(1), peers: []string{ip(2), ip(3)},
				vars: map[string]string{"flood": "60," + ip(2)}})
			b := bootUML(t, umlConfig{net: daemonNet(2, ctl), ip: ip(2), peers: []string{ip(1)}})
			c := bootUML(t, umlConfig{net: daemonNet(3, ctl), ip: ip(3)})
			expectAllOK(t, []*uml{a, b}, [][]string{{ip(2), ip(3)}, {ip(1)}})
			a.waitLine(t, "^FLOODED ")
			a.release(t)
			b.release(t)
			overheard := c.release(t)
			t.Logf("bystander received %d frames", overheard)
			if hub && overheard < 120 { // 60 requests and 60 replies at least
				t.Errorf("hub: bystander received %d frames, want at least 120", overheard)
			}
			if !hub && overheard >= 40 {
				t.Errorf("switch: bystander received %d frames, want only the few broadcasts", overheard)
			}
		})
	}
}

// A UML reaches an address on a host tap that the switch attached, and the
// host reaches the UML, inside a namespace of the test's own.
func TestUMLAndHostTap(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	ns := nstest.New(t)
	ctl := filepath.Join(scratch(t), "sw.ctl")
	startSwitch(t, ns, []string{ctl}, "-unix", ctl, "-tap", "tapu0")
	ns.MustRun(t, "ip", "addr", "add", "10.0.0.254/24", "dev", "tapu0")
	ns.MustRun(t, "ip", "link", "set", "tapu0", "up")
	u := bootUML(t, umlConfig{ns: ns, net: daemonNet(1, ctl), ip: ip(1), peers: []string{"10.0.0.254"}})
	expectAllOK(t, []*uml{u}, [][]string{{"10.0.0.254"}})
	ns.MustRun(t, "busybox", "ping", "-c", "3", "-W", "2", ip(1))
	u.release(t)
}

// startBackground runs a helper (a VDE tool) until the test ends.
func startBackground(t *testing.T, cmd *exec.Cmd) *output {
	t.Helper()
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("%s: %v", cmd.Path, err)
	}
	o := newOutput(out)
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		cmd.Wait()
		if t.Failed() {
			t.Logf("%s output:\n%s", strings.Join(cmd.Args, " "), o.text())
		}
	})
	return o
}

func needTool(t *testing.T, name, pkg string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Fatalf("%s not found: install Debian's %s", name, pkg)
	}
}

// vde_plug2tap (libvdeplug) connects a host tap to the switch's VDE
// directory; a UML and the host reach each other through it.
func TestVDEPlug2TapWithUML(t *testing.T) {
	requireE2E(t)
	needTool(t, "vde_plug2tap", "vde2")
	t.Parallel()
	ns := nstest.New(t)
	dir := filepath.Join(scratch(t), "vde")
	sw := startSwitch(t, ns, []string{filepath.Join(dir, "ctl")}, "-unix", dir+"/")
	ns.MustRun(t, "ip", "tuntap", "add", "tapv0", "mode", "tap")
	startBackground(t, ns.Cmd("vde_plug2tap", "-s", dir, "tapv0"))
	if _, ok := sw.log.wait(regexp.MustCompile(`msg="port attached"`), 10*time.Second); !ok {
		t.Fatalf("vde_plug2tap did not attach:\n%s", sw.log.text())
	}
	ns.MustRun(t, "ip", "addr", "add", "10.0.0.254/24", "dev", "tapv0")
	ns.MustRun(t, "ip", "link", "set", "tapv0", "up")
	u := bootUML(t, umlConfig{ns: ns, net: daemonNet(1, filepath.Join(dir, "ctl")), ip: ip(1), peers: []string{"10.0.0.254"}})
	expectAllOK(t, []*uml{u}, [][]string{{"10.0.0.254"}})
	ns.MustRun(t, "busybox", "ping", "-c", "3", "-W", "2", ip(1))
	u.release(t)
}

// Two switches joined by two vde_plug ends and dpipe, a UML on each.
func TestTwoSwitchesJoinedByDpipe(t *testing.T) {
	requireE2E(t)
	needTool(t, "dpipe", "vde2")
	needTool(t, "vde_plug", "vdeplug")
	t.Parallel()
	d := scratch(t)
	dir1, dir2 := filepath.Join(d, "one"), filepath.Join(d, "two")
	sw1 := startSwitch(t, nil, []string{filepath.Join(dir1, "ctl")}, "-unix", dir1+"/")
	sw2 := startSwitch(t, nil, []string{filepath.Join(dir2, "ctl")}, "-unix", dir2+"/")
	startBackground(t, exec.Command("dpipe", "vde_plug", "vde://"+dir1, "=", "vde_plug", "vde://"+dir2))
	for _, sw := range []*switchProc{sw1, sw2} {
		if _, ok := sw.log.wait(regexp.MustCompile(`msg="port attached" .*vdeplug`), 10*time.Second); !ok {
			t.Fatalf("vde_plug did not attach:\n%s", sw.log.text())
		}
	}
	a := bootUML(t, umlConfig{net: daemonNet(1, filepath.Join(dir1, "ctl")), ip: ip(1), peers: []string{ip(2)}})
	b := bootUML(t, umlConfig{net: daemonNet(2, filepath.Join(dir2, "ctl")), ip: ip(2), peers: []string{ip(1)}})
	expectAllOK(t, []*uml{a, b}, [][]string{{ip(2)}, {ip(1)}})
	a.release(t)
	b.release(t)
}

// UML's own vde transport (eth0=vde, through libvdeplug) and a daemon UML
// share one switch.
func TestUMLVDETransportAndDaemonTogether(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	dir := filepath.Join(scratch(t), "vde")
	sw := startSwitch(t, nil, []string{filepath.Join(dir, "ctl")}, "-unix", dir+"/")
	a := bootUML(t, umlConfig{net: fmt.Sprintf("eth0=vde,%s,%s", dir, mac(1)), ip: ip(1), peers: []string{ip(2)}})
	b := bootUML(t, umlConfig{net: daemonNet(2, filepath.Join(dir, "ctl")), ip: ip(2), peers: []string{ip(1)}})
	expectAllOK(t, []*uml{a, b}, [][]string{{ip(2)}, {ip(1)}})
	if _, ok := sw.log.wait(regexp.MustCompile(`peer="daemon#\d+ UML vde_transport`), time.Second); !ok {
		t.Errorf("no port for UML's vde transport:\n%s", sw.log.text())
	}
	a.release(t)
	b.release(t)
}

// Jumbo frames cross when the switch's MTU allows them; otherwise they are
// dropped and counted, never cut short. UML's legacy daemon driver caps its
// MTU at 1500, so the jumbo senders are two kernel taps the switch attached,
// each moved into a namespace of its own (the switch keeps their fds).
func TestJumboFramesBetweenTaps(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	for _, mtu := range []int{9000, 1500} {
		t.Run(fmt.Sprint("switch-mtu-", mtu), func(t *testing.T) {
			t.Parallel()
			swNS, a, b := nstest.New(t), nstest.New(t), nstest.New(t)
			ctl := filepath.Join(scratch(t), "sw.ctl")
			sw := startSwitch(t, swNS, []string{ctl}, "-unix", ctl, "-mtu", fmt.Sprint(mtu),
				"-tap", "tapj0", "-port", "transport=tap,ifname=tapj1,create=1")
			for i, host := range []*nstest.NS{a, b} {
				tapName := fmt.Sprintf("tapj%d", i)
				swNS.MustRun(t, "ip", "link", "set", tapName, "netns", host.Name)
				host.MustRun(t, "ip", "link", "set", tapName, "mtu", "9000", "up")
				host.MustRun(t, "ip", "addr", "add", fmt.Sprintf("10.9.0.%d/24", i+1), "dev", tapName)
			}
			a.MustRun(t, "busybox", "ping", "-c", "2", "-W", "3", "10.9.0.2")
			err := a.Cmd("busybox", "ping", "-c", "2", "-W", "2", "-s", "8000", "10.9.0.2").Run()
			if mtu == 9000 && err != nil {
				t.Fatalf("8000-byte ping through a switch with MTU 9000: %v", err)
			}
			if mtu == 1500 {
				if err == nil {
					t.Fatal("8000-byte ping crossed a switch with MTU 1500")
				}
				sw.stop(t)
				if _, ok := sw.log.wait(regexp.MustCompile(`msg="port detached" .*peer="tap tapj0" .*drops="oversize=[1-9]`), time.Second); !ok {
					t.Errorf("oversize frames not counted on the ingress tap:\n%s", sw.log.text())
				}
			}
		})
	}
}

// With no arguments umlswitch serves the path Debian's UML kernel uses by
// default, so a UML booted with a bare eth0=daemon (no path at all) finds
// it. The switch runs in a mount namespace of its own with a fresh /run, so
// the test uses the real path without touching the host's; the UML joins
// that namespace. -tap gives the host an address to reach.
func TestNoArgumentsServesDebianDefaultPath(t *testing.T) {
	requireE2E(t)
	needTool(t, "unshare", "util-linux")
	needTool(t, "nsenter", "util-linux")
	t.Parallel()
	ns := nstest.New(t)
	script := "mount -t tmpfs tmpfs /run && exec " + env.umlswitch + " -log-level debug -tap tapd0"
	sw := startSwitchCmd(t, ns.Cmd("unshare", "-m", "--propagation", "private", "sh", "-c", script), nil)
	if _, ok := sw.log.wait(regexp.MustCompile(`msg=listening .*ctl=/var/run/uml-utilities/uml_switch.ctl`), time.Second); !ok {
		t.Fatalf("not listening on the default path:\n%s", sw.log.text())
	}
	ns.MustRun(t, "ip", "addr", "add", "10.0.0.254/24", "dev", "tapd0")
	ns.MustRun(t, "ip", "link", "set", "tapd0", "up")
	u := bootUML(t, umlConfig{enter: sw.cmd.Process.Pid, net: "eth0=daemon," + mac(1), ip: ip(1), peers: []string{"10.0.0.254"}})
	expectAllOK(t, []*uml{u}, [][]string{{"10.0.0.254"}})
	ns.MustRun(t, "busybox", "ping", "-c", "2", "-W", "2", ip(1))
	u.release(t)
}

// QEMU's -netdev vde is a client too. QEMU needs no guest here: an internal
// hub joins its vde netdev to its user-mode network, whose gateway
// (10.0.2.2) answers a UML on the same switch.
func TestQEMUNetdevVDEWithUML(t *testing.T) {
	requireE2E(t)
	needTool(t, "qemu-system-x86_64", "qemu-system-x86")
	t.Parallel()
	dir := filepath.Join(scratch(t), "vde")
	sw := startSwitch(t, nil, []string{filepath.Join(dir, "ctl")}, "-unix", dir+"/")
	startBackground(t, exec.Command("qemu-system-x86_64", "-nographic", "-nodefaults", "-display", "none", "-m", "64",
		"-netdev", "vde,id=v,sock="+dir, "-netdev", "user,id=u",
		"-netdev", "hubport,id=h1,hubid=0,netdev=v", "-netdev", "hubport,id=h2,hubid=0,netdev=u"))
	if _, ok := sw.log.wait(regexp.MustCompile(`msg="port attached" .*peer="daemon#\d+ QEMU`), 10*time.Second); !ok {
		t.Fatalf("QEMU did not attach:\n%s", sw.log.text())
	}
	u := bootUML(t, umlConfig{net: daemonNet(1, filepath.Join(dir, "ctl")), ip: "10.0.2.15", peers: []string{"10.0.2.2"}})
	expectAllOK(t, []*uml{u}, [][]string{{"10.0.2.2"}})
	u.release(t)
}
