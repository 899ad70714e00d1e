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

	"golang.org/x/sys/unix"

	"github.com/umlswitch/umlswitch/fabric"
	"github.com/umlswitch/umlswitch/transports/portkind"
	"github.com/umlswitch/umlswitch/tunnel"
)

// Config describes one gre port: its keys and what the switch adds.
type Config struct {
	Options
	portkind.Common
}

var kind = tunnel.Kind{Name: "gre", Type: unix.SOCK_RAW, Proto: IPProto}

// Open makes the port, attaches it to reg and starts routing to it.
func Open(t *tunnel.Table, reg fabric.Registry, cfg Config) (*tunnel.Port, error) {
	hdr, seqAt := Encode(cfg.HasKey, cfg.TxKey, cfg.Sequence)
	ep, err := t.Acquire(tunnel.EndpointConfig{Kind: kind, Local: netip.AddrPortFrom(cfg.Src, 0),
		NewRouter: func() tunnel.Router { return new(router) }, HeaderLen: len(hdr), Depth: cfg.Depth, MaxFrame: cfg.MaxFrame})
	if err != nil {
		return nil, err
	}
	name := fmt.Sprintf("gre %s->%s", cfg.Src, cfg.Dst)
	rx := routeKey{}
	if cfg.HasKey {
		name += fmt.Sprintf(" key %d/%d", cfg.RxKey, cfg.TxKey)
		rx = routeKey{true, cfg.RxKey}
	}
	if cfg.Sequence {
		name += " seq"
	}
	return ep.Router().(*router).OpenPort(ep, reg, cfg.Dst, rx, tunnel.PortConfig{
		Name: name, MaxFrame: cfg.MaxFrame, Peer: netip.AddrPortFrom(cfg.Dst, 0),
		Header: hdr, CounterAt: seqAt, PinCounter: cfg.PinSequence,
		Check: checker(firstWord(cfg.HasKey, cfg.Sequence), cfg.HasKey, cfg.RxKey, len(hdr)),
	})
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

// router finds a packet's port by its sender, then by its key.
type router struct {
	tunnel.Routes[netip.Addr, routeKey]
}

// routeKey tells one peer's ports apart: a key, or none.
type routeKey struct {
	has bool
	key uint32 // 0 without a key
}

// Route implements tunnel.Router. A packet from a known peer whose key no
// port has goes to the peer's first port, whose check counts it; so does
// any packet when the peer has one port.
func (r *router) Route(pkt []byte, peer netip.Addr) *tunnel.Port {
	var k routeKey
	if len(pkt) >= 8 && binary.BigEndian.Uint16(pkt)&flagKey != 0 {
		k = routeKey{true, binary.BigEndian.Uint32(pkt[4:])}
	}
	return r.Lookup(peer, k)
}
