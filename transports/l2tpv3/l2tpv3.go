// Package l2tpv3 is the L2TPv3 Ethernet pseudowire port, over UDP or
// directly over IP (protocol 115), wire-compatible with UML's
// vecN:transport=l2tpv3 and QEMU's -netdev l2tpv3. Sessions with the same
// local address (and UDP port) share one socket; a packet goes to the port
// whose rx_session it carries, whoever sent it, as UML does.
//
// A packet for an unknown session is counted by the endpoint; one with the
// wrong cookie is counted on its session's port (bad-key). UML's counter is
// a plain 32-bit count, sent but never checked, as UML does.
package l2tpv3

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

// Config describes one session, from the switch's side.
type Config struct {
	UDP                   bool
	Local, Remote         netip.Addr
	LocalPort, RemotePort uint16 // with UDP
	RxSession, TxSession  uint32
	HasCookie, Cookie64   bool
	RxCookie, TxCookie    uint64
	Counter, PinCounter   bool
	Depth                 int
	MaxFrame              int
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
	k, local, peer := kindIP, netip.AddrPortFrom(cfg.Local, 0), netip.AddrPortFrom(cfg.Remote, 0)
	if cfg.UDP {
		k, local, peer = kindUDP, netip.AddrPortFrom(cfg.Local, cfg.LocalPort), netip.AddrPortFrom(cfg.Remote, cfg.RemotePort)
	}
	ep, err := t.Acquire(tunnel.EndpointConfig{Kind: k, Local: local, NewRouter: func() tunnel.Router { return newRouter(cfg.UDP) },
		HeaderLen: len(hdr), Depth: cfg.Depth, MaxFrame: cfg.MaxFrame})
	if err != nil {
		return nil, err
	}
	r := ep.Router().(*router)
	name := fmt.Sprintf("%s %s->%s session %d/%d", k.Name, cfg.Local, cfg.Remote, cfg.RxSession, cfg.TxSession)
	if cfg.UDP {
		name = fmt.Sprintf("%s %s->%s session %d/%d", k.Name, local, peer, cfg.RxSession, cfg.TxSession)
	}
	if cfg.HasCookie {
		name += " cookie"
	}
	if cfg.Counter {
		name += " counter"
	}
	var p *tunnel.Port
	p = ep.NewPort(tunnel.PortConfig{
		Name: name, MaxFrame: cfg.MaxFrame, Peer: peer,
		Header: hdr, CounterAt: counterAt, PinCounter: cfg.PinCounter,
		Check:   checker(l, cfg.RxCookie),
		OnClose: func() { r.remove(cfg.RxSession, p) },
	})
	if err := r.claim(cfg.RxSession, p); err != nil {
		p.Close()
		return nil, err
	}
	id, err := reg.Attach(p)
	if err != nil {
		p.Close()
		return nil, err
	}
	p.SetID(id)
	r.publish(cfg.RxSession, p)
	return p, nil
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

// router finds a packet's port by its session id. Changes replace the map
// as a whole, so Route takes no lock.
type router struct {
	udp   bool
	mu    sync.Mutex                              // serialises changes
	taken map[uint32]*tunnel.Port                 // guarded by mu: the port that holds each session
	ports atomic.Pointer[map[uint32]*tunnel.Port] // routed sessions
}

func newRouter(udp bool) *router {
	r := &router{udp: udp, taken: make(map[uint32]*tunnel.Port)}
	r.ports.Store(&map[uint32]*tunnel.Port{})
	return r
}

// claim reserves session for p, refusing a session another port holds.
func (r *router) claim(session uint32, p *tunnel.Port) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.taken[session] != nil {
		return fmt.Errorf("l2tpv3: session %d is already used on this local address", session)
	}
	r.taken[session] = p
	return nil
}

// publish starts routing session to p.
func (r *router) publish(session uint32, p *tunnel.Port) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.store(func(m map[uint32]*tunnel.Port) { m[session] = p })
}

// remove releases session if p holds it.
func (r *router) remove(session uint32, p *tunnel.Port) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.taken[session] != p {
		return
	}
	delete(r.taken, session)
	r.store(func(m map[uint32]*tunnel.Port) { delete(m, session) })
}

// store publishes a changed copy of the routes. The caller holds mu.
func (r *router) store(change func(map[uint32]*tunnel.Port)) {
	old := *r.ports.Load()
	next := make(map[uint32]*tunnel.Port, len(old)+1)
	for k, v := range old {
		next[k] = v
	}
	change(next)
	r.ports.Store(&next)
}

// Route implements tunnel.Router.
func (r *router) Route(pkt []byte, _ netip.Addr) *tunnel.Port {
	at := 0
	if r.udp {
		at = 4
	}
	if len(pkt) < at+4 {
		return nil
	}
	return (*r.ports.Load())[binary.BigEndian.Uint32(pkt[at:])]
}
