package e2e

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/umlswitch/umlswitch/frame"
	"github.com/umlswitch/umlswitch/internal/nstest"
)

// mesh makes three namespaces standing for three machines, each with
// 10.99.0.N/24 on "wire", joined by a Linux bridge in a fourth namespace
// (the underlay), and runs a switch in each with a VXLAN tunnel to each of
// the others, opts added to every tunnel. It returns the namespaces and
// the switches' control sockets.
func mesh(t *testing.T, opts string) ([]*nstest.NS, []string) {
	t.Helper()
	under := nstest.New(t)
	under.MustRun(t, "ip", "link", "add", "br0", "type", "bridge")
	under.MustRun(t, "ip", "link", "set", "br0", "up")
	d := scratch(t)
	var nss []*nstest.NS
	var ctls []string
	for i := 1; i <= 3; i++ {
		ns := nstest.New(t)
		w := fmt.Sprintf("w%d", i)
		under.MustRun(t, "ip", "link", "add", w, "type", "veth", "peer", "name", "wire", "netns", ns.Name)
		under.MustRun(t, "ip", "link", "set", w, "master", "br0", "up")
		ns.MustRun(t, "ip", "addr", "add", fmt.Sprintf("10.99.0.%d/24", i), "dev", "wire")
		ns.MustRun(t, "ip", "link", "set", "wire", "up")
		nss = append(nss, ns)
		ctls = append(ctls, filepath.Join(d, fmt.Sprintf("s%d.ctl", i)))
	}
	for i, ns := range nss {
		args := []string{"-unix", ctls[i]}
		for j := 1; j <= 3; j++ {
			if j != i+1 {
				args = append(args, "-port", fmt.Sprintf("transport=vxlan,src=10.99.0.%d,dst=10.99.0.%d,vni=7%s", i+1, j, opts))
			}
		}
		startSwitch(t, ns, []string{ctls[i]}, args...)
	}
	return nss, ctls
}

// underlay is the packets the three machines sent on the wire.
func underlay(t *testing.T, nss []*nstest.NS) int {
	t.Helper()
	n := 0
	for _, ns := range nss {
		out := ns.MustRun(t, "cat", "/sys/class/net/wire/statistics/tx_packets")
		k, _ := strconv.Atoi(strings.TrimSpace(out))
		n += k
	}
	return n
}

// Three switches in three namespaces joined by a full mesh of VXLAN
// tunnels, every tunnel in one split horizon group, a UML behind each: all
// pairs reach each other, and the underlay carries a few hundred packets.
func TestSplitHorizonMeshDoesNotLoop(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	nss, ctls := mesh(t, ",split_horizon=fabric")
	var umls []*uml
	var peers [][]string
	for i := 1; i <= 3; i++ {
		peers = append(peers, others(i, 3))
		umls = append(umls, bootUML(t, umlConfig{ns: nss[i-1], net: daemonNet(i, ctls[i-1]), ip: ip(i), peers: peers[i-1]}))
	}
	expectAllOK(t, umls, peers)
	for _, u := range umls {
		u.waiting(t)
	}
	before := underlay(t, nss)
	time.Sleep(2 * time.Second) // a loop would go on without anyone sending
	after := underlay(t, nss)
	t.Logf("underlay: %d packets for the pings, %d more in the 2 s after", before, after-before)
	if before > 2000 || after-before > 50 {
		t.Errorf("the mesh looped: %d packets for a few pings, %d more while idle", before, after-before)
	}
	var sws []struct {
		MACMoved uint64 `json:"mac_moved"`
	}
	ctlJSON(t, ctls[0], &sws, "switches")
	if sws[0].MACMoved > 10 {
		t.Errorf("%d address moves on one switch: frames came back round", sws[0].MACMoved)
	}
	for _, u := range umls {
		u.release(t)
	}
}

// Without split horizon the same mesh loops one broadcast for ever: the
// underlay carries thousands of packets a second with no one sending, and
// the switches count the sender's address moving between their tunnels.
// (Not parallel: the storm takes the CPUs, so it runs alone, briefly.)
func TestMeshWithoutSplitHorizonLoops(t *testing.T) {
	requireE2E(t)
	nss, ctls := mesh(t, "")
	var c *lanClient
	if err := nss[0].Do(func() error { c = dialLAN(t, ctls[0], "", 1, false); return nil }); err != nil {
		t.Fatal(err)
	}
	if err := c.Send(testFrame(make([]byte, 64), frame.Broadcast, c.mac, 0)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	before := underlay(t, nss)
	time.Sleep(time.Second)
	rate := underlay(t, nss) - before
	var sws []struct {
		MACMoved uint64 `json:"mac_moved"`
	}
	ctlJSON(t, ctls[1], &sws, "switches")
	t.Logf("one broadcast without split horizon: %d underlay packets a second, %d moves of its source on one switch", rate, sws[0].MACMoved)
	if rate < 1000 || sws[0].MACMoved < 100 {
		t.Errorf("no storm: %d packets a second, %d moves", rate, sws[0].MACMoved)
	}
}
