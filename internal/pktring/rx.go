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

	// struct tpacket2_hdr.
	hdr2StatusOff  = 0
	hdr2LenOff     = 4
	hdr2SnaplenOff = 8
	hdr2MacOff     = 12
	hdr2VLANTCI    = 24
	hdr2VLANTPID   = 26
	hdr2Len        = unix.SizeofTpacket2Hdr

	vnetLen = 10 // struct virtio_net_hdr, which PACKET_VNET_HDR puts before the MAC header
)

// RX is a receive ring. Blocks (TPACKET_V3) or frame slots (TPACKET_V2)
// pass between the kernel and the reader in order, by their status word:
// the kernel fills the block or slot it holds, sets TP_STATUS_USER and
// moves on to the next; the reader reads the frames of the oldest one it
// was given and hands it back by writing TP_STATUS_KERNEL. When every one
// is the reader's, the kernel drops frames (counted in PACKET_STATISTICS).
//
// A TPACKET_V3 block is handed over when it is full or when the retire
// timeout passes, so a frame on a quiet link waits that long; a
// TPACKET_V2 slot is handed over as soon as its frame is in it.
//
// One goroutine reads (Next, Ready); no Frame may be used after the
// Ring is closed.
type RX struct {
	mem       []byte
	blockSize int
	blocks    int // TPACKET_V3 blocks, or TPACKET_V2 slots
	vnet      int // bytes of virtio-net header before each frame: 0 or vnetLen
	slotSize  int // TPACKET_V2: the size of a slot; 0 for TPACKET_V3
	perBlock  int // TPACKET_V2: slots in a block of blockSize

	next    int  // the block or slot the kernel hands over next, or the one held
	holding bool // block or slot next is ours (and cur walks the block)
	cur     blockWalk
	bad     atomic.Uint64 // frames skipped: their headers pointed outside their block or slot
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

// newRX2Over lays a TPACKET_V2 reader over mem, for tests.
func newRX2Over(mem []byte, blockSize, slotSize int, vnet bool) *RX {
	r := newRXOver(mem, blockSize, vnet)
	r.slotSize, r.perBlock = slotSize, blockSize/slotSize
	r.blocks = len(mem) / blockSize * r.perBlock
	return r
}

// MaxFrame is the longest frame a block or slot holds whole: less its
// header, the frame's header and the kernel's alignment of the MAC header.
// A TPACKET_V2 slot's longer frames come cut, the whole of each waiting
// in the socket's queue (Frame.Copied).
func (r *RX) MaxFrame() int {
	if r.slotSize > 0 {
		return r.slotSize - 96
	}
	return r.blockSize - blockHdrLen - 128
}

// Slotted reports whether the ring is TPACKET_V2's, of one frame a slot.
func (r *RX) Slotted() bool { return r.slotSize > 0 }

// Bad returns how many frames were skipped because their headers pointed
// outside their block.
func (r *RX) Bad() uint64 { return r.bad.Load() }

func (r *RX) block(i int) []byte {
	if r.slotSize > 0 {
		off := i/r.perBlock*r.blockSize + i%r.perBlock*r.slotSize
		return r.mem[off : off+r.slotSize : off+r.slotSize]
	}
	return r.mem[i*r.blockSize : (i+1)*r.blockSize : (i+1)*r.blockSize]
}

// statusOff is where a block's or slot's status word is.
func (r *RX) statusOff() int {
	if r.slotSize > 0 {
		return hdr2StatusOff
	}
	return blockStatusOff
}

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
	return loadStatus(r.block(next), r.statusOff())&unix.TP_STATUS_USER != 0
}

// Next returns the next frame, or false when the kernel has handed over
// nothing more. The frame's memory stays valid until the following call
// of Next: a block goes back to the kernel only when Next is called after
// its last frame, so a reader that finds nothing holds no block.
func (r *RX) Next() (Frame, bool) {
	if r.slotSize > 0 {
		return r.nextSlot()
	}
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

// nextSlot is Next on a TPACKET_V2 ring: each slot holds one frame.
func (r *RX) nextSlot() (Frame, bool) {
	for {
		if r.holding {
			storeStatus(r.block(r.next), hdr2StatusOff, unix.TP_STATUS_KERNEL)
			r.holding = false
			r.next = (r.next + 1) % r.blocks
		}
		s := r.block(r.next)
		st := loadStatus(s, hdr2StatusOff)
		if st&unix.TP_STATUS_USER == 0 {
			return Frame{}, false
		}
		r.holding = true
		if f, ok := parseSlot(s, r.vnet, st); ok {
			return f, true
		}
		r.bad.Add(1)
	}
}

// parseSlot reads the frame in a TPACKET_V2 slot whose status word is
// status, checking that its virtio-net header and the frame lie in it.
func parseSlot(s []byte, vnet int, status uint32) (Frame, bool) {
	snap := int(binary.NativeEndian.Uint32(s[hdr2SnaplenOff:]))
	mac := int(binary.NativeEndian.Uint16(s[hdr2MacOff:]))
	f := Frame{
		Len:      int(binary.NativeEndian.Uint32(s[hdr2LenOff:])),
		Status:   status,
		VLANTCI:  binary.NativeEndian.Uint16(s[hdr2VLANTCI:]),
		VLANTPID: binary.NativeEndian.Uint16(s[hdr2VLANTPID:]),
		Copied:   status&unix.TP_STATUS_COPY != 0,
	}
	if mac-vnet < hdr2Len || snap > len(s)-mac || f.Len < snap {
		return Frame{}, false
	}
	f.Data = s[mac : mac+snap : mac+snap]
	if vnet > 0 {
		f.Vnet = s[mac-vnet : mac : mac]
	}
	return f, true
}

// Frame is one frame in a block or slot of the ring.
type Frame struct {
	Data []byte // the frame from its MAC header, as much as the block or slot holds (tp_snaplen)
	Vnet []byte // the virtio-net header before it, with PACKET_VNET_HDR; nil otherwise
	Len  int    // the frame's true length (tp_len): more than len(Data) for a frame cut short
	// Status is tp_status: TP_STATUS_VLAN_VALID and TP_STATUS_VLAN_TPID_VALID
	// say whether VLANTCI and VLANTPID hold a tag the kernel took out.
	Status            uint32
	VLANTCI, VLANTPID uint16
	// Copied says that a TPACKET_V2 slot could not hold the frame: Data is
	// its start, and the whole frame, behind its virtio-net header, waits
	// in the socket's receive queue, in the order of such slots.
	Copied bool
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
