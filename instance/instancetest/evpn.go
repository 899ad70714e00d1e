package instancetest

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/umlswitch/umlswitch/configs"
	"github.com/umlswitch/umlswitch/evpn"
	"github.com/umlswitch/umlswitch/frame"
	"github.com/umlswitch/umlswitch/transports/porttest"
)

// Fabric addresses of the tests' EVPN pair. VTEPs on loopback are
// refused as martians, so a test that exchanges routes runs in a
// namespace of its own with both on its loopback (IsolateEVPN). The
// instance's VTEP is LocalVTEP (its tunnels bind there); the peer
// speaker's is PeerVTEP.
var (
	LocalVTEP = netip.MustParseAddr("192.0.2.1")
	PeerVTEP  = netip.MustParseAddr("192.0.2.3")
	PeerMAC   = frame.MAC{2, 0, 0, 0, 0, 0xb} // the address the peer announces
)

// IsolateEVPN is Isolate with LocalVTEP and PeerVTEP on the namespace's
// loopback.
func IsolateEVPN(t *testing.T) bool {
	t.Helper()
	return Isolate(t, LocalVTEP.String(), PeerVTEP.String())
}

// EVPNPeer is a second EVPN speaker in the test's process, for an
// instance to peer with: it listens for BGP on 127.0.0.2, expects the
// instance to connect from 127.0.0.1 (AS 65000, iBGP), announces its VNI
// from VTEP PeerVTEP and PeerMAC behind it.
type EVPNPeer struct {
	*evpn.Speaker
	VNI       uint32
	BGPPort   uint16 // the instance's neighbour port
	VXLANPort uint16 // a free UDP port for the instance's vxlan_port
}

// NewEVPNPeer picks the peer's ports, or skips the test where 127.0.0.2
// is not there; Start starts it. The instance's evpn: block is
// EVPNBlock(), which it may be given before the peer starts (it connects
// again every few seconds).
func NewEVPNPeer(t testing.TB, vni uint32) *EVPNPeer {
	t.Helper()
	return &EVPNPeer{VNI: vni, BGPPort: freePort(t, "tcp"), VXLANPort: freePort(t, "udp")}
}

// Start starts the peer's speaker until the test ends.
func (p *EVPNPeer) Start(t testing.TB) {
	t.Helper()
	p.Speaker = evpn.New(porttest.Quiet(), &staticDP{macs: []frame.MAC{PeerMAC}}, nil)
	t.Cleanup(p.Close)
	cfg := &configs.EVPN{ASN: 65000, RouterID: netip.MustParseAddr("10.0.0.2"), VTEP: PeerVTEP, VXLANPort: p.VXLANPort,
		ListenPort: int(p.BGPPort), HoldTime: 9 * time.Second,
		Neighbors: []configs.Neighbor{{Address: netip.MustParseAddr("127.0.0.1"), ASN: 65000, Passive: true}}}
	sw := configs.Switch{Name: "peer"}
	sw.VNI = p.VNI
	if err := p.Apply(cfg, []configs.Switch{sw}); err != nil {
		t.Fatal(err)
	}
}

// EVPNBlock is the instance's evpn: block (YAML) that peers with p.
func (p *EVPNPeer) EVPNBlock() string {
	return fmt.Sprintf("evpn: {asn: 65000, router_id: 10.0.0.1, vtep: %s, listen_port: 0, hold_time: 9s, vxlan_port: %d, "+
		"neighbors: [{address: 127.0.0.2, asn: 65000, port: %d}]}\n", LocalVTEP, p.VXLANPort, p.BGPPort)
}

func freePort(t testing.TB, network string) uint16 {
	t.Helper()
	if network == "tcp" {
		l, err := net.Listen("tcp", "127.0.0.2:0")
		if err != nil {
			t.Skipf("no 127.0.0.2 here: %v", err)
		}
		defer l.Close()
		return uint16(l.Addr().(*net.TCPAddr).Port)
	}
	c, err := net.ListenPacket("udp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return uint16(c.LocalAddr().(*net.UDPAddr).Port)
}

// staticDP is the peer's data plane: its switch holds macs, and what it
// is asked to install is taken and forgotten.
type staticDP struct {
	mu   sync.Mutex
	macs []frame.MAC
}

func (d *staticDP) AddTunnel(evpn.Tunnel) error                      { return nil }
func (d *staticDP) RemoveTunnel(evpn.Tunnel)                         {}
func (d *staticDP) SetRemoteMAC(string, frame.MAC, netip.Addr) error { return nil }
func (d *staticDP) RemoveRemoteMAC(string, frame.MAC, netip.Addr)    {}
func (d *staticDP) LocalMACs(string) []frame.MAC {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.macs)
}

// WaitFor waits up to 20 s for cond: a BGP session takes a connect retry
// or two (a few seconds), longer than porttest.Eventually waits.
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after 20s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
