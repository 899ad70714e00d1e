package e2e

import (
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"
)

// Two QEMUs on one stream listener are two ports, stream0.1 and stream0.2,
// each listed and each detached the moment its QEMU goes, with delay= on
// the listener or without: before the stream kind said that it listens,
// both were "stream0", ctl ports listed one, and with delay= the first
// stayed attached until the switch exited. The UML still reaches the QEMU
// that stays.
func TestTwoQEMUsOnOneStreamListener(t *testing.T) {
	requireE2E(t)
	needTool(t, "qemu-system-x86_64", "qemu-system-x86")
	t.Parallel()
	for name, extra := range map[string]string{"plain": "", "delay": ",delay=1ms"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir := scratch(t)
			ctl, sock := filepath.Join(dir, "sw.ctl"), filepath.Join(dir, "q.sock")
			sw := startSwitch(t, nil, []string{ctl, sock}, "-unix", ctl, "-port", "transport=stream,path="+sock+extra)
			netdev := "stream,id=v,server=off,addr.type=unix,addr.path=" + sock
			first := exec.Command("qemu-system-x86_64", "-nographic", "-nodefaults", "-display", "none", "-m", "64",
				"-netdev", netdev, "-netdev", "user,id=u",
				"-netdev", "hubport,id=h1,hubid=0,netdev=v", "-netdev", "hubport,id=h2,hubid=0,netdev=u")
			startBackground(t, first)
			waitLog(t, sw, `msg="port attached" .*name=stream0\.1 `, "the first QEMU did not attach as stream0.1")
			startQEMU(t, netdev)
			waitLog(t, sw, `msg="port attached" .*name=stream0\.2 `, "the second QEMU did not attach as stream0.2")
			if got := streamPorts(t, ctl); !slices.Equal(got, []string{"stream0", "stream0.1", "stream0.2"}) {
				t.Fatalf("ctl ports lists %v", got)
			}
			syscall.Kill(-first.Process.Pid, syscall.SIGKILL)
			waitLog(t, sw, `msg="port detached" .*name=stream0\.1 `, "the first QEMU's port stayed attached after it went")
			deadline := time.Now().Add(5 * time.Second)
			for got := streamPorts(t, ctl); !slices.Equal(got, []string{"stream0", "stream0.2"}); got = streamPorts(t, ctl) {
				if time.Now().After(deadline) {
					t.Fatalf("after the first QEMU went, ctl ports lists %v", got)
				}
				time.Sleep(50 * time.Millisecond)
			}
			pingQEMU(t, ctl)
		})
	}
}

// streamPorts lists the names of the stream ports ctl ports shows, sorted.
func streamPorts(t *testing.T, ctl string) []string {
	t.Helper()
	var ports []struct{ Name, Kind string }
	ctlJSON(t, ctl, &ports, "ports")
	var names []string
	for _, p := range ports {
		if p.Kind == "stream" {
			names = append(names, p.Name)
		}
	}
	slices.Sort(names)
	return names
}
