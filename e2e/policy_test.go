package e2e

import (
	"fmt"
	"path/filepath"
	"regexp"
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

// pingStats pings addr from ns and returns the replies and the average
// round trip.
func pingStats(t *testing.T, ns *nstest.NS, addr string, count int, interval string) (received int, avg time.Duration) {
	t.Helper()
	out, _ := ns.Cmd("busybox", "ping", "-q", "-c", fmt.Sprint(count), "-i", interval, "-W", "2", addr).CombinedOutput()
	m := regexp.MustCompile(`(\d+) packets received`).FindStringSubmatch(string(out))
	if m == nil {
		t.Fatalf("ping %s: %s", addr, out)
	}
	received, _ = strconv.Atoi(m[1])
	if a := regexp.MustCompile(`= [\d.]+/([\d.]+)/`).FindStringSubmatch(string(out)); a != nil {
		ms, _ := strconv.ParseFloat(a[1], 64)
		avg = time.Duration(ms * float64(time.Millisecond))
	}
	return received, avg
}

// A UML behind a port whose link is changed while it runs (ctl port set):
// delay=50ms adds 50 ms to every round trip from the host, at once;
// loss=20% with a seed loses 15-25 % of 500 pings' requests or replies.
func TestImpairedLinkToAUML(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	ns := nstest.New(t)
	ctl := filepath.Join(scratch(t), "sw.ctl")
	startSwitch(t, ns, []string{ctl}, "-unix", ctl, "-port", "transport=tap,ifname=lab0,create=1,up=1,name=host")
	ns.MustRun(t, "ip", "addr", "add", "10.0.0.100/24", "dev", "lab0")
	u := bootUML(t, umlConfig{ns: ns, net: daemonNet(1, ctl), ip: ip(1), peers: []string{"10.0.0.100"}})
	if r := u.results(t, []string{"10.0.0.100"}); r["10.0.0.100"] != "ok" {
		t.Fatal("the UML did not reach the host")
	}
	_, base := pingStats(t, ns, ip(1), 10, "0.05")
	ctlRun(t, ctl, "port", "set", "daemon0.1", "delay=50ms")
	_, slow := pingStats(t, ns, ip(1), 10, "0.05")
	t.Logf("round trip %v, with delay=50ms %v", base, slow)
	if d := slow - base; d < 45*time.Millisecond || d > 55*time.Millisecond {
		t.Errorf("delay=50ms added %v to the round trip", d)
	}
	ctlRun(t, ctl, "port", "set", "daemon0.1", "delay=0s", "loss=20%", "seed=1")
	got, _ := pingStats(t, ns, ip(1), 500, "0.01")
	var ports []struct {
		Name string
		Link *struct {
			Lost uint64 `json:"lost"`
		} `json:"link"`
		Drops map[string]uint64 `json:"drops"`
	}
	ctlJSON(t, ctl, &ports, "ports")
	var lost uint64
	for _, p := range ports {
		if p.Name == "daemon0.1" && p.Link != nil {
			lost = p.Link.Lost
		}
	}
	t.Logf("loss=20%%: %d of 500 pings answered; the port lost %d frames", got, lost)
	if lost < 75 || lost > 125 || got < 375 || got > 425 {
		t.Errorf("loss=20%% lost %d of the ~500 frames to the UML, %d of 500 pings answered", lost, got)
	}
	u.waiting(t)
	u.release(t)
}
