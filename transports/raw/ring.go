package raw

import (
	"fmt"
	"net"

	"golang.org/x/sys/unix"

	"github.com/umlswitch/umlswitch/fabric"
	"github.com/umlswitch/umlswitch/frame"
	"github.com/umlswitch/umlswitch/internal/offload"
	"github.com/umlswitch/umlswitch/internal/pktring"
)

// ringReader is the receive side on a TPACKET_V3 ring (ring=1): the kernel
// packs frames, each behind its virtio-net header, into blocks of memory
// the port shares with it, and hands over a block when it is full or
// after the retire timeout; frames are copied from there into the
// switch's batch, or cut into segments there. A block goes back to the
// kernel once its last frame is handed out, before the reader parks.
type ringReader struct {
	id      frame.PortID
	rx      *pktring.RX
	readyFn func(uintptr) bool // bound once, so a wait allocates no closure
	err     error              // the socket's pending error, found by ready

	plan offload.Plan // the offload frame being cut, still in its block
	data []byte
	seg  int // its next segment
	tag  vlanTag
}

// receiveRing is Receive on the ring. The ring's memory goes when the port
// closes: p.ringMu keeps Close from unmapping it under a read.
func (p *Port) receiveRing(v *frame.Vector) (int, error) {
	r := &p.ringRx
	for {
		p.ringMu.RLock()
		if p.ring == nil {
			p.ringMu.RUnlock()
			return 0, net.ErrClosed
		}
		out := r.handOut(v)
		p.ringMu.RUnlock()
		if out > 0 {
			return out, nil
		}
		r.err = nil
		if err := p.ReadWith(r.readyFn); err != nil {
			return 0, err
		}
		if r.err != nil {
			return 0, r.err // transient: the interface went down, say
		}
	}
}

// ready is the netpoller callback: done when the kernel has handed over a
// block. The kernel wakes the socket as it hands one over; a wakeup that
// finds none was an error on the socket (its interface went down), which
// reading the error clears, as a recvmmsg would.
func (p *Port) ready(fd uintptr) bool {
	p.ringMu.RLock()
	defer p.ringMu.RUnlock()
	if p.ring == nil || p.ringRx.rx.Ready() {
		return true
	}
	if e, err := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_ERROR); err == nil && e != 0 {
		p.ringRx.err = unix.Errno(e)
		return true
	}
	return false
}

// handOut fills v from the ring: segments still owed first, then frames
// in order. It returns how many frames it put in v.
func (r *ringReader) handOut(v *frame.Vector) int {
	out, limit := 0, v.Depth()
	for out < limit {
		if r.seg < r.plan.Count {
			size := r.plan.Size(r.seg)
			if size <= v.MaxFrame {
				r.plan.Segment(r.data, r.seg, v.Room(out))
			}
			r.emit(v, out, size, r.tag)
			out++
			r.seg++
			continue
		}
		r.data = nil
		f, ok := r.rx.Next() // the previous frame's block may go back now
		if !ok {
			break
		}
		tag := ringTag(f)
		if len(f.Data) < f.Len {
			// Longer than a block holds (a BIG TCP super-frame, say): its
			// true length makes it oversize.
			r.emit(v, out, f.Len, tag)
			out++
			continue
		}
		h := offload.ParseHdr(f.Vnet)
		if h.IsGSO() {
			plan, err := offload.NewPlan(h, f.Data)
			if err != nil {
				v.Sizes[out], v.Ports[out] = fabric.Rejected(fabric.DropDecap), r.id
				out++
				continue
			}
			r.plan, r.data, r.seg, r.tag = plan, f.Data, 0, tag
			continue
		}
		size := len(f.Data)
		if size <= v.MaxFrame {
			fr := v.Room(out)[:size]
			copy(fr, f.Data)
			offload.CompleteChecksum(h, fr)
		}
		r.emit(v, out, size, tag)
		out++
	}
	return out
}

// emit records frame out, putting back its VLAN tag if it had one.
func (r *ringReader) emit(v *frame.Vector, out, size int, tag vlanTag) {
	v.Sizes[out], v.Ports[out] = size, r.id
	if tag.present {
		reinsertVLAN(v, out, tag)
	}
}

// ringTag is the VLAN tag the kernel took out of f, as its tpacket3_hdr
// reports it.
func ringTag(f pktring.Frame) vlanTag {
	if f.Status&unix.TP_STATUS_VLAN_VALID == 0 {
		return vlanTag{}
	}
	t := vlanTag{present: true, tci: f.VLANTCI, tpid: f.VLANTPID}
	if f.Status&unix.TP_STATUS_VLAN_TPID_VALID == 0 || t.tpid == 0 {
		t.tpid = unix.ETH_P_8021Q
	}
	return t
}

// txRing, set to "1" at link time (-X), has ring=1 ports send through a
// transmit ring instead of sendmmsg.
var txRing = "0"

// Write implements fabric.Port: through the transmit ring if the port has
// one, else with sendmmsg.
func (p *Port) Write(frames [][]byte) (int, error) {
	if p.tx == nil {
		return p.Port.Write(frames)
	}
	p.txMu.Lock()
	defer p.txMu.Unlock()
	p.txFrames = frames
	err := p.Sockopt(p.sendFn) // fails once closed, before the ring is unmapped
	p.txFrames = nil
	if err != nil {
		return 0, err
	}
	return p.txN, txError(p.txErr)
}

// send is Write's step with the socket borrowed. The caller holds p.txMu.
func (p *Port) send(fd int) error {
	p.txN, p.txErr = p.tx.Send(fd, p.txFrames)
	return nil
}

var (
	errTxPeerGone  = fmt.Errorf("raw: transmit ring: %w", fabric.ErrPeerGone)
	errTxFrameSize = fmt.Errorf("raw: %w", pktring.ErrFrameSize)
)

// txError is what Write reports for an error of the transmit ring.
func txError(err error) error {
	switch err {
	case nil:
		return nil
	case pktring.ErrFull, unix.EAGAIN, unix.ENOBUFS:
		return fabric.ErrWouldBlock
	case unix.ENETDOWN, unix.ENXIO, unix.ENODEV:
		return errTxPeerGone
	case pktring.ErrFrameSize:
		return errTxFrameSize
	}
	return err // frames[n] alone
}
