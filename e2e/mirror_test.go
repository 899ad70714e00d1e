package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/umlswitch/umlswitch/internal/nstest"
)

// Two UMLs, one on the daemon transport and one on BESS, ping each other
// through a switch with mirrors on. When the switch has stopped (SIGTERM
// flushes), tshark and tcpdump read the pcapng: every echo request and reply
// is there, on the interface named after the port it crossed, inbound where
// it entered and outbound where it left. A pcap mirror of one port's inbound
// side holds only that. A live reader (`umlswitch capture | tcpdump -r -`)
// decodes the pings while they flow, and one that quits after a few packets
// leaves the switch serving. A SPAN mirror to a tap shows the same pings to
// the host's tcpdump on that tap.
func TestMirrorCapturesUMLPings(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	needTool(t, "tcpdump", "tcpdump")
	ns := nstest.New(t)
	d := scratch(t)
	ctl, bess := filepath.Join(d, "sw.ctl"), filepath.Join(d, "sw.bess")
	all, in := filepath.Join(d, "all.pcapng"), filepath.Join(d, "daemon-in.pcap")
	sw := startSwitch(t, ns, []string{ctl, bess}, "-unix", ctl, "-port", "transport=bess,path="+bess,
		"-mirror", "file="+all, "-mirror", "file="+in+",format=pcap,ports=daemon,dir=in",
		"-mirror", "port=transport=tap,ifname=span0,create=1,up=1")
	// SPAN: the host's tcpdump on the tap the switch mirrors every frame to.
	ns.MustRun(t, "sysctl", "-qw", "net.ipv6.conf.span0.disable_ipv6=1")
	span := startBackground(t, ns.Cmd("tcpdump", "-i", "span0", "-n", "-l", "--immediate-mode", "icmp"))
	if _, ok := span.wait(regexp.MustCompile("listening on span0"), 10*time.Second); !ok {
		t.Fatalf("tcpdump on span0 did not start: %s", span.text())
	}

	// Live readers: one for the whole run, one that quits after 3 packets.
	live := exec.Command("sh", "-c", fmt.Sprintf("%s capture -s %s | tcpdump -n -l -r - icmp", env.umlswitch, ctl))
	liveOut := startBackground(t, live)
	quitter := exec.Command("sh", "-c", fmt.Sprintf("%s capture -s %s | tcpdump -n -c 3 -r -", env.umlswitch, ctl))
	if err := quitter.Start(); err != nil {
		t.Fatal(err)
	}
	if _, ok := sw.log.wait(regexp.MustCompile(`mirror reader joined`), 10*time.Second); !ok {
		t.Fatalf("no live reader joined:\n%s", sw.log.text())
	}

	const flood = 20
	u1 := bootUML(t, umlConfig{ns: ns, net: daemonNet(1, ctl), ip: ip(1), peers: []string{ip(2)},
		vars: map[string]string{"flood": fmt.Sprintf("%d,%s", flood, ip(2))}})
	u2 := bootUML(t, umlConfig{ns: ns, net: vec(2, "transport=bess,src="+filepath.Join(d, "uml2.sock")+",dst="+bess),
		iface: "vec0", ip: ip(2), peers: []string{ip(1)}})
	expectAllOK(t, []*uml{u1, u2}, [][]string{{ip(2)}, {ip(1)}})
	u1.waitLine(t, "^FLOODED ")
	if _, ok := liveOut.wait(regexp.MustCompile(`ICMP echo reply`), 10*time.Second); !ok {
		t.Errorf("the live reader decoded no echo reply:\n%s", liveOut.text())
	}
	done := make(chan error, 1)
	go func() { done <- quitter.Wait() }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		syscall.Kill(quitter.Process.Pid, syscall.SIGKILL)
		t.Error("tcpdump -c 3 on the live stream did not finish")
	}
	time.Sleep(500 * time.Millisecond) // the last SPAN frames reach tcpdump
	if n := strings.Count(span.text(), "ICMP echo request"); n < flood {
		t.Errorf("tcpdump on the SPAN tap saw %d echo requests, want at least %d:\n%s", n, flood, span.text())
	}
	u1.release(t)
	u2.release(t)
	sw.stop(t)
	if !strings.Contains(sw.log.text(), "mirror reader left") {
		t.Errorf("the switch did not notice the reader that quit:\n%s", sw.log.text())
	}

	// interface name, direction (0x1 in, 0x2 out), ICMP type, source address.
	lines := tshark(t, all, "-Y", "icmp", "-T", "fields", "-e", "frame.interface_name",
		"-e", "frame.packet_flags_direction", "-e", "icmp.type", "-e", "ip.src")
	count := func(ifPrefix, dir, typ, src string) int {
		n := 0
		for _, l := range lines {
			f := strings.Split(l, "\t")
			if len(f) == 4 && strings.HasPrefix(f[0], ifPrefix) && f[1] == dir && f[2] == typ && f[3] == src {
				n++
			}
		}
		return n
	}
	requestsIn, requestsOut := count("daemon", "0x00000001", "8", ip(1)), count("bess", "0x00000002", "8", ip(1))
	repliesIn, repliesOut := count("bess", "0x00000001", "0", ip(2)), count("daemon", "0x00000002", "0", ip(2))
	if requestsIn < flood || requestsOut != requestsIn || repliesIn < flood || repliesOut != repliesIn {
		t.Errorf("echo requests in on daemon %d, out on bess %d; replies in on bess %d, out on daemon %d (want >= %d each, pairs equal):\n%s",
			requestsIn, requestsOut, repliesIn, repliesOut, flood, strings.Join(lines, "\n"))
	}
	// Each frame once where it entered and once where it left: no duplicates.
	var ins, outs, requests int
	for _, l := range lines {
		f := strings.Split(l, "\t")
		if len(f) == 4 && f[1] == "0x00000001" {
			ins++
		} else if len(f) == 4 && f[1] == "0x00000002" {
			outs++
		}
		if len(f) == 4 && f[2] == "8" {
			requests++
		}
	}
	if ins != outs || ins+outs != len(lines) {
		t.Errorf("%d ICMP records: %d inbound, %d outbound", len(lines), ins, outs)
	}
	out, err := exec.Command("tcpdump", "-n", "-r", all, "icmp").Output()
	if err != nil || strings.Count(string(out), "ICMP echo request") != requests {
		t.Errorf("tcpdump -r found %d echo requests, tshark %d: %v\n%s", strings.Count(string(out), "ICMP echo request"), requests, err, out)
	}
	// The pcap mirror: the daemon port's inbound side only.
	pin := tshark(t, in, "-Y", "icmp", "-T", "fields", "-e", "icmp.type", "-e", "ip.src")
	if countLines(pin, "8\t"+ip(1)) != requestsIn || countLines(pin, "0\t"+ip(2)) != 0 {
		t.Errorf("daemon-in.pcap: %d requests from %s (want %d) and %d replies (want 0)",
			countLines(pin, "8\t"+ip(1)), ip(1), requestsIn, countLines(pin, "0\t"+ip(2)))
	}
	if _, err := os.Stat(ctl + ".capture"); err == nil {
		t.Error("capture socket left behind")
	}
}
