package e2e

import (
	"fmt"
	"path/filepath"
	"regexp"
	"syscall"
	"testing"
	"time"
)

// A UML pinging another through the switch keeps pinging after the switch
// is killed (SIGKILL: no goodbye) and started again with the same
// configuration: the new switch takes both clients back from the control
// socket's state file, and no UML does anything. The flood's loss tells
// how long the link was cut.
func TestRestartKeepsUMLsAttached(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	ctl := filepath.Join(scratch(t), "sw.ctl")
	first := startSwitch(t, nil, nil, "-unix", ctl)
	u1, u2 := floodingPair(t, ctl)
	first.cmd.Process.Signal(syscall.SIGKILL)
	<-first.exited
	killed := time.Now()
	second := startSwitch(t, nil, []string{ctl}, "-unix", ctl)
	restarted := time.Since(killed)
	if _, ok := second.log.wait(regexp.MustCompile(`msg="clients taken back" .*clients=2 of=2`), 5*time.Second); !ok {
		t.Fatalf("the new switch did not take both UMLs back:\n%s", second.log.text())
	}
	sent, received, _ := u1.flooded(t)
	lost := sent - received
	t.Logf("killed and started again in %v; %d of %d pings lost across it: the link was cut about %v",
		restarted.Round(time.Millisecond), lost, sent, time.Duration(lost)*20*time.Millisecond)
	// Without the state file every ping after the kill is lost (about 250);
	// the issue asks that pings resume within 2 s of the new switch's start.
	if lost > 150 {
		t.Errorf("%d of %d pings lost: the UMLs did not come back", lost, sent)
	}
	u1.release(t)
	u2.release(t)
}

// pings is how many pings floodingPair's flood sends, 0.02 s apart: 6 s.
const pings = 300

// floodingPair boots two UMLs on the control socket ctl that reach each
// other, the first then flooding the second with pings, and returns a
// second into the flood.
func floodingPair(t *testing.T, ctl string) (*uml, *uml) {
	t.Helper()
	u1 := bootUML(t, umlConfig{net: daemonNet(1, ctl), ip: ip(1), peers: []string{ip(2)},
		vars: map[string]string{"flood": fmt.Sprintf("%d,%s", pings, ip(2))}})
	u2 := bootUML(t, umlConfig{net: daemonNet(2, ctl), ip: ip(2), peers: []string{ip(1)}})
	expectAllOK(t, []*uml{u1, u2}, [][]string{{ip(2)}, {ip(1)}})
	time.Sleep(time.Second) // into the flood
	return u1, u2
}
