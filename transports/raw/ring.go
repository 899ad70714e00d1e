package raw

import (
	"net"

	"golang.org/x/sys/unix"

	"github.com/umlswitch/umlswitch/fabric"
	"github.com/umlswitch/umlswitch/frame"
	"github.com/umlswitch/umlswitch/internal/mmsg"
	"github.com/umlswitch/umlswitch/internal/offload"
	"github.com/umlswitch/umlswitch/internal/pktring"
)

// ringReader is the receive side on a ring (ring=frames or blocks): the
// kernel puts frames, each behind its virtio-net header, into memory the
// port shares with it, and hands over each slot (TPACKET_V2) or block
// (TPACKET_V3) by its status word; frames are copied from there into the
// switch's batch, or cut into segments there. A slot or block goes back
// to the kernel once its last frame is handed out, before the reader
// parks.
type ringReader struct {
	id      frame.PortID
	rx      *pktring.RX
	readyFn func(uintptr) bool // bound once, so a wait allocates no closure
	err     error              // the socket's pending error, found by ready
	woken   bool               // ready has looked once since the reader last found nothing

	// A frame longer than a TPACKET_V2 slot is read from the socket's
	// queue into copyBuf: virtio-net header, then the frame.
	sockopt func(func(fd int) error) error
	copyFn  func(fd int) error // readCopy, bound once
	copyB   *mmsg.Batch
	copyBuf []byte
	copyN   int // its true length, or -1 for none read

	plan offload.Plan // the offload frame being cut, still in its block or in copyBuf
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
		r.err, r.woken = nil, false
		if err := p.ReadWith(r.readyFn); err != nil {
			return 0, err
		}
		if r.err != nil {
			return 0, r.err // transient: the interface went down, say
		}
	}
}

// ready is the netpoller callback: done when the kernel has handed over a
// block or slot. The kernel wakes the socket as it hands one over; a
// wakeup that finds none may be an error on the socket (its interface went
// down), which reading the error clears, as a recvmmsg would. The first
// look, before any wait, costs no system call.
func (p *Port) ready(fd uintptr) bool {
	p.ringMu.RLock()
	defer p.ringMu.RUnlock()
	r := &p.ringRx
	if p.ring == nil || r.rx.Ready() {
		return true
	}
	if !r.woken {
		r.woken = true
		return false
	}
	if e, err := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_ERROR); err == nil && e != 0 {
		r.err = unix.Errno(e)
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
		if f.Copied {
			out += r.handCopy(v, out, tag)
			continue
		}
		if len(f.Data) < f.Len && r.rx.Slotted() {
			// Longer than a slot, and the kernel found no room to queue
			// it whole.
			v.Sizes[out], v.Ports[out] = fabric.Rejected(fabric.DropRxOverrun), r.id
			out++
			continue
		}
		if len(f.Data) < f.Len {
			// Longer than a block holds (a BIG TCP super-frame, say): its
			// true length makes it oversize. (A cut frame short enough to
			// forward would be the kernel's mistake: never forward it.)
			if f.Len <= v.MaxFrame {
				v.Sizes[out], v.Ports[out] = fabric.Rejected(fabric.DropDecap), r.id
			} else {
				r.emit(v, out, f.Len, tag)
			}
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

// handCopy reads the frame a TPACKET_V2 slot could not hold from the
// socket's queue, and puts it, or the first segment of it, in v at out.
// It returns 1, or 0 when the segments are owed to the next rounds.
func (r *ringReader) handCopy(v *frame.Vector, out int, tag vlanTag) int {
	if r.copyB == nil {
		r.copyBuf = make([]byte, maxRead)
		r.copyB = mmsg.NewBatch(1, 1)
		r.copyB.SetBuf(0, 0, r.copyBuf)
	}
	r.copyN = -1
	if err := r.sockopt(r.copyFn); err != nil || r.copyN < offload.HdrLen {
		v.Sizes[out], v.Ports[out] = fabric.Rejected(fabric.DropRxOverrun), r.id
		return 1
	}
	total := r.copyN
	h := offload.ParseHdr(r.copyBuf)
	if h.IsGSO() && total <= maxRead {
		plan, err := offload.NewPlan(h, r.copyBuf[offload.HdrLen:total])
		if err != nil {
			v.Sizes[out], v.Ports[out] = fabric.Rejected(fabric.DropDecap), r.id
			return 1
		}
		r.plan, r.data, r.seg, r.tag = plan, r.copyBuf[offload.HdrLen:total], 0, tag
		return 0
	}
	size := total - offload.HdrLen
	if size <= v.MaxFrame {
		fr := v.Room(out)[:size]
		copy(fr, r.copyBuf[offload.HdrLen:total])
		offload.CompleteChecksum(h, fr)
	}
	r.emit(v, out, size, tag)
	return 1
}

// readCopy reads one datagram from the socket's queue into copyBuf.
func (r *ringReader) readCopy(fd int) error {
	n, err := r.copyB.Recv(fd, 1, unix.MSG_DONTWAIT|unix.MSG_TRUNC)
	if err == nil && n == 1 {
		r.copyN = int(r.copyB.Hdrs[0].Len)
	}
	return nil
}

// emit records frame out, putting back its VLAN tag if it had one.
func (r *ringReader) emit(v *frame.Vector, out, size int, tag vlanTag) {
	v.Sizes[out], v.Ports[out] = size, r.id
	if tag.present {
		reinsertVLAN(v, out, tag)
	}
}

// ringTag is the VLAN tag the kernel took out of f, as the frame's header
// in the ring reports it.
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
