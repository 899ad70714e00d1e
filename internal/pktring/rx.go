package pktring

import (
	"encoding/binary"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// The kernel's layouts (linux/if_packet.h), read field by field in the
// host's byte order so that nothing but the status word needs unsafe.
const (
	// struct tpacket_block_desc: version, offset_to_priv, then
	// tpacket_hdr_v1: block_status, num_pkts, offset_to_first_pkt,
	// blk_len, seq_num and two timestamps.
	blockStatusOff = 8
	blockNumOff    = 12
	blockFirstOff  = 16
	blockHdrLen    = 48

	// struct tpacket3_hdr.
	hdrNextOff    = 0
	hdrSnaplenOff = 12
	hdrLenOff     = 16
	hdrStatusOff  = 20
	hdrMacOff     = 24
	hdrVLANTCIOff = 32 // hv1.tp_vlan_tci (a __u32 of which the tag takes 16 bits)
	hdrVLANTPID   = 36 // hv1.tp_vlan_tpid
	hdrLen        = unix.SizeofTpacket3Hdr

	vnetLen = 10 // struct virtio_net_hdr, which PACKET_VNET_HDR puts before the MAC header
)

// RX is a TPACKET_V3 receive ring. Blocks pass between the kernel and
// the reader in order, by their status word: the kernel fills the block
// it holds, sets TP_STATUS_USER and moves on to the next; the reader walks
// the frames of the oldest block it was given and hands it back by
// writing TP_STATUS_KERNEL. When every block is the reader's, the kernel
// drops frames (counted in PACKET_STATISTICS).
//
// One goroutine reads (Next, Ready); no Frame may be used after the
// Ring is closed.
type RX struct {
	mem       []byte
	blockSize int
	blocks    int
	vnet      int // bytes of virtio-net header before each frame: 0 or vnetLen

	next    int  // the block the kernel hands over next, or the one held
	holding bool // block next is ours and cur walks it
	cur     blockWalk
	bad     atomic.Uint64 // frames skipped: their headers pointed outside their block
}

// newRXOver lays a reader over mem, which plays the kernel's ring, for
// tests.
func newRXOver(mem []byte, blockSize int, vnet bool) *RX {
	r := &RX{mem: mem, blockSize: blockSize, blocks: len(mem) / blockSize}
	if vnet {
		r.vnet = vnetLen
	}
	return r
}

// MaxFrame is the longest frame a block holds whole: the block less its
// header, the frame's header and the kernel's alignment of the MAC header.
func (r *RX) MaxFrame() int { return r.blockSize - blockHdrLen - 128 }

// Bad returns how many frames were skipped because their headers pointed
// outside their block.
func (r *RX) Bad() uint64 { return r.bad.Load() }

func (r *RX) block(i int) []byte { return r.mem[i*r.blockSize : (i+1)*r.blockSize : (i+1)*r.blockSize] }

// Ready reports whether Next has a frame to return (or a block whose
// frames turn out to be bad): a frame of the block being read is left, or
// the kernel has handed over the next block. It never blocks.
func (r *RX) Ready() bool {
	if r.holding && r.cur.left > 0 {
		return true
	}
	next := r.next
	if r.holding {
		next = (next + 1) % r.blocks
	}
	return loadStatus(r.block(next), blockStatusOff)&unix.TP_STATUS_USER != 0
}

// Next returns the next frame, or false when the kernel has handed over
// nothing more. The frame's memory stays valid until the following call
// of Next: a block goes back to the kernel only when Next is called after
// its last frame, so a reader that finds nothing holds no block.
func (r *RX) Next() (Frame, bool) {
	for {
		if r.holding {
			if r.cur.left > 0 {
				f, ok := r.cur.next(&r.bad)
				if ok {
					return f, true
				}
				continue
			}
			storeStatus(r.block(r.next), blockStatusOff, unix.TP_STATUS_KERNEL)
			r.holding = false
			r.next = (r.next + 1) % r.blocks
		}
		blk := r.block(r.next)
		if loadStatus(blk, blockStatusOff)&unix.TP_STATUS_USER == 0 {
			return Frame{}, false
		}
		r.cur = openBlock(blk, r.vnet)
		r.holding = true
	}
}

// Frame is one frame in a block of the ring.
type Frame struct {
	Data []byte // the frame from its MAC header, as much as the block holds (tp_snaplen)
	Vnet []byte // the virtio-net header before it, with PACKET_VNET_HDR; nil otherwise
	Len  int    // the frame's true length (tp_len): more than len(Data) for a frame cut short
	// Status is tp_status: TP_STATUS_VLAN_VALID and TP_STATUS_VLAN_TPID_VALID
	// say whether VLANTCI and VLANTPID hold a tag the kernel took out.
	Status            uint32
	VLANTCI, VLANTPID uint16
}

// blockWalk walks the frames of one block the kernel handed over.
type blockWalk struct {
	blk  []byte
	left int // frames not yet read
	off  int // the next frame's header
	vnet int
}

// openBlock starts a walk of blk, whose status says it is the reader's.
func openBlock(blk []byte, vnet int) blockWalk {
	return blockWalk{
		blk:  blk,
		left: int(binary.NativeEndian.Uint32(blk[blockNumOff:])),
		off:  int(binary.NativeEndian.Uint32(blk[blockFirstOff:])),
		vnet: vnet,
	}
}

// next returns the next frame of the block. A frame whose header points
// outside the block is skipped, and a next-frame offset that does not move
// forward or leaves the block ends the walk after its frame: the frames
// the block claims are left (no more than a block could hold) are added
// to bad.
func (w *blockWalk) next(bad *atomic.Uint64) (Frame, bool) {
	f, step, ok := parseFrame(w.blk, w.off, w.vnet)
	w.left--
	if !ok {
		bad.Add(uint64(min(w.left+1, len(w.blk)/hdrLen)))
		w.left = 0
		return Frame{}, false
	}
	if w.left > 0 && (step < hdrLen || step > len(w.blk)-w.off) {
		bad.Add(uint64(min(w.left, len(w.blk)/hdrLen)))
		w.left = 0
	}
	w.off += step
	return f, true
}

// parseFrame reads the frame whose tpacket3_hdr is at blk[off:], checking
// that its header, its virtio-net header and the frame lie in blk. It
// returns the frame and the offset of the next header from this one.
func parseFrame(blk []byte, off, vnet int) (f Frame, step int, ok bool) {
	if off < blockHdrLen || off > len(blk)-hdrLen || off%4 != 0 {
		return Frame{}, 0, false
	}
	h := blk[off : off+hdrLen]
	snap := int(binary.NativeEndian.Uint32(h[hdrSnaplenOff:]))
	mac := off + int(binary.NativeEndian.Uint16(h[hdrMacOff:]))
	if mac-vnet < off+hdrLen || snap > len(blk)-mac {
		return Frame{}, 0, false
	}
	f = Frame{
		Data:     blk[mac : mac+snap : mac+snap],
		Len:      int(binary.NativeEndian.Uint32(h[hdrLenOff:])),
		Status:   binary.NativeEndian.Uint32(h[hdrStatusOff:]),
		VLANTCI:  uint16(binary.NativeEndian.Uint32(h[hdrVLANTCIOff:])),
		VLANTPID: binary.NativeEndian.Uint16(h[hdrVLANTPID:]),
	}
	if vnet > 0 {
		f.Vnet = blk[mac-vnet : mac : mac]
	}
	if f.Len < snap {
		return Frame{}, 0, false
	}
	return f, int(binary.NativeEndian.Uint32(h[hdrNextOff:])), true
}
