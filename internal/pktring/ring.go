package pktring

import (
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// Defaults of Config.
const (
	// DefaultBlockSize holds a 64 KiB segmentation-offload frame whole,
	// with the kernel's headers in front of it.
	DefaultBlockSize = 128 << 10
	DefaultBlocks    = 32 // 4 MiB, as much as the raw port's socket buffer
	DefaultRetire    = time.Millisecond
)

// Config shapes a socket's receive ring.
type Config struct {
	// BlockSize is the size of a receive block: a power-of-two multiple of
	// the page size. A frame longer than a TPACKET_V3 block holds
	// (RX.MaxFrame) arrives cut short.
	BlockSize int
	Blocks    int // receive blocks
	// Retire is how long the kernel fills a TPACKET_V3 block before it
	// hands it over part full (tp_retire_blk_tov), in whole milliseconds,
	// at least one: the latency a frame on a quiet link may see.
	Retire time.Duration
	// VnetHdr sets PACKET_VNET_HDR: a virtio-net header precedes every
	// frame received (Frame.Vnet) and sent. The kernel takes the option
	// only before the ring exists.
	VnetHdr bool
	// SlotSize, when not 0, makes the receive ring TPACKET_V2: slots of
	// that size (a power of two of at least 256), one frame each, handed
	// over at once; the blocks above only group them. A frame longer than
	// a slot holds is cut there, and the whole of it queued on the socket
	// (PACKET_COPY_THRESH): the reader reads it with recvmsg (Frame.Copied).
	SlotSize int
}

// Ring is a socket's receive ring and its mapping. (A transmit ring,
// PACKET_TX_RING, measured slower than sendmmsg on veths: the kernel
// builds each frame's skb from pages of the ring, which costs more than
// copying a frame into a fresh one.)
type Ring struct {
	RX  *RX
	mem []byte
}

// Open sets the AF_PACKET socket fd's TPACKET version, gives it the
// receive ring cfg describes and maps it. Call it before the socket is
// bound to a protocol: frames that arrive before the ring exists wait in
// the socket's ordinary queue, where no reader looks for them.
func Open(fd int, cfg Config) (*Ring, error) {
	if cfg.BlockSize == 0 {
		cfg.BlockSize = DefaultBlockSize
	}
	if cfg.Blocks == 0 {
		cfg.Blocks = DefaultBlocks
	}
	if cfg.Retire == 0 {
		cfg.Retire = DefaultRetire
	}
	page := os.Getpagesize()
	if cfg.BlockSize < page || cfg.BlockSize&(cfg.BlockSize-1) != 0 || cfg.BlockSize > 1<<30 {
		return nil, fmt.Errorf("pktring: block size %d: want a power of two of at least the page size (%d)", cfg.BlockSize, page)
	}
	if cfg.Blocks < 2 || cfg.Blocks > 1<<16 {
		return nil, fmt.Errorf("pktring: %d blocks: want 2 to %d", cfg.Blocks, 1<<16)
	}
	if cfg.SlotSize != 0 && (cfg.SlotSize < 256 || cfg.SlotSize > cfg.BlockSize || cfg.SlotSize&(cfg.SlotSize-1) != 0) {
		return nil, fmt.Errorf("pktring: slot size %d: want a power of two from 256 to the block size", cfg.SlotSize)
	}
	version := unix.TPACKET_V3
	if cfg.SlotSize > 0 {
		version = unix.TPACKET_V2
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VERSION, version); err != nil {
		return nil, fmt.Errorf("pktring: TPACKET version %d: %w", version+1, err)
	}
	vnet := 0
	if cfg.VnetHdr {
		if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VNET_HDR, 1); err != nil {
			return nil, fmt.Errorf("pktring: PACKET_VNET_HDR: %w", err)
		}
		vnet = vnetLen
	}
	// Frame size and count mean little to a TPACKET_V3 receive ring, whose
	// frames are packed into blocks, but the kernel checks them as for
	// fixed slots.
	slot := 2048
	if cfg.SlotSize > 0 {
		slot = cfg.SlotSize
		if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_COPY_THRESH, 1); err != nil {
			return nil, fmt.Errorf("pktring: PACKET_COPY_THRESH: %w", err)
		}
	}
	var err error
	if cfg.SlotSize > 0 {
		err = unix.SetsockoptTpacketReq(fd, unix.SOL_PACKET, unix.PACKET_RX_RING, &unix.TpacketReq{
			Block_size: uint32(cfg.BlockSize),
			Block_nr:   uint32(cfg.Blocks),
			Frame_size: uint32(slot),
			Frame_nr:   uint32(cfg.BlockSize / slot * cfg.Blocks),
		})
	} else {
		err = unix.SetsockoptTpacketReq3(fd, unix.SOL_PACKET, unix.PACKET_RX_RING, &unix.TpacketReq3{
			Block_size:     uint32(cfg.BlockSize),
			Block_nr:       uint32(cfg.Blocks),
			Frame_size:     uint32(slot),
			Frame_nr:       uint32(cfg.BlockSize / slot * cfg.Blocks),
			Retire_blk_tov: uint32(max(1, cfg.Retire.Milliseconds())),
		})
	}
	if err != nil {
		return nil, fmt.Errorf("pktring: receive ring of %d blocks of %d bytes: %w", cfg.Blocks, cfg.BlockSize, err)
	}
	rxLen := cfg.BlockSize * cfg.Blocks
	mem, err := unix.Mmap(fd, 0, rxLen, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return nil, fmt.Errorf("pktring: map the receive ring: %w", err)
	}
	r := &Ring{mem: mem, RX: &RX{mem: mem[:rxLen:rxLen], blockSize: cfg.BlockSize, blocks: cfg.Blocks, vnet: vnet}}
	if cfg.SlotSize > 0 {
		r.RX.slotSize, r.RX.perBlock = cfg.SlotSize, cfg.BlockSize/cfg.SlotSize
		r.RX.blocks = cfg.Blocks * r.RX.perBlock
	}
	return r, nil
}

// Close unmaps the ring; the socket keeps it until it is closed. No
// frame read from the ring and no method of RX may be used after.
func (r *Ring) Close() error {
	if r.mem == nil {
		return nil
	}
	err := unix.Munmap(r.mem)
	r.mem, r.RX.mem = nil, nil
	if err != nil {
		return fmt.Errorf("pktring: unmap the receive ring: %w", err)
	}
	return nil
}
