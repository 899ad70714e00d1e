package e2e

import (
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/umlswitch/umlswitch/internal/nstest"
)

// hosts makes two namespaces standing for two machines, joined by a veth
// pair: a has 10.99.0.1/24 on "wire", b has 10.99.0.2/24 on "wire".
func hosts(t *testing.T) (a, b *nstest.NS) {
	t.Helper()
	a, b = nstest.New(t), nstest.New(t)
	a.MustRun(t, "ip", "link", "add", "wire", "type", "veth", "peer", "name", "wire", "netns", b.Name)
	for i, ns := range []*nstest.NS{a, b} {
		ns.MustRun(t, "ip", "addr", "add", []string{"10.99.0.1/24", "10.99.0.2/24"}[i], "dev", "wire")
		ns.MustRun(t, "ip", "link", "set", "wire", "up")
	}
	return a, b
}

// A umlswitch VXLAN port and the Linux kernel's own vxlan device, attached
// to a kernel bridge in another namespace, join one L2 domain: two UMLs
// behind the switch and the bridge's address reach each other both ways.
// Packets of another VNI from the kernel are counted, not forwarded.
func TestVXLANWithKernelBridge(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	sw, k := hosts(t)
	k.MustRun(t, "ip", "link", "add", "br0", "type", "bridge")
	k.MustRun(t, "ip", "link", "add", "vx42", "type", "vxlan", "id", "42", "local", "10.99.0.2", "remote", "10.99.0.1",
		"dstport", "4789")
	k.MustRun(t, "ip", "link", "set", "vx42", "master", "br0")
	// A second kernel device on VNI 43 towards the same switch: its frames must not cross.
	k.MustRun(t, "ip", "link", "add", "vx43", "type", "vxlan", "id", "43", "local", "10.99.0.2", "remote", "10.99.0.1",
		"dstport", "4789")
	k.MustRun(t, "ip", "addr", "add", "10.0.1.254/24", "dev", "vx43")
	for _, dev := range []string{"vx42", "vx43", "br0"} {
		k.MustRun(t, "sysctl", "-qw", "net.ipv6.conf."+dev+".disable_ipv6=1")
		k.MustRun(t, "ip", "link", "set", dev, "up")
	}
	k.MustRun(t, "ip", "addr", "add", "10.0.0.254/24", "dev", "br0")

	ctl := filepath.Join(scratch(t), "sw.ctl")
	s := startSwitch(t, sw, []string{ctl}, "-unix", ctl, "-port", "transport=vxlan,src=10.99.0.1,dst=10.99.0.2,vni=42")
	var umls []*uml
	var peers [][]string
	for i := 1; i <= 2; i++ {
		p := []string{"10.0.0.254", ip(3 - i)}
		peers = append(peers, p)
		umls = append(umls, bootUML(t, umlConfig{ns: sw, net: daemonNet(i, ctl), ip: ip(i), peers: p}))
	}
	expectAllOK(t, umls, peers)
	k.MustRun(t, "busybox", "ping", "-c", "2", "-W", "2", ip(1))
	k.MustRun(t, "busybox", "ping", "-c", "2", "-W", "2", ip(2))
	// Broadcasts on VNI 43 (ARP for an address behind it) reach the switch's socket.
	k.Cmd("busybox", "ping", "-c", "3", "-W", "1", "10.0.1.1").Run()
	for _, u := range umls {
		u.release(t)
	}
	s.stop(t)
	if _, ok := s.log.wait(regexp.MustCompile(`msg="port detached".*peer="vxlan.*drops=".*bad-key=[1-9]`), time.Second); !ok {
		t.Errorf("frames of VNI 43 were not counted as bad-key on the VXLAN port:\n%s", s.log.text())
	}
}

// Two umlswitch daemons on two "hosts", joined by VXLAN, form one L2
// domain: UMLs behind either reach the UMLs behind the other.
func TestTwoSwitchesJoinedByVXLAN(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	a, b := hosts(t)
	d := scratch(t)
	ctlA, bessB := filepath.Join(d, "a.ctl"), filepath.Join(d, "b.bess")
	startSwitch(t, a, []string{ctlA}, "-unix", ctlA, "-port", "transport=vxlan,src=10.99.0.1,dst=10.99.0.2,vni=7")
	startSwitch(t, b, []string{bessB}, "-port", "transport=bess,path="+bessB,
		"-port", "transport=vxlan,src=10.99.0.2,dst=10.99.0.1,vni=7")
	all := []string{ip(1), ip(2), ip(3), ip(4)}
	others := func(self string) (out []string) {
		for _, a := range all {
			if a != self {
				out = append(out, a)
			}
		}
		return out
	}
	var umls []*uml
	var peers [][]string
	for i := 1; i <= 4; i++ {
		c := umlConfig{ip: ip(i), peers: others(ip(i))}
		if i <= 2 {
			c.ns, c.net = a, daemonNet(i, ctlA)
		} else {
			c.ns, c.iface = b, "vec0"
			c.net = vec(i, "transport=bess,src="+filepath.Join(d, "uml"+ip(i)+".sock")+",dst="+bessB)
		}
		peers = append(peers, c.peers)
		umls = append(umls, bootUML(t, c))
	}
	expectAllOK(t, umls, peers)
	for _, u := range umls {
		u.release(t)
	}
}
