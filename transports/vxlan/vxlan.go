// Package vxlan is the Ethernet-over-VXLAN port (RFC 7348), for links
// between switches and to Linux's vxlan device (ip link add ... type vxlan
// id N local A remote B dstport 4789). Ports with the same local address
// and UDP port share one socket; a packet goes to the port whose peer sent
// it and whose VNI it carries, whatever the peer's source port (Linux
// sends from a port hashed per flow).
//
// A port sends from and to its DstPort. It accepts only headers that are
// exactly as it sends them, as Linux does: other flags, non-zero reserved
// fields or a short header are counted as decap drops; a VNI that none of
// the peer's ports has is counted as bad-key on one of them; a packet from
// a peer no port has is counted by the endpoint.
package vxlan

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"golang.org/x/sys/unix"

	"github.com/umlswitch/umlswitch/fabric"
	"github.com/umlswitch/umlswitch/frame"
	"github.com/umlswitch/umlswitch/transports/portkind"
	"github.com/umlswitch/umlswitch/tunnel"
)

// Config describes one vxlan port: its keys and what the switch adds.
type Config struct {
	Options
	portkind.Common
}

var kind = tunnel.Kind{Name: "vxlan", Type: unix.SOCK_DGRAM}

// validate returns cfg with its defaults applied, or why it cannot work.
func (cfg Config) validate() (Config, error) {
	cfg.Src, cfg.Dst = cfg.Src.Unmap(), cfg.Dst.Unmap()
	switch {
	case !cfg.Src.IsValid() || !cfg.Dst.IsValid():
		return cfg, errors.New("vxlan: local and remote addresses are both required")
	case cfg.Src.Is4() != cfg.Dst.Is4():
		return cfg, fmt.Errorf("vxlan: local %s and remote %s are not of one address family", cfg.Src, cfg.Dst)
	case cfg.Src.Zone() != "" || cfg.Dst.Zone() != "":
		return cfg, fmt.Errorf("vxlan: %s->%s: addresses with a zone are not supported", cfg.Src, cfg.Dst)
	case cfg.Dst.IsUnspecified() || cfg.Dst.IsMulticast():
		return cfg, fmt.Errorf("vxlan: remote %s: a unicast peer address is required", cfg.Dst)
	case cfg.VNI > MaxVNI:
		return cfg, fmt.Errorf("vxlan: vni %d does not fit in 24 bits (at most %d)", cfg.VNI, MaxVNI)
	case cfg.Depth < 1:
		return cfg, fmt.Errorf("vxlan: depth %d, want at least 1", cfg.Depth)
	case cfg.MaxFrame < frame.HeaderLen || cfg.MaxFrame > frame.MaxFrameLimit-HeaderLen:
		return cfg, fmt.Errorf("vxlan: largest frame %d out of range [%d, %d]", cfg.MaxFrame, frame.HeaderLen,
			frame.MaxFrameLimit-HeaderLen)
	}
	if cfg.DstPort == 0 {
		cfg.DstPort = DefaultPort
	}
	return cfg, nil
}

// Open makes the port, attaches it to reg and starts routing to it.
func Open(t *tunnel.Table, reg fabric.Registry, cfg Config) (*tunnel.Port, error) {
	cfg, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	local, peer := netip.AddrPortFrom(cfg.Src, cfg.DstPort), netip.AddrPortFrom(cfg.Dst, cfg.DstPort)
	// Errors from the table already name the kind ("vxlan: bind ...").
	ep, err := t.Acquire(tunnel.EndpointConfig{Kind: kind, Local: local, NewRouter: func() tunnel.Router { return new(router) },
		HeaderLen: HeaderLen, Depth: cfg.Depth, MaxFrame: cfg.MaxFrame})
	if err != nil {
		return nil, err
	}
	hdr := Encode(cfg.VNI)
	return ep.Router().(*router).OpenPort(ep, reg, cfg.Dst, cfg.VNI, tunnel.PortConfig{
		Name: fmt.Sprintf("vxlan %s->%s vni %d", local, peer, cfg.VNI), MaxFrame: cfg.MaxFrame, Peer: peer,
		Header: hdr[:], CounterAt: -1,
		Check: checker(cfg.VNI),
	})
}

// checker validates a packet for a port: a header exactly as the port
// sends it. The router picked the port by peer and VNI, so a valid header
// with another VNI is one the peer has no port for.
func checker(vni uint32) func([]byte) (int, fabric.DropReason) {
	h := Encode(vni)
	want := binary.BigEndian.Uint64(h[:])
	return func(pkt []byte) (int, fabric.DropReason) {
		if len(pkt) >= HeaderLen && binary.BigEndian.Uint64(pkt) == want {
			return HeaderLen, 0
		}
		if _, err := Decode(pkt); err != nil {
			return 0, fabric.DropDecap
		}
		return 0, fabric.DropAuth
	}
}

// router finds a packet's port by its sender, then by its VNI.
type router struct {
	tunnel.Routes[netip.Addr, uint32]
}

// noVNI is no port's VNI (they have 24 bits): a header too short to carry
// one goes to the peer's first port.
const noVNI = MaxVNI + 1

// Route implements tunnel.Router. A packet from a known peer always gets
// one of its ports, so that its check counts what is wrong with it.
func (r *router) Route(pkt []byte, peer netip.Addr) *tunnel.Port {
	vni := uint32(noVNI)
	if len(pkt) >= HeaderLen {
		vni = binary.BigEndian.Uint32(pkt[4:]) >> 8
	}
	return r.Lookup(peer, vni)
}
