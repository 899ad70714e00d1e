package e2e

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// One lab across two hosts (namespaces on one switched LAN), each running
// `umlswitch lab -evpn FILE -machines ...` with the same lab.conf: three
// domains, four machines. A is host 2's alone (pc3 and pc4), B (pc1, pc3)
// and C (pc2, pc4) span both. Host 1 runs no switch for A; its domains
// sorted are B, C, host 2's A, B, C: numbering a host's own domains would
// put host 1's B on host 2's A, so the machines reach their peers only if
// both hosts number all of lab.conf's domains alike. B and C share one
// subnet: a frame crossing from one to the other would be answered.
func TestLabAcrossHostsEVPN(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	hosts := switchedHosts(t, vtepAddr(1)+"/24", vtepAddr(2)+"/24")
	d := scratch(t)
	conf := filepath.Join(d, "lab.conf")
	os.WriteFile(conf, []byte(`LAB_DESCRIPTION="two hosts, three domains"
pc1[0]=B/02:00:00:00:01:00
pc2[0]=C/02:00:00:00:02:00
pc3[0]=B/02:00:00:00:03:00
pc3[1]=A/02:00:00:00:03:01
pc4[0]=C/02:00:00:00:04:00
pc4[1]=A/02:00:00:00:04:01
`), 0o644)
	run := func(host int) string { return filepath.Join(d, fmt.Sprintf("h%d", host)) }
	hostMachines := map[int]string{1: "pc1,pc2", 2: "pc3,pc4"}
	hostDomains := map[int][]string{1: {"B", "C"}, 2: {"A", "B", "C"}}
	labs := map[int]*switchProc{}
	for i := 1; i <= 2; i++ {
		other := 3 - i
		evpn := filepath.Join(d, fmt.Sprintf("evpn%d.yaml", i))
		os.WriteFile(evpn, []byte(fmt.Sprintf("vni_base: 1000\nevpn:\n  asn: 65000\n  router_id: %s\n  vtep: %s\n  hold_time: 3s\n"+
			"  neighbors:\n    - {address: %s, asn: 65000}\n", vtepAddr(i), vtepAddr(i), vtepAddr(other))), 0o644)
		var files []string
		for _, dom := range hostDomains[i] {
			files = append(files, filepath.Join(run(i), dom+".ctl"), filepath.Join(run(i), dom+".bess"))
		}
		labs[i] = startSwitchCmd(t, hosts[i-1].Cmd(env.umlswitch, "lab", "-dir", run(i), "-evpn", evpn,
			"-machines", hostMachines[i], conf), files)
	}
	if _, err := os.Lstat(filepath.Join(run(1), "A.ctl")); err == nil {
		t.Error("host 1 runs a switch for A, which none of its machines uses")
	}
	// Each host prints its own machines' options only.
	opts := map[string][]string{}
	for i := 1; i <= 2; i++ {
		o, _ := labOptions(labs[i])
		maps.Copy(opts, o)
		if got := strings.Join(slices.Sorted(maps.Keys(o)), ","); got != hostMachines[i] {
			t.Fatalf("host %d printed options for %s, want %s:\n%s", i, got, hostMachines[i], labs[i].log.text())
		}
	}

	machines := []struct {
		name, ip, secondip string
		host               int
		peers, nopeers     []string
	}{
		{"pc1", "10.0.0.1", "", 1, []string{"10.0.0.3"}, []string{"10.0.0.2", "10.0.0.4"}},
		{"pc2", "10.0.0.2", "", 1, []string{"10.0.0.4"}, []string{"10.0.0.1", "10.0.0.3"}},
		{"pc3", "10.0.0.3", "10.0.1.3", 2, []string{"10.0.0.1", "10.0.1.4"}, []string{"10.0.0.2", "10.0.0.4"}},
		{"pc4", "10.0.0.4", "10.0.1.4", 2, []string{"10.0.0.2", "10.0.1.3"}, []string{"10.0.0.1", "10.0.0.3"}},
	}
	var umls []*uml
	var peers [][]string
	for _, m := range machines {
		o := opts[m.name]
		c := umlConfig{ns: hosts[m.host-1], net: o[0], ip: m.ip, peers: m.peers,
			vars: map[string]string{"nopeers": strings.Join(m.nopeers, ","), "noipv6": "1"}}
		if m.secondip != "" {
			k, v, _ := strings.Cut(o[1], "=") // eth1=...: passed as an init variable, as in TestLabNetkitDomains
			c.vars[k], c.vars["secondip"] = v, m.secondip
		}
		umls = append(umls, bootUML(t, c))
		peers = append(peers, m.peers)
	}
	expectAllOK(t, umls, peers)
	for i, m := range machines {
		for _, o := range m.nopeers {
			if !umls[i].unreached(t, o) {
				t.Errorf("%s reached %s, on a domain it is not on", m.name, o)
			}
		}
	}

	// Host 1's tables: host 2's interfaces on B and C as EVPN entries on
	// host 2's VTEP, each in its own domain; those on A nowhere.
	want := map[string]string{"02:00:00:00:03:00": "B", "02:00:00:00:04:00": "C"}
	var fdb []evpnFDB
	waitUntil(t, 10*time.Second, "host 1 holding host 2's interfaces on B and C on VTEP "+vtepAddr(2), func() bool {
		fdb = nil
		ctlJSON(t, filepath.Join(run(1), "B.ctl"), &fdb, "-all", "fdb")
		found := 0
		for _, e := range fdb {
			if e.MAC == "02:00:00:00:03:01" || e.MAC == "02:00:00:00:04:01" {
				t.Fatalf("host 1 has %s, an interface on A, in switch %s", e.MAC, e.Switch)
			}
			if dom, ok := want[e.MAC]; ok {
				if e.Switch != dom {
					t.Fatalf("%s in switch %s, want %s only: %+v", e.MAC, e.Switch, dom, fdb)
				}
				if e.Remote && e.VTEP == vtepAddr(2) {
					found++
				}
			}
		}
		return found == len(want)
	})
	for _, u := range umls {
		u.release(t)
	}
}
