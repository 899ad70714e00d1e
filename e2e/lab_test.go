package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// A Netkit lab of four machines on three collision domains, chained
// pc1 -A- pc2 -B- pc3 -C- pc4, run by `umlswitch lab` and booted with the
// options it prints: pc1 to pc3 with the daemon form, pc4 with the vector
// (BESS) form. Every machine reaches its neighbours on each of its domains
// and none beyond: A and C share one IP subnet, so a frame crossing from
// one to the other would be answered. Each switch's MAC table holds its
// own domain's interfaces only.
func TestLabNetkitDomains(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	d := scratch(t)
	conf := filepath.Join(d, "lab.conf")
	os.WriteFile(conf, []byte(`LAB_DESCRIPTION="a chain of three collision domains"
pc1[0]=A
pc1[mem]=64
pc2[0]="A/02:00:00:00:02:00"
pc2[1]="B/02:00:00:00:02:01"
pc3[0]=B/02:00:00:00:03:00
pc3[1]=C/02:00:00:00:03:01
pc4[0]='C/02:00:00:00:04:00'
`), 0o644)
	run := filepath.Join(d, "run")
	var files []string
	for _, dom := range []string{"A", "B", "C"} {
		files = append(files, filepath.Join(run, dom+".ctl"), filepath.Join(run, dom+".bess"))
	}
	sw := startSwitchCmd(t, exec.Command(env.umlswitch, "lab", "-dir", run, conf), append(files, filepath.Join(run, "pc4-eth0.sock")))

	// The printed options: "NAME OPTION..." and "NAME vec: OPTION...".
	daemonOpts, vecOpts := map[string][]string{}, map[string][]string{}
	for _, line := range strings.Split(sw.log.text(), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || !regexp.MustCompile(`^pc\d$`).MatchString(f[0]) {
			continue
		}
		if f[1] == "vec:" {
			vecOpts[f[0]] = f[2:]
		} else {
			daemonOpts[f[0]] = f[1:]
		}
	}
	if got, want := strings.Join(daemonOpts["pc1"], " "), "eth0=daemon,,unix,"+run+"/A.ctl"; got != want {
		t.Errorf("pc1: %q, want %q", got, want)
	}
	if got, want := strings.Join(vecOpts["pc4"], " "), "vec0:transport=bess,dst="+run+"/C.bess,src="+run+"/pc4-eth0.sock,mac=02:00:00:00:04:00"; got != want {
		t.Errorf("pc4 vec: %q, want %q", got, want)
	}
	for _, m := range []string{"pc2", "pc3"} {
		if len(daemonOpts[m]) != 2 || len(vecOpts[m]) != 2 {
			t.Fatalf("%s: options %q and %q, want two interfaces:\n%s", m, daemonOpts[m], vecOpts[m], sw.log.text())
		}
	}

	// A is 10.0.0.0/24 (pc1 .1, pc2 .2), B 10.0.1.0/24 (pc2 .2, pc3 .3),
	// C 10.0.0.0/24 again (pc3 .3, pc4 .4).
	machines := []struct {
		name, ip, secondip string
		peers, nopeers     []string
		vector             bool
	}{
		{"pc1", "10.0.0.1", "", []string{"10.0.0.2"}, []string{"10.0.0.3", "10.0.0.4"}, false},
		{"pc2", "10.0.0.2", "10.0.1.2", []string{"10.0.0.1", "10.0.1.3"}, []string{"10.0.0.3", "10.0.0.4"}, false},
		{"pc3", "10.0.1.3", "10.0.0.3", []string{"10.0.1.2", "10.0.0.4"}, []string{"10.0.0.1", "10.0.0.2"}, false},
		{"pc4", "10.0.0.4", "", []string{"10.0.0.3"}, []string{"10.0.0.1", "10.0.0.2"}, true},
	}
	var umls []*uml
	var peers [][]string
	for _, m := range machines {
		c := umlConfig{ip: m.ip, peers: m.peers, vars: map[string]string{"nopeers": strings.Join(m.nopeers, ","), "noipv6": "1"}}
		opts := daemonOpts[m.name]
		if m.vector {
			opts, c.iface = vecOpts[m.name], "vec0"
		}
		c.net = opts[0]
		if m.secondip != "" {
			// The second interface's option is key=value like the init
			// variables: the kernel takes eth1=... for itself.
			k, v, _ := strings.Cut(opts[1], "=")
			c.vars[k], c.vars["secondip"] = v, m.secondip
		}
		umls = append(umls, bootUML(t, c))
		peers = append(peers, m.peers)
	}
	expectAllOK(t, umls, peers)
	for i, m := range machines {
		for _, o := range m.nopeers {
			if line := umls[i].waitLine(t, `^UNREACHED `+regexp.QuoteMeta(o)+` `); !strings.HasSuffix(line, " yes") {
				t.Errorf("%s reached %s on another collision domain", m.name, o)
			}
		}
	}

	// Every known interface's address is in its own domain's table only.
	var fdb []ctlMAC
	ctlJSON(t, filepath.Join(run, "B.ctl"), &fdb, "-all", "fdb")
	want := map[string]string{"02:00:00:00:02:00": "A", "02:00:00:00:02:01": "B", "02:00:00:00:03:00": "B",
		"02:00:00:00:03:01": "C", "02:00:00:00:04:00": "C"}
	seen := map[string]int{}
	for _, e := range fdb {
		if dom, ok := want[e.MAC]; ok {
			seen[e.MAC]++
			if e.Switch != dom {
				t.Errorf("%s learned on switch %s, want %s only", e.MAC, e.Switch, dom)
			}
		}
	}
	for m, dom := range want {
		if seen[m] == 0 {
			t.Errorf("%s not learned on %s (fdb %+v)", m, dom, fdb)
		}
	}
	for _, u := range umls {
		u.release(t)
	}
}
