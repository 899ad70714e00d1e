package e2e

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/umlswitch/umlswitch/bpf"
	"github.com/umlswitch/umlswitch/internal/nstest"
)

// A UML on the BESS transport reaches an address on a tap the switch
// created with create=1,up=1, and the host reaches the UML; the tap goes
// away with the switch.
func TestUMLAndCreatedTap(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	ns := nstest.New(t)
	d := scratch(t)
	bess := filepath.Join(d, "sw.bess")
	sw := startSwitch(t, ns, []string{bess}, "-port", "transport=bess,path="+bess,
		"-port", "transport=tap,ifname=lab0,create=1,up=1,mtu=1500")
	ns.MustRun(t, "ip", "addr", "add", "10.0.0.254/24", "dev", "lab0")
	u := bootUML(t, umlConfig{ns: ns, net: vec(1, "transport=bess,src="+filepath.Join(d, "uml1.sock")+",dst="+bess),
		iface: "vec0", ip: ip(1), peers: []string{"10.0.0.254"}})
	expectAllOK(t, []*uml{u}, [][]string{{"10.0.0.254"}})
	ns.MustRun(t, "busybox", "ping", "-c", "3", "-W", "2", ip(1))
	u.release(t)
	sw.stop(t)
	if out, err := ns.Cmd("ip", "link", "show", "lab0").CombinedOutput(); err == nil {
		t.Fatalf("lab0 outlived the switch:\n%s", out)
	}
}

// hostVeth makes, in ns, a veth pair: "sw0" for the switch's raw port and
// "host0" with 10.0.0.254/24, the host the UMLs talk to.
func hostVeth(t *testing.T, ns *nstest.NS) {
	t.Helper()
	ns.MustRun(t, "ip", "link", "add", "sw0", "type", "veth", "peer", "name", "host0")
	for _, dev := range []string{"sw0", "host0"} {
		ns.MustRun(t, "sysctl", "-qw", "net.ipv6.conf."+dev+".disable_ipv6=1")
		ns.MustRun(t, "ip", "link", "set", dev, "up")
	}
	ns.MustRun(t, "ip", "addr", "add", "10.0.0.254/24", "dev", "host0")
}

// probe sends a TCP SYN and a UDP datagram from the host to addr and
// reports whether either drew an answer (a reset, a port unreachable).
func probe(t *testing.T, ns *nstest.NS, addr string) (tcpAnswered, udpAnswered bool) {
	t.Helper()
	err := ns.Do(func() error {
		c, err := net.DialTimeout("tcp", net.JoinHostPort(addr, "23"), 2*time.Second)
		if err == nil {
			c.Close()
			return errors.New("something listens on the UML's port 23")
		}
		tcpAnswered = !isTimeout(err)
		u, err := net.Dial("udp", net.JoinHostPort(addr, "9"))
		if err != nil {
			return err
		}
		defer u.Close()
		u.SetDeadline(time.Now().Add(2 * time.Second))
		buf := make([]byte, 16)
		for range 2 { // the first may only resolve the address
			u.Write([]byte("probe"))
			if _, err = u.Read(buf); !isTimeout(err) {
				udpAnswered = true
				break
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// A raw port on a veth: a UML reaches the host at the other end. With a
// filter that passes only ARP and ICMP, given as tcpdump text or as UML's
// binary file, ping still works both ways, a TCP or UDP probe from the host
// never reaches the UML (so it never answers), and the switch counts the
// filtered frames. Without a filter the same probes are answered, which
// shows the probes can tell.
func TestRawPortWithFilters(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	needTool(t, "tcpdump", "tcpdump")
	text, err := exec.Command("tcpdump", "-ddd", "arp or icmp").Output()
	if err != nil {
		t.Fatalf("tcpdump -ddd: %v", err)
	}
	raw, err := bpf.ParseText(string(text))
	if err != nil {
		t.Fatal(err)
	}
	binFile := filepath.Join(scratch(t), "arp-icmp.bpf")
	if err := os.WriteFile(binFile, bpf.Binary(raw), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, opts string
		filtered   bool
	}{
		{"none", "", false},
		{"tcpdump-text", ",bpf=" + string(text), true},
		{"bpffile-binary", ",bpffile=" + binFile, true},
		// The same on AF_XDP: the filter runs translated in the XDP program.
		{"xdp-none", ",xdp=1", false},
		{"xdp-tcpdump-text", ",xdp=1,bpf=" + string(text), true},
		{"xdp-bpffile-binary", ",xdp=1,bpffile=" + binFile, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			ns := nstest.New(t)
			hostVeth(t, ns)
			ctl := filepath.Join(scratch(t), "sw.ctl")
			sw := startSwitch(t, ns, []string{ctl}, "-unix", ctl, "-port", "transport=raw,ifname=sw0"+c.opts)
			u := bootUML(t, umlConfig{ns: ns, net: daemonNet(1, ctl), ip: ip(1), peers: []string{"10.0.0.254"}})
			expectAllOK(t, []*uml{u}, [][]string{{"10.0.0.254"}})
			ns.MustRun(t, "busybox", "ping", "-c", "2", "-W", "2", ip(1))
			tcp, udp := probe(t, ns, ip(1))
			if c.filtered && (tcp || udp) {
				t.Errorf("a probe reached the UML through the filter: tcp answered %v, udp answered %v", tcp, udp)
			}
			if !c.filtered && (!tcp || !udp) {
				t.Errorf("without a filter the UML did not answer: tcp %v, udp %v", tcp, udp)
			}
			u.release(t)
			sw.stop(t)
			line, ok := sw.log.wait(regexp.MustCompile(`msg="port detached".*peer="raw sw0`), time.Second)
			if !ok {
				t.Fatalf("no detach line for the raw port:\n%s", sw.log.text())
			}
			m := regexp.MustCompile(`filtered=(\d+)`).FindStringSubmatch(line)
			n := 0
			if m != nil {
				n, _ = strconv.Atoi(m[1])
			}
			if c.filtered && n < 2 {
				t.Errorf("the switch counted %d filtered frames, want at least the two probes: %s", n, line)
			}
			if !c.filtered && n != 0 {
				t.Errorf("filtered frames counted without a filter: %s", line)
			}
		})
	}
}

// A TCP stream from the host to a UML through a host port: a tap, where
// with vnet_hdr=1 the host's stack hands over 64 KiB TSO frames and the
// switch cuts them into segments the UML accepts (without it the kernel
// cuts them), and a raw port on a veth, which sees the TSO frames whole
// and cuts them too. Every byte arrives each way. The other way, from a
// UML to the host through a tap, the switch with vnet_hdr=1 merges the
// UML's segments into segmentation-offload frames the host's stack takes
// whole: the tap receives fewer packets than the switch wrote frames.
func TestTCPStreamThroughHostPorts(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	for _, c := range []struct {
		name, port string
		fromUML    bool
	}{
		{"tap", "transport=tap,ifname=host0,create=1,up=1", false},
		{"tap-vnet_hdr", "transport=tap,ifname=host0,create=1,up=1,vnet_hdr=1", false},
		{"raw-veth", "transport=raw,ifname=sw0", false},
		{"raw-veth-xdp", "transport=raw,ifname=sw0,xdp=1", false},
		{"tap-from-uml", "transport=tap,name=host,ifname=host0,create=1,up=1", true},
		{"tap-vnet_hdr-from-uml", "transport=tap,name=host,ifname=host0,create=1,up=1,vnet_hdr=1", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			ns := nstest.New(t)
			if strings.HasPrefix(c.port, "transport=raw") {
				hostVeth(t, ns)
			}
			ctl := filepath.Join(scratch(t), "sw.ctl")
			startSwitch(t, ns, []string{ctl}, "-unix", ctl, "-port", c.port)
			if strings.HasPrefix(c.port, "transport=tap") {
				ns.MustRun(t, "ip", "addr", "add", "10.0.0.254/24", "dev", "host0")
			}
			const total = 8 << 20
			if c.fromUML {
				streamFromUML(t, ns, ctl, total, strings.Contains(c.port, "vnet_hdr=1"))
				return
			}
			u := bootUML(t, umlConfig{ns: ns, net: daemonNet(1, ctl), ip: ip(1), peers: []string{"10.0.0.254"},
				vars: map[string]string{"sink": "5001"}})
			expectAllOK(t, []*uml{u}, [][]string{{"10.0.0.254"}})
			if err := streamTo(ns, net.JoinHostPort(ip(1), "5001"), total); err != nil {
				t.Fatalf("sending %d bytes to the UML: %v", total, err)
			}
			if line := u.waitLine(t, "^SINK "); line != "SINK "+strconv.Itoa(total) {
				t.Fatalf("the UML read %q, want %d bytes", line, total)
			}
			u.release(t)
		})
	}
}

// streamFromUML has a UML on the switch at ctl send total bytes to a
// socket of the host at 10.0.0.254 on the tap host0 (port "host"), checks
// that all arrive, and logs the rate, how many frames the switch wrote to
// the tap and how many packets the tap received. With merged, the tap must
// have received fewer packets than the switch wrote frames.
func streamFromUML(t *testing.T, ns *nstest.NS, ctl string, total int, merged bool) {
	t.Helper()
	got := tcpSink(t, ns, "10.0.0.254:5002", int64(total), 90*time.Second)
	rxBefore, txBefore := tapRxPackets(t, ns, "host0"), portTxFrames(t, ctl, "host")
	u := bootUML(t, umlConfig{ns: ns, net: daemonNet(1, ctl), ip: ip(1), peers: []string{"10.0.0.254"},
		vars: map[string]string{"send": "10.0.0.254:5002:" + strconv.Itoa(total)}})
	expectAllOK(t, []*uml{u}, [][]string{{"10.0.0.254"}})
	r := <-got
	if r.err != nil || r.n != int64(total) {
		t.Fatalf("the host received %d of %d bytes from the UML: %v", r.n, total, r.err)
	}
	packets, frames := tapRxPackets(t, ns, "host0")-rxBefore, portTxFrames(t, ctl, "host")-txBefore
	t.Logf("%d bytes from the UML in %v, %.0f Mbit/s; the switch wrote %d frames to the tap, which received %d packets",
		r.n, r.elapsed.Round(time.Millisecond), float64(r.n-1)*8/r.elapsed.Seconds()/1e6, frames, packets)
	if frames < uint64(total/1500) {
		t.Errorf("the switch counted %d frames written to the tap for %d bytes", frames, total)
	}
	if merged && packets >= frames {
		t.Errorf("with vnet_hdr=1 the tap received %d packets for %d frames: no segments were merged", packets, frames)
	}
	u.waiting(t)
	u.release(t)
}

// portTxFrames is the switch's count of frames it wrote to port name.
func portTxFrames(t *testing.T, ctl, name string) uint64 {
	t.Helper()
	var ps []ctlPort
	ctlJSON(t, ctl, &ps, "ports")
	for _, p := range ps {
		if p.Name == name {
			return p.TxFrames
		}
	}
	t.Fatalf("no port %s in %+v", name, ps)
	return 0
}

// tapRxPackets is the receive counter of the host's interface dev in ns:
// what the switch wrote to it.
func tapRxPackets(t *testing.T, ns *nstest.NS, dev string) uint64 {
	t.Helper()
	out := strings.TrimSpace(ns.MustRun(t, "cat", "/sys/class/net/"+dev+"/statistics/rx_packets"))
	n, err := strconv.ParseUint(out, 10, 64)
	if err != nil {
		t.Fatalf("rx_packets of %s: %q", dev, out)
	}
	return n
}

// xdpOn reports whether ip link shows an XDP program on dev in ns.
func xdpOn(t *testing.T, ns *nstest.NS, dev string) bool {
	t.Helper()
	out := ns.MustRun(t, "ip", "-details", "link", "show", dev)
	return strings.Contains(out, "prog/xdp") || strings.Contains(out, " xdp")
}

// An AF_XDP raw port's program is on the interface while the port is
// there, and gone after ctl port del, after SIGTERM and after SIGKILL (a
// bpf_link: the kernel removes it with the process); the attach line and
// ctl ports say how the port reads. A UML reaches the host through it.
func TestXDPProgramLeavesWithThePort(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	ns := nstest.New(t)
	hostVeth(t, ns)
	ctl := filepath.Join(scratch(t), "sw.ctl")
	start := func() *switchProc {
		// No run state: a restart would otherwise replay the port del.
		sw := startSwitch(t, ns, []string{ctl}, "-state", "none", "-unix", ctl, "-port", "transport=raw,name=up,ifname=sw0,xdp=1")
		if !xdpOn(t, ns, "sw0") {
			t.Fatalf("no XDP program on sw0 with the port open:\n%s", ns.MustRun(t, "ip", "-details", "link", "show", "sw0"))
		}
		return sw
	}
	sw := start()
	if _, ok := sw.log.wait(regexp.MustCompile(`msg="port attached".*peer="raw sw0 \(xdp, (driver|generic) mode\)"`), 5*time.Second); !ok {
		t.Errorf("the attach line does not say AF_XDP:\n%s", sw.log.text())
	}
	if out := ctlRun(t, ctl, "ports"); !strings.Contains(out, "xdp") {
		t.Errorf("ctl ports does not say AF_XDP:\n%s", out)
	}
	u := bootUML(t, umlConfig{ns: ns, net: daemonNet(1, ctl), ip: ip(1), peers: []string{"10.0.0.254"}})
	expectAllOK(t, []*uml{u}, [][]string{{"10.0.0.254"}})
	u.release(t)
	ctlRun(t, ctl, "port", "del", "up")
	if xdpOn(t, ns, "sw0") {
		t.Error("XDP program still on sw0 after ctl port del")
	}
	sw.stop(t)

	sw = start()
	sw.stop(t)
	if xdpOn(t, ns, "sw0") {
		t.Error("XDP program still on sw0 after SIGTERM")
	}

	sw = start()
	sw.cmd.Process.Kill()
	<-sw.exited
	for deadline := time.Now().Add(5 * time.Second); xdpOn(t, ns, "sw0"); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("XDP program still on sw0 5 s after SIGKILL")
		}
	}
}

// An upgrade whose new switch cannot start fails, and the old switch
// serves on whole: its control socket file and its pid file stay, and a
// UML attaches afterwards. The new binary here is a script that runs the
// switch with one more port, a control socket in a folder that does not
// exist: the new switch takes the pid file and the sockets over, then
// fails.
func TestFailedUpgradeLeavesTheOldSwitchWhole(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	ns := nstest.New(t)
	hostVeth(t, ns)
	d := scratch(t)
	ctl, pidFile, bin := filepath.Join(d, "sw.ctl"), filepath.Join(d, "sw.pid"), filepath.Join(d, "umlswitch")
	copyBinary(t, bin)
	sw := startSwitchCmd(t, ns.Cmd(bin, "-log-level", "debug", "-unix", ctl, "-pidfile", pidFile,
		"-port", "transport=raw,ifname=sw0"), []string{ctl})
	before, err := os.ReadFile(pidFile) // the switch's own pid (ip netns exec forks)
	if err != nil {
		t.Fatal(err)
	}
	copyBinary(t, bin+".real")
	bad := filepath.Join(d, "missing", "x.ctl")
	script := fmt.Sprintf("#!/bin/sh\nexec %s.real \"$@\" -port transport=daemon,path=%s\n", bin, bad)
	if err := os.WriteFile(bin+".new", []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(bin+".new", bin); err != nil {
		t.Fatal(err)
	}
	out, err := ctlOutput(ctl, "upgrade")
	if err == nil || !strings.Contains(string(out), filepath.Dir(bad)) {
		t.Fatalf("ctl upgrade: %v\n%s", err, out)
	}
	if _, ok := sw.log.wait(regexp.MustCompile(`msg="upgrade failed: running on as before"`), 10*time.Second); !ok {
		t.Fatalf("no failed-upgrade line:\n%s", sw.log.text())
	}
	if fi, err := os.Lstat(ctl); err != nil || fi.Mode()&os.ModeSocket == 0 {
		t.Fatalf("the control socket is gone after the failed upgrade: %v", err)
	}
	if b, err := os.ReadFile(pidFile); err != nil || string(b) != string(before) {
		t.Fatalf("pid file holds %q (%v), want the old switch's %q", b, err, before)
	}
	u := bootUML(t, umlConfig{ns: ns, net: daemonNet(1, ctl), ip: ip(1), peers: []string{"10.0.0.254"}})
	expectAllOK(t, []*uml{u}, [][]string{{"10.0.0.254"}})
	u.release(t)
}

// waitXDPPortOpen waits until the switch of control socket ctl has its
// xdp=1 raw port on sw0 open, its program on the interface; old's log goes
// with a failure.
func waitXDPPortOpen(t *testing.T, ns *nstest.NS, ctl string, old *switchProc) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		out := ctlRun(t, ctl, "ports")
		if strings.Contains(out, "raw sw0 (xdp") && !strings.Contains(out, "absent") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the switch did not open the XDP port:\n%s\n%s", out, old.log.text())
		}
	}
	if !xdpOn(t, ns, "sw0") {
		t.Fatalf("no XDP program on sw0:\n%s", ns.MustRun(t, "ip", "-details", "link", "show", "sw0"))
	}
}

// A raw port whose interface was deleted under the switch stays absent
// across an upgrade, which succeeds: the new switch lists it absent and
// attaches it when an interface of that name exists again.
func TestUpgradeWithAnAbsentInterface(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	ns := nstest.New(t)
	ns.MustRun(t, "ip", "link", "add", "gone0", "type", "veth", "peer", "name", "gone1")
	ctl := filepath.Join(scratch(t), "sw.ctl")
	old := startSwitch(t, ns, nil, "-state", "none", "-unix", ctl, "-port", "transport=raw,name=up,ifname=gone0")
	ns.MustRun(t, "ip", "link", "del", "gone0")
	waitLog(t, old, `msg="port absent: its interface is gone.*ifname=gone0`, "the switch did not see gone0 go")
	if out, err := ctlOutput(ctl, "upgrade"); err != nil {
		t.Fatalf("ctl upgrade: %v\n%s\n%s", err, out, old.log.text())
	}
	followUpgrade(t, old, ctl)
	<-old.exited
	var ports []struct{ Name, State string }
	ctlJSON(t, ctl, &ports, "ports")
	if !slices.ContainsFunc(ports, func(p struct{ Name, State string }) bool { return p.Name == "up" && p.State == "absent" }) {
		t.Fatalf("after the upgrade: ports %+v\n%s", ports, old.log.text())
	}
	ns.MustRun(t, "ip", "link", "add", "gone0", "type", "veth", "peer", "name", "gone1")
	waitLog(t, old, `msg="port present again" ifname=gone0`, "the new switch did not attach gone0 when it came back")
}

// An upgrade keeps an AF_XDP raw port: the old switch holds the
// interface's XDP program and queue until it exits, so the new switch
// starts with the port absent and opens it the moment the old one has
// gone. Two upgrades one right after the other, the second asked as soon
// as the first answers (the second new switch's predecessor has only just
// opened the port, or not yet, and must not be fought for it): a UML
// pinging the host through the port all along loses only the pings of
// those moments.
func TestUpgradeKeepsAnXDPPort(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	ns := nstest.New(t)
	hostVeth(t, ns)
	ctl := filepath.Join(scratch(t), "sw.ctl")
	old := startSwitch(t, ns, nil, "-state", "none", "-unix", ctl, "-port", "transport=raw,name=up,ifname=sw0,xdp=1")
	const pings = 250 // 0.02 s apart: 5 s
	u := bootUML(t, umlConfig{ns: ns, net: daemonNet(1, ctl), ip: ip(1), peers: []string{"10.0.0.254"},
		vars: map[string]string{"flood": fmt.Sprintf("%d,10.0.0.254", pings)}})
	expectAllOK(t, []*uml{u}, [][]string{{"10.0.0.254"}})
	time.Sleep(time.Second) // into the flood
	leaves := regexp.MustCompile(`msg="upgrade: the new switch serves; this one leaves" pid=(\d+)`)
	opened := regexp.MustCompile(`msg="port opened: the old switch has let go of it" ifname=sw0`)
	var pids []int
	for n := 1; n <= 2; n++ {
		if out, err := ctlOutput(ctl, "upgrade"); err != nil {
			t.Fatalf("ctl upgrade %d: %v\n%s\n%s", n, err, out, old.log.text())
		}
		// Both switches write to the first one's log.
		for deadline := time.Now().Add(10 * time.Second); len(leaves.FindAllString(old.log.text(), -1)) < n; time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("upgrade %d: no new switch\n%s", n, old.log.text())
			}
		}
		m := leaves.FindAllStringSubmatch(old.log.text(), -1)[n-1]
		pid, _ := strconv.Atoi(m[1])
		pids = append(pids, pid)
		// The second asks at once: the first switch may still be
		// exiting, and the second's predecessor not yet have the port.
	}
	t.Cleanup(func() { stopPID(t, pids[1], ctl) })
	// The last switch opens the port once its predecessor has gone (the
	// first new switch may have left before its own predecessor had, and
	// never opened it).
	waitXDPPortOpen(t, ns, ctl, old)
	sent, received, flood := u.flooded(t)
	var lines []string
	for _, l := range strings.Split(old.log.text(), "\n") {
		if leaves.MatchString(l) || opened.MatchString(l) {
			lines = append(lines, l)
		}
	}
	t.Logf("pings lost across two upgrades: %d of %d\n%s", sent-received, sent, strings.Join(lines, "\n"))
	if sent != pings || sent-received > 50 { // 1 s of pings: the port came back each time
		t.Errorf("%s: the upgrades cut the XDP port\n%s", flood, old.log.text())
	}
	u.release(t)
}
