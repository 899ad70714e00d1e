package pktring

import (
	"encoding/binary"
	"errors"

	"golang.org/x/sys/unix"
)

// txDataOff is where a transmit frame's data starts in its slot: after
// the tpacket3_hdr, as the kernel computes it (tp_hdrlen less the
// sockaddr_ll it counts in, without PACKET_TX_HAS_OFF).
const txDataOff = 48

// minFrame is an Ethernet header: the kernel refuses anything shorter.
const minFrame = 14

var (
	// ErrFull is returned by Send when the slot it would fill next still
	// holds a frame in flight.
	ErrFull = errors.New("pktring: transmit ring full")
	// ErrFrameSize is returned by Send for a frame shorter than an
	// Ethernet header or longer than TX.MaxFrame.
	ErrFrameSize = errors.New("pktring: frame does not fit a transmit slot")
	// ErrRefused is returned by Send for a frame the kernel marked
	// TP_STATUS_WRONG_FORMAT.
	ErrRefused = errors.New("pktring: the kernel refused the frame's format")
)

// TX is a transmit ring: Send writes frames into free slots, marks them
// TP_STATUS_SEND_REQUEST and has the kernel send them with one send(2);
// the kernel marks each slot TP_STATUS_AVAILABLE again once its frame has
// left. Slots are used in order, as the kernel walks them.
//
// One goroutine at a time may Send.
type TX struct {
	mem       []byte
	frameSize int
	perBlock  int
	blockSize int
	frames    int
	vnet      int
	head      int // the next slot, which is the kernel's next slot too
}

func newTX(maxFrame, frames, vnet, page int) *TX {
	t := &TX{vnet: vnet}
	t.frameSize = (txDataOff + vnet + maxFrame + 15) &^ 15
	t.blockSize = page
	for t.blockSize < t.frameSize {
		t.blockSize *= 2
	}
	t.perBlock = t.blockSize / t.frameSize
	t.frames = (frames + t.perBlock - 1) / t.perBlock * t.perBlock
	return t
}

// newTXOver lays a transmit ring over mem, for tests.
func newTXOver(mem []byte, maxFrame int, vnet bool, page int) *TX {
	v := 0
	if vnet {
		v = vnetLen
	}
	t := newTX(maxFrame, 1, v, page)
	t.frames = len(mem) / t.blockSize * t.perBlock
	t.mem = mem
	return t
}

// MaxFrame is the longest frame a slot holds.
func (t *TX) MaxFrame() int { return t.frameSize - txDataOff - t.vnet }

func (t *TX) slot(i int) []byte {
	off := i/t.perBlock*t.blockSize + i%t.perBlock*t.frameSize
	return t.mem[off : off+t.frameSize : off+t.frameSize]
}

// Send queues frames in free slots and has the kernel send them. It
// returns how many the kernel took: the rest are taken off the ring again,
// so no frame waits there after Send returns. The error is:
//   - nil when all were sent;
//   - ErrFull when the ring had no free slot for frames[n];
//   - ErrFrameSize or ErrRefused for frames[n] alone;
//   - the send(2) error, an Errno, when the kernel stopped at frames[n]
//     (EAGAIN or ENOBUFS for a full device or socket buffer, ENETDOWN or
//     ENXIO for an interface down or gone).
//
// It never blocks and never allocates.
func (t *TX) Send(fd int, frames [][]byte) (int, error) {
	start, queued := t.head, 0
	var err error
	for _, f := range frames {
		s := t.slot(t.head)
		if loadStatus(s, hdrStatusOff) != unix.TP_STATUS_AVAILABLE {
			err = ErrFull
			break
		}
		if len(f) < minFrame || len(f) > t.MaxFrame() {
			err = ErrFrameSize
			break
		}
		binary.NativeEndian.PutUint32(s[hdrNextOff:], 0)
		binary.NativeEndian.PutUint32(s[hdrLenOff:], uint32(t.vnet+len(f)))
		clear(s[txDataOff : txDataOff+t.vnet])
		copy(s[txDataOff+t.vnet:], f)
		storeStatus(s, hdrStatusOff, unix.TP_STATUS_SEND_REQUEST)
		t.head = (t.head + 1) % t.frames
		queued++
	}
	if queued == 0 {
		return 0, err
	}
	_, _, e := unix.Syscall6(unix.SYS_SENDTO, uintptr(fd), 0, 0, unix.MSG_DONTWAIT, 0, 0)
	// The kernel walks the slots in order and stops at the first it cannot
	// send, which it leaves (or puts back) as a request: the frames before
	// it were taken, and the requests from it on are taken back, so that
	// the ring's head and the kernel's stay the same.
	sent, refused := 0, false
	for ; sent < queued; sent++ {
		st := loadStatus(t.slot((start+sent)%t.frames), hdrStatusOff)
		if st == unix.TP_STATUS_SEND_REQUEST {
			break
		}
		if st == unix.TP_STATUS_WRONG_FORMAT {
			refused = true
			break
		}
	}
	for i := sent; i < queued; i++ {
		storeStatus(t.slot((start+i)%t.frames), hdrStatusOff, unix.TP_STATUS_AVAILABLE)
	}
	t.head = (start + sent) % t.frames
	switch {
	case refused:
		return sent, ErrRefused
	case sent < queued && e != 0:
		return sent, e
	case sent < queued:
		return sent, unix.EAGAIN // the kernel stopped without saying why: a full device, most likely
	}
	return sent, err
}
