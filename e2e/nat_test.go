package e2e

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/umlswitch/umlswitch/internal/nstest"
)

// natInit is the /init of a UML on a switch with a NAT port: it gets its
// address by DHCP (natDHCPScript applies it), asks the router's DNS server
// for host.lab (printing the answer in hex: its last four bytes are the
// address), fetches the page the test serves on its namespace's
// 127.0.0.1:$httpport through the gateway, and listens on port 22 for the
// test's connection through hostfwd=, which gets "from guest". It prints a
// line for each, then NAT-READY, and powers off at a line on its console.
// (This UML's busybox nslookup and wget crash, and its nc has no UDP, so nc
// does their work over TCP.)
const natInit = `#!/bin/sh
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
ip link set lo up
ip link set eth0 up
if udhcpc -i eth0 -n -q -t 10 -T 1 -s /natdhcp >/dev/null 2>&1; then echo "DHCP ok"; else echo "DHCP fail"; fi
echo "ROUTE $(ip route | grep default)"
q='\000\032\022\064\001\000\000\001\000\000\000\000\000\000\004\150\157\163\164\003\154\141\142\000\000\001\000\001'
echo "DNS $(printf "$q" | nc -w 5 10.0.2.3 53 | od -An -tx1 | tr -d ' \n')"
echo "HTTP $(printf 'GET / HTTP/1.0\r\n\r\n' | nc -w 10 10.0.2.2 $httpport | tail -n 1)"
(echo "from guest" | nc -l -p 22) &
for i in $(seq 1 100); do grep -q ':0016 00000000:0000 0A' /proc/net/tcp && break; sleep 0.1; done
echo "NAT-READY"
read release
poweroff -f
`

// natDHCPScript is udhcpc's script: it applies the lease and says what it
// got on the console.
const natDHCPScript = `#!/bin/sh
case "$1" in
bound|renew)
  ip addr add $ip/$mask dev $interface
  ip route add default via ${router%% *} dev $interface
  echo "LEASE $ip/$mask router=$router dns=$dns" > /dev/console
  ;;
esac
`

var natRoot sync.Once

// bootNATGuest boots a UML in ns with natInit, on the switch's daemon
// socket ctl; httpPort is where the test's page is.
func bootNATGuest(t *testing.T, ns *nstest.NS, ctl string, i, httpPort int) *uml {
	t.Helper()
	natRoot.Do(func() {
		for name, s := range map[string]string{"natinit": natInit, "natdhcp": natDHCPScript} {
			if err := os.WriteFile(filepath.Join(env.root, name), []byte(s), 0o755); err != nil {
				t.Fatal(err)
			}
		}
	})
	return bootUML(t, umlConfig{ns: ns, net: daemonNet(i, ctl), ip: fmt.Sprintf("nat-guest-%d", i), init: "/natinit",
		vars: map[string]string{"httpport": fmt.Sprint(httpPort)}})
}

// hostPage serves a page on ns's 127.0.0.1 and returns its port.
func hostPage(t *testing.T, ns *nstest.NS, body string) int {
	t.Helper()
	var ln net.Listener
	if err := ns.Do(func() (err error) { ln, err = net.Listen("tcp4", "127.0.0.1:0"); return }); err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, body) })}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().(*net.TCPAddr).Port
}

// natDetails is what ctl ports -json says of a nat port.
type natDetails struct {
	Name    string `json:"name"`
	Kind    string `json:"kind"`
	Details struct {
		Gateway string `json:"gateway"`
		DNS     string `json:"dns"`
		Leases  []struct {
			IP  string `json:"ip"`
			MAC string `json:"mac"`
		} `json:"leases"`
		Forwards []struct {
			Proto, Host, Guest string
		} `json:"forwards"`
		Conns        int    `json:"conns"`
		ConnsRefused uint64 `json:"conns_refused"`
	} `json:"details"`
}

func natPort(t *testing.T, ctl string) natDetails {
	t.Helper()
	var ports []natDetails
	ctlJSON(t, ctl, &ports, "ports")
	for _, p := range ports {
		if p.Kind == "nat" {
			return p
		}
	}
	t.Fatalf("no nat port in ctl ports")
	return natDetails{}
}

// A UML on a switch with a NAT port gets its address, router and DNS
// server by DHCP, resolves host.lab, fetches a page from a server on the
// host's 127.0.0.1 through the gateway, and the host reaches its port 22
// through hostfwd=: as root, and with the switch an ordinary user.
func TestNATGuest(t *testing.T) {
	requireE2E(t)
	requireRoot(t)
	t.Parallel()
	for _, user := range []bool{false, true} {
		t.Run(map[bool]string{false: "root", true: "nobody"}[user], func(t *testing.T) {
			t.Parallel()
			ns := nstest.New(t)
			d := scratch(t)
			if user {
				d = nobodysDir(t)
			}
			ctl := filepath.Join(d, "sw.ctl")
			args := []string{"-log-level", "debug", "-unix", ctl, "-port", "transport=nat,hostfwd=tcp::2222-:22"}
			cmd := ns.Cmd(env.umlswitch, args...)
			if user { // nobody from the start, no capability: what a user's own switch has
				cmd = ns.Cmd("setpriv", append([]string{"--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all",
					env.umlswitch}, args...)...)
				cmd.Env = append(os.Environ(), "HOME=/nonexistent")
			}
			sw := startSwitchCmd(t, cmd, []string{ctl})
			waitLog(t, sw, `msg="nat router up".* gateway=10.0.2.2 .*dns=10.0.2.3 hostfwd=tcp:127.0.0.1:2222-10.0.2.15:22`, "no router")
			if user {
				expectThreads(t, sw.cmd.Process.Pid, nobody, 0)
			}
			port := hostPage(t, ns, "hello from the host")
			u := bootNATGuest(t, ns, ctl, 1, port)
			lease := u.waitLine(t, `^LEASE `)
			if lease != "LEASE 10.0.2.15/24 router=10.0.2.2 dns=10.0.2.3" {
				t.Errorf("udhcpc got %q", lease)
			}
			if l := u.waitLine(t, `^DHCP `); l != "DHCP ok" {
				t.Errorf("%s", l)
			}
			// An answer (its length, id 1234, QR set) whose record is 10.0.2.2.
			if l := u.waitLine(t, `^DNS `); !regexp.MustCompile(`^DNS [0-9a-f]{4}12348[0-9a-f]{2}.*0a000202$`).MatchString(l) {
				t.Errorf("host.lab from 10.0.2.3: %q", l)
			}
			if l := u.waitLine(t, `^HTTP `); l != "HTTP hello from the host" {
				t.Errorf("the page through 10.0.2.2: %q", l)
			}
			u.waitLine(t, `^NAT-READY`)
			var got []byte
			err := ns.Do(func() error {
				c, err := net.DialTimeout("tcp4", "127.0.0.1:2222", 5*time.Second)
				if err != nil {
					return err
				}
				defer c.Close()
				c.SetDeadline(time.Now().Add(20 * time.Second))
				got, err = io.ReadAll(c)
				return err
			})
			if err != nil || string(got) != "from guest\n" {
				t.Errorf("through hostfwd: %q, %v", got, err)
			}
			p := natPort(t, ctl)
			if len(p.Details.Leases) != 1 || p.Details.Leases[0].IP != "10.0.2.15" || p.Details.Leases[0].MAC != mac(1) ||
				len(p.Details.Forwards) != 1 || p.Details.Forwards[0].Host != "127.0.0.1:2222" || p.Details.Forwards[0].Guest != "10.0.2.15:22" {
				t.Errorf("ctl ports -json: %+v", p)
			}
			fmt.Fprintln(u.console, "go")
			select {
			case <-u.exited:
			case <-time.After(20 * time.Second):
				t.Errorf("UML did not power off")
			}
		})
	}
}

// Bad keys and busy ports are refused when the switch starts (and when
// ctl port add opens the port), with a message that says why; a forward
// below 1024 is refused to a user who is not root.
func TestNATRefused(t *testing.T) {
	requireE2E(t)
	requireRoot(t)
	t.Parallel()
	ns := nstest.New(t)
	var busy net.Listener
	if err := ns.Do(func() (err error) { busy, err = net.Listen("tcp4", "127.0.0.1:2222"); return }); err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	d := scratch(t)
	for spec, why := range map[string]string{
		"transport=nat,net=10.0.2.0/25":            "/8 to /24",
		"transport=nat,net=fd00::/64":              "not IPv4",
		"transport=nat,hostfwd=tcp:2222:22":        `hostfwd "tcp:2222:22": no '-'`,
		"transport=nat,hostfwd=tcp::2222-:22":      "hostfwd tcp:127.0.0.1:2222-:22: listen tcp4 127.0.0.1:2222: bind: address already in use",
		"transport=nat,hostfwd=udp::53-10.0.3.1:5": "not a guest's address in 10.0.2.0/24",
	} {
		cmd := ns.Cmd(env.umlswitch, "-unix", filepath.Join(d, "sw.ctl"), "-port", spec)
		out, err := runBounded(cmd, 20*time.Second)
		if err == nil || !strings.Contains(out, why) {
			t.Errorf("%s: %v, want an error saying %q:\n%s", spec, err, why, out)
		}
	}
	ctl := filepath.Join(publicScratch(t, false), "sw.ctl")
	sw := startSwitch(t, ns, []string{ctl}, "-unix", ctl, "-mode", "0777", "-api-uid", fmt.Sprint(nobody))
	out, err := exec.Command(env.umlswitch, "ctl", "-s", ctl, "port", "add", "transport=nat,hostfwd=tcp::2222-:22").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "address already in use") {
		t.Errorf("ctl port add, a busy port: %v\n%s", err, out)
	}
	out2, code := nobodyCtl(t, ctl, "port", "add", "transport=nat,hostfwd=tcp::80-:80")
	if code == 0 || !strings.Contains(out2, "CAP_NET_BIND_SERVICE") || !strings.Contains(out2, "uid 65534") {
		t.Errorf("ctl port add as nobody, a forward of port 80: %d %s", code, out2)
	}
	// Nor one that connects out as the switch.
	if out, code := nobodyCtl(t, ctl, "port", "add", "transport=nat,hostfwd=tcp::8080-:80"); code == 0 ||
		!strings.Contains(out, "restrict=1") {
		t.Errorf("ctl port add as nobody, a nat port without restrict=1: %d %s", code, out)
	}
	// The same user may add a restricted one with a forward above 1024
	// (bound as itself), and remove it.
	if out, code := nobodyCtl(t, ctl, "port", "add", "transport=nat,name=usernat,restrict=1,hostfwd=tcp::8080-:80"); code != 0 {
		t.Errorf("ctl port add as nobody, a forward of port 8080: %d %s", code, out)
	}
	if out, code := nobodyCtl(t, ctl, "port", "del", "usernat"); code != 0 {
		t.Errorf("ctl port del as nobody: %d %s", code, out)
	}
	waitLog(t, sw, `msg="nat router up"`, "nobody's nat port did not open")
}

// A guest that floods the router with DHCP requests from ever new
// addresses, SYNs and UDP flows (the test, on a dgram port) does not stall
// the switch: two UMLs on other ports ping each other meanwhile, the API
// answers, and the router turns the excess away (max_conns).
func TestNATFlood(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	ns := nstest.New(t)
	d := scratch(t)
	ctl, swSock, flooder := filepath.Join(d, "sw.ctl"), filepath.Join(d, "sw.dgram"), filepath.Join(d, "fl.dgram")
	var conn *net.UnixConn
	if err := ns.Do(func() (err error) {
		conn, err = net.ListenUnixgram("unixgram", &net.UnixAddr{Name: flooder, Net: "unixgram"})
		return
	}); err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	sw := startSwitch(t, ns, []string{ctl, swSock}, "-unix", ctl, "-port", "transport=nat,max_conns=64",
		"-port", "transport=dgram,path="+swSock+",peer="+flooder)
	waitLog(t, sw, `msg="nat router up"`, "no router")

	stop := make(chan struct{})
	var sent int
	flooded := make(chan struct{})
	go func() {
		defer close(flooded)
		to := &net.UnixAddr{Name: swSock, Net: "unixgram"}
		for {
			for i := 0; i < 100; i++ {
				conn.SetWriteDeadline(time.Now().Add(time.Second))
				if _, err := conn.WriteToUnix(floodFrame(sent), to); err == nil {
					sent++
				}
			}
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond): // ~10,000 frames a second: a flood, leaving the CPUs to the UMLs
			}
		}
	}()
	a := bootUML(t, umlConfig{ns: ns, net: daemonNet(1, ctl), ip: ip(1), peers: []string{ip(2)}, vars: map[string]string{"flood": "50," + ip(2)}})
	b := bootUML(t, umlConfig{ns: ns, net: daemonNet(2, ctl), ip: ip(2), peers: []string{ip(1)}})
	expectAllOK(t, []*uml{a, b}, [][]string{{ip(2)}, {ip(1)}})
	for i := 0; i < 3; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		out, err := exec.CommandContext(ctx, env.umlswitch, "ctl", "-s", ctl, "ports").CombinedOutput()
		cancel()
		if err != nil || !strings.Contains(string(out), "nat0") {
			t.Errorf("ctl ports during the flood: %v\n%s", err, out)
		}
	}
	sentPings, received, line := a.flooded(t)
	close(stop)
	<-flooded
	t.Logf("flooder sent %d frames; %s", sent, line)
	if received < sentPings*8/10 {
		t.Errorf("pings during the flood: %s", line)
	}
	a.release(t)
	b.release(t)
	p := natPort(t, ctl)
	t.Logf("nat port: %d leases, %d connections, %d refused", len(p.Details.Leases), p.Details.Conns, p.Details.ConnsRefused)
	if sent < 1000 || p.Details.ConnsRefused == 0 || len(p.Details.Leases) == 0 {
		t.Errorf("the flood did not reach the router: %d frames, %+v", sent, p.Details)
	}
	var ports []ctlPort
	ctlJSON(t, ctl, &ports, "ports")
	for _, q := range ports {
		if q.Kind == "nat" && q.TxFrames < uint64(sent)/2 {
			t.Errorf("the router took %d of %d frames", q.TxFrames, sent)
		}
	}
}

var routerMAC = net.HardwareAddr{0x52, 0x55, 10, 0, 2, 2}

// floodFrame is the flooder's i-th frame, all to the router: DHCP
// discovers from ever new client addresses, SYNs to the gateway (the
// host's loopback, nothing listening) and to an address outside (no route
// in the namespace), and UDP to ever new ports, each a flow.
func floodFrame(i int) []byte {
	src := net.HardwareAddr{0xfe, 0xfd, 0xee, byte(i >> 16), byte(i >> 8), byte(i)}
	eth := &layers.Ethernet{SrcMAC: src, DstMAC: routerMAC, EthernetType: layers.EthernetTypeIPv4}
	ip4 := &layers.IPv4{Version: 4, TTL: 64, SrcIP: net.IP{10, 0, 2, 99}, DstIP: net.IP{10, 0, 2, 2}}
	var ls []gopacket.SerializableLayer
	switch i % 4 {
	case 0:
		ip4.SrcIP, ip4.DstIP, ip4.Protocol = net.IPv4zero, net.IPv4bcast, layers.IPProtocolUDP
		udp := &layers.UDP{SrcPort: 68, DstPort: 67}
		udp.SetNetworkLayerForChecksum(ip4)
		ls = []gopacket.SerializableLayer{udp, &layers.DHCPv4{Operation: layers.DHCPOpRequest, HardwareType: layers.LinkTypeEthernet,
			HardwareLen: 6, Xid: uint32(i), ClientHWAddr: src, Options: layers.DHCPOptions{
				layers.NewDHCPOption(layers.DHCPOptMessageType, []byte{byte(layers.DHCPMsgTypeDiscover)}),
				layers.NewDHCPOption(layers.DHCPOptEnd, nil)}}}
	case 1, 2:
		if i%4 == 2 {
			ip4.DstIP = net.IP{192, 0, 2, byte(i)}
		}
		ip4.Protocol = layers.IPProtocolTCP
		tcp := &layers.TCP{SrcPort: layers.TCPPort(1024 + i%60000), DstPort: layers.TCPPort(1 + rand.IntN(65000)), SYN: true,
			Seq: uint32(i), Window: 65535}
		tcp.SetNetworkLayerForChecksum(ip4)
		ls = []gopacket.SerializableLayer{tcp}
	case 3:
		ip4.Protocol = layers.IPProtocolUDP
		udp := &layers.UDP{SrcPort: layers.UDPPort(1024 + i%60000), DstPort: layers.UDPPort(1 + rand.IntN(65000))}
		udp.SetNetworkLayerForChecksum(ip4)
		ls = []gopacket.SerializableLayer{udp, gopacket.Payload("flood")}
	}
	buf := gopacket.NewSerializeBuffer()
	gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, append([]gopacket.SerializableLayer{eth, ip4}, ls...)...)
	return buf.Bytes()
}

// ctl upgrade hands the forwards' host sockets to the new switch, which
// could not bind them while the old one holds them: the upgrade succeeds
// and the forwards still listen (the router's connections end with the
// old process).
func TestNATUpgrade(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	ns := nstest.New(t)
	ctl := filepath.Join(scratch(t), "sw.ctl")
	old := startSwitch(t, ns, nil, "-unix", ctl, "-port", "transport=nat,hostfwd=tcp::2222-:22;udp::5353-:53")
	if out, err := ctlOutput(ctl, "upgrade"); err != nil {
		t.Fatalf("ctl upgrade: %v\n%s\n%s", err, out, old.log.text())
	}
	select {
	case <-old.exited:
	case <-time.After(10 * time.Second):
		t.Fatalf("the old switch did not leave:\n%s", old.log.text())
	}
	followUpgrade(t, old, ctl)
	p := natPort(t, ctl)
	if len(p.Details.Forwards) != 2 || p.Details.Forwards[0].Host != "127.0.0.1:2222" || p.Details.Forwards[1].Host != "127.0.0.1:5353" {
		t.Errorf("after the upgrade: %+v", p.Details.Forwards)
	}
	if err := ns.Do(func() error {
		c, err := net.DialTimeout("tcp4", "127.0.0.1:2222", 5*time.Second)
		if err == nil {
			c.Close()
		}
		return err
	}); err != nil {
		t.Errorf("the forward after the upgrade: %v", err)
	}
}

// Two switches, each with a nat port of its own network: each guest gets
// its lease from its own router, and the router's frames are captured and
// counted as every port's are.
func TestNATOnTwoSwitches(t *testing.T) {
	requireE2E(t)
	needTool(t, "tshark", "tshark")
	t.Parallel()
	ns := nstest.New(t)
	d := scratch(t)
	a, b := filepath.Join(d, "a.ctl"), filepath.Join(d, "b.ctl")
	conf := filepath.Join(d, "lab.yaml")
	os.WriteFile(conf, []byte(fmt.Sprintf(`
switches:
  - name: a
    ports: [{transport: daemon, path: %s, name: a}, {transport: nat, name: nat-a}]
  - name: b
    ports: [{transport: daemon, path: %s, name: b}, {transport: nat, name: nat-b, net: 10.0.3.0/24}]
`, a, b)), 0o644)
	startSwitch(t, ns, []string{a, b}, "-config", conf, "-state", "none")
	pcap := filepath.Join(d, "a.pcapng")
	capture := exec.Command(env.umlswitch, "capture", "-s", a, "-w", pcap)
	if err := capture.Start(); err != nil {
		t.Fatal(err)
	}
	port := hostPage(t, ns, "hello")
	ua := bootNATGuest(t, ns, a, 1, port)
	ub := bootNATGuest(t, ns, b, 2, port)
	if l := ua.waitLine(t, `^LEASE `); l != "LEASE 10.0.2.15/24 router=10.0.2.2 dns=10.0.2.3" {
		t.Errorf("the guest on a got %q", l)
	}
	if l := ub.waitLine(t, `^LEASE `); l != "LEASE 10.0.3.15/24 router=10.0.3.2 dns=10.0.3.3" {
		t.Errorf("the guest on b got %q", l)
	}
	ua.waitLine(t, `^NAT-READY`)
	for _, c := range []struct{ ctl, port string }{{a, "nat-a"}, {b, "nat-b"}} {
		var ports []ctlPort
		ctlJSON(t, c.ctl, &ports, "ports")
		found := false
		for _, p := range ports {
			if p.Name == c.port {
				found = true
				if p.RxFrames == 0 || p.TxFrames == 0 {
					t.Errorf("port %s counted rx %d, tx %d", p.Name, p.RxFrames, p.TxFrames)
				}
			}
		}
		if !found {
			t.Errorf("no port %s in %+v", c.port, ports)
		}
	}
	capture.Process.Signal(os.Interrupt)
	capture.Wait()
	out, err := exec.Command("tshark", "-r", pcap, "-Y", "dhcp && ip.src == 10.0.2.2", "-T", "fields", "-e", "frame.interface_name").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "nat-a") {
		t.Errorf("no DHCP answer from the router on port nat-a in the capture of a: %v\n%s", err, out)
	}
	for _, u := range []*uml{ua, ub} {
		fmt.Fprintln(u.console, "go")
	}
}
