// Package gre is the Ethernet-over-GRE port (protocol 0x6558 on IP
// protocol 47), wire-compatible with UML's vecN:transport=gre and with
// Linux's gretap. All GRE ports with the same local address share one raw
// socket; a packet goes to the port whose peer sent it (and, when several
// ports have the same peer, whose key it carries).
//
// As UML does, a port accepts only packets whose first word (flags,
// version, protocol) equals the one it sends: a peer configured with other
// key or sequence settings, or one that sets the checksum bit, is dropped
// and counted (decap); a wrong key is counted as bad-key.
package gre

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/umlswitch/umlswitch/fabric"
	"github.com/umlswitch/umlswitch/tunnel"
)

// Config describes one GRE port, from the switch's side.
type Config struct {
	Local, Remote netip.Addr // the switch's address and the peer's
	HasKey        bool
	RxKey, TxKey  uint32 // what the switch expects, what it sends
	Sequence      bool
	PinSequence   bool
	Depth         int
	MaxFrame      int
}

var kind = tunnel.Kind{Name: "gre", Type: unix.SOCK_RAW, Proto: IPProto}

// Open makes the port, attaches it to reg and starts routing to it.
func Open(t *tunnel.Table, reg fabric.Registry, cfg Config) (*tunnel.Port, error) {
	hdr, seqAt := Encode(cfg.HasKey, cfg.TxKey, cfg.Sequence)
	ep, err := t.Acquire(tunnel.EndpointConfig{Kind: kind, Local: netip.AddrPortFrom(cfg.Local, 0),
		NewRouter: func() tunnel.Router { return newRouter() }, HeaderLen: len(hdr), Depth: cfg.Depth, MaxFrame: cfg.MaxFrame})
	if err != nil {
		return nil, err
	}
	r := ep.Router().(*router)
	name := fmt.Sprintf("gre %s->%s", cfg.Local, cfg.Remote)
	if cfg.HasKey {
		name += fmt.Sprintf(" key %d/%d", cfg.RxKey, cfg.TxKey)
	}
	if cfg.Sequence {
		name += " seq"
	}
	want := firstWord(cfg.HasKey, cfg.Sequence)
	var p *tunnel.Port
	p = ep.NewPort(tunnel.PortConfig{
		Name: name, MaxFrame: cfg.MaxFrame, Peer: netip.AddrPortFrom(cfg.Remote, 0),
		Header: hdr, CounterAt: seqAt, PinCounter: cfg.PinSequence,
		Check:   checker(want, cfg.HasKey, cfg.RxKey, len(hdr)),
		OnClose: func() { r.remove(p) },
	})
	if err := r.claim(cfg.Remote, cfg.HasKey, cfg.RxKey); err != nil {
		p.Close()
		return nil, err
	}
	id, err := reg.Attach(p)
	if err != nil {
		r.unclaim(cfg.Remote, cfg.HasKey, cfg.RxKey)
		p.Close()
		return nil, err
	}
	p.SetID(id)
	r.add(p, cfg.Remote, cfg.HasKey, cfg.RxKey)
	return p, nil
}

// checker validates a packet for a port: the first word exactly as the
// port sends it (so no checksum bit, the same key and sequence flags), and
// the port's key.
func checker(want uint32, hasKey bool, rxKey uint32, hdrLen int) func([]byte) (int, fabric.DropReason) {
	return func(pkt []byte) (int, fabric.DropReason) {
		if len(pkt) < 4 || binary.BigEndian.Uint32(pkt) != want || len(pkt) < hdrLen {
			return 0, fabric.DropDecap
		}
		if hasKey && binary.BigEndian.Uint32(pkt[4:]) != rxKey {
			return 0, fabric.DropAuth
		}
		return hdrLen, 0
	}
}

// router finds a packet's port by its sender, then by its key. The table is
// replaced as a whole on changes, so Route takes no lock.
type router struct {
	mu     sync.Mutex // serialises changes
	claims map[route]bool
	ports  atomic.Pointer[map[netip.Addr][]entry]
}

type route struct {
	peer   netip.Addr
	hasKey bool
	key    uint32
}

type entry struct {
	route
	port *tunnel.Port
}

func newRouter() *router {
	r := &router{claims: make(map[route]bool)}
	r.ports.Store(&map[netip.Addr][]entry{})
	return r
}

// claim reserves a peer and key for a new port, refusing a duplicate.
func (r *router) claim(peer netip.Addr, hasKey bool, key uint32) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	k := route{peer, hasKey, key}
	if r.claims[k] {
		if hasKey {
			return fmt.Errorf("gre: another port on this local address already has peer %s with key %d", peer, key)
		}
		return fmt.Errorf("gre: another port on this local address already has peer %s without a key", peer)
	}
	r.claims[k] = true
	return nil
}

func (r *router) unclaim(peer netip.Addr, hasKey bool, key uint32) {
	r.mu.Lock()
	delete(r.claims, route{peer, hasKey, key})
	r.mu.Unlock()
}

func (r *router) add(p *tunnel.Port, peer netip.Addr, hasKey bool, key uint32) {
	r.mu.Lock()
	defer r.mu.Unlock()
	next := r.copyMap()
	next[peer] = append(next[peer], entry{route{peer, hasKey, key}, p})
	r.ports.Store(&next)
}

func (r *router) remove(p *tunnel.Port) {
	r.mu.Lock()
	defer r.mu.Unlock()
	next := r.copyMap()
	for peer, list := range next {
		for i, e := range list {
			if e.port == p {
				delete(r.claims, e.route)
				list = append(list[:i:i], list[i+1:]...)
				if len(list) == 0 {
					delete(next, peer)
				} else {
					next[peer] = list
				}
				r.ports.Store(&next)
				return
			}
		}
	}
}

func (r *router) copyMap() map[netip.Addr][]entry {
	old := *r.ports.Load()
	next := make(map[netip.Addr][]entry, len(old)+1)
	for k, v := range old {
		next[k] = append([]entry(nil), v...)
	}
	return next
}

// Route implements tunnel.Router.
func (r *router) Route(pkt []byte, peer netip.Addr) *tunnel.Port {
	list := (*r.ports.Load())[peer]
	switch len(list) {
	case 0:
		return nil
	case 1:
		return list[0].port // its check decides about flags and key
	}
	hasKey := len(pkt) >= 8 && binary.BigEndian.Uint16(pkt)&flagKey != 0
	var key uint32
	if hasKey {
		key = binary.BigEndian.Uint32(pkt[4:])
	}
	for _, e := range list {
		if e.hasKey == hasKey && (!hasKey || e.key == key) {
			return e.port
		}
	}
	return list[0].port // the peer is known: its first port counts the mismatch
}
