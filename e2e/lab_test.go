package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/umlswitch/umlswitch/internal/nstest"
)

// A Netkit lab of four machines on three collision domains, chained
// pc1 -A- pc2 -B- pc3 -C- pc4, run by `umlswitch lab` and booted with the
// options it prints: pc1 to pc3 with the daemon form, pc4 with the vector
// (BESS) form. Every machine reaches its neighbours on each of its domains
// and none beyond: A and C share one IP subnet, so a frame crossing from
// one to the other would be answered. Each switch's MAC table holds its
// own domain's interfaces only.
// labOptions reads the options a lab printed, per machine: "NAME
// OPTION..." for the daemon transport and "NAME vec: OPTION..." for BESS.
func labOptions(sw *switchProc) (daemonOpts, vecOpts map[string][]string) {
	daemonOpts, vecOpts = map[string][]string{}, map[string][]string{}
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
	return daemonOpts, vecOpts
}

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

	daemonOpts, vecOpts := labOptions(sw)
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
			if !umls[i].unreached(t, o) {
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

// A lab run with -hub floods every frame as Netkit's uml_switch did: a
// third machine on the domain receives the pings two others exchange, and
// the table stays empty. Its lab.ext names an interface the host lacks,
// so the lab creates a tap for it, and the host reaches the machines
// through that tap. The BESS listener is named after its domain.
func TestLabHubAndHostTap(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	ns := nstest.New(t)
	d := scratch(t)
	conf, run := filepath.Join(d, "lab.conf"), filepath.Join(d, "run")
	os.WriteFile(conf, []byte("pc1[0]=A\npc2[0]=A\npc3[0]=A\n"), 0o644)
	os.WriteFile(filepath.Join(d, "lab.ext"), []byte("# the host on domain A\nA labtap0\n"), 0o644)
	sw := startSwitchCmd(t, ns.Cmd(env.umlswitch, "lab", "-hub", "-dir", run, conf),
		[]string{filepath.Join(run, "A.ctl"), filepath.Join(run, "A.bess")})
	waitLog(t, sw, `msg="tap created" ifname=labtap0`, "the lab did not create a tap for lab.ext's labtap0")
	const host = "10.0.0.100"
	ns.MustRun(t, "ip", "addr", "add", host+"/24", "dev", "labtap0")

	opts, _ := labOptions(sw)
	const flood = 50
	pc1 := bootUML(t, umlConfig{ns: ns, net: opts["pc1"][0], ip: ip(1), peers: []string{ip(2), host},
		vars: umlVars("flood", fmt.Sprintf("%d,%s", flood, ip(2)))})
	pc2 := bootUML(t, umlConfig{ns: ns, net: opts["pc2"][0], ip: ip(2), peers: []string{ip(1)}, vars: umlVars()})
	pc3 := bootUML(t, umlConfig{ns: ns, net: opts["pc3"][0], ip: ip(3), peers: []string{host}, vars: umlVars()})
	expectAllOK(t, []*uml{pc1, pc2, pc3}, [][]string{{ip(2), host}, {ip(1)}, {host}})
	if line := pc1.waitLine(t, `^FLOODED `); !strings.Contains(line, fmt.Sprintf("%d packets received", flood)) {
		t.Errorf("pc1's pings to pc2: %s", line)
	}
	for _, u := range []*uml{pc1, pc2, pc3} {
		u.waiting(t)
	}
	var fdb []ctlMAC
	ctlJSON(t, filepath.Join(run, "A.ctl"), &fdb, "fdb")
	var ports []ctlPort
	ctlJSON(t, filepath.Join(run, "A.ctl"), &ports, "ports")
	pc1.release(t)
	pc2.release(t)
	rx := pc3.release(t)
	if rx < 2*flood {
		t.Errorf("pc3 received %d frames; a hub gives it pc1's %d pings to pc2 and their replies", rx, flood)
	}
	if len(fdb) != 0 {
		t.Errorf("a hub learned addresses: %+v", fdb)
	}
	bessNamed := false
	for _, p := range ports {
		bessNamed = bessNamed || p.Name == "A.bess"
	}
	if !bessNamed {
		t.Errorf("no port A.bess (the domain's BESS listener) in %+v", ports)
	}
}

// lab.ext's IFNAME.VLAN bridges a domain to a VLAN of a host interface,
// as Kathara does: a lab machine reaches a machine beyond the host's
// interface that only speaks VLAN 100 (a UML behind the tap far0 whose
// address sits on an 802.1Q device), and far0 carries the lab's frames
// tagged. (A tap, not a veth: UML's raw transport would miss the tags the
// kernel takes out of frames a packet socket receives.)
func TestLabExtVLANBridge(t *testing.T) {
	requireE2E(t)
	requireVLAN(t)
	t.Parallel()
	ns := nstest.New(t)
	ns.MustRun(t, "ip", "tuntap", "add", "far0", "mode", "tap")
	ns.MustRun(t, "sysctl", "-qw", "net.ipv6.conf.far0.disable_ipv6=1")
	ns.MustRun(t, "ip", "link", "set", "far0", "up")
	d := scratch(t)
	conf, run := filepath.Join(d, "lab.conf"), filepath.Join(d, "run")
	os.WriteFile(conf, []byte("pc1[0]=A\n"), 0o644)
	os.WriteFile(filepath.Join(d, "lab.ext"), []byte("A far0.100\n"), 0o644)
	sw := startSwitchCmd(t, ns.Cmd(env.umlswitch, "lab", "-dir", run, conf), []string{filepath.Join(run, "A.ctl")})
	opts, _ := labOptions(sw)
	opt := opts["pc1"][0]
	pcap := filepath.Join(d, "far0.pcap")
	stopDump := startTcpdump(t, ns, pcap, "-i", "far0")

	pc1 := bootUML(t, umlConfig{ns: ns, net: opt, ip: ip(1), peers: []string{ip(2)}, vars: umlVars()})
	far := bootUML(t, umlConfig{ns: ns, net: vec(2, "transport=tap,ifname=far0"), iface: "vec0", ip: ip(2), peers: []string{ip(1)},
		vars: umlVars("vlan", "100")})
	expectAllOK(t, []*uml{pc1, far}, [][]string{{ip(2)}, {ip(1)}})
	pc1.waiting(t)
	far.waiting(t)
	pc1.release(t)
	far.release(t)
	stopDump()
	out, err := exec.Command("tcpdump", "-n", "-e", "-r", pcap, "vlan 100 and icmp").CombinedOutput()
	if err != nil {
		t.Fatalf("tcpdump -r: %v\n%s", err, out)
	}
	for _, want := range []string{ip(1) + " > " + ip(2) + ": ICMP echo request", ip(2) + " > " + ip(1) + ": ICMP echo reply"} {
		found := false
		for _, l := range strings.Split(string(out), "\n") {
			found = found || (strings.Contains(l, want) && strings.Contains(l, "vlan 100,"))
		}
		if !found {
			t.Errorf("no %q tagged 100 on far0:\n%s", want, out)
		}
	}
}
