package raw

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/cilium/ebpf/asm"
	"github.com/mdlayher/packet"

	"github.com/umlswitch/umlswitch/fabric"
	"github.com/umlswitch/umlswitch/frame"
	"github.com/umlswitch/umlswitch/internal/offload"
	"github.com/umlswitch/umlswitch/internal/xsk"
)

// XDPPort is a raw port on AF_XDP sockets: an XDP program on the interface
// hands each frame the port's filter passes to the socket of its receive
// queue, in memory the switch shares with the kernel, before the kernel
// makes an skb of it; frames the switch sends go out through the TX ring.
// The program is attached through a bpf_link, so it goes with the port
// and with the process, however it ends.
//
// The filter runs in the program, translated to eBPF: frames it refuses
// are counted there and never reach the switch. A filter the translation
// cannot take uses the kernel's ancillary loads, which only the kernel's
// socket filters run (x/net's VM cannot either): xdp=1 refuses it, and
// xdp=auto reads through AF_PACKET.
type XDPPort struct {
	name     string
	maxFrame int
	depth    int
	prog     *xsk.Program
	socks    []*xsk.Socket
	promisc  *packet.Conn // holds the interface promiscuous while open; nil without promisc=1

	mu       sync.Mutex // guards what follows
	closed   bool
	closeErr error
	final    [fabric.NumDropReasons]uint64 // the kernel's counts when the port closed
}

var (
	_ fabric.Port          = (*XDPPort)(nil)
	_ fabric.KernelDropper = (*XDPPort)(nil)
)

// OpenXDP opens an AF_XDP socket per queue of cfg.Queues on the interface
// and attaches the program that feeds them.
func OpenXDP(cfg Config) (*XDPPort, error) {
	ifi, err := net.InterfaceByName(cfg.Ifname)
	if err != nil {
		return nil, fmt.Errorf("raw: interface %q: %w", cfg.Ifname, err)
	}
	// Someone's program on the interface: refused before the sockets
	// are opened, whose queues its owner may hold too (an old switch
	// during an upgrade: a bind would wait for them in vain).
	if err := xsk.Unclaimed(ifi.Index); err != nil {
		return nil, fmt.Errorf("raw %s: %w", cfg.Ifname, err)
	}
	p := &XDPPort{maxFrame: cfg.MaxFrame, depth: cfg.Depth}
	var filter asm.Instructions
	if cfg.Filter != nil {
		if filter, err = cfg.Filter.EBPF(); err != nil {
			return nil, fmt.Errorf("raw %s: filter: %w (with xdp=0 the kernel's socket filter runs it)", cfg.Ifname, err)
		}
	}
	fail := func(err error) (*XDPPort, error) {
		p.Close()
		return nil, fmt.Errorf("raw %s: %w", cfg.Ifname, err)
	}
	for q := range max(cfg.Queues, 1) {
		s, err := xsk.Open(xsk.Config{Ifindex: ifi.Index, Queue: q, ZeroCopy: cfg.ZeroCopy})
		if err != nil {
			return fail(err)
		}
		p.socks = append(p.socks, s)
	}
	if p.prog, err = xsk.Attach(ifi.Index, filter); err != nil {
		return fail(err)
	}
	for q, s := range p.socks {
		if err := p.prog.Register(q, s); err != nil {
			return fail(err)
		}
	}
	if cfg.Promisc {
		// A packet socket bound to no protocol receives nothing, and its
		// membership keeps the interface promiscuous until it closes,
		// with the process if need be.
		if p.promisc, err = packet.Listen(ifi, packet.Raw, 0, nil); err == nil {
			err = p.promisc.SetPromiscuous(true)
		}
		if err != nil {
			return fail(fmt.Errorf("promiscuous mode: %w", err))
		}
	}
	p.name = fmt.Sprintf("raw %s (xdp, %s mode", cfg.Ifname, p.prog.Mode())
	if cfg.ZeroCopy {
		p.name += ", zero-copy"
	}
	if len(p.socks) > 1 {
		p.name += fmt.Sprintf(", %d queues", len(p.socks))
	}
	if cfg.Filter != nil {
		p.name += ", filtered"
	}
	p.name += ")"
	return p, nil
}

// Name implements fabric.Port.
func (p *XDPPort) Name() string { return p.name }

// MaxFrame implements fabric.Port.
func (p *XDPPort) MaxFrame() int { return p.maxFrame }

// Write implements fabric.Port: the frames go out through the first
// socket's TX ring (one ring: frames from several of the switch's readers
// keep their order per flow).
func (p *XDPPort) Write(frames [][]byte) (int, error) {
	n, err := p.socks[0].Transmit(frames)
	switch {
	case errors.Is(err, xsk.ErrFrameSize):
		return n, err // frames[n] alone: the caller counts it and goes on
	case err != nil:
		return n, err
	case n < len(frames):
		return n, fabric.ErrWouldBlock
	}
	return n, nil
}

// WaitWritable implements fabric.Port.
func (p *XDPPort) WaitWritable(timeout time.Duration) bool {
	return p.socks[0].WaitWritable(timeout)
}

// Receivers are the port's reading sides, one per queue; every frame
// they read is marked as entering through port id.
func (p *XDPPort) Receivers(id frame.PortID) []fabric.Receiver {
	rs := make([]fabric.Receiver, len(p.socks))
	for q, s := range p.socks {
		name := p.name
		if len(p.socks) > 1 {
			name = fmt.Sprintf("%s queue %d", p.name, q)
		}
		rs[q] = fabric.Receiver{Name: name, Depth: p.depth, MaxFrame: p.maxFrame, Receive: p.receiver(s, id)}
	}
	return rs
}

// receiver reads socket s: it waits on the netpoller until frames are on
// the RX ring, and copies them into the switch's batch.
func (p *XDPPort) receiver(s *xsk.Socket, id frame.PortID) fabric.ReceiveFunc {
	return func(v *frame.Vector) (int, error) {
		for {
			n := s.Receive(v.Bufs[:v.Depth()], frame.Headroom, v.Sizes[:v.Depth()])
			if n > 0 {
				for i := range n {
					v.Ports[i] = id
					if v.Sizes[i] <= v.MaxFrame {
						offload.CompletePartial(v.Frame(i))
					}
				}
				return n, nil
			}
			if err := s.Wait(0); err != nil {
				return 0, err // net.ErrClosed once the port is closed
			}
		}
	}
}

// KernelDrops implements fabric.KernelDropper: frames the filter refused,
// and frames the kernel dropped for want of room on a receive ring or of a
// frame to fill.
func (p *XDPPort) KernelDrops(d *[fabric.NumDropReasons]uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.closed {
		p.final = [fabric.NumDropReasons]uint64{}
		p.collect(&p.final)
	}
	d[fabric.DropFiltered] += p.final[fabric.DropFiltered]
	d[fabric.DropRxOverrun] += p.final[fabric.DropRxOverrun]
}

// collect reads the program's and the sockets' counts, which the kernel
// keeps from their start, into d. The caller holds p.mu.
func (p *XDPPort) collect(d *[fabric.NumDropReasons]uint64) {
	if p.prog != nil {
		if n, err := p.prog.Filtered(); err == nil {
			d[fabric.DropFiltered] += n
		}
	}
	for _, s := range p.socks {
		if st, err := s.Stats(); err == nil {
			d[fabric.DropRxOverrun] += st.Rx_dropped + st.Rx_ring_full + st.Rx_fill_ring_empty_descs
		}
	}
}

// Close implements fabric.Port, keeping the final counts: it detaches the
// program (the interface's frames go to the kernel's stack again) and
// closes the sockets.
func (p *XDPPort) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return p.closeErr
	}
	p.final = [fabric.NumDropReasons]uint64{}
	p.collect(&p.final)
	p.closed = true
	// The sockets first: closing one takes it out of the program's map at
	// once and frees its queue, while a map closed first lets go of its
	// sockets only later, and a port opened again at once would find the
	// queue still bound.
	var errs []error
	for _, s := range p.socks {
		errs = append(errs, s.Close())
	}
	if p.prog != nil {
		errs = append(errs, p.prog.Close())
	}
	if p.promisc != nil {
		errs = append(errs, p.promisc.Close())
	}
	p.closeErr = errors.Join(errs...)
	return p.closeErr
}
