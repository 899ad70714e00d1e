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

// vec is a UML vector interface spec with a fixed MAC.
func vec(i int, opts string) string { return fmt.Sprintf("vec0:%s,mac=%s", opts, mac(i)) }

// member is one UML of a scenario: its interface and address.
type member struct {
	net, iface, ip string
}

// bootAll boots every member in ns, each pinging all the others, and checks
// that everyone reached everyone, then lets them go.
func bootAll(t *testing.T, ns *nstest.NS, members []member) {
	t.Helper()
	var umls []*uml
	var peers [][]string
	for i, m := range members {
		var p []string
		for j, o := range members {
			if j != i {
				p = append(p, o.ip)
			}
		}
		peers = append(peers, p)
		umls = append(umls, bootUML(t, umlConfig{ns: ns, net: m.net, iface: m.iface, ip: m.ip, peers: p}))
	}
	expectAllOK(t, umls, peers)
	for _, u := range umls {
		u.release(t)
	}
}

// One switch, one UML per transport, all reaching each other: frames cross
// between the daemon protocol, BESS, GRE and L2TPv3 over UDP.
func TestOneUMLPerTransport(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	ns := nstest.New(t)
	d := scratch(t)
	ctl, bess := filepath.Join(d, "sw.ctl"), filepath.Join(d, "sw.bess")
	startSwitch(t, ns, []string{ctl, bess}, "-unix", ctl, "-port", "transport=bess,path="+bess,
		"-port", "transport=gre,src=127.0.0.2,dst=127.0.0.3",
		"-port", "transport=l2tpv3,udp=1,src=127.0.0.2,dst=127.0.0.4,srcport=17001,dstport=17002,rx_session=11,tx_session=12")
	bootAll(t, ns, []member{
		{daemonNet(1, ctl), "eth0", ip(1)},
		{vec(2, "transport=bess,src="+filepath.Join(d, "uml2.sock")+",dst="+bess), "vec0", ip(2)},
		{vec(3, "transport=gre,src=127.0.0.3,dst=127.0.0.2"), "vec0", ip(3)},
		{vec(4, "transport=l2tpv3,udp=1,src=127.0.0.4,dst=127.0.0.2,srcport=17002,dstport=17001,rx_session=12,tx_session=11"), "vec0", ip(4)},
	})
}

// Several UMLs per transport to one switch address: three on one BESS
// listener, three GRE peers of 127.0.0.2, three L2TPv3 sessions on
// 127.0.0.2:17001. Each reaches all the others.
func TestManyUMLsPerTransport(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	ns := nstest.New(t)
	d := scratch(t)
	bess := filepath.Join(d, "sw.bess")
	args := []string{"-port", "transport=bess,path=" + bess}
	var members []member
	for i := 1; i <= 3; i++ {
		members = append(members, member{vec(i, fmt.Sprintf("transport=bess,src=%s/uml%d.sock,dst=%s", d, i, bess)), "vec0", ip(i)})
	}
	for i := 4; i <= 6; i++ {
		args = append(args, "-port", fmt.Sprintf("transport=gre,src=127.0.0.2,dst=127.0.0.%d", 10+i))
		members = append(members, member{vec(i, fmt.Sprintf("transport=gre,src=127.0.0.%d,dst=127.0.0.2", 10+i)), "vec0", ip(i)})
	}
	for i := 7; i <= 9; i++ {
		args = append(args, "-port", fmt.Sprintf("transport=l2tpv3,udp=1,src=127.0.0.2,dst=127.0.0.%d,srcport=17001,dstport=%d,rx_session=%d,tx_session=%d",
			10+i, 17000+i, 30+i, 40+i))
		members = append(members, member{vec(i, fmt.Sprintf("transport=l2tpv3,udp=1,src=127.0.0.%d,dst=127.0.0.2,srcport=%d,dstport=17001,rx_session=%d,tx_session=%d",
			10+i, 17000+i, 40+i, 30+i)), "vec0", ip(i)})
	}
	sw := startSwitch(t, ns, []string{bess}, args...)
	bootAll(t, ns, members)
	// One socket served the three GRE peers and one the three sessions.
	for _, want := range []string{`transport=gre local=127.0.0.2:0`, `transport=l2tpv3/udp local=127.0.0.2:17001`} {
		if n := len(regexp.MustCompile(`msg=listening `+want).FindAllString(sw.log.text(), -1)); n != 1 {
			t.Errorf("%d sockets for %s, want 1", n, want)
		}
	}
}

// capture runs tcpdump on ns's loopback until stop is called. Immediate
// mode: otherwise libpcap holds packets in a ring block until a timeout,
// and stopping before it can lose them all.
func capture(t *testing.T, ns *nstest.NS, file, filter string) (stop func()) {
	t.Helper()
	needTool(t, "tcpdump", "tcpdump")
	cmd := ns.Cmd("tcpdump", "-i", "lo", "--immediate-mode", "-U", "-w", file, filter)
	out, exited, err := startCollecting(cmd)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := out.wait(regexp.MustCompile("listening on lo"), 10*time.Second); !ok {
		t.Fatalf("tcpdump did not start: %s", out.text())
	}
	return func() {
		cmd.Process.Signal(syscall.SIGINT)
		<-exited
	}
}

// tshark decodes file with args and returns one line per packet.
func tshark(t *testing.T, file string, args ...string) []string {
	t.Helper()
	needTool(t, "tshark", "tshark")
	// occurrence=f: the outer header's field, not an inner IP packet's too.
	out, err := exec.Command("tshark", append([]string{"-r", file, "-E", "occurrence=f"}, args...)...).Output()
	if err != nil {
		t.Fatalf("tshark %v: %v", args, err)
	}
	return strings.Split(strings.TrimSpace(string(out)), "\n")
}

// countLines counts the lines equal to want.
func countLines(lines []string, want string) int {
	n := 0
	for _, l := range lines {
		if l == want {
			n++
		}
	}
	return n
}

// GRE with keys and sequence numbers, and L2TPv3 with 64-bit cookies and a
// counter over UDP and with a 32-bit cookie over IP, against UML's own
// implementation. Values past 2^31 are written as UML needs them. The
// packets on the wire are checked with tshark's dissectors, both ways.
func TestKeysSequencesCookiesCounters(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	ns := nstest.New(t)
	d := scratch(t)
	ctl, pcap := filepath.Join(d, "sw.ctl"), filepath.Join(d, "wire.pcap")
	stop := capture(t, ns, pcap, "ip proto 47 or ip proto 115 or udp port 17001")
	startSwitch(t, ns, []string{ctl}, "-unix", ctl,
		"-port", "transport=gre,src=127.0.0.2,dst=127.0.0.3,rx_key=-2,tx_key=7,sequence=1",
		"-port", "transport=l2tpv3,udp=1,src=127.0.0.2,dst=127.0.0.4,srcport=17001,dstport=17002,rx_session=-1,tx_session=12,rx_cookie=0x1122334455667788,tx_cookie=0x99,cookie64=1,counter=1",
		"-port", "transport=l2tpv3,src=127.0.0.2,dst=127.0.0.5,rx_session=21,tx_session=22,rx_cookie=0xabcd,tx_cookie=0xdcba,counter=1,pin_counter=1")
	bootAll(t, ns, []member{
		{daemonNet(1, ctl), "eth0", ip(1)},
		{vec(3, "transport=gre,src=127.0.0.3,dst=127.0.0.2,rx_key=7,tx_key=-2,sequence=1"), "vec0", ip(3)},
		{vec(4, "transport=l2tpv3,udp=1,src=127.0.0.4,dst=127.0.0.2,srcport=17002,dstport=17001,rx_session=12,tx_session=-1,rx_cookie=0x99,tx_cookie=0x1122334455667788,cookie64=1,counter=1"), "vec0", ip(4)},
		{vec(5, "transport=l2tpv3,src=127.0.0.5,dst=127.0.0.2,rx_session=22,tx_session=21,rx_cookie=0xdcba,tx_cookie=0xabcd,counter=1"), "vec0", ip(5)},
	})
	stop()
	t.Cleanup(func() {
		if t.Failed() {
			if fi, err := os.Stat(pcap); err == nil {
				t.Logf("capture: %d bytes", fi.Size())
			}
			exec.Command("cp", pcap, "/tmp/e2e-failed-wire.pcap").Run()
		}
	})

	// GRE: both directions carry TEB with keys and sequence numbers.
	gre := tshark(t, pcap, "-Y", "gre", "-T", "fields", "-e", "ip.src", "-e", "gre.key", "-e", "gre.proto", "-e", "gre.flags.sequence_number")
	if countLines(gre, "127.0.0.3\t0xfffffffe\t0x6558\t1") < 5 || countLines(gre, "127.0.0.2\t0x00000007\t0x6558\t1") < 5 {
		t.Errorf("GRE as tshark reads it:\n%s", strings.Join(gre, "\n"))
	}
	seqs := tshark(t, pcap, "-Y", "gre && ip.src==127.0.0.2", "-T", "fields", "-e", "gre.sequence_number")
	if len(seqs) < 3 || seqs[0] != "1" || seqs[1] != "2" || seqs[2] != "3" {
		t.Errorf("umlswitch's GRE sequence numbers: %v, want 1, 2, 3...", seqs)
	}
	// L2TPv3 over UDP with 64-bit cookies; over IP with 32-bit ones.
	udp := tshark(t, pcap, "-d", "udp.port==17001,l2tp", "-o", "l2tp.cookie_size:8 Byte Cookie", "-o", "l2tp.l2_specific:Default L2-Specific",
		"-Y", "l2tp && udp", "-T", "fields", "-e", "ip.src", "-e", "l2tp.sid", "-e", "l2tp.cookie")
	if countLines(udp, "127.0.0.4\t0xffffffff\t1122334455667788") < 5 || countLines(udp, "127.0.0.2\t0x0000000c\t0000000000000099") < 5 {
		t.Errorf("L2TPv3/UDP as tshark reads it:\n%s", strings.Join(udp, "\n"))
	}
	ipl := tshark(t, pcap, "-o", "l2tp.cookie_size:4 Byte Cookie", "-o", "l2tp.l2_specific:Default L2-Specific",
		"-Y", "l2tp && ip.proto==115", "-T", "fields", "-e", "ip.src", "-e", "l2tp.sid", "-e", "l2tp.cookie", "-e", "l2tp.l2_spec_sequence")
	var fromUML []string
	pinned := 0
	for _, l := range ipl {
		if rest, ok := strings.CutPrefix(l, "127.0.0.5\t0x00000015\t0000abcd\t"); ok {
			fromUML = append(fromUML, rest) // UML counts from 1
		}
		if l == "127.0.0.2\t0x00000016\t0000dcba\t0" {
			pinned++ // umlswitch pins its counter at 0
		}
	}
	if len(fromUML) < 3 || fromUML[0] != "1" || fromUML[1] != "2" || fromUML[2] != "3" {
		t.Errorf("L2TPv3/IP from UML as tshark reads it:\n%s", strings.Join(ipl, "\n"))
	}
	if pinned < 5 {
		t.Errorf("L2TPv3/IP from umlswitch as tshark reads it:\n%s", strings.Join(ipl, "\n"))
	}
}

// Two switches on two hosts (namespaces joined by a veth), linked by a
// tunnel port each: a UML behind one reaches a UML behind the other. This
// is how a lab grows past one machine.
func TestTwoHostsJoinedByTunnel(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	for _, link := range []struct{ name, a, b string }{
		{"gre", "transport=gre,src=10.99.0.1,dst=10.99.0.2,rx_key=42,tx_key=42",
			"transport=gre,src=10.99.0.2,dst=10.99.0.1,rx_key=42,tx_key=42"},
		{"l2tpv3", "transport=l2tpv3,udp=1,src=10.99.0.1,dst=10.99.0.2,srcport=1701,dstport=1701,rx_session=5,tx_session=6",
			"transport=l2tpv3,udp=1,src=10.99.0.2,dst=10.99.0.1,srcport=1701,dstport=1701,rx_session=6,tx_session=5"},
	} {
		t.Run(link.name, func(t *testing.T) {
			t.Parallel()
			hostA, hostB := nstest.New(t), nstest.New(t)
			hostA.MustRun(t, "ip", "link", "add", "up0", "type", "veth", "peer", "name", "up0", "netns", hostB.Name)
			for i, h := range []*nstest.NS{hostA, hostB} {
				h.MustRun(t, "ip", "addr", "add", fmt.Sprintf("10.99.0.%d/24", i+1), "dev", "up0")
				h.MustRun(t, "ip", "link", "set", "up0", "up")
			}
			d := scratch(t)
			ctlA, ctlB := filepath.Join(d, "a.ctl"), filepath.Join(d, "b.ctl")
			startSwitch(t, hostA, []string{ctlA}, "-unix", ctlA, "-port", link.a)
			startSwitch(t, hostB, []string{ctlB}, "-unix", ctlB, "-port", link.b)
			a := bootUML(t, umlConfig{ns: hostA, net: daemonNet(1, ctlA), ip: ip(1), peers: []string{ip(2)}})
			b := bootUML(t, umlConfig{ns: hostB, net: daemonNet(2, ctlB), ip: ip(2), peers: []string{ip(1)}})
			expectAllOK(t, []*uml{a, b}, [][]string{{ip(2)}, {ip(1)}})
			a.release(t)
			b.release(t)
		})
	}
}

// QEMU's -netdev l2tpv3 is wire-compatible with UML's: a QEMU joins the
// switch with the mirrored options (README maps the names). As with
// -netdev vde, its user network answers through an internal hub.
func TestQEMUNetdevL2TPv3WithUML(t *testing.T) {
	requireE2E(t)
	needTool(t, "qemu-system-x86_64", "qemu-system-x86")
	t.Parallel()
	ns := nstest.New(t)
	ctl := filepath.Join(scratch(t), "sw.ctl")
	sw := startSwitch(t, ns, []string{ctl}, "-unix", ctl,
		"-port", "transport=l2tpv3,udp=1,src=127.0.0.2,dst=127.0.0.6,srcport=17001,dstport=17006,rx_session=0x31,tx_session=0x32,rx_cookie=0x11,tx_cookie=0x22,counter=1")
	startBackground(t, ns.Cmd("qemu-system-x86_64", "-nographic", "-nodefaults", "-display", "none", "-m", "64",
		"-netdev", "l2tpv3,id=l,src=127.0.0.6,dst=127.0.0.2,udp=on,srcport=17006,dstport=17001,txsession=0x31,rxsession=0x32,txcookie=0x11,rxcookie=0x22,counter=on",
		"-netdev", "user,id=u",
		"-netdev", "hubport,id=h1,hubid=0,netdev=l", "-netdev", "hubport,id=h2,hubid=0,netdev=u"))
	u := bootUML(t, umlConfig{ns: ns, net: daemonNet(1, ctl), ip: "10.0.2.15", peers: []string{"10.0.2.2"}})
	expectAllOK(t, []*uml{u}, [][]string{{"10.0.2.2"}})
	u.release(t)
	if _, ok := sw.log.wait(regexp.MustCompile(`msg="port attached" .*l2tpv3/udp`), time.Second); !ok {
		t.Error("no l2tpv3 port")
	}
}
