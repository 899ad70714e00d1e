package instance

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/umlswitch/umlswitch/configs"
	"github.com/umlswitch/umlswitch/frame"
	"github.com/umlswitch/umlswitch/transports/daemon"
	"github.com/umlswitch/umlswitch/transports/gre"
	"github.com/umlswitch/umlswitch/transports/porttest"
)

// greSockets counts the raw GRE sockets bound to local (IPv4) on the host.
func greSockets(t *testing.T, local netip.Addr) int {
	t.Helper()
	b, err := os.ReadFile("/proc/net/raw")
	if err != nil {
		t.Fatal(err)
	}
	want := hex4(local.As4()) + ":002F" // and the protocol, 47, where a port would be
	n := 0
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 1 && f[1] == want {
			n++
		}
	}
	return n
}

// hex4 is an IPv4 address as /proc/net prints it: the 32-bit number in
// host (little-endian) order, in upper-case hex.
func hex4(a [4]byte) string {
	const digits = "0123456789ABCDEF"
	var b []byte
	for i := 3; i >= 0; i-- {
		b = append(b, digits[a[i]>>4], digits[a[i]&15])
	}
	return string(b)
}

func grePeer(t *testing.T, local, remote netip.Addr) *porttest.TunnelPeer {
	t.Helper()
	fd, err := porttest.DialTunnel(unix.SOCK_RAW, gre.IPProto, netip.AddrPortFrom(local, 0), netip.AddrPortFrom(remote, 0))
	if err != nil {
		t.Fatalf("GRE peer socket: %v", err)
	}
	hdr, _ := gre.Encode(false, 0, false)
	return porttest.NewTunnelPeer(t, fd, fd, hdr, true, func(pkt []byte) (int, error) {
		h, err := gre.Parse(pkt)
		return h.Len, err
	})
}

// A SPAN GRE port on the local address of a switch GRE port shares its
// socket (ports on one local address share one socket), and both work:
// the switch's port carries frames both ways, the SPAN port gets the
// mirrored frames, and what its peer sends does not enter the switch.
func TestSpanTunnelSharesTheSwitchSocket(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (or CAP_NET_RAW) for raw GRE sockets")
	}
	local, swPeer, spanPeer := netip.MustParseAddr("127.0.47.1"), netip.MustParseAddr("127.0.47.2"), netip.MustParseAddr("127.0.47.3")
	if n := greSockets(t, local); n != 0 {
		t.Fatalf("%d GRE sockets already on %s: the count below would be off", n, local)
	}
	ctl := filepath.Join(t.TempDir(), "lab.ctl")
	in := runForTest(t, "ports: [{transport: daemon, path: "+ctl+", name: lab}, "+
		"{transport: gre, src: "+local.String()+", dst: "+swPeer.String()+", name: tun}]")
	p2, p3 := grePeer(t, swPeer, local), grePeer(t, spanPeer, local)

	m, err := configs.ParseMirror("dir=in,port=transport=gre,src=" + local.String() + ",dst=" + spanPeer.String())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := in.AddMirror("default", m); err != nil {
		t.Fatal(err)
	}
	if n := greSockets(t, local); n != 1 {
		t.Fatalf("%d GRE sockets on %s, want 1 shared by the switch's port and the SPAN port", n, local)
	}
	if st := in.set.TunnelStats(); len(st) != 1 {
		t.Fatalf("tunnel endpoints %+v, want one", st)
	}

	c, err := daemon.Dial(daemon.ClientConfig{Ctl: ctl})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	porttest.Eventually(t, "the client", func() bool { return len(in.attachedPorts()) == 2 })
	macA, macB := frame.MAC{2, 0, 0, 0, 0, 0xa}, frame.MAC{2, 0, 0, 0, 0, 0xb}
	c.Send(porttest.Ether(frame.Broadcast, macA, 60, 1))
	p2.Expect(t, 1) // out of the switch's GRE port
	p3.Expect(t, 1) // and mirrored to the SPAN port
	if err := p2.Send(porttest.Ether(frame.Broadcast, macB, 60, 2)); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 2048)
	if n, err := c.Recv(b, 2*time.Second); err != nil || n < 15 || b[14] != 2 {
		t.Fatalf("from the switch's GRE peer: %d bytes, %v", n, err)
	}
	// The SPAN peer's frames are read on the shared socket and dropped.
	if err := p3.Send(porttest.Ether(frame.Broadcast, macB, 60, 3)); err != nil {
		t.Fatal(err)
	}
	if n, err := c.Recv(b, 200*time.Millisecond); err == nil {
		t.Fatalf("the SPAN peer's frame entered the switch: %d bytes, tag %d", n, b[min(n, 14)])
	}
}
