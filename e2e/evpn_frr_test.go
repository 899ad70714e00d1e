package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/umlswitch/umlswitch/internal/nstest"
)

// umlswitchVTEP starts umlswitch on host ns as a VTEP at vtep: switch
// "red" with VNI 100 on control socket ctl, BGP neighbours peers (AS
// 65000 unless eBGP says otherwise) and more YAML lines for the evpn:
// block.
func umlswitchVTEP(t *testing.T, ns *nstest.NS, dir, ctl, vtep string, asn int, peers map[string]int) *switchProc {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "vni: 100\nports:\n  - {transport: daemon, path: %s, mode: \"0777\"}\n", ctl)
	fmt.Fprintf(&b, "evpn:\n  asn: %d\n  router_id: %s\n  vtep: %s\n  hold_time: 3s\n  neighbors:\n", asn, vtep, vtep)
	for addr, peerASN := range peers {
		fmt.Fprintf(&b, "    - {address: %s, asn: %d}\n", addr, peerASN)
	}
	cfg := filepath.Join(dir, "umlswitch-"+vtep+".yaml")
	if err := os.WriteFile(cfg, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return startSwitch(t, ns, []string{ctl}, "-config", cfg)
}

// waitEVPNEntry waits until switch ctl's table holds mac as an EVPN entry
// on vtep.
func waitEVPNEntry(t *testing.T, ctl, mac, vtep string) {
	t.Helper()
	deadline := time.Now().Add(frrWait)
	for {
		var fdb []evpnFDB
		ctlJSON(t, ctl, &fdb, "fdb")
		for _, e := range fdb {
			if e.MAC == mac && e.Remote && e.VTEP == vtep {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no EVPN entry for %s on %s: %+v", ctl, mac, vtep, fdb)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// umlswitch with two UMLs on host A, FRR with the kernel's VXLAN device
// and bridge on host B, iBGP EVPN between them and nothing else: the UMLs
// and B's bridge address reach each other; FRR lists the UMLs' MACs as
// remote on A's VTEP and floods to A by ingress replication; umlswitch
// holds B's bridge MAC as an EVPN entry on B's VTEP.
func TestEVPNWithFRR(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	vteps := []string{"172.31.0.1", "172.31.0.2"}
	hosts := switchedHosts(t, vteps[0]+"/24", vteps[1]+"/24")
	d := scratch(t)
	ctl := filepath.Join(d, "a.ctl")
	a := umlswitchVTEP(t, hosts[0], d, ctl, vteps[0], 65000, map[string]int{vteps[1]: 65000})
	frr := frrVTEP(t, hosts[1], vtepConfig{ASN: 65000, VTEP: vteps[1],
		VNIs:     []vniConfig{{VNI: 100, Addr: "10.0.0.254/24"}},
		Neighbor: []bgpNeighbor{{Addr: vteps[0]}}, AdvertiseSVI: true})
	frr.waitEstablished(t, vteps[0])

	var umls []*uml
	var peers [][]string
	for i := 1; i <= 2; i++ {
		p := []string{"10.0.0.254", ip(3 - i)}
		peers = append(peers, p)
		umls = append(umls, bootUML(t, umlConfig{ns: hosts[0], net: daemonNet(i, ctl), ip: ip(i), peers: p,
			vars: map[string]string{"noipv6": "1"}}))
	}
	expectAllOK(t, umls, peers)
	for i := 1; i <= 2; i++ {
		hosts[1].MustRun(t, "busybox", "ping", "-c", "1", "-W", "5", ip(i))
		frr.waitRemoteMAC(t, 100, mac(i), vteps[0])
	}
	if mode := frr.remoteVTEPs(t, 100)[vteps[0]]; mode != "HER" {
		t.Errorf("FRR floods to umlswitch's VTEP by %q, want HER:\n%s", mode, frr.vtysh(t, "show evpn vni 100"))
	}
	waitEVPNEntry(t, ctl, bridgeMAC(t, hosts[1], 100), vteps[1])
	// What umlswitch announced, as FRR reads it: FRR's own encoding.
	for _, r := range frr.evpnRoutes(t) {
		if !strings.HasPrefix(r.RD, vteps[0]+":") {
			continue
		}
		if !strings.Contains(r.ExtComm.String, "RT:65000:100") || !strings.Contains(r.ExtComm.String, "ET:8") {
			t.Errorf("route %s %s from umlswitch carries %q", r.RD, r.Prefix, r.ExtComm.String)
		}
		if len(r.NextHops) == 0 || r.NextHops[0].IP != vteps[0] {
			t.Errorf("route %s %s from umlswitch has next hops %v", r.RD, r.Prefix, r.NextHops)
		}
	}

	// kill -9 and a start again: the switch puts its tunnel and B's
	// address back from its run state file before BGP is up, FRR's
	// End-of-RIB confirms them, and B reaches the UMLs again. FRR 8.4 is a
	// graceful restart helper by default and lists L2VPN EVPN in the
	// session's graceful restart families, yet drops umlswitch's EVPN routes
	// the moment the session breaks ("Remote GR Mode: Helper", no family
	// preserved): its helper keeps unicast routes only. GoBGP peers (and
	// newer FRR) keep them: TestEVPNRestartKeepsTheFabric.
	time.Sleep(1500 * time.Millisecond) // the run state file written
	a.cmd.Process.Signal(syscall.SIGKILL)
	<-a.exited
	time.Sleep(time.Second)
	kept := frr.evpnMACs(t, 100)[mac(1)].RemoteVTEP == vteps[0]
	t.Logf("umlswitch killed 1 s ago: FRR kept its routes: %v", kept)
	again := startSwitch(t, hosts[0], []string{ctl}, "-config", filepath.Join(d, "umlswitch-"+vteps[0]+".yaml"))
	waitLog(t, again, `msg="evpn: data plane brought back, stale until the neighbours' End-of-RIB" .*tunnels=1 macs=1`,
		"the switch did not bring its tunnel and B's address back")
	waitLog(t, again, `msg="evpn: stale state swept" .*why="every neighbour sent its End-of-RIB" tunnels_removed=0`,
		"no End-of-RIB from FRR, or the sweep took the tunnel")
	for i := 1; i <= 2; i++ {
		hosts[1].MustRun(t, "busybox", "ping", "-c", "1", "-W", "5", ip(i))
	}
	waitEVPNEntry(t, ctl, bridgeMAC(t, hosts[1], 100), vteps[1])
	for _, u := range umls {
		u.release(t)
	}
}

// Three hosts: umlswitch on A and C, FRR on B as route reflector and VTEP.
// A and C peer with B alone. The UMLs behind A and C and B's bridge reach
// each other, and unicast between A and C goes straight from A to C: of a
// burst of pings between the UMLs, only broadcast and unknown-unicast
// copies reach B's underlay link.
func TestEVPNThreeHostsFRRReflector(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	vteps := []string{"172.31.0.1", "172.31.0.2", "172.31.0.3"}
	hosts := switchedHosts(t, vteps[0]+"/24", vteps[1]+"/24", vteps[2]+"/24")
	d := scratch(t)
	ctlA, ctlC := filepath.Join(d, "a.ctl"), filepath.Join(d, "c.ctl")
	umlswitchVTEP(t, hosts[0], d, ctlA, vteps[0], 65000, map[string]int{vteps[1]: 65000})
	umlswitchVTEP(t, hosts[2], d, ctlC, vteps[2], 65000, map[string]int{vteps[1]: 65000})
	frr := frrVTEP(t, hosts[1], vtepConfig{ASN: 65000, VTEP: vteps[1],
		VNIs:     []vniConfig{{VNI: 100, Addr: "10.0.0.254/24"}},
		Neighbor: []bgpNeighbor{{Addr: vteps[0], RRClient: true}, {Addr: vteps[2], RRClient: true}}, AdvertiseSVI: true})
	frr.waitEstablished(t, vteps[0], vteps[2])

	// Count the VXLAN packets B's underlay link receives.
	pcap := filepath.Join(d, "b.pcap")
	dump := hosts[1].Cmd("tcpdump", "-i", "wire", "-n", "-U", "-w", pcap, "udp", "port", "4789")
	if err := dump.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dump.Process.Kill(); dump.Wait() })

	const burst = 200
	u1 := bootUML(t, umlConfig{ns: hosts[0], net: daemonNet(1, ctlA), ip: ip(1), peers: []string{ip(2), "10.0.0.254"},
		vars: map[string]string{"noipv6": "1", "flood": fmt.Sprintf("%d,%s", burst, ip(2))}})
	u2 := bootUML(t, umlConfig{ns: hosts[2], net: daemonNet(2, ctlC), ip: ip(2), peers: []string{ip(1), "10.0.0.254"},
		vars: map[string]string{"noipv6": "1"}})
	expectAllOK(t, []*uml{u1, u2}, [][]string{{ip(2), "10.0.0.254"}, {ip(1), "10.0.0.254"}})
	if sent, got, line := u1.flooded(t); got < sent*9/10 {
		t.Errorf("burst between A and C: %s", line)
	}
	waitEVPNEntry(t, ctlA, mac(2), vteps[2])
	waitEVPNEntry(t, ctlC, mac(1), vteps[0])
	frr.waitRemoteMAC(t, 100, mac(1), vteps[0])
	frr.waitRemoteMAC(t, 100, mac(2), vteps[2])
	time.Sleep(500 * time.Millisecond) // the capture's last packets
	dump.Process.Kill()
	dump.Wait()
	out, err := hosts[1].Cmd("tcpdump", "-n", "-r", pcap).CombinedOutput()
	if err != nil {
		t.Fatalf("tcpdump -r: %v\n%s", err, out)
	}
	atB := 0
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, "VXLAN") || strings.Contains(line, ".4789") {
			atB++
		}
	}
	// The burst is 2*burst unicast frames between A and C; B may see the
	// ARP broadcasts, the first pings before either MAC was announced, and
	// its own traffic with the UMLs (a few dozen at most).
	t.Logf("VXLAN packets at B: %d (burst of %d pings between A and C)", atB, burst)
	if atB > burst/2 {
		t.Errorf("B's underlay link saw %d VXLAN packets during %d pings between A and C: unicast crossed B\n%s",
			atB, burst, out)
	}
	u1.release(t)
	u2.release(t)
}
