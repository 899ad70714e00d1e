package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
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
	var b strings.Builder
	b.WriteString("switches:\n")
	for _, s := range switches {
		fmt.Fprintf(&b, "  - name: %s\n    vni: %d\n    ports:\n      - {transport: daemon, path: %s, mode: \"0777\"}\n",
			s.name, s.vni, s.ctl)
	}
	fmt.Fprintf(&b, "evpn:\n  asn: 65000\n  router_id: %s\n  vtep: %s\n  hold_time: 3s\n  neighbors:\n", vtepAddr(i), vtepAddr(i))
	for _, p := range peers {
		fmt.Fprintf(&b, "    - {address: %s, asn: 65000}\n", vtepAddr(p))
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
			if line := u.waitLine(t, `^UNREACHED `+strings.ReplaceAll(o, ".", `\.`)+` `); !strings.HasSuffix(line, " yes") {
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
	for _, u := range umls {
		u.release(t)
	}
}
