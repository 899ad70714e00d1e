// Package l2tpv3 is the L2TPv3 Ethernet pseudowire port, over UDP or
// directly over IP (protocol 115), wire-compatible with UML's
// vecN:transport=l2tpv3 and QEMU's -netdev l2tpv3. Sessions with the same
// local address (and UDP port) share one socket; a packet goes to the port
// whose rx_session it carries, and is taken only from that session's peer:
// its dst= address, and over UDP its dstport= too.
//
// UML takes a session's packets from whoever sends them; the switch does
// not. A session id is no secret (a cookie, when there is one, is a weak
// one), and over UDP any local user can send from 127.0.0.1 or from any of
// the host's addresses: without the check, a user who can run no guest of
// their own injected frames into a root guest's LAN. GRE and VXLAN route
// by the sender already. UML and QEMU send from the address and port they
// were told to bind (their src= and srcport=, the switch's dst= and
// dstport=), so they pass.
//
// A packet for an unknown session, or from another sender than its
// session's peer, is counted by the endpoint (unknown); one with the wrong
// cookie is counted on its session's port (bad-key). UML's counter is
// a plain 32-bit count, sent but never checked, as UML does.
package l2tpv3

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"golang.org/x/sys/unix"

	"github.com/umlswitch/umlswitch/fabric"
	"github.com/umlswitch/umlswitch/transports/portkind"
	"github.com/umlswitch/umlswitch/tunnel"
)

// Config describes one l2tpv3 port: its keys and what the switch adds.
type Config struct {
	Options
	portkind.Common
}

func (c Config) layout() Layout {
	l := Layout{UDP: c.UDP, Counter: c.Counter}
	if c.HasCookie {
		l.Cookie = 4
		if c.Cookie64 {
			l.Cookie = 8
		}
	}
	return l
}

var (
	kindUDP = tunnel.Kind{Name: "l2tpv3/udp", Type: unix.SOCK_DGRAM}
	kindIP  = tunnel.Kind{Name: "l2tpv3/ip", Type: unix.SOCK_RAW, Proto: IPProto}
)

// Open makes the session's port, attaches it to reg and starts routing to it.
func Open(t *tunnel.Table, reg fabric.Registry, cfg Config) (*tunnel.Port, error) {
	l := cfg.layout()
	hdr, counterAt := Encode(l, cfg.TxSession, cfg.TxCookie)
	k, local, peer := kindIP, netip.AddrPortFrom(cfg.Src, 0), netip.AddrPortFrom(cfg.Dst, 0)
	if cfg.UDP {
		k, local, peer = kindUDP, netip.AddrPortFrom(cfg.Src, cfg.SrcPort), netip.AddrPortFrom(cfg.Dst, cfg.DstPort)
	}
	ep, err := t.Acquire(tunnel.EndpointConfig{Kind: k, Local: local,
		NewRouter: func() tunnel.Router { return &router{sessionAt: l.SessionAt()} },
		HeaderLen: len(hdr), Depth: cfg.Depth, MaxFrame: cfg.MaxFrame})
	if err != nil {
		return nil, err
	}
	name := fmt.Sprintf("%s %s->%s session %d/%d", k.Name, cfg.Src, cfg.Dst, cfg.RxSession, cfg.TxSession)
	if cfg.UDP {
		name = fmt.Sprintf("%s %s->%s session %d/%d", k.Name, local, peer, cfg.RxSession, cfg.TxSession)
	}
	if cfg.HasCookie {
		name += " cookie"
	}
	if cfg.Counter {
		name += " counter"
	}
	return ep.Router().(*router).OpenPort(ep, reg, cfg.RxSession, struct{}{}, tunnel.PortConfig{
		Name: name, MaxFrame: cfg.MaxFrame, Peer: peer,
		Header: hdr, CounterAt: counterAt, PinCounter: cfg.PinCounter,
		Check: checker(l, cfg.RxCookie), OnlyFromPeer: true,
	})
}

// checker validates a packet for its session: long enough, and with the
// session's cookie. (The session was matched by the router; like UML, the
// UDP data word and the counter are not checked.)
func checker(l Layout, rxCookie uint64) func([]byte) (int, fabric.DropReason) {
	n, at := l.Len(), l.SessionAt()+4
	return func(pkt []byte) (int, fabric.DropReason) {
		if len(pkt) < n {
			return 0, fabric.DropDecap
		}
		switch l.Cookie {
		case 4:
			if uint64(binary.BigEndian.Uint32(pkt[at:])) != rxCookie {
				return 0, fabric.DropAuth
			}
		case 8:
			if binary.BigEndian.Uint64(pkt[at:]) != rxCookie {
				return 0, fabric.DropAuth
			}
		}
		return n, 0
	}
}

// router finds a packet's port by its session id: a session has one port.
// That the packet is from the session's peer is the endpoint's check
// (tunnel.PortConfig.OnlyFromPeer), which sees the sender's UDP port.
type router struct {
	tunnel.Routes[uint32, struct{}]
	sessionAt int // the same on every port of an endpoint: UDP or not
}

// Route implements tunnel.Router.
func (r *router) Route(pkt []byte, _ netip.Addr) *tunnel.Port {
	if len(pkt) < r.sessionAt+4 {
		return nil
	}
	return r.Lookup(binary.BigEndian.Uint32(pkt[r.sessionAt:]), struct{}{})
}
