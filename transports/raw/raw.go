// Package raw is the port on a host interface through an AF_PACKET socket,
// the switch's side of UML's vecN:transport=raw: every frame the interface
// receives comes in, every frame the switch sends goes out on it, and the
// socket ignores its own transmissions so nothing loops back.
//
// A classic BPF filter, when given, is attached before the socket is bound,
// so no frame it refuses is ever queued. The kernel does not count what a
// filter refuses; a second socket on the same interface carries the
// inverted program and counts exactly those frames (its queue is kept tiny:
// it only counts). The main socket's own queue overruns are counted too.
//
// The socket reads through a memory-mapped receive ring (ring.go,
// internal/pktring) or with recvmmsg (receive.go), as ring= says, and
// sends with sendmmsg.
package raw

import (
	"encoding/binary"
	"fmt"
	"net"
	"sync"
	"unsafe"

	"github.com/mdlayher/packet"
	xbpf "golang.org/x/net/bpf"
	"golang.org/x/sys/unix"

	"github.com/umlswitch/umlswitch/bpf"
	"github.com/umlswitch/umlswitch/fabric"
	"github.com/umlswitch/umlswitch/frame"
	"github.com/umlswitch/umlswitch/internal/offload"
	"github.com/umlswitch/umlswitch/internal/packetsock"
	"github.com/umlswitch/umlswitch/internal/pktring"
	"github.com/umlswitch/umlswitch/internal/sockport"
	"github.com/umlswitch/umlswitch/transports/portkind"
)

// Config describes one raw port: its keys and what the switch adds.
type Config struct {
	Options
	portkind.Common
}

// Port is a fabric.Port on a host interface.
type Port struct {
	*sockport.Port
	counter *packet.Conn // the inverted filter's socket; nil without a filter
	depth   int
	rx      reader // with recvmmsg

	ringMu sync.RWMutex  // held shared while the ring's memory is read, exclusively to unmap it
	ring   *pktring.Ring // nil with recvmmsg, and once closed
	ringRx ringReader
	rxRing *pktring.RX // the receive ring, nil with recvmmsg; it outlives the mapping for its counts

	mu       sync.Mutex // guards the totals: the kernel's statistics reset on every read
	filtered uint64
	overrun  uint64
}

var _ fabric.KernelDropper = (*Port)(nil)

// controlLen fits one PACKET_AUXDATA message.
var controlLen = unix.CmsgSpace(int(unsafe.Sizeof(unix.TpacketAuxdata{})))

// Open opens the socket (and the counting socket for a filter) on the
// interface. The port is not attached yet.
func Open(cfg Config) (*Port, error) {
	ifi, err := net.InterfaceByName(cfg.Ifname)
	if err != nil {
		return nil, fmt.Errorf("raw: interface %q: %w", cfg.Ifname, err)
	}
	var filter []xbpf.RawInstruction
	if cfg.Filter != nil {
		filter = cfg.Filter.Raw()
	}
	// A packet socket sends at most the interface's MTU, its header and one
	// VLAN tag (MTU+18), one tag less than the switch's ports carry.
	maxFrame := cfg.MaxFrame
	if maxFrame > frame.HeaderLen+2*frame.VLANTagLen {
		maxFrame -= frame.VLANTagLen
	}
	var ringCfg *pktring.Config
	switch cfg.Ring.mode() {
	case RingBlocks:
		ringCfg = &pktring.Config{VnetHdr: true}
	case RingFrames:
		ringCfg = slotRing(maxFrame)
	}
	fd, ring, err := listen(ifi, filter, cfg.Promisc, ringCfg)
	if err != nil {
		return nil, fmt.Errorf("raw %s: %w", cfg.Ifname, err)
	}
	name := "raw " + cfg.Ifname
	switch {
	case ring != nil && cfg.Filter != nil:
		name += " (ring of " + cfg.Ring.String() + ", filtered)"
	case ring != nil:
		name += " (ring of " + cfg.Ring.String() + ")"
	case cfg.Filter != nil:
		name += " (filtered)"
	}
	p := &Port{depth: cfg.Depth, ring: ring}
	sp, err := sockport.New(fd, sockport.Config{Name: name, Depth: cfg.Depth, MaxFrame: maxFrame,
		TxPrefix: make([]byte, offload.HdrLen)})
	if err != nil {
		unix.Close(fd)
		if ring != nil {
			ring.Close()
		}
		return nil, fmt.Errorf("raw %s: %w", cfg.Ifname, err)
	}
	p.Port = sp
	if ring != nil {
		p.rxRing = ring.RX
		p.ringRx = ringReader{rx: ring.RX, readyFn: p.ready, sockopt: p.Sockopt}
		p.ringRx.copyFn = p.ringRx.readCopy
	}
	if cfg.Filter != nil {
		if p.counter, err = listenCounter(ifi, cfg.Filter); err != nil {
			sp.Close()
			return nil, fmt.Errorf("raw %s: counting socket: %w", cfg.Ifname, err)
		}
	}
	return p, nil
}

// slotRing shapes a TPACKET_V2 ring for frames of up to maxFrame bytes: a
// slot holds one with a VLAN tag in it and the kernel's headers before
// it, and the ring holds 2048 slots, or at least 4 MiB of them, or at most
// 16 MiB (1024 slots of a jumbo frame).
func slotRing(maxFrame int) *pktring.Config {
	slot := 256
	for slot < maxFrame+frame.VLANTagLen+128 {
		slot *= 2
	}
	block := max(pktring.DefaultBlockSize, slot)
	size := min(max(4<<20, 2048*slot), max(16<<20, block*2))
	return &pktring.Config{VnetHdr: true, SlotSize: slot, BlockSize: block, Blocks: size / block}
}

// listen returns a non-blocking AF_PACKET socket bound to ifi with the
// filter in place, ignoring its own transmissions, reporting stripped VLAN
// tags and carrying a virtio-net header with every frame; with ringCfg, it
// reads through the rings it describes, which it returns. mdlayher/packet
// attaches the filter before it binds, here to protocol 0, which receives
// nothing: the options and the ring are set before a rebind to every
// protocol lets the first frame in. The switch then owns a duplicate of
// the descriptor (the socket, its filter and its promiscuous membership
// live on in it).
func listen(ifi *net.Interface, filter []xbpf.RawInstruction, promisc bool, ringCfg *pktring.Config) (int, *pktring.Ring, error) {
	c, err := packet.Listen(ifi, packet.Raw, 0, &packet.Config{Filter: filter})
	if err != nil {
		return -1, nil, err
	}
	defer c.Close()
	if promisc {
		if err := c.SetPromiscuous(true); err != nil {
			return -1, nil, fmt.Errorf("promiscuous mode: %w", err)
		}
	}
	var ring *pktring.Ring
	fd, err := packetsock.Dup(c, func(fd int) error {
		if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_IGNORE_OUTGOING, 1); err != nil {
			return fmt.Errorf("PACKET_IGNORE_OUTGOING: %w", err)
		}
		// A host sends in bursts the switch may not be scheduled for; with a
		// ring of slots, offload frames longer than a slot wait there.
		sockport.SetBuffer(fd, unix.SO_RCVBUF, 4<<20)
		if ringCfg != nil {
			// The ring reports stripped tags in each frame's header.
			var err error
			if ring, err = pktring.Open(fd, *ringCfg); err != nil {
				return err
			}
		} else {
			if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_AUXDATA, 1); err != nil {
				return fmt.Errorf("PACKET_AUXDATA: %w", err)
			}
			if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VNET_HDR, 1); err != nil {
				return fmt.Errorf("PACKET_VNET_HDR: %w", err)
			}
		}
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: packetsock.AllProtocols, Ifindex: ifi.Index}); err != nil {
			return fmt.Errorf("bind: %w", err)
		}
		return nil
	})
	if err != nil {
		if ring != nil {
			ring.Close()
		}
		return -1, nil, err
	}
	return fd, ring, nil
}

// listenCounter opens the socket that counts what f refuses: it carries the
// inversion of f, keeps one byte of each frame and has the smallest queue
// the kernel allows, so the kernel's own count of packets (queued plus
// dropped for want of room) is the count of refused frames.
func listenCounter(ifi *net.Interface, f *bpf.Program) (*packet.Conn, error) {
	c, err := packet.Listen(ifi, packet.Raw, unix.ETH_P_ALL, &packet.Config{Filter: f.Inverted()})
	if err != nil {
		return nil, err
	}
	rc, err := c.SyscallConn()
	if err == nil {
		var opErr error
		err = rc.Control(func(fd uintptr) {
			if opErr = unix.SetsockoptInt(int(fd), unix.SOL_PACKET, unix.PACKET_IGNORE_OUTGOING, 1); opErr == nil {
				opErr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, 0)
			}
		})
		if err == nil {
			err = opErr
		}
	}
	if err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// KernelDrops implements fabric.KernelDropper: frames the filter refused,
// frames the main socket's queue or ring had no room for, and frames the
// ring held with headers pointing outside their block (never expected).
func (p *Port) KernelDrops(d *[fabric.NumDropReasons]uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.collect()
	d[fabric.DropFiltered] += p.filtered
	d[fabric.DropRxOverrun] += p.overrun
	if p.rxRing != nil {
		d[fabric.DropDecap] += p.rxRing.Bad()
	}
}

// collect adds the kernel's statistics since the last read to the totals.
// The caller holds p.mu.
func (p *Port) collect() {
	p.Sockopt(func(fd int) error {
		if p.rxRing != nil && !p.rxRing.Slotted() { // TPACKET_V3 answers with its own statistics
			st, err := unix.GetsockoptTpacketStatsV3(fd, unix.SOL_PACKET, unix.PACKET_STATISTICS)
			if err == nil {
				p.overrun += uint64(st.Drops)
			}
			return err
		}
		st, err := unix.GetsockoptTpacketStats(fd, unix.SOL_PACKET, unix.PACKET_STATISTICS)
		if err == nil {
			p.overrun += uint64(st.Drops)
		}
		return err
	})
	if p.counter != nil {
		if st, err := p.counter.Stats(); err == nil {
			p.filtered += uint64(st.Packets) // queued or dropped: each one refused by the filter
		}
	}
}

// Close implements fabric.Port, keeping the final counts.
func (p *Port) Close() error {
	p.mu.Lock()
	p.collect()
	if p.counter != nil {
		p.counter.Close()
		p.counter = nil
	}
	p.mu.Unlock()
	err := p.Port.Close() // wakes the reader
	p.ringMu.Lock()
	if p.ring != nil {
		p.ring.Close()
		p.ring = nil
	}
	p.ringMu.Unlock()
	return err
}

// reinsertVLAN puts back the 802.1Q tag that receive offload took out of
// frame i, as the kernel reports it in PACKET_AUXDATA, so tagged frames
// cross the switch as they were on the wire. A frame that no longer fits
// keeps its grown size, and the switch counts it as oversize.
func reinsertVLAN(v *frame.Vector, i int, tag vlanTag) {
	n := v.Sizes[i]
	if n < 12 {
		return
	}
	v.Sizes[i] = n + 4
	if n+4 > v.MaxFrame {
		return
	}
	f := v.Bufs[i][frame.Headroom : frame.Headroom+n+4]
	copy(f[16:], f[12:n])
	binary.BigEndian.PutUint16(f[12:], tag.tpid)
	binary.BigEndian.PutUint16(f[14:], tag.tci)
}

// vlanTag is a tag the kernel took out of a received frame.
type vlanTag struct {
	tci, tpid uint16
	present   bool
}

// strippedTag finds the VLAN tag in a PACKET_AUXDATA control message.
func strippedTag(control []byte) vlanTag {
	const hdrLen = unix.SizeofCmsghdr
	const lenSize = int(unsafe.Sizeof(unix.Cmsghdr{}.Len)) // 8 on 64-bit, 4 on 32-bit
	for len(control) >= hdrLen {
		var msgLen uint64
		if lenSize == 8 {
			msgLen = binary.NativeEndian.Uint64(control)
		} else {
			msgLen = uint64(binary.NativeEndian.Uint32(control))
		}
		level := int32(binary.NativeEndian.Uint32(control[lenSize:]))
		typ := int32(binary.NativeEndian.Uint32(control[lenSize+4:]))
		if msgLen < hdrLen || msgLen > uint64(len(control)) {
			return vlanTag{}
		}
		data := control[hdrLen:msgLen]
		if level == unix.SOL_PACKET && typ == unix.PACKET_AUXDATA && len(data) >= 20 {
			status := binary.NativeEndian.Uint32(data[0:4])
			if status&unix.TP_STATUS_VLAN_VALID == 0 {
				return vlanTag{}
			}
			t := vlanTag{present: true,
				tci:  binary.NativeEndian.Uint16(data[16:18]), // after status, len, snaplen, mac, net
				tpid: binary.NativeEndian.Uint16(data[18:20])}
			if status&unix.TP_STATUS_VLAN_TPID_VALID == 0 || t.tpid == 0 {
				t.tpid = unix.ETH_P_8021Q
			}
			return t
		}
		step := unix.CmsgSpace(int(msgLen) - hdrLen)
		if step > len(control) {
			return vlanTag{}
		}
		control = control[step:]
	}
	return vlanTag{}
}
