package e2e

import (
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
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
	vars := func(vlan string, more ...string) map[string]string {
		m := map[string]string{"vlan": vlan, "noipv6": "1"}
		for i := 0; i+1 < len(more); i += 2 {
			m[more[i]] = more[i+1]
		}
		return m
	}
	umls := []*uml{
		bootUML(t, umlConfig{net: daemonNet(1, ctl), ip: a, peers: []string{b}, vars: vars("10")}),
		bootUML(t, umlConfig{net: daemonNet(2, ctl), ip: b, peers: []string{a}, vars: vars("10")}),
		bootUML(t, umlConfig{net: daemonNet(3, ctl), ip: c, vars: vars("20", "nopeers", nobody)}),
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
