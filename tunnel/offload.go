package tunnel

import (
	"encoding/binary"

	"golang.org/x/sys/unix"

	"github.com/umlswitch/umlswitch/frame"
	"github.com/umlswitch/umlswitch/internal/mmsg"
)

// UDP segmentation offload, both ways (Linux 4.18 and 5.0 onwards).
//
// Send (GSO): a Write's frames of one size, in a row, go out as one
// message whose iovecs are [header|frame|header|frame...] and whose
// UDP_SEGMENT control message gives the segment size; the kernel sends one
// datagram per segment (a shorter last one may end the run), and walks its
// stack once per message instead of once per frame. The wire is unchanged.
//
// Receive (GRO): with UDP_GRO set, datagrams of one flow that arrive
// together (from a GSO sender on this host, or merged by a NIC's GRO) are
// handed up as one, and a UDP_GRO control message gives the segment size.
// Each message's first bytes still land in its vector slot and the rest in
// an overflow area of its own, so a batch without such datagrams is
// decapsulated in place as before. When a batch has one, every message is
// made whole in its overflow area and its segments are copied to slots in
// order; segments that do not fit wait there for the next receive.

const (
	// maxGSOBytes bounds one message's payload: UDP's limit over IPv4 is
	// 65507 bytes; the margin covers IP options and extension headers.
	maxGSOBytes = 65000
	// groBytes is an overflow area: UDP's payload limit.
	groBytes = 1 << 16
	// ctrlLen holds one control message carrying an int.
	ctrlLen = 32
)

var (
	cmsgData = unix.CmsgLen(0) // the control message's data follows its header
	segLen   = unix.CmsgSpace(2)
)

// enableOffload reports whether the UDP socket fd can send with GSO, and
// turns on GRO if it can.
func enableOffload(fd int) (gso, gro bool) {
	_, err := unix.GetsockoptInt(fd, unix.SOL_UDP, unix.UDP_SEGMENT)
	gso = err == nil
	gro = unix.SetsockoptInt(fd, unix.SOL_UDP, unix.UDP_GRO, 1) == nil
	return gso, gro
}

// segmentCmsg fills c with a UDP_SEGMENT control message; the size goes in
// with setSegment.
func segmentCmsg(c []byte) {
	binary.NativeEndian.PutUint64(c, uint64(unix.CmsgLen(2)))
	binary.NativeEndian.PutUint32(c[8:], unix.SOL_UDP)
	binary.NativeEndian.PutUint32(c[12:], unix.UDP_SEGMENT)
}

func setSegment(c []byte, size int) { binary.NativeEndian.PutUint16(c[cmsgData:], uint16(size)) }

// coalesce lays out chunk, whose iovecs s.b holds two per frame, as
// messages: runs of frames of one size (a shorter frame may end a run) in
// one message each, if gso; one frame per message otherwise. s.first[m] is
// the first frame of message m, and s.first[count] is len(chunk). Runs stop
// short of limit-byte segments and of maxGSOBytes.
func (s *txScratch) coalesce(chunk [][]byte, hdrLen int, gso bool, limit int) int {
	m := 0
	for i := 0; i < len(chunk); m++ {
		start := i
		size := hdrLen + len(chunk[i])
		total := size
		i++
		if gso && size < limit && size <= 0xffff {
			for i < len(chunk) {
				l := hdrLen + len(chunk[i])
				if l > size || total+l > maxGSOBytes {
					break
				}
				total += l
				i++
				if l < size {
					break
				}
			}
		}
		h := &s.b.Hdrs[m].Msg
		h.Iov = &s.b.Iovs[2*start]
		h.SetIovlen(2 * (i - start))
		if i-start > 1 {
			setSegment(s.ctrl[m][:], size)
			h.Control = &s.ctrl[m][0]
			h.SetControllen(segLen)
		} else {
			h.Control = nil
			h.SetControllen(0)
		}
		s.first[m] = uint8(start)
	}
	s.first[m] = uint8(len(chunk))
	return m
}

// groState is an endpoint's receive side under GRO; its reader's only.
type groState struct {
	l0     int    // bytes of a message that land in its vector slot
	stride int    // one message's area: l0 bytes to make it whole, then groBytes of overflow
	over   []byte // stride bytes per message
	ctrl   [][ctrlLen]byte
	total  []int // per message of the last batch: its length
	seg    []int // and its segment size (the length when not coalesced)

	// A batch being handed out: messages [next, n), from segment nextSeg.
	next, nextSeg, n int
}

func (g *groState) bind(rx *mmsg.Batch, l0 int) {
	n := len(rx.Hdrs)
	g.l0, g.stride = l0, l0+groBytes
	g.over = make([]byte, n*g.stride)
	g.ctrl = make([][ctrlLen]byte, n)
	g.total, g.seg = make([]int, n), make([]int, n)
	g.next, g.n = 0, 0
	for i := 0; i < n; i++ {
		rx.SetBuf(i, 1, g.over[i*g.stride+l0:(i+1)*g.stride])
	}
}

func (g *groState) pending() bool { return g.next < g.n }

// resetControl offers each message its control buffer again (the kernel
// shortens the length to what it wrote).
func (g *groState) resetControl(rx *mmsg.Batch) {
	for i := range g.ctrl {
		rx.Hdrs[i].Msg.Control = &g.ctrl[i][0]
		rx.Hdrs[i].Msg.SetControllen(ctrlLen)
	}
}

// coalesced reads the segment size of the n messages received and reports
// whether any carries more than one segment.
func (g *groState) coalesced(rx *mmsg.Batch, n int) bool {
	any := false
	for i := 0; i < n; i++ {
		total := int(rx.Hdrs[i].Len)
		seg := groSegment(g.ctrl[i][:min(int(rx.Hdrs[i].Msg.Controllen), ctrlLen)])
		if seg <= 0 || seg >= total {
			seg = total
		} else {
			any = true
		}
		g.total[i], g.seg[i] = total, seg
	}
	return any
}

// groSegment returns the segment size a UDP_GRO control message in c
// gives, or 0.
func groSegment(c []byte) int {
	for len(c) >= cmsgData {
		l := int(binary.NativeEndian.Uint64(c))
		if l < cmsgData || l > len(c) {
			return 0
		}
		if binary.NativeEndian.Uint32(c[8:]) == unix.SOL_UDP && binary.NativeEndian.Uint32(c[12:]) == unix.UDP_GRO &&
			l >= cmsgData+4 {
			return int(int32(binary.NativeEndian.Uint32(c[cmsgData:])))
		}
		c = c[min(len(c), (l+7)&^7):]
	}
	return 0
}

// split hands out a batch with coalesced datagrams: each message is first
// made whole in its area (the slots are about to be reused), then drained.
func (e *Endpoint) split(v *frame.Vector) int {
	g := &e.g
	for i := 0; i < e.got.N; i++ {
		slot := v.Bufs[i][frame.Headroom-e.rxHint:]
		copy(g.over[i*g.stride:i*g.stride+g.l0], slot[:min(g.total[i], g.l0)])
		if g.seg[i] < g.total[i] {
			e.coalesced.Add(1)
		}
	}
	g.next, g.nextSeg, g.n = 0, 0, e.got.N
	return e.drain(v)
}

// drain copies the batch's next segments, in order, to the vector's slots
// (each rxHint bytes before the headroom, as a received packet lands) and
// decapsulates them there; it returns how many slots it filled.
func (e *Endpoint) drain(v *frame.Vector) int {
	g := &e.g
	k := 0
	for ; k < len(e.names) && g.next < g.n; k++ {
		i := g.next
		total, size := g.total[i], g.seg[i]
		off := g.nextSeg * size
		seg := min(size, total-off)
		got := min(total, g.stride) // what the buffers held of it
		area := g.over[i*g.stride : i*g.stride+got]
		have := area[min(off, got):min(off+seg, got)]
		dst := v.Bufs[k][frame.Headroom-e.rxHint:]
		if copy(dst, have) < min(seg, len(dst)) {
			// Cut short: more than UDP carries. Not a frame to forward.
			e.malformed.Add(1)
			v.Ports[k] = frame.NoPort
		} else {
			e.place(v, k, seg, decodeSockaddr(e.names[i][:e.rx.Hdrs[i].Msg.Namelen]))
		}
		if off+seg >= total {
			g.next, g.nextSeg = g.next+1, 0
		} else {
			g.nextSeg++
		}
	}
	return k
}
