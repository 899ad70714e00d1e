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
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/umlswitch/umlswitch/fabric"
	"github.com/umlswitch/umlswitch/frame"
	"github.com/umlswitch/umlswitch/tunnel"
)

// Config describes one VXLAN port, from the switch's side.
type Config struct {
	Local, Remote netip.Addr // switch's address (src) and peer's (dst); both v4 or both v6
	VNI           uint32     // 24 bits
	DstPort       uint16     // UDP port on both ends; 0 means 4789
	Depth         int
	MaxFrame      int
}

var kind = tunnel.Kind{Name: "vxlan", Type: unix.SOCK_DGRAM}

// validate returns cfg with its defaults applied, or why it cannot work.
func (cfg Config) validate() (Config, error) {
	cfg.Local, cfg.Remote = cfg.Local.Unmap(), cfg.Remote.Unmap()
	switch {
	case !cfg.Local.IsValid() || !cfg.Remote.IsValid():
		return cfg, errors.New("vxlan: local and remote addresses are both required")
	case cfg.Local.Is4() != cfg.Remote.Is4():
		return cfg, fmt.Errorf("vxlan: local %s and remote %s are not of one address family", cfg.Local, cfg.Remote)
	case cfg.Local.Zone() != "" || cfg.Remote.Zone() != "":
		return cfg, fmt.Errorf("vxlan: %s->%s: addresses with a zone are not supported", cfg.Local, cfg.Remote)
	case cfg.Remote.IsUnspecified() || cfg.Remote.IsMulticast():
		return cfg, fmt.Errorf("vxlan: remote %s: a unicast peer address is required", cfg.Remote)
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
	local, peer := netip.AddrPortFrom(cfg.Local, cfg.DstPort), netip.AddrPortFrom(cfg.Remote, cfg.DstPort)
	// Errors from the table already name the kind ("vxlan: bind ...").
	ep, err := t.Acquire(tunnel.EndpointConfig{Kind: kind, Local: local, NewRouter: func() tunnel.Router { return newRouter() },
		HeaderLen: HeaderLen, Depth: cfg.Depth, MaxFrame: cfg.MaxFrame})
	if err != nil {
		return nil, err
	}
	r := ep.Router().(*router)
	key := route{cfg.Remote, cfg.VNI}
	hdr := Encode(cfg.VNI)
	var p *tunnel.Port
	p = ep.NewPort(tunnel.PortConfig{
		Name: fmt.Sprintf("vxlan %s->%s vni %d", local, peer, cfg.VNI), MaxFrame: cfg.MaxFrame, Peer: peer,
		Header: hdr[:], CounterAt: -1,
		Check:   checker(cfg.VNI),
		OnClose: func() { r.remove(key, p) },
	})
	if err := r.claim(key, p, local); err != nil {
		p.Close()
		return nil, err
	}
	id, err := reg.Attach(p)
	if err != nil {
		p.Close()
		return nil, fmt.Errorf("vxlan: attach %s: %w", p.Name(), err)
	}
	p.SetID(id)
	r.publish(key, p)
	return p, nil
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

// route is what a port claims on its endpoint: its peer's address and VNI.
type route struct {
	peer netip.Addr
	vni  uint32
}

type entry struct {
	vni  uint32
	port *tunnel.Port
}

// router finds a packet's port by its sender, then by its VNI. The table is
// replaced as a whole on changes, so Route takes no lock.
type router struct {
	mu     sync.Mutex                             // serialises changes
	claims map[route]*tunnel.Port                 // guarded by mu: the port holding each route
	peers  atomic.Pointer[map[netip.Addr][]entry] // routed ports, in the order they were published
}

func newRouter() *router {
	r := &router{claims: make(map[route]*tunnel.Port)}
	r.peers.Store(&map[netip.Addr][]entry{})
	return r
}

// claim reserves k for p, refusing a route another port holds.
func (r *router) claim(k route, p *tunnel.Port, local netip.AddrPort) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.claims[k] != nil {
		return fmt.Errorf("vxlan: %s already has a port for peer %s with vni %d", local, k.peer, k.vni)
	}
	r.claims[k] = p
	return nil
}

// publish starts routing k to p.
func (r *router) publish(k route, p *tunnel.Port) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.store(func(m map[netip.Addr][]entry) { m[k.peer] = append(m[k.peer], entry{k.vni, p}) })
}

// remove releases k if p holds it, and stops routing to p.
func (r *router) remove(k route, p *tunnel.Port) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.claims[k] != p {
		return
	}
	delete(r.claims, k)
	r.store(func(m map[netip.Addr][]entry) {
		var rest []entry
		for _, e := range m[k.peer] {
			if e.port != p {
				rest = append(rest, e)
			}
		}
		if len(rest) == 0 {
			delete(m, k.peer)
		} else {
			m[k.peer] = rest
		}
	})
}

// store publishes a changed copy of the routes. The caller holds mu.
func (r *router) store(change func(map[netip.Addr][]entry)) {
	old := *r.peers.Load()
	next := make(map[netip.Addr][]entry, len(old)+1)
	for k, v := range old {
		next[k] = append([]entry(nil), v...)
	}
	change(next)
	r.peers.Store(&next)
}

// Route implements tunnel.Router. A packet from a known peer always gets
// one of its ports, so that its check counts what is wrong with it.
func (r *router) Route(pkt []byte, peer netip.Addr) *tunnel.Port {
	list := (*r.peers.Load())[peer]
	if len(list) == 0 {
		return nil
	}
	if len(pkt) >= HeaderLen {
		vni := binary.BigEndian.Uint32(pkt[4:]) >> 8
		for _, e := range list {
			if e.vni == vni {
				return e.port
			}
		}
	}
	return list[0].port
}
