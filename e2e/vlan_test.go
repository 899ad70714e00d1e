package e2e

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/umlswitch/umlswitch/internal/nstest"
)

// A switch with no VLAN settings passes 802.1Q tags untouched: two UMLs
// whose addresses sit on VLAN devices with id 10 reach each other, and a
// third on VLAN 20 sends its ARP requests tagged 20. The switch's live
// capture shows the pings tagged 10, the ARP requests tagged 20, and no
// untagged frame at all.
func TestTaggedFramesCrossAPlainSwitch(t *testing.T) {
	requireE2E(t)
	requireVLAN(t)
	needTool(t, "tshark", "tshark")
	t.Parallel()
	d := scratch(t)
	ctl, pcap := filepath.Join(d, "sw.ctl"), filepath.Join(d, "all.pcapng")
	sw := startSwitch(t, nil, []string{ctl}, "-unix", ctl)
	capture := exec.Command(env.umlswitch, "capture", "-s", ctl, "-w", pcap)
	if err := capture.Start(); err != nil {
		t.Fatal(err)
	}
	defer capture.Process.Kill()
	if _, ok := sw.log.wait(regexp.MustCompile(`mirror reader joined`), 10*time.Second); !ok {
		t.Fatalf("the capture reader did not join:\n%s", sw.log.text())
	}

	const a, b, c, nobody = "10.0.10.1", "10.0.10.2", "10.0.20.3", "10.0.20.4"
	umls := []*uml{
		bootUML(t, umlConfig{net: daemonNet(1, ctl), ip: a, peers: []string{b}, vars: umlVars("vlan", "10")}),
		bootUML(t, umlConfig{net: daemonNet(2, ctl), ip: b, peers: []string{a}, vars: umlVars("vlan", "10")}),
		bootUML(t, umlConfig{net: daemonNet(3, ctl), ip: c, vars: umlVars("vlan", "20", "nopeers", nobody)}),
	}
	expectAllOK(t, umls[:2], [][]string{{b}, {a}})
	if line := umls[2].waitLine(t, `^UNREACHED `); line != "UNREACHED "+nobody+" yes" {
		t.Errorf("UML on VLAN 20: %s", line)
	}
	for _, u := range umls {
		u.waiting(t)
	}
	time.Sleep(300 * time.Millisecond) // the last frames reach the capture
	capture.Process.Signal(syscall.SIGINT)
	capture.Wait()
	for _, u := range umls {
		u.release(t)
	}

	// Echo requests (type 8) and replies (type 0) both ways, tagged 10.
	pings := map[string]int{}
	for _, l := range tshark(t, pcap, "-Y", "vlan.id == 10 && icmp", "-T", "fields", "-e", "ip.src", "-e", "ip.dst", "-e", "icmp.type") {
		pings[l]++
	}
	for _, want := range []string{a + "\t" + b + "\t8", b + "\t" + a + "\t0", b + "\t" + a + "\t8", a + "\t" + b + "\t0"} {
		if pings[want] == 0 {
			t.Errorf("no ICMP %q tagged 10 in the capture; saw %v", want, pings)
		}
	}
	arps := tshark(t, pcap, "-Y", "vlan.id == 20 && arp.opcode == 1 && arp.src.proto_ipv4 == "+c, "-T", "fields", "-e", "arp.dst.proto_ipv4")
	if countLines(arps, nobody) == 0 {
		t.Errorf("no ARP request from %s tagged 20 in the capture; saw %q", c, arps)
	}
	if untagged := tshark(t, pcap, "-Y", "!vlan", "-T", "fields", "-e", "frame.number", "-e", "eth.src", "-e", "_ws.col.Info"); strings.Join(untagged, "") != "" {
		t.Errorf("untagged frames in the capture:\n%s", strings.Join(untagged, "\n"))
	}
}

// expectUnreached checks that u's pings to each of addrs went unanswered
// (it was booted with them in nopeers).
func expectUnreached(t *testing.T, u *uml, addrs ...string) {
	t.Helper()
	for _, a := range addrs {
		if !u.unreached(t, a) {
			t.Errorf("UML %s reached %s across VLANs", u.name, a)
		}
	}
}

// startTcpdump captures into file in ns with tcpdump args, once tcpdump
// says it listens (on a busy machine that takes more than a moment, and
// frames sent before are not in its file). The function it returns stops
// it and waits until it has written everything: without immediate mode
// and that wait, frames the kernel held for it went missing (7 received
// by the filter, 0 captured).
func startTcpdump(t *testing.T, ns *nstest.NS, file string, args ...string) (stop func()) {
	t.Helper()
	cmd := ns.Cmd("tcpdump", append([]string{"-n", "-U", "--immediate-mode", "-w", file}, args...)...)
	out := startBackground(t, cmd)
	if _, ok := out.wait(regexp.MustCompile(`listening on`), 20*time.Second); !ok {
		t.Fatalf("tcpdump did not start:\n%s", out.text())
	}
	return func() {
		t.Helper()
		time.Sleep(300 * time.Millisecond) // the last frames reach it
		cmd.Process.Signal(syscall.SIGINT)
		if _, ok := out.wait(regexp.MustCompile(`packets? captured`), 20*time.Second); !ok {
			t.Fatalf("tcpdump did not finish:\n%s", out.text())
		}
	}
}

// umlVars is an init variable map for a UML that sends only what the
// test makes it send, with more name, value pairs.
func umlVars(more ...string) map[string]string {
	m := map[string]string{"noipv6": "1"}
	for i := 0; i+1 < len(more); i += 2 {
		m[more[i]] = more[i+1]
	}
	return m
}

// Access ports of VLANs 10 and 20, a trunk of both that a UML tagging its
// own frames uses, and a host tap on a trunk: every UML has an address in
// one subnet, so only the VLANs keep them apart. VLAN 10 reaches VLAN 10
// (access to access, trunk to access), never VLAN 20; the tap sees every
// frame tagged; a UML that tags its frames on an access port is refused
// and counted (vlan-mismatch); the table holds each address in its VLAN.
func TestVLANAccessAndTrunkPorts(t *testing.T) {
	requireE2E(t)
	requireVLAN(t)
	needTool(t, "tcpdump", "tcpdump")
	t.Parallel()
	ns := nstest.New(t)
	d := scratch(t)
	v10, v20, tr := filepath.Join(d, "v10.ctl"), filepath.Join(d, "v20.ctl"), filepath.Join(d, "trunk.ctl")
	startSwitch(t, ns, []string{v10, v20, tr},
		"-port", "transport=daemon,path="+v10+",vlan=10",
		"-port", "transport=daemon,path="+v20+",vlan=20",
		"-port", "transport=daemon,path="+tr+",trunk=10;20",
		"-port", "transport=tap,ifname=vtrunk,create=1,up=1,name=host,trunk=10;20")
	pcap := filepath.Join(d, "trunk.pcap")
	stopDump := startTcpdump(t, ns, pcap, "-Q", "in", "-i", "vtrunk") // what the switch sends the host

	a, b, c, tagger, wrong := ip(1), ip(2), ip(3), ip(4), "10.0.20.5"
	umls := []*uml{
		bootUML(t, umlConfig{ns: ns, net: daemonNet(1, v10), ip: a, peers: []string{b, tagger}, vars: umlVars("nopeers", c)}),
		bootUML(t, umlConfig{ns: ns, net: daemonNet(2, v10), ip: b, peers: []string{a}}),
		bootUML(t, umlConfig{ns: ns, net: daemonNet(3, v20), ip: c, vars: umlVars("nopeers", a+","+b+","+tagger)}),
		bootUML(t, umlConfig{ns: ns, net: daemonNet(4, tr), ip: tagger, peers: []string{a, b}, vars: umlVars("vlan", "10", "nopeers", c)}),
		bootUML(t, umlConfig{ns: ns, net: daemonNet(5, v20), ip: wrong, vars: umlVars("vlan", "20", "nopeers", "10.0.20.6")}),
	}
	expectAllOK(t, []*uml{umls[0], umls[1], umls[3]}, [][]string{{b, tagger}, {a}, {a, b}})
	for i, addrs := range map[int][]string{0: {c}, 2: {a, b, tagger}, 3: {c}} {
		expectUnreached(t, umls[i], addrs...)
	}
	for _, u := range umls {
		u.waiting(t)
	}

	var fdb []ctlMAC
	ctlJSON(t, v10, &fdb, "fdb")
	vlanOf := map[string]int{}
	for _, e := range fdb {
		vlanOf[e.MAC] = e.VLAN
	}
	for i, want := range map[int]int{1: 10, 2: 10, 3: 20, 4: 10} {
		if got, ok := vlanOf[mac(i)]; !ok || got != want {
			t.Errorf("%s learned in VLAN %d (listed: %v), want %d", mac(i), got, ok, want)
		}
	}
	if _, ok := vlanOf[mac(5)]; ok {
		t.Errorf("the tagging UML on an access port was learned: %+v", fdb)
	}
	var ports []ctlPort
	ctlJSON(t, v10, &ports, "ports")
	mismatched := 0
	for _, p := range ports {
		mismatched += int(p.Drops["vlan-mismatch"])
		if n := p.Drops["vlan-filtered"]; n > 0 {
			t.Errorf("port %s: %d frames of a VLAN it does not carry", p.Name, n)
		}
	}
	if mismatched == 0 {
		t.Errorf("no vlan-mismatch drop for the UML tagging its frames on an access port: %+v", ports)
	}
	for _, u := range umls {
		u.release(t)
	}
	stopDump()

	// What the host's trunk saw: tcpdump -e writes "vlan N" for a tag.
	out, err := exec.Command("tcpdump", "-n", "-e", "-r", pcap).CombinedOutput()
	if err != nil {
		t.Fatalf("tcpdump -r: %v\n%s", err, out)
	}
	seen := map[string]int{}
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		switch {
		case strings.HasPrefix(l, "reading from"):
		case strings.Contains(l, "vlan 10,") && (strings.Contains(l, a) || strings.Contains(l, b) || strings.Contains(l, tagger)):
			seen["10"]++
		case strings.Contains(l, "vlan 20,") && strings.Contains(l, c):
			seen["20"]++
		case strings.Contains(l, "vlan "):
			seen["other"]++
		default:
			t.Errorf("an untagged frame on the trunk: %s", l)
		}
	}
	if seen["10"] == 0 || seen["20"] == 0 || seen["other"] != 0 {
		t.Errorf("frames on the host's trunk by VLAN: %v\n%s", seen, out)
	}
}

// A lab that tags its own frames with VLAN 10 crosses a GRE link between
// two switches inside service VLAN 100 (qinq=100 on both ends, a trunk in
// between), full-sized frames included, while the same customer VLAN in
// service VLAN 200 stays apart. Switch A's capture shows the frames on
// the link with both tags, 802.1ad outside.
func TestQinQAcrossAGRELink(t *testing.T) {
	requireE2E(t)
	requireVLAN(t)
	needTool(t, "tshark", "tshark")
	t.Parallel()
	ns := nstest.New(t)
	d := scratch(t)
	a100, a200, b100, b200 := filepath.Join(d, "a100.ctl"), filepath.Join(d, "a200.ctl"), filepath.Join(d, "b100.ctl"), filepath.Join(d, "b200.ctl")
	swA := startSwitch(t, ns, []string{a100, a200},
		"-port", "transport=daemon,path="+a100+",qinq=100",
		"-port", "transport=daemon,path="+a200+",qinq=200",
		"-port", "transport=gre,src=127.0.0.2,dst=127.0.0.3,trunk=100;200,name=link")
	startSwitch(t, ns, []string{b100, b200},
		"-port", "transport=gre,src=127.0.0.3,dst=127.0.0.2,trunk=100;200,name=link",
		"-port", "transport=daemon,path="+b100+",qinq=100",
		"-port", "transport=daemon,path="+b200+",qinq=200")
	pcap := filepath.Join(d, "a.pcapng")
	capture := ns.Cmd(env.umlswitch, "capture", "-s", a100, "-w", pcap)
	startBackground(t, capture)
	if _, ok := swA.log.wait(regexp.MustCompile(`mirror reader joined`), 10*time.Second); !ok {
		t.Fatalf("the capture reader did not join:\n%s", swA.log.text())
	}

	vlan10 := func(more ...string) map[string]string { return umlVars(append([]string{"vlan", "10"}, more...)...) }
	umls := []*uml{
		bootUML(t, umlConfig{ns: ns, net: daemonNet(1, a100), ip: ip(1), peers: []string{ip(2)}, vars: vlan10("big", "1472", "nopeers", ip(3))}),
		bootUML(t, umlConfig{ns: ns, net: daemonNet(2, b100), ip: ip(2), peers: []string{ip(1)}, vars: vlan10("nopeers", ip(4))}),
		bootUML(t, umlConfig{ns: ns, net: daemonNet(3, b200), ip: ip(3), peers: []string{ip(4)}, vars: vlan10("nopeers", ip(1))}),
		bootUML(t, umlConfig{ns: ns, net: daemonNet(4, a200), ip: ip(4), peers: []string{ip(3)}, vars: vlan10("nopeers", ip(2))}),
	}
	expectAllOK(t, umls, [][]string{{ip(2)}, {ip(1)}, {ip(4)}, {ip(3)}})
	if line := umls[0].waitLine(t, `^BIG `); line != "BIG "+ip(2)+" ok" {
		t.Errorf("a full-sized frame did not cross in two tags: %s", line)
	}
	for i, u := range umls {
		expectUnreached(t, u, ip([]int{3, 4, 1, 2}[i]))
	}
	for _, u := range umls {
		u.waiting(t)
	}
	time.Sleep(300 * time.Millisecond) // the last frames reach the capture
	capture.Process.Signal(syscall.SIGINT)
	time.Sleep(300 * time.Millisecond)
	for _, u := range umls {
		u.release(t)
	}

	inner := func(filter string) []string {
		var out []string
		for _, l := range tshark(t, pcap, "-Y", filter, "-T", "fields", "-e", "ieee8021ad.id", "-e", "vlan.id", "-e", "frame.len") {
			if l != "" {
				out = append(out, l)
			}
		}
		return out
	}
	for svc, pair := range map[string][2]string{"100": {ip(1), ip(2)}, "200": {ip(3), ip(4)}} {
		got := inner(fmt.Sprintf("ieee8021ad.id == %s && vlan.id == 10 && icmp && ip.addr == %s && ip.addr == %s", svc, pair[0], pair[1]))
		if len(got) == 0 {
			t.Errorf("no ping between %s and %s in 802.1ad %s and 802.1Q 10 on the link", pair[0], pair[1], svc)
		}
	}
	if full := inner("ieee8021ad.id == 100 && vlan.id == 10 && frame.len == 1522"); len(full) == 0 {
		t.Error("no 1522-byte frame (1500 bytes of IP in two tags) on the link")
	}
	if crossed := inner("(ieee8021ad.id == 100 && ip.addr == " + ip(3) + ") || (ieee8021ad.id == 200 && ip.addr == " + ip(1) + ")"); len(crossed) > 0 {
		t.Errorf("frames in the wrong service VLAN: %q", crossed)
	}
}
