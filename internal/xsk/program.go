package xsk

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// The labels a filter block jumps to (the convention with package bpf's
// translator, whose bpf.AcceptLabel and bpf.RefuseLabel must equal these):
// AcceptLabel hands the frame to the queue's socket, RefuseLabel counts it
// as filtered and drops it.
const (
	AcceptLabel = "cbpf_accept"
	RefuseLabel = "cbpf_refuse"
)

// The registers the program loads before a filter block and that the
// block must leave as they are.
const (
	RegData    = asm.R6 // xdp_md->data: the frame's first byte
	RegDataEnd = asm.R7 // xdp_md->data_end: one past its last
	RegQueue   = asm.R8 // xdp_md->rx_queue_index
)

// Offsets in struct xdp_md.
const (
	mdData     = 0
	mdDataEnd  = 4
	mdRxQueue  = 16
	xdpDrop    = 1
	xdpPass    = 2
	dropLabel  = "xsk_drop"
	counterKey = -4 // the refuse path's map key, on the stack
)

// Program is the XDP program on one interface: it sends each frame to the
// AF_XDP socket registered for its receive queue (to the kernel's stack
// when there is none) or, when a filter block refuses it, counts and drops
// it. It is attached through a bpf_link, so it goes when the link is
// closed or the process dies, however it dies.
type Program struct {
	ifname   string
	mode     string
	prog     *ebpf.Program
	xsks     *ebpf.Map // XSKMAP: receive queue -> socket
	filtered *ebpf.Map // per-CPU count of refused frames
	link     link.Link
}

// ErrInUse is what an error of Attach or Open wraps when the interface's
// XDP hook or the queue is taken: by someone else's program, or by a
// process (an old switch) that has not let go of them yet.
var ErrInUse = errors.New("xsk: in use")

// inUse is an error that is ErrInUse, with its own message.
type inUse struct{ error }

func (e inUse) Is(target error) bool { return target == ErrInUse }
func (e inUse) Unwrap() error        { return e.error }

// Unclaimed checks that the interface has no XDP program, as Attach does
// first: a caller may ask before it opens its sockets, whose queues an
// old holder of the program may hold too.
func Unclaimed(ifindex int) error {
	l, err := netlink.LinkByIndex(ifindex)
	if err != nil {
		return fmt.Errorf("xsk: interface %d: %w", ifindex, err)
	}
	return noProgram(l.Attrs())
}

// noProgram refuses an interface that has an XDP program: it is never
// replaced.
func noProgram(a *netlink.LinkAttrs) error {
	if x := a.Xdp; x != nil && x.Attached {
		return inUse{fmt.Errorf("xsk: %s already has an XDP program (id %d); it is not ours to replace", a.Name, x.ProgId)}
	}
	return nil
}

// Attach loads the program, with filter (nil: accept every frame) between
// the loads of RegData, RegDataEnd, RegQueue and the two labels, and
// attaches it to the interface in the calling thread's network namespace.
// The filter block follows package bpf's convention for EBPF: it leaves
// R6-R8 as they were, may use the 64 bytes of stack below R10, and ends
// every path with a jump to AcceptLabel or RefuseLabel, with no
// unreachable instruction (the verifier refuses those). It is attached
// in driver (native) mode where the driver can, in generic (skb) mode
// otherwise. It refuses an interface that already has an XDP program,
// never replacing it, and one whose MTU does not fit the largest UMEM
// frame (4096 bytes; Open checks the socket's own frame size).
func Attach(ifindex int, filter asm.Instructions) (*Program, error) {
	l, err := netlink.LinkByIndex(ifindex)
	if err != nil {
		return nil, fmt.Errorf("xsk: interface %d: %w", ifindex, err)
	}
	a := l.Attrs()
	if err := noProgram(a); err != nil {
		return nil, err
	}
	if err := checkMTU(a.Name, a.MTU, 4096); err != nil {
		return nil, err
	}
	p := &Program{ifname: a.Name}
	if err := p.load(max(a.NumRxQueues, 1), filter); err != nil {
		p.Close()
		return nil, fmt.Errorf("xsk: %s: %w", a.Name, err)
	}
	if err := p.attach(ifindex); err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}

func (p *Program) load(queues int, filter asm.Instructions) error {
	var err error
	p.xsks, err = ebpf.NewMap(&ebpf.MapSpec{Name: "xsks", Type: ebpf.XSKMap, KeySize: 4, ValueSize: 4, MaxEntries: uint32(queues)})
	if err != nil {
		return fmt.Errorf("create the XSKMAP: %w", err)
	}
	p.filtered, err = ebpf.NewMap(&ebpf.MapSpec{Name: "filtered", Type: ebpf.PerCPUArray, KeySize: 4, ValueSize: 8, MaxEntries: 1})
	if err != nil {
		return fmt.Errorf("create the filtered counter: %w", err)
	}
	p.prog, err = ebpf.NewProgram(&ebpf.ProgramSpec{
		Name:         "umlswitch_xsk",
		Type:         ebpf.XDP,
		License:      "Dual MIT/GPL", // the kernel wants a GPL-compatible string for GPL-only helpers; none is used
		Instructions: program(p.xsks.FD(), p.filtered.FD(), filter),
	})
	if err != nil {
		return fmt.Errorf("load the XDP program: %w", err)
	}
	return nil
}

// program assembles: the loads, the filter block, then accept and refuse,
// each only where something jumps to it (the verifier refuses
// unreachable instructions).
func program(xsks, filtered int, filter asm.Instructions) asm.Instructions {
	insns := asm.Instructions{
		asm.LoadMem(RegData, asm.R1, mdData, asm.Word),
		asm.LoadMem(RegDataEnd, asm.R1, mdDataEnd, asm.Word),
		asm.LoadMem(RegQueue, asm.R1, mdRxQueue, asm.Word),
	}
	if filter == nil {
		filter = asm.Instructions{asm.Ja.Label(AcceptLabel)}
	}
	insns = append(insns, filter...)
	if references(filter, AcceptLabel) {
		insns = append(insns,
			// bpf_redirect_map(&xsks, rx_queue_index, XDP_PASS): a queue
			// without a socket leaves the frame to the kernel's stack.
			asm.LoadMapPtr(asm.R1, xsks).WithSymbol(AcceptLabel),
			asm.Mov.Reg(asm.R2, RegQueue),
			asm.Mov.Imm(asm.R3, xdpPass),
			asm.FnRedirectMap.Call(),
			asm.Return(),
		)
	}
	if references(filter, RefuseLabel) {
		insns = append(insns,
			// The counter is per CPU: a plain increment does.
			asm.Mov.Imm(asm.R0, 0).WithSymbol(RefuseLabel),
			asm.StoreMem(asm.RFP, counterKey, asm.R0, asm.Word),
			asm.LoadMapPtr(asm.R1, filtered),
			asm.Mov.Reg(asm.R2, asm.RFP),
			asm.Add.Imm(asm.R2, counterKey),
			asm.FnMapLookupElem.Call(),
			asm.JEq.Imm(asm.R0, 0, dropLabel),
			asm.LoadMem(asm.R1, asm.R0, 0, asm.DWord),
			asm.Add.Imm(asm.R1, 1),
			asm.StoreMem(asm.R0, 0, asm.R1, asm.DWord),
			asm.Mov.Imm(asm.R0, xdpDrop).WithSymbol(dropLabel),
			asm.Return(),
		)
	}
	return insns
}

func references(insns asm.Instructions, label string) bool {
	for _, ins := range insns {
		if ins.Reference() == label {
			return true
		}
	}
	return false
}

// attachModes are the modes attach tries, in order (tests try generic
// mode alone).
var attachModes = []struct {
	flags link.XDPAttachFlags
	name  string
}{{link.XDPDriverMode, "driver"}, {link.XDPGenericMode, "generic"}}

// attach links the program in the first mode the interface takes. The
// kernel never lets a link replace a program (EBUSY), nor a program in
// one mode sit beside one in the other (EEXIST): either means someone
// attached one since Attach looked.
func (p *Program) attach(ifindex int) error {
	var errs []error
	for _, m := range attachModes {
		l, err := link.AttachXDP(link.XDPOptions{Program: p.prog, Interface: ifindex, Flags: m.flags})
		if err == nil {
			p.link, p.mode = l, m.name
			return nil
		}
		if errors.Is(err, unix.EBUSY) || errors.Is(err, unix.EEXIST) {
			return inUse{fmt.Errorf("xsk: %s already has an XDP program; it is not ours to replace: %w", p.ifname, err)}
		}
		errs = append(errs, fmt.Errorf("%s mode: %w", m.name, err))
	}
	return fmt.Errorf("xsk: attach XDP to %s: %w", p.ifname, errors.Join(errs...))
}

// Register sends the frames of receive queue queue to s.
func (p *Program) Register(queue int, s *Socket) error {
	if queue < 0 || uint32(queue) >= p.xsks.MaxEntries() {
		return fmt.Errorf("xsk: %s has queues 0-%d, not %d", p.ifname, p.xsks.MaxEntries()-1, queue)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return fmt.Errorf("xsk: register queue %d of %s: the socket is closed", queue, p.ifname)
	}
	if err := p.xsks.Update(uint32(queue), uint32(s.fd), ebpf.UpdateAny); err != nil {
		return fmt.Errorf("xsk: register queue %d of %s: %w", queue, p.ifname, err)
	}
	return nil
}

// Mode says how the program is attached: "driver" (native XDP) or
// "generic" (after the kernel built an skb: slower, but any interface).
func (p *Program) Mode() string { return p.mode }

// Filtered returns how many frames the filter refused, over all CPUs.
func (p *Program) Filtered() (uint64, error) {
	var perCPU []uint64
	if err := p.filtered.Lookup(uint32(0), &perCPU); err != nil {
		return 0, fmt.Errorf("xsk: %s: read the filtered count: %w", p.ifname, err)
	}
	var sum uint64
	for _, n := range perCPU {
		sum += n
	}
	return sum, nil
}

// Close detaches the program and frees it and its maps.
func (p *Program) Close() error {
	var errs []error
	if p.link != nil {
		errs = append(errs, p.link.Close())
		p.link = nil
	}
	// Both Close methods accept nil: Attach closes a half-built Program.
	errs = append(errs, p.prog.Close(), p.xsks.Close(), p.filtered.Close())
	p.prog, p.xsks, p.filtered = nil, nil, nil
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("xsk: %s: %w", p.ifname, err)
	}
	return nil
}
