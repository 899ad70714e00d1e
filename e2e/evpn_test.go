package e2e

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/umlswitch/umlswitch/frame"
	"github.com/umlswitch/umlswitch/instance"
	"github.com/umlswitch/umlswitch/internal/nstest"
)

func vtepAddr(i int) string { return fmt.Sprintf("10.99.0.%d", i) }

// evpnSwitch is one switch of an EVPN host's configuration: a daemon
// control socket and a VNI.
type evpnSwitch struct {
	name, ctl string
	vni       int
}

// evpnConfig writes the configuration of host i, whose BGP neighbours are
// the hosts in peers (iBGP, AS 65000), and returns its path.
func evpnConfig(t *testing.T, dir string, i int, switches []evpnSwitch, peers ...int) string {
	t.Helper()
	return evpnConfigAt(t, dir, i, vtepAddr, switches, peers...)
}

// evpnConfigAt is evpnConfig with host i's VTEP and neighbour address
// addr(i) (its router id stays vtepAddr(i)).
func evpnConfigAt(t *testing.T, dir string, i int, addr func(int) string, switches []evpnSwitch, peers ...int) string {
	t.Helper()
	return evpnConfigWith(t, dir, i, addr, switches, "", "", peers...)
}

// evpnConfigWith is evpnConfigAt with more top-level lines (top) and
// more lines in the evpn section (keys), each ending in a newline.
func evpnConfigWith(t *testing.T, dir string, i int, addr func(int) string, switches []evpnSwitch, top, keys string, peers ...int) string {
	t.Helper()
	var b strings.Builder
	b.WriteString(top)
	b.WriteString("switches:\n")
	for _, s := range switches {
		fmt.Fprintf(&b, "  - name: %s\n    vni: %d\n    ports:\n      - {transport: daemon, path: %s, mode: \"0777\"}\n",
			s.name, s.vni, s.ctl)
	}
	fmt.Fprintf(&b, "evpn:\n  asn: 65000\n  router_id: %s\n  vtep: \"%s\"\n  hold_time: 3s\n%s  neighbors:\n", vtepAddr(i), addr(i), keys)
	for _, p := range peers {
		fmt.Fprintf(&b, "    - {address: \"%s\", asn: 65000}\n", addr(p))
	}
	path := filepath.Join(dir, fmt.Sprintf("host%d.yaml", i))
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// evpnFDB is an entry of ctl fdb -json with what EVPN adds.
type evpnFDB struct {
	Switch string `json:"switch"`
	MAC    string `json:"mac"`
	Port   string `json:"port"`
	Remote bool   `json:"remote"`
	VTEP   string `json:"vtep"`
}

// Three umlswitch hosts in a full iBGP mesh, no tunnel written by hand,
// two VNIs on each: the UMLs of a VNI reach each other across every host
// and never those of the other VNI; each switch's table holds the remote
// UMLs' addresses as EVPN entries on their VTEPs.
func TestEVPNMeshOfThreeSwitches(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	hosts := switchedHosts(t, vtepAddr(1)+"/24", vtepAddr(2)+"/24", vtepAddr(3)+"/24")
	d := scratch(t)
	ctl := func(host int, sw string) string { return filepath.Join(d, fmt.Sprintf("h%d-%s.ctl", host, sw)) }
	for i := 1; i <= 3; i++ {
		sws := []evpnSwitch{{"red", ctl(i, "red"), 100}, {"blue", ctl(i, "blue"), 200}}
		var peers []int
		for j := 1; j <= 3; j++ {
			if j != i {
				peers = append(peers, j)
			}
		}
		cfg := evpnConfig(t, d, i, sws, peers...)
		startSwitch(t, hosts[i-1], []string{ctl(i, "red"), ctl(i, "blue")}, "-config", cfg)
	}
	// red: UMLs 1, 2, 3 on hosts 1, 2, 3; blue: UMLs 4, 5 on hosts 1, 2.
	// One subnet for both, so only the switches keep them apart.
	type machine struct {
		host int
		sw   string
	}
	machines := map[int]machine{1: {1, "red"}, 2: {2, "red"}, 3: {3, "red"}, 4: {1, "blue"}, 5: {2, "blue"}}
	var umls []*uml
	var peers [][]string
	var nopeers [][]string
	for i := 1; i <= 5; i++ {
		m := machines[i]
		var p, np []string
		for j := 1; j <= 5; j++ {
			if j == i {
				continue
			}
			if machines[j].sw == m.sw {
				p = append(p, ip(j))
			} else {
				np = append(np, ip(j))
			}
		}
		peers, nopeers = append(peers, p), append(nopeers, np)
		umls = append(umls, bootUML(t, umlConfig{ns: hosts[m.host-1], net: daemonNet(i, ctl(m.host, m.sw)), ip: ip(i),
			peers: p, vars: map[string]string{"nopeers": strings.Join(np, ","), "noipv6": "1"}}))
	}
	expectAllOK(t, umls, peers)
	for i, u := range umls {
		for _, o := range nopeers[i] {
			if !u.unreached(t, o) {
				t.Errorf("UML %d reached %s, on another VNI", i+1, o)
			}
		}
	}
	// Host 1's red table: UML 2 behind VTEP 2, UML 3 behind VTEP 3, as
	// EVPN entries; blue's UML 5 behind VTEP 2 and not in red.
	want := map[string]evpnFDB{mac(2): {Switch: "red", VTEP: vtepAddr(2)}, mac(3): {Switch: "red", VTEP: vtepAddr(3)},
		mac(5): {Switch: "blue", VTEP: vtepAddr(2)}}
	deadline := time.Now().Add(10 * time.Second)
	for {
		var fdb []evpnFDB
		ctlJSON(t, ctl(1, "red"), &fdb, "-all", "fdb")
		missing := []string{}
		for m, w := range want {
			found := false
			for _, e := range fdb {
				if e.MAC != m {
					continue
				}
				if e.Switch != w.Switch {
					t.Fatalf("%s in switch %s, want %s only: %+v", m, e.Switch, w.Switch, fdb)
				}
				found = e.Remote && e.VTEP == w.VTEP
			}
			if !found {
				missing = append(missing, m)
			}
		}
		if len(missing) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("host 1 has no EVPN entries for %v: %+v", missing, fdb)
		}
		time.Sleep(200 * time.Millisecond)
	}
	sendUnknownVXLAN(t, hosts[0], ctl(2, "red"))
	for _, u := range umls {
		u.release(t)
	}
}

// sendUnknownVXLAN sends, from host ns, VXLAN packets to VTEP 2 from an
// address no route announced and from VTEP 1 with a VNI it does not
// serve: VTEP 2's switch (control socket ctl) counts the first as unknown
// and the others as bad-key drops on a tunnel to VTEP 1, and learns
// nothing from either.
func sendUnknownVXLAN(t *testing.T, ns *nstest.NS, ctl string) {
	t.Helper()
	var before instance.EVPNInfo
	ctlJSON(t, ctl, &before, "evpn")
	tunnelDrops := func() uint64 {
		var ports []struct {
			Name  string            `json:"name"`
			Drops map[string]uint64 `json:"drops"`
		}
		ctlJSON(t, ctl, &ports, "-all", "ports")
		n, found := uint64(0), false
		for _, p := range ports {
			if strings.HasPrefix(p.Name, "evpn-") && strings.HasSuffix(p.Name, "-"+vtepAddr(1)) {
				n, found = n+p.Drops["bad-key"], true // on one of VTEP 1's tunnels, one per VNI
			}
		}
		if !found {
			t.Fatalf("no tunnel to VTEP 1: %+v", ports)
		}
		return n
	}
	badKey := tunnelDrops()
	stranger := "10.99.0.77"
	ns.MustRun(t, "ip", "addr", "add", stranger+"/24", "dev", "wire")
	src := frame.MAC{0x02, 0xee, 0, 0, 0, 0x77}
	packet := func(vni uint32) []byte {
		b := []byte{0x08, 0, 0, 0, byte(vni >> 16), byte(vni >> 8), byte(vni), 0} // VXLAN: I flag, VNI
		b = append(b, frame.Broadcast[:]...)
		b = append(b, src[:]...)
		b = append(b, 0x88, 0xb5)
		return append(b, make([]byte, 46)...)
	}
	const each = 5
	send := func() {
		err := ns.Do(func() error {
			for _, c := range []struct {
				from string
				vni  uint32
			}{{stranger, 100}, {vtepAddr(1), 999}} {
				conn, err := net.DialUDP("udp4", net.UDPAddrFromAddrPort(netip.MustParseAddrPort(c.from+":4790")),
					net.UDPAddrFromAddrPort(netip.MustParseAddrPort(vtepAddr(2)+":4789")))
				if err != nil {
					return err
				}
				for range each {
					if _, err := conn.Write(packet(c.vni)); err != nil {
						conn.Close()
						return err
					}
				}
				conn.Close()
			}
			return nil
		})
		if err != nil {
			t.Fatalf("sending VXLAN from %s: %v", stranger, err)
		}
	}
	// Sent again at each look: the first packets from a new address wait
	// for ARP, and the kernel keeps few of them.
	waitUntil(t, 10*time.Second, "VTEP 2 counting the unknown VTEP's packets and VTEP 1's of another VNI", func() bool {
		send()
		var after instance.EVPNInfo
		ctlJSON(t, ctl, &after, "evpn")
		return after.Unknown >= before.Unknown+each && tunnelDrops() >= badKey+each
	})
	var fdb []evpnFDB
	ctlJSON(t, ctl, &fdb, "-all", "fdb")
	for _, e := range fdb {
		if e.MAC == src.String() {
			t.Fatalf("VTEP 2 learned %s from an unknown VTEP: %+v", src, e)
		}
	}
}

// fdbHas reports whether switch ctl's table (every switch) holds mac as
// an EVPN entry on vtep.
func fdbHas(t *testing.T, ctl, mac, vtep string) bool {
	t.Helper()
	var fdb []evpnFDB
	ctlJSON(t, ctl, &fdb, "-all", "fdb")
	for _, e := range fdb {
		if e.MAC == mac && e.Remote && e.VTEP == vtep {
			return true
		}
	}
	return false
}

// A fourth host joins a running fabric of three and then dies (SIGKILL,
// no goodbye; graceful restart off) while a UML floods pings across the
// others: the flood loses nothing, the newcomer's UML reaches everyone,
// and once it is gone its address and tunnels leave every table at once.
func TestEVPNHostJoinsAndLeaves(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	hosts := switchedHosts(t, vtepAddr(1)+"/24", vtepAddr(2)+"/24", vtepAddr(3)+"/24", vtepAddr(4)+"/24")
	d := scratch(t)
	ctl := func(host int) string { return filepath.Join(d, fmt.Sprintf("h%d.ctl", host)) }
	start := func(i int) *switchProc {
		var peers []int
		for j := 1; j <= 4; j++ {
			if j != i {
				peers = append(peers, j)
			}
		}
		keys := ""
		if i == 4 { // its peers drop its routes the moment its sessions drop
			keys = "  graceful_restart: 0s\n"
		}
		cfg := evpnConfigWith(t, d, i, vtepAddr, []evpnSwitch{{"red", ctl(i), 100}}, "", keys, peers...)
		return startSwitch(t, hosts[i-1], []string{ctl(i)}, "-config", cfg)
	}
	for i := 1; i <= 3; i++ {
		start(i)
	}
	const pings = 1000 // 20 s at ping -i 0.02
	var umls []*uml
	var peers [][]string
	for i := 1; i <= 3; i++ {
		c := umlConfig{ns: hosts[i-1], net: daemonNet(i, ctl(i)), ip: ip(i), vars: map[string]string{"noipv6": "1"}}
		for j := 1; j <= 3; j++ {
			if j != i {
				c.peers = append(c.peers, ip(j))
			}
		}
		if i == 1 {
			c.vars["flood"] = fmt.Sprintf("%d,%s", pings, ip(2))
		}
		peers = append(peers, c.peers)
		umls = append(umls, bootUML(t, c))
	}
	expectAllOK(t, umls, peers)

	fourth := start(4)
	u4 := bootUML(t, umlConfig{ns: hosts[3], net: daemonNet(4, ctl(4)), ip: ip(4), peers: []string{ip(1), ip(2), ip(3)},
		vars: map[string]string{"noipv6": "1"}})
	expectAllOK(t, []*uml{u4}, [][]string{{ip(1), ip(2), ip(3)}})
	for i := 1; i <= 3; i++ {
		waitUntil(t, 10*time.Second, fmt.Sprintf("host %d holds UML 4 on VTEP 4", i), func() bool {
			return fdbHas(t, ctl(i), mac(4), vtepAddr(4))
		})
	}
	fourth.cmd.Process.Signal(syscall.SIGKILL)
	<-fourth.exited
	left := time.Now()
	for i := 1; i <= 3; i++ {
		waitUntil(t, 15*time.Second, fmt.Sprintf("UML 4's address and tunnel gone from host %d", i), func() bool {
			var ports []struct {
				Name string `json:"name"`
			}
			ctlJSON(t, ctl(i), &ports, "ports")
			for _, p := range ports {
				if p.Name == "evpn-100-"+vtepAddr(4) {
					return false
				}
			}
			return !fdbHas(t, ctl(i), mac(4), vtepAddr(4))
		})
	}
	t.Logf("host 4's routes gone everywhere %v after it died (hold time 3s)", time.Since(left).Round(100*time.Millisecond))
	sent, got, line := umls[0].flooded(t)
	if sent != pings || got < sent*99/100 {
		t.Errorf("pings between hosts 1 and 2 while host 4 came and went: %s", line)
	}
	t.Logf("flood: %s", line)
	for _, u := range append(umls, u4) {
		u.release(t)
	}
}

// waitUntil polls cond every 200 ms until it holds or timeout passes.
func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// An IPv6 underlay works as IPv4 does: BGP over IPv6, IPv6 VTEPs and
// VXLAN over IPv6 between two umlswitch hosts.
func TestEVPNOverIPv6(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	v6 := func(i int) string { return fmt.Sprintf("fd00:99::%d", i) }
	hosts := switchedHosts(t, v6(1)+"/64", v6(2)+"/64")
	d := scratch(t)
	ctl := func(host int) string { return filepath.Join(d, fmt.Sprintf("h%d.ctl", host)) }
	for i := 1; i <= 2; i++ {
		cfg := evpnConfigAt(t, d, i, v6, []evpnSwitch{{"red", ctl(i), 100}}, 3-i)
		startSwitch(t, hosts[i-1], []string{ctl(i)}, "-config", cfg)
	}
	const pings = 300 // 6 s at ping -i 0.02
	var umls []*uml
	for i := 1; i <= 2; i++ {
		vars := map[string]string{"noipv6": "1"}
		if i == 1 {
			vars["flood"] = fmt.Sprintf("%d,%s", pings, ip(2))
		}
		umls = append(umls, bootUML(t, umlConfig{ns: hosts[i-1], net: daemonNet(i, ctl(i)), ip: ip(i), peers: []string{ip(3 - i)},
			vars: vars}))
	}
	expectAllOK(t, umls, [][]string{{ip(2)}, {ip(1)}})
	waitUntil(t, 10*time.Second, "host 1 holds UML 2 on VTEP "+v6(2), func() bool { return fdbHas(t, ctl(1), mac(2), v6(2)) })

	// The fabric's tunnel is a port like any other: it takes impairment
	// from ctl port set and counts what it drops; the control plane owns
	// it, so ctl port del is refused.
	tunnel := "evpn-100-" + v6(2)
	if out, err := ctlOutput(ctl(1), "port", "del", tunnel); err == nil || !strings.Contains(string(out), "EVPN control plane") {
		t.Errorf("ctl port del %s: %v\n%s", tunnel, err, out)
	}
	if out, err := ctlOutput(ctl(1), "port", "set", tunnel, "loss=100%"); err != nil {
		t.Fatalf("ctl port set %s loss=100%%: %v\n%s", tunnel, err, out)
	}
	time.Sleep(time.Second)
	if out, err := ctlOutput(ctl(1), "port", "set", tunnel, "loss="); err != nil {
		t.Fatalf("ctl port set %s loss=: %v\n%s", tunnel, err, out)
	}
	var ports []struct {
		Name  string            `json:"name"`
		VTEP  string            `json:"vtep"`
		Drops map[string]uint64 `json:"drops"`
	}
	ctlJSON(t, ctl(1), &ports, "ports")
	lost := uint64(0)
	for _, p := range ports {
		if p.Name == tunnel {
			if p.VTEP != v6(2) {
				t.Errorf("ctl ports lists %s with VTEP %q", tunnel, p.VTEP)
			}
			lost = p.Drops["loss"]
		}
	}
	sent, got, line := umls[0].flooded(t)
	t.Logf("a second of loss=100%% on %s: %d drops counted; flood: %s", tunnel, lost, line)
	if lost < 20 || got >= sent || got < sent/2 {
		t.Errorf("a second of loss=100%% on the tunnel: %d drops counted, flood %s", lost, line)
	}
	for _, u := range umls {
		u.release(t)
	}
}

// ctl reload of a host's evpn: block and switches: a new neighbour and a
// new VNI join without the session that did not change going down; a
// broken block is refused naming its key, and changes nothing.
func TestEVPNReloadKeepsSessions(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	hosts := switchedHosts(t, vtepAddr(1)+"/24", vtepAddr(2)+"/24", vtepAddr(3)+"/24")
	d := scratch(t)
	ctl := func(host int, sw string) string { return filepath.Join(d, fmt.Sprintf("h%d-%s.ctl", host, sw)) }
	red := func(i int) evpnSwitch { return evpnSwitch{"red", ctl(i, "red"), 100} }
	blue := func(i int) evpnSwitch { return evpnSwitch{"blue", ctl(i, "blue"), 200} }
	first := startSwitch(t, hosts[0], []string{ctl(1, "red"), ctl(1, "blue")}, "-config", evpnConfig(t, d, 1, []evpnSwitch{red(1)}, 2))
	startSwitch(t, hosts[1], []string{ctl(2, "red")}, "-config", evpnConfig(t, d, 2, []evpnSwitch{red(2)}, 1, 3))
	startSwitch(t, hosts[2], []string{ctl(3, "red"), ctl(3, "blue")}, "-config", evpnConfig(t, d, 3, []evpnSwitch{red(3), blue(3)}, 1, 2))
	bgp := func() map[string]string {
		var b instance.BGPInfo
		ctlJSON(t, ctl(1, "red"), &b, "bgp")
		states := map[string]string{}
		for _, n := range b.Neighbors {
			states[n.Address.String()] = n.State
		}
		return states
	}
	vteps := func() map[uint32][]string {
		var e instance.EVPNInfo
		ctlJSON(t, ctl(1, "red"), &e, "evpn")
		out := map[uint32][]string{}
		for _, v := range e.VNIs {
			for _, a := range v.VTEPs {
				out[v.VNI] = append(out[v.VNI], a.String())
			}
		}
		return out
	}
	waitUntil(t, 15*time.Second, "host 1's session to host 2", func() bool { return bgp()[vtepAddr(2)] == "established" })
	waitUntil(t, 10*time.Second, "host 1's tunnel to host 2", func() bool { return len(vteps()[100]) == 1 })
	before := len(first.log.text())

	// A broken evpn: block is refused, naming the key.
	bad := filepath.Join(d, "host1.yaml")
	good, err := os.ReadFile(bad)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte(strings.Replace(string(good), "asn: 65000\n  router_id", "asn: 0\n  router_id", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := ctlOutput(ctl(1, "red"), "reload"); err == nil || !strings.Contains(string(out), "evpn.asn") {
		t.Fatalf("ctl reload of asn 0: %v\n%s", err, out)
	}
	// Neighbour 3 and switch blue (VNI 200) join.
	evpnConfig(t, d, 1, []evpnSwitch{red(1), blue(1)}, 2, 3)
	if out, err := ctlOutput(ctl(1, "red"), "reload"); err != nil {
		t.Fatalf("ctl reload: %v\n%s", err, out)
	}
	waitUntil(t, 15*time.Second, "host 1's session to host 3", func() bool { return bgp()[vtepAddr(3)] == "established" })
	waitUntil(t, 10*time.Second, "host 1's tunnels: VNI 100 to hosts 2 and 3, VNI 200 to host 3", func() bool {
		v := vteps()
		return len(v[100]) == 2 && len(v[200]) == 1 && v[200][0] == vtepAddr(3)
	})
	if states := bgp(); states[vtepAddr(2)] != "established" {
		t.Errorf("after the reload host 1's session to host 2 is %q", states[vtepAddr(2)])
	}
	if after := first.log.text()[before:]; strings.Contains(after, `msg="evpn: neighbour down"`) {
		t.Errorf("a session went down across the reloads:\n%s", after)
	}
}
