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
	DefaultTXFrames  = 512
)

// Config shapes a socket's rings.
type Config struct {
	// BlockSize is the size of a receive block: a power-of-two multiple of
	// the page size. A frame longer than a block holds (RX.MaxFrame)
	// arrives cut short.
	BlockSize int
	Blocks    int // receive blocks
	// Retire is how long the kernel fills a block before it hands it over
	// part full (tp_retire_blk_tov), in whole milliseconds, at least one:
	// the latency a frame on a quiet link may see.
	Retire time.Duration
	// VnetHdr sets PACKET_VNET_HDR: a virtio-net header precedes every
	// frame received (Frame.Vnet) and sent (zero: no offload). The kernel
	// takes the option only before the rings exist.
	VnetHdr bool
	// TXFrame is the longest frame the transmit ring sends; 0 for no
	// transmit ring. TXFrames is how many it queues (DefaultTXFrames).
	TXFrame  int
	TXFrames int
}

// Ring is a socket's receive ring and, if asked for, its transmit ring,
// in the one mapping the kernel allows a packet socket.
type Ring struct {
	RX  *RX
	TX  *TX // nil without Config.TXFrame
	mem []byte
}

// Open sets the AF_PACKET socket fd to TPACKET_V3, gives it the rings cfg
// describes and maps them. Call it before the socket is bound to a
// protocol: frames that arrive before the ring exists wait in the
// socket's ordinary queue, which nothing reads.
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
	if cfg.TXFrames == 0 {
		cfg.TXFrames = DefaultTXFrames
	}
	page := os.Getpagesize()
	if cfg.BlockSize < page || cfg.BlockSize&(cfg.BlockSize-1) != 0 || cfg.BlockSize > 1<<30 {
		return nil, fmt.Errorf("pktring: block size %d: want a power of two of at least the page size (%d)", cfg.BlockSize, page)
	}
	if cfg.Blocks < 2 || cfg.Blocks > 1<<16 {
		return nil, fmt.Errorf("pktring: %d blocks: want 2 to %d", cfg.Blocks, 1<<16)
	}
	if cfg.TXFrame < 0 || cfg.TXFrame > 1<<20 || cfg.TXFrames < 1 || cfg.TXFrames > 1<<16 {
		return nil, fmt.Errorf("pktring: %d transmit frames of %d bytes", cfg.TXFrames, cfg.TXFrame)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VERSION, unix.TPACKET_V3); err != nil {
		return nil, fmt.Errorf("pktring: TPACKET_V3: %w", err)
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
	const slot = 2048
	rxReq := unix.TpacketReq3{
		Block_size:     uint32(cfg.BlockSize),
		Block_nr:       uint32(cfg.Blocks),
		Frame_size:     slot,
		Frame_nr:       uint32(cfg.BlockSize / slot * cfg.Blocks),
		Retire_blk_tov: uint32(max(1, cfg.Retire.Milliseconds())),
	}
	if err := unix.SetsockoptTpacketReq3(fd, unix.SOL_PACKET, unix.PACKET_RX_RING, &rxReq); err != nil {
		return nil, fmt.Errorf("pktring: receive ring of %d blocks of %d bytes: %w", cfg.Blocks, cfg.BlockSize, err)
	}
	rxLen := cfg.BlockSize * cfg.Blocks
	var tx *TX
	txLen := 0
	if cfg.TXFrame > 0 {
		tx = newTX(cfg.TXFrame, cfg.TXFrames, vnet, page)
		txReq := unix.TpacketReq3{
			Block_size: uint32(tx.blockSize),
			Block_nr:   uint32(tx.frames / tx.perBlock),
			Frame_size: uint32(tx.frameSize),
			Frame_nr:   uint32(tx.frames),
		}
		if err := unix.SetsockoptTpacketReq3(fd, unix.SOL_PACKET, unix.PACKET_TX_RING, &txReq); err != nil {
			return nil, fmt.Errorf("pktring: transmit ring of %d frames of %d bytes: %w", tx.frames, tx.frameSize, err)
		}
		txLen = tx.frames / tx.perBlock * tx.blockSize
	}
	// The kernel maps the receive ring first and the transmit ring right
	// after it, and only both at once.
	mem, err := unix.Mmap(fd, 0, rxLen+txLen, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return nil, fmt.Errorf("pktring: map the rings: %w", err)
	}
	r := &Ring{mem: mem, RX: &RX{mem: mem[:rxLen:rxLen], blockSize: cfg.BlockSize, blocks: cfg.Blocks, vnet: vnet}}
	if tx != nil {
		tx.mem = mem[rxLen:]
		r.TX = tx
	}
	return r, nil
}

// Close unmaps the rings; the socket keeps them until it is closed. No
// frame read from the ring and no method of RX or TX may be used after.
func (r *Ring) Close() error {
	if r.mem == nil {
		return nil
	}
	err := unix.Munmap(r.mem)
	r.mem, r.RX.mem = nil, nil
	if r.TX != nil {
		r.TX.mem = nil
	}
	if err != nil {
		return fmt.Errorf("pktring: unmap the rings: %w", err)
	}
	return nil
}
