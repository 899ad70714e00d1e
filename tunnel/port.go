package tunnel

import (
	"encoding/binary"
	"fmt"
	"math"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/umlswitch/umlswitch/fabric"
	"github.com/umlswitch/umlswitch/frame"
	"github.com/umlswitch/umlswitch/internal/mmsg"
)

// txChunk is the most frames one sendmmsg carries.
const txChunk = 64

// maxHeader bounds an encapsulation header (L2TPv3 over UDP with a 64-bit
// cookie and a counter is 20 bytes).
const maxHeader = 32

// PortConfig describes one tunnel port.
type PortConfig struct {
	Name     string
	MaxFrame int
	Peer     netip.AddrPort // where frames go (port 0 for raw sockets)
	Header   []byte         // sent in front of every frame
	// CounterAt is the offset in Header of a 32-bit big-endian number
	// that counts frames from 1 (a GRE sequence, an L2TPv3 counter), or -1.
	CounterAt int
	// PinCounter sends the counter as 0 on every frame, as UML's
	// pin_sequence and pin_counter do.
	PinCounter bool
	// Check validates a received packet's header for this port: it returns
	// the header's length, or a drop reason.
	Check func(pkt []byte) (hdrLen int, reason fabric.DropReason)
	// OnlyFromPeer accepts packets from Peer alone (its address, and its
	// UDP port when it has one), for protocols that route by something a
	// sender chooses (an L2TPv3 session): any local user can send UDP from
	// 127.0.0.1, or from any of the host's addresses. Packets from anyone
	// else are counted as the endpoint's unknown.
	OnlyFromPeer bool
	// OnClose runs once when the port closes, before the endpoint is
	// released: the port's route is removed there (Routes.OpenPort).
	OnClose func()
}

// Port is a fabric.Port that sends through an endpoint's socket.
type Port struct {
	ep       *Endpoint
	cfg      PortConfig
	check    func(pkt []byte) (int, fabric.DropReason)
	peer     rawSockaddr
	from     netip.AddrPort // with onlyPeer: the one sender accepted, as decodeSockaddr gives it
	onlyPeer bool
	id       frame.PortID
	counter  atomic.Uint32
	txPool   sync.Pool // *txScratch: concurrent writers share nothing
	closed   atomic.Bool
	once     sync.Once

	// With GSO: segments this long or longer go one per message (the path
	// refused them: longer than its MTU); gsoOff after the path refused GSO
	// altogether (no checksum offload, IPsec).
	gsoLimit atomic.Int32
	gsoOff   atomic.Bool

	unreachable atomic.Bool // the last send found no route to the peer: said once per episode
	overrunBase uint64      // the endpoint's overruns before the port was opened
}

var _ fabric.KernelDropper = (*Port)(nil)

// errUnreachable is returned without allocating when the peer has no route.
var errUnreachable = fmt.Errorf("tunnel: %w", fabric.ErrUnreachable)

var _ fabric.Port = (*Port)(nil)

type txScratch struct {
	b     *mmsg.Batch
	hdrs  [txChunk][maxHeader]byte // per-message headers when a counter advances
	ctrl  [txChunk][ctrlLen]byte   // per-message UDP_SEGMENT, with GSO
	first [txChunk + 1]uint8       // with GSO: message m sends frames [first[m], first[m+1])
}

func newTxBatch() *mmsg.Batch { return mmsg.NewBatch(txChunk, 2) }

// NewPort makes a port on e. It is not routed to until its route is
// published, after SetID (Routes.OpenPort does both).
func (e *Endpoint) NewPort(cfg PortConfig) *Port {
	p := &Port{ep: e, cfg: cfg, check: cfg.Check, peer: encodeSockaddr(cfg.Peer), onlyPeer: cfg.OnlyFromPeer,
		from: netip.AddrPortFrom(cfg.Peer.Addr().Unmap().WithZone(""), cfg.Peer.Port())}
	p.gsoLimit.Store(math.MaxInt32)
	p.overrunBase = e.Overruns()
	p.txPool.New = func() any {
		s := &txScratch{b: newTxBatch()}
		for i := 0; i < txChunk; i++ {
			segmentCmsg(s.ctrl[i][:])
			s.b.SetName(i, p.peer.b[:p.peer.n])
			if p.cfg.CounterAt < 0 || p.cfg.PinCounter {
				s.b.SetBuf(i, 0, p.cfg.Header) // constant: every message shares the template
			} else {
				copy(s.hdrs[i][:], p.cfg.Header)
				s.b.SetBuf(i, 0, s.hdrs[i][:len(p.cfg.Header)])
			}
		}
		return s
	}
	return p
}

// sentBy reports whether a packet from sender is from the port's peer. A
// raw socket's sender has no port (the kernel reports 0), and nor has the
// peer of a raw port. Comparing AddrPort values allocates nothing.
func (p *Port) sentBy(sender netip.AddrPort) bool {
	return sender == p.from
}

// SetID records the switch's id for the port; received frames carry it.
func (p *Port) SetID(id frame.PortID) { p.id = id }

// Name implements fabric.Port.
func (p *Port) Name() string { return p.cfg.Name }

// MaxFrame implements fabric.Port.
func (p *Port) MaxFrame() int { return p.cfg.MaxFrame }

// Endpoint is the endpoint the port sends through.
func (p *Port) Endpoint() *Endpoint { return p.ep }

// Write implements fabric.Port: one sendmmsg per 64 frames, each message
// the port's header followed by the frame; with GSO, a message carries a
// run of same-size frames (see offload.go).
func (p *Port) Write(frames [][]byte) (int, error) {
	if p.closed.Load() {
		return 0, net.ErrClosed
	}
	fd, ok := p.ep.fd.Borrow()
	if !ok {
		return 0, net.ErrClosed
	}
	defer p.ep.fd.Return()
	s := p.txPool.Get().(*txScratch)
	defer p.txPool.Put(s)
	counting := p.cfg.CounterAt >= 0 && !p.cfg.PinCounter
	sent, numbered := 0, -1
	for sent < len(frames) {
		chunk := frames[sent:min(len(frames), sent+txChunk)]
		if counting && numbered != sent {
			// Reserve the chunk's numbers at once; concurrent writers get
			// disjoint ranges (their frames may interleave on the wire).
			// A chunk sent again after GSO was refused keeps its numbers.
			seq := p.counter.Add(uint32(len(chunk))) - uint32(len(chunk))
			for i := range chunk {
				binary.BigEndian.PutUint32(s.hdrs[i][p.cfg.CounterAt:], seq+1+uint32(i))
			}
			numbered = sent
		}
		for i, f := range chunk {
			s.b.SetBuf(i, 1, f)
		}
		msgs, gso := len(chunk), false
		if p.ep.gso {
			gso = !p.gsoOff.Load()
			msgs = s.coalesce(chunk, len(p.cfg.Header), gso, int(p.gsoLimit.Load()))
		}
		n, err := s.b.Send(fd, 0, msgs, unix.MSG_DONTWAIT)
		if p.ep.gso {
			n = int(s.first[n]) // frames, not messages
		}
		sent += n
		if n > 0 && p.unreachable.Load() {
			p.routed()
		}
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			return sent, fabric.ErrWouldBlock
		case err == unix.ENETUNREACH || err == unix.EHOSTUNREACH:
			// The rest would fail the same way: the switch drops them all.
			p.noRoute(err)
			return sent, errUnreachable
		case err != nil && gso && s.first[1] > 1 && p.refused(err, len(p.cfg.Header)+len(chunk[0])):
			continue // the same frames again, in smaller messages
		case err != nil:
			// ECONNREFUSED and friends: an ICMP error for an earlier
			// datagram, reported on this send. Counted for this frame.
			return sent, err
		case n < len(chunk):
			return sent, fabric.ErrWouldBlock
		}
	}
	return sent, nil
}

// noRoute warns, once per episode, that the peer has no route.
func (p *Port) noRoute(err error) {
	if p.unreachable.CompareAndSwap(false, true) {
		p.ep.t.log.Warn("tunnel peer unreachable: dropping what is sent to it", "port", p.cfg.Name,
			"peer", p.cfg.Peer, "err", err)
	}
}

// routed ends an episode of noRoute: a frame went out again.
func (p *Port) routed() {
	if p.unreachable.CompareAndSwap(true, false) {
		p.ep.t.log.Info("tunnel peer reachable again", "port", p.cfg.Name, "peer", p.cfg.Peer)
	}
}

// refused reacts to the path refusing a GSO message of size-byte segments,
// and reports whether sending smaller messages may help: EINVAL and
// EMSGSIZE mean a segment does not fit the path's MTU (the kernel would
// fragment it if sent alone), EIO that the route takes no GSO at all
// (IPsec; on older kernels, a device without checksum offload).
func (p *Port) refused(err error, size int) bool {
	switch err {
	case unix.EINVAL, unix.EMSGSIZE:
		for {
			limit := p.gsoLimit.Load()
			if int32(size) >= limit || p.gsoLimit.CompareAndSwap(limit, int32(size)) {
				return true
			}
		}
	case unix.EIO:
		if p.gsoOff.CompareAndSwap(false, true) {
			p.ep.t.log.Warn("UDP segmentation offload refused: sending one datagram per message", "port", p.cfg.Name, "err", err)
		}
		return true
	}
	return false
}

// KernelDrops implements fabric.KernelDropper: packets the endpoint's
// socket had no room for since the port was opened, as rx-overrun. The
// kernel does not say which port they were for, so ports that share a
// socket (a local address) each show all of them.
func (p *Port) KernelDrops(d *[fabric.NumDropReasons]uint64) {
	d[fabric.DropRxOverrun] += p.ep.Overruns() - p.overrunBase
}

// WaitWritable implements fabric.Port.
func (p *Port) WaitWritable(timeout time.Duration) bool { return p.ep.fd.WaitWritable(timeout) }

// Close implements fabric.Port: the port stops being routed to and releases
// its endpoint (the last port closes the socket).
func (p *Port) Close() error {
	p.once.Do(func() {
		p.closed.Store(true)
		if p.cfg.OnClose != nil {
			p.cfg.OnClose()
		}
		p.ep.Release()
	})
	return nil
}
