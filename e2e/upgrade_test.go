package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"syscall"
	"testing"
	"time"
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
	const pings = 300 // 0.02 s apart: 6 s
	u1 := bootUML(t, umlConfig{net: daemonNet(1, ctl), ip: ip(1), peers: []string{ip(2)},
		vars: map[string]string{"flood": fmt.Sprintf("%d,%s", pings, ip(2))}})
	u2 := bootUML(t, umlConfig{net: daemonNet(2, ctl), ip: ip(2), peers: []string{ip(1)}})
	expectAllOK(t, []*uml{u1, u2}, [][]string{{ip(2)}, {ip(1)}})
	time.Sleep(time.Second) // into the flood

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
	line := waitLog(t, old, `msg="upgrade: the new switch serves; this one leaves" pid=\d+`, "no new switch")
	pid, _ := strconv.Atoi(regexp.MustCompile(`pid=(\d+)`).FindStringSubmatch(line)[1])
	t.Cleanup(func() { stopPID(t, pid, ctl) })
	waitLog(t, old, `msg="clients taken back" .*clients=2 of=2`, "the new switch did not take both UMLs over")
	var ports []struct{ Name, Peer string }
	ctlJSON(t, ctl, &ports, "ports")
	if len(ports) != 3 { // daemon0 and its two clients
		t.Fatalf("after the upgrade ctl ports lists %+v", ports)
	}

	flood := u1.waitLine(t, `^FLOODED `)
	var sent, received int
	fmt.Sscanf(regexp.MustCompile(`\d+ packets transmitted, \d+ packets received`).FindString(flood),
		"%d packets transmitted, %d packets received", &sent, &received)
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
	data, err := os.ReadFile(env.umlswitch)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
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
