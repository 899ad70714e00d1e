package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/umlswitch/umlswitch/internal/nstest"
)

// evpnPair is two EVPN hosts, each a umlswitch with a run state file and
// one UML in VNI 100; UML 1 floods UML 2 with pings.
type evpnPair struct {
	hosts []*nstest.NS
	ctl   [2]string
	cfg   [2]string
	state [2]string
	sw    [2]*switchProc
	umls  [2]*uml
}

// evpnFloodPings is how many pings startEVPNPair's flood sends, 0.02 s
// apart: 12 s.
const evpnFloodPings = 600

func startEVPNPair(t *testing.T) *evpnPair {
	t.Helper()
	p := &evpnPair{hosts: switchedHosts(t, vtepAddr(1)+"/24", vtepAddr(2)+"/24")}
	d := scratch(t)
	for i := 1; i <= 2; i++ {
		p.ctl[i-1] = filepath.Join(d, fmt.Sprintf("h%d.ctl", i))
		p.state[i-1] = filepath.Join(d, fmt.Sprintf("h%d.run", i))
		p.cfg[i-1] = evpnConfigWith(t, d, i, vtepAddr, []evpnSwitch{{"red", p.ctl[i-1], 100}},
			"state: "+p.state[i-1]+"\n", "", 3-i)
		p.sw[i-1] = startSwitch(t, p.hosts[i-1], []string{p.ctl[i-1]}, "-config", p.cfg[i-1])
	}
	p.umls[1] = bootUML(t, umlConfig{ns: p.hosts[1], net: daemonNet(2, p.ctl[1]), ip: ip(2), peers: []string{ip(1)},
		vars: map[string]string{"noipv6": "1"}})
	p.umls[0] = bootUML(t, umlConfig{ns: p.hosts[0], net: daemonNet(1, p.ctl[0]), ip: ip(1), peers: []string{ip(2)},
		vars: map[string]string{"noipv6": "1", "flood": fmt.Sprintf("%d,%s", evpnFloodPings, ip(2))}})
	expectAllOK(t, p.umls[:], [][]string{{ip(2)}, {ip(1)}})
	waitUntil(t, 10*time.Second, "host 1 holds UML 2 on VTEP 2", func() bool { return fdbHas(t, p.ctl[0], mac(2), vtepAddr(2)) })
	waitUntil(t, 10*time.Second, "host 2 holds UML 1 on VTEP 1", func() bool { return fdbHas(t, p.ctl[1], mac(1), vtepAddr(1)) })
	// The run state file holds the fabric once the switch wrote it (within
	// a second or two of a change).
	waitUntil(t, 10*time.Second, "host 2's run state file holds its EVPN tunnel and UML 1's address", func() bool {
		b, err := os.ReadFile(p.state[1])
		return err == nil && strings.Contains(string(b), `"evpn"`) && strings.Contains(string(b), mac(1))
	})
	return p
}

// hostOneKeeps polls host 1 every 100 ms until the function it returns
// is called, failing if ever its tunnel to VTEP 2 or UML 2's address
// behind it is gone: what graceful restart keeps while host 2's switch is
// away. The function returns how many times it looked.
func (p *evpnPair) hostOneKeeps(t *testing.T) func() int {
	done, looked := make(chan struct{}), make(chan int, 1)
	go func() {
		n := 0
		defer func() { looked <- n }()
		for {
			select {
			case <-done:
				return
			case <-time.After(100 * time.Millisecond):
			}
			var ports []struct{ Name string }
			if err := ctlJSONErr(p.ctl[0], &ports, "ports"); err != nil {
				t.Errorf("ctl ports on host 1: %v", err)
				return
			}
			found := false
			for _, port := range ports {
				found = found || port.Name == "evpn-100-"+vtepAddr(2)
			}
			var fdb []evpnFDB
			if err := ctlJSONErr(p.ctl[0], &fdb, "-all", "fdb"); err != nil {
				t.Errorf("ctl fdb on host 1: %v", err)
				return
			}
			has := false
			for _, e := range fdb {
				has = has || e.MAC == mac(2) && e.Remote && e.VTEP == vtepAddr(2)
			}
			if !found || !has {
				t.Errorf("host 1 dropped host 2's routes while host 2's switch was away (tunnel %v, UML 2's address %v)", found, has)
				return
			}
			n++
		}
	}()
	stop := sync.OnceValue(func() int { close(done); return <-looked })
	t.Cleanup(func() { stop() }) // no t.Errorf after the test ends
	return stop
}

// A switch of an EVPN fabric killed (SIGKILL) and started again: its
// peer keeps its routes and its tunnel meanwhile (graceful restart), the
// new switch brings its tunnel and remote addresses back from the run
// state file before BGP is up, and once the peer's End-of-RIB is in,
// keeps what the routes confirmed. The flood across it tells the cost.
func TestEVPNRestartKeepsTheFabric(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	p := startEVPNPair(t)
	time.Sleep(time.Second) // into the flood
	stopLooking := p.hostOneKeeps(t)
	p.sw[1].cmd.Process.Signal(syscall.SIGKILL)
	<-p.sw[1].exited
	killed := time.Now()
	time.Sleep(time.Second) // without graceful restart host 1 drops the routes within 100 ms
	second := startSwitch(t, p.hosts[1], []string{p.ctl[1]}, "-config", p.cfg[1])
	waitLog(t, second, `msg="evpn: data plane brought back, stale until the neighbours' End-of-RIB" .*tunnels=1 macs=1`,
		"the new switch did not bring its tunnel and UML 1's address back")
	waitLog(t, second, `msg="evpn: stale state swept" .*why="every neighbour sent its End-of-RIB"`, "no End-of-RIB from host 1")
	swept := time.Since(killed)
	if n := stopLooking(); n < 10 {
		t.Fatalf("host 1 was looked at only %d times", n)
	}
	if !fdbHas(t, p.ctl[1], mac(1), vtepAddr(1)) {
		t.Error("after the restart host 2 lost UML 1's address")
	}
	sent, got, line := p.umls[0].flooded(t)
	t.Logf("killed, down 1 s, started again; host 1 kept host 2's routes throughout; End-of-RIB %v after the kill; "+
		"flood across it: %s", swept.Round(100*time.Millisecond), line)
	// 1 s of the switch being away costs about 50 pings; the UMLs' own
	// clients come back from the daemon's state, the fabric from the run
	// state.
	if sent != evpnFloodPings || sent-got > 100 {
		t.Errorf("%s: the fabric did not come back with the switch", line)
	}
	for _, u := range p.umls {
		u.release(t)
	}
}

// ctl upgrade of a switch of an EVPN fabric: the old switch closes its
// sessions without a notification, its peer keeps the routes (graceful
// restart), the new switch takes the BGP port over once the old one has
// gone and brings the fabric back from the run state; the flood loses
// only what the moment between the two costs.
func TestEVPNUpgradeKeepsTheFabric(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	p := startEVPNPair(t)
	time.Sleep(time.Second) // into the flood
	stopLooking := p.hostOneKeeps(t)
	started := time.Now()
	if out, err := ctlOutput(p.ctl[1], "upgrade"); err != nil {
		t.Fatalf("ctl upgrade: %v\n%s\n%s", err, out, p.sw[1].log.text())
	}
	old := p.sw[1]
	followUpgrade(t, old, p.ctl[1])
	select {
	case <-old.exited:
	case <-time.After(10 * time.Second):
		t.Fatalf("the old switch did not leave:\n%s", old.log.text())
	}
	// The new switch logs to the old one's output.
	waitLog(t, old, `msg="evpn: joined the fabric after the upgrade"`, "the new switch did not join the fabric")
	waitLog(t, old, `msg="evpn: data plane brought back, stale until the neighbours' End-of-RIB" .*tunnels=1 macs=1`,
		"the new switch did not bring its tunnel and UML 1's address back")
	waitLog(t, old, `msg="evpn: stale state swept" .*why="every neighbour sent its End-of-RIB"`, "no End-of-RIB from host 1")
	took := time.Since(started)
	if n := stopLooking(); n < 5 {
		t.Fatalf("host 1 was looked at only %d times", n)
	}
	if !fdbHas(t, p.ctl[1], mac(1), vtepAddr(1)) {
		t.Error("after the upgrade host 2 lost UML 1's address")
	}
	sent, got, flood := p.umls[0].flooded(t)
	t.Logf("upgraded, fabric joined and End-of-RIB in within %v; host 1 kept host 2's routes throughout; flood: %s",
		took.Round(100*time.Millisecond), flood)
	if sent != evpnFloodPings || sent-got > 25 {
		t.Errorf("%s: the upgrade cut the fabric", flood)
	}
	for _, u := range p.umls {
		u.release(t)
	}
}
