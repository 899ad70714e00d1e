package pktring

import (
	"bytes"
	"encoding/binary"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The offsets read field by field are the kernel's, as x/sys lays out its
// structures.
func TestLayoutIsTheKernels(t *testing.T) {
	var h unix.Tpacket3Hdr
	var b unix.TpacketBlockDesc
	var v1 unix.TpacketHdrV1
	for _, c := range []struct {
		name      string
		got, want uintptr
	}{
		{"tp_next_offset", hdrNextOff, unsafe.Offsetof(h.Next_offset)},
		{"tp_snaplen", hdrSnaplenOff, unsafe.Offsetof(h.Snaplen)},
		{"tp_len", hdrLenOff, unsafe.Offsetof(h.Len)},
		{"tp_status", hdrStatusOff, unsafe.Offsetof(h.Status)},
		{"tp_mac", hdrMacOff, unsafe.Offsetof(h.Mac)},
		{"tp_vlan_tci", hdrVLANTCIOff, unsafe.Offsetof(h.Hv1) + unsafe.Offsetof(h.Hv1.Vlan_tci)},
		{"tp_vlan_tpid", hdrVLANTPID, unsafe.Offsetof(h.Hv1) + unsafe.Offsetof(h.Hv1.Vlan_tpid)},
		{"tpacket3_hdr", hdrLen, unsafe.Sizeof(h)},
		{"block_status", blockStatusOff, unsafe.Offsetof(b.Hdr) + unsafe.Offsetof(v1.Block_status)},
		{"num_pkts", blockNumOff, unsafe.Offsetof(b.Hdr) + unsafe.Offsetof(v1.Num_pkts)},
		{"offset_to_first_pkt", blockFirstOff, unsafe.Offsetof(b.Hdr) + unsafe.Offsetof(v1.Offset_to_first_pkt)},
		{"tpacket_block_desc", blockHdrLen, unsafe.Sizeof(b)},
	} {
		if c.got != c.want {
			t.Errorf("%s at %d, the kernel's at %d", c.name, c.got, c.want)
		}
	}
}

// testFrame is a frame as fakeKernel writes it into a block.
type testFrame struct {
	data     []byte
	vnet     []byte
	vlan     bool
	tci      uint16
	tpid     uint16
	trueSize int // 0: len(data)
}

// fakeKernel plays the kernel's side of a ring laid over Go memory:
// fill writes frames into block i as tpacket_rcv lays them out (the MAC
// header at the offset the kernel computes, the virtio-net header right
// before it) and hands the block over.
type fakeKernel struct {
	mem       []byte
	blockSize int
	vnet      bool
}

func (k *fakeKernel) block(i int) []byte { return k.mem[i*k.blockSize : (i+1)*k.blockSize] }

// fill reports false, writing nothing, while block i is the reader's.
func (k *fakeKernel) fill(t testing.TB, i int, frames []testFrame) bool {
	t.Helper()
	blk := k.block(i)
	if loadStatus(blk, blockStatusOff) != unix.TP_STATUS_KERNEL {
		return false
	}
	clear(blk)
	off := blockHdrLen
	for n, f := range frames {
		macoff := (hdrLen+20+16+15)&^15 - 14 // TPACKET_ALIGN(tp_hdrlen + 16) less the MAC header
		if k.vnet {
			macoff += vnetLen
		}
		h := blk[off:]
		binary.NativeEndian.PutUint32(h[hdrSnaplenOff:], uint32(len(f.data)))
		size := f.trueSize
		if size == 0 {
			size = len(f.data)
		}
		binary.NativeEndian.PutUint32(h[hdrLenOff:], uint32(size))
		binary.NativeEndian.PutUint16(h[hdrMacOff:], uint16(macoff))
		status := uint32(unix.TP_STATUS_USER)
		if f.vlan {
			status |= unix.TP_STATUS_VLAN_VALID | unix.TP_STATUS_VLAN_TPID_VALID
			binary.NativeEndian.PutUint32(h[hdrVLANTCIOff:], uint32(f.tci))
			binary.NativeEndian.PutUint16(h[hdrVLANTPID:], f.tpid)
		}
		binary.NativeEndian.PutUint32(h[hdrStatusOff:], status)
		copy(h[macoff:], f.data)
		if k.vnet {
			copy(h[macoff-vnetLen:macoff], f.vnet)
		}
		step := (macoff + len(f.data) + 7) &^ 7
		if n < len(frames)-1 {
			binary.NativeEndian.PutUint32(h[hdrNextOff:], uint32(step))
		}
		off += step
		if off > len(blk) {
			t.Fatalf("%d frames do not fit a block of %d", len(frames), len(blk))
		}
	}
	binary.NativeEndian.PutUint32(blk[blockNumOff:], uint32(len(frames)))
	binary.NativeEndian.PutUint32(blk[blockFirstOff:], blockHdrLen)
	storeStatus(blk, blockStatusOff, unix.TP_STATUS_USER)
	return true
}

func numbered(n, size int) []byte {
	f := make([]byte, size)
	binary.BigEndian.PutUint32(f, uint32(n))
	for i := 4; i < size; i++ {
		f[i] = byte(n + i)
	}
	return f
}

// Many more frames than the ring holds pass through it in order, block by
// block: the reader hands each block back once it has read it, and holds
// none when it finds nothing, so the kernel fills every block in turn.
func TestRXHandsBlocksBackInOrder(t *testing.T) {
	const blockSize, blocks = 4096, 4
	k := &fakeKernel{mem: make([]byte, blockSize*blocks), blockSize: blockSize, vnet: true}
	r := newRXOver(k.mem, blockSize, true)
	sent, got, kblock := 0, 0, 0
	for round := 0; round < 50; round++ {
		// The kernel fills what blocks it has, 1 to 9 frames each.
		for loadStatus(k.block(kblock), blockStatusOff) == unix.TP_STATUS_KERNEL {
			var fs []testFrame
			for i := 0; i < 1+(sent+round)%9; i++ {
				fs = append(fs, testFrame{data: numbered(sent+i, 60+(sent+i)%200), vnet: []byte{byte(sent + i), 0, 0, 0, 0, 0, 0, 0, 0, 0}})
			}
			k.fill(t, kblock, fs)
			sent += len(fs)
			kblock = (kblock + 1) % blocks
		}
		if !r.Ready() {
			t.Fatalf("round %d: not ready with blocks handed over", round)
		}
		for {
			f, ok := r.Next()
			if !ok {
				break
			}
			if want := numbered(got, 60+got%200); !bytes.Equal(f.Data, want) || f.Len != len(want) || f.Vnet[0] != byte(got) {
				t.Fatalf("frame %d: %d bytes % x..., vnet % x", got, len(f.Data), f.Data[:8], f.Vnet)
			}
			got++
		}
		if r.Ready() {
			t.Fatalf("round %d: ready after reading everything", round)
		}
		for i := range blocks {
			if st := loadStatus(k.block(i), blockStatusOff); st != unix.TP_STATUS_KERNEL {
				t.Fatalf("round %d: block %d still has status %#x after the reader found nothing", round, i, st)
			}
		}
	}
	if got != sent || got < 50*blocks {
		t.Fatalf("read %d frames of %d", got, sent)
	}
	if r.Bad() != 0 {
		t.Fatalf("%d bad frames", r.Bad())
	}
}

// A frame's memory stays the reader's until it asks for the next frame:
// the last frame of a block keeps the block from the kernel.
func TestRXKeepsTheBlockOfTheFrameInUse(t *testing.T) {
	const blockSize = 4096
	k := &fakeKernel{mem: make([]byte, blockSize*2), blockSize: blockSize}
	r := newRXOver(k.mem, blockSize, false)
	k.fill(t, 0, []testFrame{{data: numbered(1, 64)}})
	f, ok := r.Next()
	if !ok || f.Vnet != nil || !bytes.Equal(f.Data, numbered(1, 64)) {
		t.Fatalf("Next = %v, %v", f, ok)
	}
	if loadStatus(k.block(0), blockStatusOff) != unix.TP_STATUS_USER {
		t.Fatal("the block went back while its last frame was in use")
	}
	if r.Ready() {
		t.Fatal("ready with nothing left")
	}
	if _, ok := r.Next(); ok {
		t.Fatal("a second frame from one")
	}
	if loadStatus(k.block(0), blockStatusOff) != unix.TP_STATUS_KERNEL {
		t.Fatal("the block was not handed back")
	}
}

// The tag the kernel took out comes with the frame, as does the true
// length of a frame the block cut short.
func TestRXFrameFields(t *testing.T) {
	const blockSize = 4096
	k := &fakeKernel{mem: make([]byte, blockSize*2), blockSize: blockSize, vnet: true}
	r := newRXOver(k.mem, blockSize, true)
	k.fill(t, 0, []testFrame{
		{data: numbered(1, 64), vlan: true, tci: 5<<13 | 10, tpid: unix.ETH_P_8021AD},
		{data: numbered(2, 100), trueSize: 70000},
	})
	f, _ := r.Next()
	if f.Status&unix.TP_STATUS_VLAN_VALID == 0 || f.VLANTCI != 5<<13|10 || f.VLANTPID != unix.ETH_P_8021AD {
		t.Errorf("tagged frame: status %#x, tci %#x, tpid %#x", f.Status, f.VLANTCI, f.VLANTPID)
	}
	f, _ = r.Next()
	if f.Status&unix.TP_STATUS_VLAN_VALID != 0 || f.Len != 70000 || len(f.Data) != 100 {
		t.Errorf("cut frame: status %#x, len %d of %d", f.Status, len(f.Data), f.Len)
	}
}

// Headers that point outside their block end the block's walk: the frames
// it claims are counted as bad, nothing outside the block is read, and the
// block goes back.
func TestRXBadOffsetsAreCounted(t *testing.T) {
	const blockSize = 4096
	put32 := func(at int, v uint32) func(blk []byte) {
		return func(blk []byte) { binary.NativeEndian.PutUint32(blk[at:], v) }
	}
	put16 := func(at int, v uint16) func(blk []byte) {
		return func(blk []byte) { binary.NativeEndian.PutUint16(blk[at:], v) }
	}
	first := blockHdrLen
	for _, c := range []struct {
		name    string
		corrupt func(blk []byte)
		good    int // frames read before the bad one
		bad     uint64
	}{
		{"first frame past the block", put32(blockFirstOff, blockSize), 0, 3},
		{"first frame inside the block header", put32(blockFirstOff, 8), 0, 3},
		{"unaligned first frame", put32(blockFirstOff, blockHdrLen+2), 0, 3},
		{"MAC header past the block", put16(first+hdrMacOff, 0xffff), 0, 3},
		{"MAC header inside the frame header", put16(first+hdrMacOff, 20), 0, 3},
		{"snaplen past the block", put32(first+hdrSnaplenOff, blockSize), 0, 3},
		{"snaplen over the true length", put32(first+hdrLenOff, 10), 0, 3},
		{"no next offset", put32(first+hdrNextOff, 0), 1, 2},
		{"next offset backwards", put32(first+hdrNextOff, 0xfffffff0), 1, 2},
		{"next offset past the block", put32(first+hdrNextOff, blockSize), 1, 2},
		{"a billion frames", put32(blockNumOff, 1e9), 3, blockSize / hdrLen},
	} {
		k := &fakeKernel{mem: make([]byte, blockSize*2), blockSize: blockSize, vnet: true}
		r := newRXOver(k.mem, blockSize, true)
		fs := []testFrame{{data: numbered(0, 64)}, {data: numbered(1, 64)}, {data: numbered(2, 64)}}
		k.fill(t, 0, fs)
		c.corrupt(k.block(0))
		got := 0
		for {
			f, ok := r.Next()
			if !ok {
				break
			}
			if got < len(fs) && !bytes.Equal(f.Data, fs[got].data) {
				t.Errorf("%s: frame %d wrong", c.name, got)
			}
			got++
		}
		if got != c.good || r.Bad() != c.bad {
			t.Errorf("%s: %d frames read, %d bad; want %d and %d", c.name, got, r.Bad(), c.good, c.bad)
		}
		if loadStatus(k.block(0), blockStatusOff) != unix.TP_STATUS_KERNEL {
			t.Errorf("%s: the block was not handed back", c.name)
		}
	}
}

// FuzzRXBlock: no block the kernel could hand over makes the walk panic,
// loop or read outside the block, and the block always goes back.
func FuzzRXBlock(f *testing.F) {
	const blockSize = 4096
	k := &fakeKernel{mem: make([]byte, blockSize*2), blockSize: blockSize, vnet: true}
	k.fill(f, 0, []testFrame{{data: numbered(0, 64)}, {data: numbered(1, 1500), vlan: true, tci: 7}})
	f.Add(bytes.Clone(k.block(0)), true)
	f.Add(make([]byte, 64), false)
	f.Fuzz(func(t *testing.T, b []byte, vnet bool) {
		mem := make([]byte, blockSize*2)
		copy(mem, b)
		storeStatus(mem, blockStatusOff, unix.TP_STATUS_USER)
		r := newRXOver(mem, blockSize, vnet)
		for n := 0; ; n++ {
			fr, ok := r.Next()
			if !ok {
				break
			}
			if n > blockSize/hdrLen {
				t.Fatalf("%d frames from a block of %d bytes", n, blockSize)
			}
			if fr.Len < len(fr.Data) || vnet != (fr.Vnet != nil) {
				t.Fatalf("frame of %d bytes, %d true, vnet %d", len(fr.Data), fr.Len, len(fr.Vnet))
			}
		}
		if loadStatus(mem, blockStatusOff) != unix.TP_STATUS_KERNEL {
			t.Fatal("the block was not handed back")
		}
	})
}

// fillSlot plays the kernel's side of a TPACKET_V2 ring: it writes a
// frame into slot i, as tpacket_rcv lays it out, and hands it over with
// status (TP_STATUS_USER and any more bits). It reports false, writing
// nothing, while the slot is the reader's.
func fillSlot(r *RX, i int, f testFrame, status uint32) bool {
	s := r.block(i)
	if loadStatus(s, hdr2StatusOff) != unix.TP_STATUS_KERNEL {
		return false
	}
	clear(s)
	macoff := (hdr2Len+20+16+15)&^15 - 14 // TPACKET_ALIGN(tp_hdrlen + 16) less the MAC header
	if r.vnet > 0 {
		macoff += vnetLen
	}
	snap := min(len(f.data), len(s)-macoff)
	size := f.trueSize
	if size == 0 {
		size = len(f.data)
	}
	binary.NativeEndian.PutUint32(s[hdr2LenOff:], uint32(size))
	binary.NativeEndian.PutUint32(s[hdr2SnaplenOff:], uint32(snap))
	binary.NativeEndian.PutUint16(s[hdr2MacOff:], uint16(macoff))
	if f.vlan {
		status |= unix.TP_STATUS_VLAN_VALID | unix.TP_STATUS_VLAN_TPID_VALID
		binary.NativeEndian.PutUint16(s[hdr2VLANTCI:], f.tci)
		binary.NativeEndian.PutUint16(s[hdr2VLANTPID:], f.tpid)
	}
	copy(s[macoff:], f.data[:snap])
	if r.vnet > 0 {
		copy(s[macoff-vnetLen:macoff], f.vnet)
	}
	storeStatus(s, hdr2StatusOff, status)
	return true
}

// The TPACKET_V2 layout is the kernel's too.
func TestSlotLayoutIsTheKernels(t *testing.T) {
	var h unix.Tpacket2Hdr
	for _, c := range []struct {
		name      string
		got, want uintptr
	}{
		{"tp_status", hdr2StatusOff, unsafe.Offsetof(h.Status)},
		{"tp_len", hdr2LenOff, unsafe.Offsetof(h.Len)},
		{"tp_snaplen", hdr2SnaplenOff, unsafe.Offsetof(h.Snaplen)},
		{"tp_mac", hdr2MacOff, unsafe.Offsetof(h.Mac)},
		{"tp_vlan_tci", hdr2VLANTCI, unsafe.Offsetof(h.Vlan_tci)},
		{"tp_vlan_tpid", hdr2VLANTPID, unsafe.Offsetof(h.Vlan_tpid)},
		{"tpacket2_hdr", hdr2Len, unsafe.Sizeof(h)},
	} {
		if c.got != c.want {
			t.Errorf("%s at %d, the kernel's at %d", c.name, c.got, c.want)
		}
	}
}

// Frames pass through slots in order, many times round the ring: each
// slot goes back when the frame after it is asked for, and a frame too
// long for its slot comes cut and marked as copied to the socket's queue.
func TestRXSlotsGoRoundInOrder(t *testing.T) {
	const blockSize, slotSize = 4096, 1024
	r := newRX2Over(make([]byte, 2*blockSize), blockSize, slotSize, true) // 8 slots
	sent, got := 0, 0
	for round := 0; round < 40; round++ {
		for i := 0; i < 1+round%11; i++ {
			f := testFrame{data: numbered(sent, 60+sent*37%1500), vnet: []byte{byte(sent), 0, 0, 0, 0, 0, 0, 0, 0, 0},
				vlan: sent%3 == 0, tci: uint16(sent), tpid: unix.ETH_P_8021Q}
			status := uint32(unix.TP_STATUS_USER)
			if len(f.data) > slotSize-76 { // what the slot holds after the headers
				status |= unix.TP_STATUS_COPY
			}
			if !fillSlot(r, sent%r.blocks, f, status) {
				break // the ring is full
			}
			sent++
		}
		for {
			f, ok := r.Next()
			if !ok {
				break
			}
			want := numbered(got, 60+got*37%1500)
			if f.Len != len(want) || !bytes.Equal(f.Data, want[:len(f.Data)]) || f.Vnet[0] != byte(got) ||
				f.Copied != (len(f.Data) < len(want)) || (f.Status&unix.TP_STATUS_VLAN_VALID != 0) != (got%3 == 0) ||
				f.Status&unix.TP_STATUS_VLAN_VALID != 0 && f.VLANTCI != uint16(got) {
				t.Fatalf("frame %d: %d of %d bytes, copied %v, status %#x, tci %d", got, len(f.Data), f.Len, f.Copied, f.Status, f.VLANTCI)
			}
			got++
		}
		if r.Ready() {
			t.Fatalf("round %d: ready with nothing left", round)
		}
	}
	if got != sent || got < 100 || r.Bad() != 0 {
		t.Fatalf("read %d of %d frames, %d bad", got, sent, r.Bad())
	}
}

// A slot whose header points outside it is counted and skipped.
func TestRXBadSlotsAreCounted(t *testing.T) {
	const blockSize, slotSize = 4096, 1024
	for _, c := range []struct {
		name    string
		corrupt func(s []byte)
	}{
		{"MAC header past the slot", func(s []byte) { binary.NativeEndian.PutUint16(s[hdr2MacOff:], 2000) }},
		{"MAC header inside the slot header", func(s []byte) { binary.NativeEndian.PutUint16(s[hdr2MacOff:], 20) }},
		{"snaplen past the slot", func(s []byte) { binary.NativeEndian.PutUint32(s[hdr2SnaplenOff:], 1000) }},
		{"snaplen over the true length", func(s []byte) { binary.NativeEndian.PutUint32(s[hdr2LenOff:], 10) }},
	} {
		r := newRX2Over(make([]byte, blockSize), blockSize, slotSize, true)
		fillSlot(r, 0, testFrame{data: numbered(0, 64)}, unix.TP_STATUS_USER)
		fillSlot(r, 1, testFrame{data: numbered(1, 64)}, unix.TP_STATUS_USER)
		c.corrupt(r.block(0))
		f, ok := r.Next()
		if !ok || !bytes.Equal(f.Data, numbered(1, 64)) || r.Bad() != 1 {
			t.Errorf("%s: Next = %v, %d bad", c.name, ok, r.Bad())
		}
		if loadStatus(r.block(0), hdr2StatusOff) != unix.TP_STATUS_KERNEL {
			t.Errorf("%s: the bad slot was not handed back", c.name)
		}
	}
}

// FuzzRXSlot: no slot the kernel could hand over makes the reader panic
// or read outside it, and the slot always goes back.
func FuzzRXSlot(f *testing.F) {
	const blockSize, slotSize = 4096, 2048
	r := newRX2Over(make([]byte, blockSize), blockSize, slotSize, true)
	fillSlot(r, 0, testFrame{data: numbered(0, 1500), vlan: true, tci: 7}, unix.TP_STATUS_USER)
	f.Add(bytes.Clone(r.block(0)), true)
	f.Add(make([]byte, 40), false)
	f.Fuzz(func(t *testing.T, b []byte, vnet bool) {
		mem := make([]byte, blockSize)
		copy(mem, b)
		storeStatus(mem, hdr2StatusOff, unix.TP_STATUS_USER|binary.NativeEndian.Uint32(mem)&^3)
		r := newRX2Over(mem, blockSize, slotSize, vnet)
		if fr, ok := r.Next(); ok && (fr.Len < len(fr.Data) || vnet != (fr.Vnet != nil)) {
			t.Fatalf("frame of %d bytes, %d true, vnet %d", len(fr.Data), fr.Len, len(fr.Vnet))
		}
		if _, ok := r.Next(); ok {
			t.Fatal("a frame from an empty slot")
		}
		if loadStatus(mem, hdr2StatusOff) != unix.TP_STATUS_KERNEL {
			t.Fatal("the slot was not handed back")
		}
	})
}
