package raw

import (
	"golang.org/x/sys/unix"

	"github.com/umlswitch/umlswitch/fabric"
	"github.com/umlswitch/umlswitch/frame"
	"github.com/umlswitch/umlswitch/internal/mmsg"
	"github.com/umlswitch/umlswitch/internal/offload"
	"github.com/umlswitch/umlswitch/internal/pollfd"
)

// maxRead is the longest datagram the socket hands over: a segmentation-
// offload frame of up to 64 KiB of IP packet, its Ethernet header, and the
// virtio-net header in front.
const maxRead = offload.HdrLen + 14 + 65536

// reader is the port's receive side. A packet socket sees the host's
// offloads: a veth whose host side streams TCP, or a NIC with GRO, delivers
// up to 64 KiB of a TCP stream as one frame. So recvmmsg reads into buffers
// of the port's own, large enough for that, and frames are copied into the
// switch's batch, or cut into segments there; a batch that fills up leaves
// the rest for the next call.
type reader struct {
	id     frame.PortID
	b      *mmsg.Batch
	bufs   [][]byte           // per message: virtio-net header, then the frame
	ctl    [][]byte           // per message: PACKET_AUXDATA
	readFn func(uintptr) bool // both bound once, so a read allocates no closure
	recvFn func(fd int) (int, error)
	got    pollfd.Result // messages read, or why none were

	next int          // the next message to hand out
	plan offload.Plan // the offload frame being cut, from message cut
	cut  int
	seg  int // its next segment
	tag  vlanTag
}

// maxMessages bounds the buffers: 64 of maxRead are 4 MiB of address space,
// of which only what large frames fill is ever touched.
const maxMessages = 64

func (p *Port) newReader() {
	r := &p.rx
	n := min(p.depth, maxMessages)
	r.b = mmsg.NewBatch(n, 1)
	arena := make([]byte, n*maxRead)
	ctl := make([]byte, n*controlLen)
	r.bufs, r.ctl = make([][]byte, n), make([][]byte, n)
	for i := range n {
		r.bufs[i] = arena[i*maxRead : (i+1)*maxRead : (i+1)*maxRead]
		r.ctl[i] = ctl[i*controlLen : (i+1)*controlLen : (i+1)*controlLen]
		r.b.SetBuf(i, 0, r.bufs[i])
	}
	r.readFn = r.read
	r.recvFn = r.recv
}

// Receiver returns the reading side; every frame it reads is marked as
// entering through port id.
func (p *Port) Receiver(id frame.PortID) fabric.Receiver {
	if p.rxRing != nil {
		p.ringRx.id = id
		return fabric.Receiver{Name: p.Name(), Depth: p.depth, MaxFrame: p.MaxFrame(), Receive: p.receiveRing}
	}
	if p.rx.b == nil {
		p.newReader()
	}
	p.rx.id = id
	return fabric.Receiver{Name: p.Name(), Depth: p.depth, MaxFrame: p.MaxFrame(), Receive: p.receive}
}

// Receivers is the port's one reading side, as a list (an XDPPort has one
// per queue).
func (p *Port) Receivers(id frame.PortID) []fabric.Receiver { return []fabric.Receiver{p.Receiver(id)} }

func (p *Port) receive(v *frame.Vector) (int, error) {
	r := &p.rx
	for {
		if out := r.handOut(v); out > 0 {
			return out, nil
		}
		r.got, r.next = pollfd.Result{}, 0
		if err := p.ReadWith(r.readFn); err != nil {
			return 0, err
		}
		if r.got.Err != nil {
			return 0, r.got.Err // transient: the interface went down, say
		}
	}
}

func (r *reader) read(fd uintptr) bool {
	for i, c := range r.ctl {
		r.b.SetControl(i, c) // the kernel shortens Controllen: reset it
	}
	return r.got.Try(fd, r.recvFn)
}

func (r *reader) recv(fd int) (int, error) {
	return r.b.Recv(fd, len(r.bufs), unix.MSG_DONTWAIT|unix.MSG_TRUNC)
}

// handOut fills v with what was read: segments still owed first, then the
// messages in order. It returns how many frames it put in v.
func (r *reader) handOut(v *frame.Vector) int {
	out, limit := 0, min(len(r.bufs), v.Depth())
	for out < limit {
		if r.seg < r.plan.Count {
			f := r.bufs[r.cut][offload.HdrLen:]
			size := r.plan.Size(r.seg)
			if size <= v.MaxFrame {
				r.plan.Segment(f, r.seg, v.Room(out))
			}
			r.emit(v, out, size, r.tag)
			out++
			r.seg++
			continue
		}
		if r.next >= r.got.N {
			break
		}
		i := r.next
		r.next++
		tag := strippedTag(r.ctl[i][:min(len(r.ctl[i]), int(r.b.Hdrs[i].Msg.Controllen))])
		total := int(r.b.Hdrs[i].Len) // the true length, thanks to MSG_TRUNC
		size := total - offload.HdrLen
		if size < 0 {
			v.Sizes[out], v.Ports[out] = fabric.Rejected(fabric.DropRunt), r.id
			out++
			continue
		}
		h := offload.ParseHdr(r.bufs[i])
		if h.IsGSO() && total <= maxRead {
			plan, err := offload.NewPlan(h, r.bufs[i][offload.HdrLen:total])
			if err != nil {
				v.Sizes[out], v.Ports[out] = fabric.Rejected(fabric.DropDecap), r.id
				out++
				continue
			}
			r.plan, r.cut, r.seg, r.tag = plan, i, 0, tag
			continue
		}
		if size <= v.MaxFrame {
			f := v.Room(out)[:size]
			copy(f, r.bufs[i][offload.HdrLen:total])
			offload.CompleteChecksum(h, f)
		}
		r.emit(v, out, size, tag)
		out++
	}
	return out
}

// emit records frame out, putting back its VLAN tag if it had one.
func (r *reader) emit(v *frame.Vector, out, size int, tag vlanTag) {
	v.Sizes[out], v.Ports[out] = size, r.id
	if tag.present {
		reinsertVLAN(v, out, tag)
	}
}
