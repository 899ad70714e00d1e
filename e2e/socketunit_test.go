package e2e

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// socketActivated is the role that does what systemd does for a service
// with a socket unit: the listening socket is fd 3, LISTEN_PID names this
// process and LISTEN_FDS counts the sockets; then it becomes umlswitch
// (exec keeps the pid).
const socketActivated = "socket-activated"

func init() {
	roles[socketActivated] = func(args []string) int {
		os.Unsetenv(roleEnv)
		os.Setenv("LISTEN_PID", strconv.Itoa(os.Getpid()))
		os.Setenv("LISTEN_FDS", "1")
		os.Setenv("LISTEN_FDNAMES", "control")
		err := syscall.Exec(args[0], args, os.Environ())
		fmt.Fprintln(os.Stderr, "socket-activated: exec:", err)
		return 2
	}
}

// With a socket unit holding the control socket (socket activation, as
// the shipped umlswitch.socket does), a restart never leaves the control
// path unbound: a UML that boots while the switch is down waits in the
// socket's backlog and attaches once the switch is back, and the UMLs
// attached before are taken back. The socket file stays the unit's.
func TestSocketUnitHoldsTheControlSocket(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	ctl := filepath.Join(scratch(t), "sw.ctl")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: ctl, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(true)
	t.Cleanup(func() { ln.Close() })
	unit, err := ln.File()
	if err != nil {
		t.Fatal(err)
	}
	defer unit.Close()
	start := func() *switchProc {
		self, err := os.Executable()
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(self, env.umlswitch, "-log-level", "debug", "-unix", ctl)
		cmd.Env = append(os.Environ(), roleEnv+"="+socketActivated)
		cmd.ExtraFiles = []*os.File{unit} // fd 3
		return startSwitchCmd(t, cmd, nil)
	}
	first := start()
	waitLog(t, first, `msg=listening .*ctl=`+regexp.QuoteMeta(ctl)+` .*from=systemd`, "the switch did not take the unit's socket")
	u1 := bootUML(t, umlConfig{net: daemonNet(1, ctl), ip: ip(1), peers: []string{ip(2)}})
	u2 := bootUML(t, umlConfig{net: daemonNet(2, ctl), ip: ip(2), peers: []string{ip(1)}})
	expectAllOK(t, []*uml{u1, u2}, [][]string{{ip(2)}, {ip(1)}})

	first.cmd.Process.Signal(syscall.SIGKILL)
	<-first.exited
	// Booted while no switch runs: its handshake waits in the backlog.
	u3 := bootUML(t, umlConfig{net: daemonNet(3, ctl), ip: ip(3), peers: []string{ip(1)}})
	time.Sleep(2 * time.Second)
	second := start()
	waitLog(t, second, `msg="clients taken back" .*clients=2 of=2`, "the UMLs attached before were not taken back")
	expectAllOK(t, []*uml{u3}, [][]string{{ip(1)}})
	for _, u := range []*uml{u1, u2, u3} {
		u.release(t)
	}
	second.stop(t)
	if _, err := os.Stat(ctl); err != nil {
		t.Fatalf("the unit's socket file went with the switch: %v", err)
	}
}
