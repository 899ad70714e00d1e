// Package tap is a switch port on a host tap interface, as uml_switch's -tap:
// the switch holds /dev/net/tun attached to the named tap (IFF_TAP|IFF_NO_PI:
// no packet-information header) and frames pass unchanged. With
// Config.VnetHdr the tap also carries a virtio-net header (IFF_VNET_HDR) and
// offloads: the port cuts the host's segmentation-offload frames into
// wire-sized ones and gives frames it writes a header that asks for nothing.
// A tap is created through netlink when asked (and then, unless persistent,
// goes away with the switch); it can be brought up and given an MTU.
//
// A tap descriptor has no recvmmsg: the reader fills a batch by reading until
// EAGAIN, and writes go one frame per write(2) (writev(2) behind a header).
// With Config.VnetHdr a write also merges consecutive segments of one TCP
// flow in a batch, as GRO would, into one segmentation-offload frame that
// the host takes in one writev(2) (internal/offload's Coalesce).
// A multi-queue tap has one reader per queue; the kernel spreads the host's
// frames over the queues.
package tap

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/umlswitch/umlswitch/transports/portkind"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/umlswitch/umlswitch/fabric"
	"github.com/umlswitch/umlswitch/frame"
	"github.com/umlswitch/umlswitch/internal/handover"
	"github.com/umlswitch/umlswitch/internal/mmsg"
	"github.com/umlswitch/umlswitch/internal/offload"
	"github.com/umlswitch/umlswitch/internal/pollfd"
)

// errDown is what writing to a tap whose interface is down gives (EIO): no
// frame of the batch can go, so the rest is dropped at once.
var errDown = fmt.Errorf("tap: interface down: %w", fabric.ErrPeerGone)

// errGone is what writing to a tap whose interface was deleted gives
// (EBADFD): the descriptor is dead for good, so the batch is dropped at
// once and the port reports itself gone.
var errGone = fmt.Errorf("tap: interface deleted: %w", fabric.ErrPeerGone)

// MaxQueues bounds queues=N; the kernel allows up to 256 per tap.
const MaxQueues = 64

// Config describes one tap port: its keys and what the switch adds.
type Config struct {
	Options
	MTU int // when > 0, set the interface's MTU
	portkind.Common
}

// Port is a fabric.Port on a tap interface.
type Port struct {
	cfg    Config
	ifname string
	queues []*queue  // writes go to queue 0
	txPool sync.Pool // *vnetTx, with VnetHdr
	// noCoalesce writes every frame alone even with VnetHdr (a benchmark's
	// baseline).
	noCoalesce bool

	gone     chan error  // gets why, once the interface is found deleted
	goneSaid atomic.Bool // gone has its error
	closed   atomic.Bool
}

var _ portkind.Vanishing = (*Port)(nil)

// queue is one descriptor of the tap and its reader's state, used by that
// reader's goroutine only.
type queue struct {
	p      *Port
	fd     *pollfd.FD
	id     frame.PortID
	rxVec  *frame.Vector
	rxN    int
	rxErr  error
	readFn func(uintptr) bool
	vnet   *vnetRx // with Config.VnetHdr
}

// vnetRx is a queue's receive state with virtio-net headers. A read spills
// a frame longer than a batch slot into spill; a segmentation-offload frame
// is gathered into whole and handed out segment by segment, across batches
// if need be.
type vnetRx struct {
	b     *mmsg.Batch // one message: header, the slot's room, spill
	hdr   [offload.HdrLen]byte
	spill []byte
	whole []byte
	plan  offload.Plan
	next  int // the next segment of plan to hand out
}

// maxTapFrame bounds what one read of a tap with offloads returns.
const maxTapFrame = 65535 + 4 + 14

// maxRun bounds the segments merged into one write, as GRO bounds a
// packet's; 64 KiB binds first for segments of a 1500-byte MTU.
const maxRun = 64

// vnetTx is one writer's state with virtio-net headers: a message of the
// header and a frame, or of a super-frame's header, its headers and the
// payload of each of its segments, which stay in the caller's frames.
type vnetTx struct {
	b    *mmsg.Batch
	hdr  [offload.HdrLen]byte
	head [offload.MaxHeaders]byte
}

func newVnetTx() any { return &vnetTx{b: mmsg.NewBatch(1, 2+maxRun)} }

// zeroHdr is the virtio-net header of a frame that asks for nothing.
var zeroHdr [offload.HdrLen]byte

// Offloads turned on with VnetHdr (linux/if_tun.h): checksum, TSO for IPv4
// and IPv6, and TSO with ECN.
const tunOffloads = 0x01 | 0x02 | 0x04 | 0x08

var _ fabric.Port = (*Port)(nil)

// Open attaches to the tap interface cfg.Ifname, creating it first when
// cfg.Create is set and it does not exist.
func Open(cfg Config) (*Port, error) {
	cfg.Common = cfg.Common.Defaulted()
	if cfg.Queues <= 0 {
		cfg.Queues = 1
	}
	if len(cfg.Ifname) == 0 || len(cfg.Ifname) >= unix.IFNAMSIZ {
		return nil, fmt.Errorf("tap: interface name %q: length not in 1..%d", cfg.Ifname, unix.IFNAMSIZ-1)
	}
	if cfg.Queues > MaxQueues {
		return nil, fmt.Errorf("tap %s: queues=%d: at most %d", cfg.Ifname, cfg.Queues, MaxQueues)
	}
	fds, created, err := openQueues(cfg)
	if err != nil {
		return nil, fmt.Errorf("tap %s: %w", cfg.Ifname, err)
	}
	p := &Port{cfg: cfg, ifname: cfg.Ifname, gone: make(chan error, 1)}
	for _, fd := range fds {
		pfd, err := pollfd.New(fd, "tap "+cfg.Ifname)
		if err != nil {
			p.Close()
			for _, fd := range fds[len(p.queues)+1:] {
				unix.Close(fd)
			}
			return nil, err
		}
		q := &queue{p: p, fd: pfd}
		q.readFn = q.read
		if cfg.VnetHdr {
			q.readFn = q.readVnet
			q.vnet = &vnetRx{b: mmsg.NewBatch(1, 3), spill: make([]byte, maxTapFrame), whole: make([]byte, maxTapFrame+cfg.MaxFrame+1)}
			q.vnet.b.SetBuf(0, 0, q.vnet.hdr[:])
			q.vnet.b.SetBuf(0, 2, q.vnet.spill)
		}
		p.queues = append(p.queues, q)
	}
	if err := configure(cfg); err != nil {
		p.Close()
		return nil, fmt.Errorf("tap %s: %w", cfg.Ifname, err)
	}
	if cfg.VnetHdr {
		p.txPool.New = newVnetTx
		fd, _ := p.queues[0].fd.Borrow()
		err := unix.IoctlSetInt(fd, unix.TUNSETOFFLOAD, tunOffloads)
		p.queues[0].fd.Return()
		if err != nil {
			p.Close()
			return nil, fmt.Errorf("tap %s: TUNSETOFFLOAD: %w", cfg.Ifname, err)
		}
	}
	if created && cfg.Logger != nil {
		cfg.Logger.Info("tap created", "ifname", cfg.Ifname, "persist", cfg.Persist, "queues", cfg.Queues)
	}
	return p, nil
}

func (cfg Config) flags() netlink.TuntapFlag {
	f := netlink.TUNTAP_NO_PI
	if cfg.Queues > 1 {
		f |= netlink.TUNTAP_MULTI_QUEUE
	}
	if cfg.VnetHdr {
		f |= netlink.TUNTAP_VNET_HDR
	}
	return f
}

// openQueues returns one non-blocking descriptor per queue, attached to the
// tap; created says whether the tap was made here.
func openQueues(cfg Config) (fds []int, created bool, err error) {
	if fds := handedQueues(cfg); fds != nil {
		return fds, false, nil // a hot upgrade's: the tap stays as it is
	}
	_, statErr := net.InterfaceByName(cfg.Ifname)
	exists := statErr == nil
	if !exists && !cfg.Create {
		return nil, false, fmt.Errorf("no such interface (add create=1 to create the tap)")
	}
	if exists {
		fds, err := attach(cfg)
		return fds, false, err
	}
	t := &netlink.Tuntap{LinkAttrs: netlink.LinkAttrs{Name: cfg.Ifname}, Mode: netlink.TUNTAP_MODE_TAP,
		Flags: cfg.flags(), NonPersist: !cfg.Persist, Queues: cfg.Queues}
	if cfg.Owner >= 0 {
		t.Owner = uint32(cfg.Owner)
	}
	if err := netlink.LinkAdd(t); err != nil {
		return nil, false, fmt.Errorf("create: %w", err)
	}
	// netlink hands the queues over as *os.File, which the runtime's poller
	// already watches; the port wants plain descriptors of its own.
	for _, f := range t.Fds {
		fd, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, 0)
		if err == nil {
			fds = append(fds, fd)
		}
		if err == nil {
			err = unix.SetNonblock(fd, true)
		}
		if err != nil {
			closeAll(t.Fds)
			closeFds(fds)
			return nil, false, err
		}
	}
	closeAll(t.Fds)
	return fds, true, nil
}

// attach opens the queues of an existing tap.
func attach(cfg Config) ([]int, error) {
	var fds []int
	for range cfg.Queues {
		fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
		if err != nil {
			closeFds(fds)
			return nil, fmt.Errorf("open /dev/net/tun: %w", err)
		}
		fds = append(fds, fd)
		ifr, err := unix.NewIfreq(cfg.Ifname)
		if err != nil {
			closeFds(fds)
			return nil, err
		}
		ifr.SetUint16(uint16(unix.IFF_TAP | cfg.flags()))
		if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
			closeFds(fds)
			if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EBUSY) {
				return nil, fmt.Errorf("%w (is it a tun device or not a tap, in use, or of another queue setting?)", err)
			}
			return nil, fmt.Errorf("TUNSETIFF: %w", err)
		}
		// Only now can the descriptor be polled (golang/go#30426).
		if err := unix.SetNonblock(fd, true); err != nil {
			closeFds(fds)
			return nil, err
		}
	}
	return fds, nil
}

// configure applies up= and mtu= through netlink.
func configure(cfg Config) error {
	if !cfg.Up && cfg.MTU <= 0 {
		return nil
	}
	link, err := netlink.LinkByName(cfg.Ifname)
	if err != nil {
		return err
	}
	if cfg.MTU > 0 {
		if err := netlink.LinkSetMTU(link, cfg.MTU); err != nil {
			return fmt.Errorf("mtu %d: %w", cfg.MTU, err)
		}
	}
	if cfg.Up {
		if err := netlink.LinkSetUp(link); err != nil {
			return fmt.Errorf("up: %w", err)
		}
	}
	return nil
}

func closeFds(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}

func closeAll(files []*os.File) {
	for _, f := range files {
		f.Close()
	}
}

// Ifname is the interface the port is attached to.
func (p *Port) Ifname() string { return p.ifname }

// Name implements fabric.Port.
func (p *Port) Name() string { return "tap " + p.ifname }

// MaxFrame implements fabric.Port.
func (p *Port) MaxFrame() int { return p.cfg.MaxFrame }

// Write implements fabric.Port, one write(2) per frame, or with VnetHdr
// one writev(2) per frame or run of merged segments, on the first queue.
// Every segment of a merged run counts as a frame handed over.
func (p *Port) Write(frames [][]byte) (int, error) {
	q := p.queues[0]
	fd, ok := q.fd.Borrow()
	if !ok {
		return 0, net.ErrClosed
	}
	defer q.fd.Return()
	if !p.cfg.VnetHdr {
		for i, f := range frames {
			if err := retry(func() error { _, err := unix.Write(fd, f); return err }); err != nil {
				return i, p.writeErr(err)
			}
		}
		return len(frames), nil
	}
	tx := p.txPool.Get().(*vnetTx)
	defer p.txPool.Put(tx)
	for i := 0; i < len(frames); {
		r := offload.Run{Count: 1}
		if !p.noCoalesce {
			r = offload.Coalesce(frames[i:], maxRun, &tx.head)
		}
		if r.Count > 1 {
			err := tx.writeRun(fd, r, frames[i:])
			if err == nil {
				i += r.Count
				continue
			}
			if !refused(err) {
				return i, p.writeErr(err)
			}
			// The kernel would not take the super-frame: its segments go
			// one by one, as they came.
			for j := range r.Count - 1 {
				if err := tx.writeFrame(fd, frames[i+j]); err != nil {
					return i + j, p.writeErr(err)
				}
			}
			i += r.Count - 1
		}
		if err := tx.writeFrame(fd, frames[i]); err != nil {
			return i, p.writeErr(err)
		}
		i++
	}
	return len(frames), nil
}

// retry calls write until it is not interrupted.
func retry(write func() error) error {
	for {
		if err := write(); err != unix.EINTR {
			return err
		}
	}
}

// writeFrame writes f behind a header that asks for nothing.
func (tx *vnetTx) writeFrame(fd int, f []byte) error {
	tx.b.SetBuf(0, 0, zeroHdr[:])
	tx.b.SetBuf(0, 1, f)
	return retry(func() error { _, err := tx.b.Writev(fd, 0, 2); return err })
}

// writeRun writes the super-frame r merged from frames' leading segments:
// its header, the headers in tx.head, then each segment's payload.
func (tx *vnetTx) writeRun(fd int, r offload.Run, frames [][]byte) error {
	r.Hdr.Put(tx.hdr[:])
	tx.b.SetBuf(0, 0, tx.hdr[:])
	tx.b.SetBuf(0, 1, tx.head[:r.Hdrs])
	for j, f := range frames[:r.Count] {
		tx.b.SetBuf(0, 2+j, f[r.Hdrs:])
	}
	return retry(func() error { _, err := tx.b.Writev(fd, 0, 2+r.Count); return err })
}

// refused says that err concerns what was written, not the tap: the
// kernel would not take that frame (EINVAL, EMSGSIZE, ENOMEM).
func refused(err error) bool {
	return err != unix.EAGAIN && err != unix.EIO && err != unix.EBADFD
}

// writeErr is what Write reports for err from writing a frame.
func (p *Port) writeErr(err error) error {
	switch err {
	case unix.EAGAIN:
		return fabric.ErrWouldBlock
	case unix.EIO:
		return errDown
	case unix.EBADFD:
		p.lost(errGone)
		return errGone
	}
	return err
}

// Gone implements portkind.Vanishing.
func (p *Port) Gone() <-chan error { return p.gone }

// Closed implements portkind.Vanishing.
func (p *Port) Closed() bool { return p.closed.Load() }

// lost reports, once, that the interface was deleted under the port.
func (p *Port) lost(why error) {
	if !p.goneSaid.Swap(true) {
		p.gone <- why
	}
}

// SetCarrier turns the interface's carrier off or on (TUNSETCARRIER, Linux
// 4.20 and later): the host sees NO-CARRIER while the switch holds the
// port's link down (link=down), as it would with the cable pulled. The
// interface stays up: its addresses and routes stay, as on a real NIC.
func (p *Port) SetCarrier(up bool) error {
	fd, ok := p.queues[0].fd.Borrow()
	if !ok {
		return fmt.Errorf("tap %s: carrier: %w", p.ifname, net.ErrClosed)
	}
	defer p.queues[0].fd.Return()
	on := 0
	if up {
		on = 1
	}
	if err := unix.IoctlSetPointerInt(fd, unix.TUNSETCARRIER, on); err != nil {
		return fmt.Errorf("tap %s: TUNSETCARRIER: %w", p.ifname, err)
	}
	return nil
}

// WaitWritable implements fabric.Port.
func (p *Port) WaitWritable(timeout time.Duration) bool { return p.queues[0].fd.WaitWritable(timeout) }

// Close implements fabric.Port. A tap the switch created goes away with it
// unless it is persistent.
func (p *Port) Close() error {
	p.closed.Store(true)
	var first error
	for _, q := range p.queues {
		if err := q.fd.Close(nil); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// Receiver returns the reading side of the first queue, marking frames with
// port id.
func (p *Port) Receiver(id frame.PortID) fabric.Receiver { return p.Receivers(id)[0] }

// Receivers returns one reading side per queue.
func (p *Port) Receivers(id frame.PortID) []fabric.Receiver {
	out := make([]fabric.Receiver, len(p.queues))
	for i, q := range p.queues {
		q.id = id
		name := p.Name()
		if len(p.queues) > 1 {
			name = fmt.Sprintf("%s queue %d", name, i)
		}
		out[i] = fabric.Receiver{Name: name, Depth: p.cfg.Depth, MaxFrame: p.cfg.MaxFrame, Receive: q.receive}
	}
	return out
}

func (q *queue) receive(v *frame.Vector) (int, error) {
	if q.rxVec != v {
		for i := range v.Ports {
			v.Ports[i] = q.id
		}
		q.rxVec = v
	}
	q.rxN, q.rxErr = 0, nil
	if err := q.fd.Read(q.readFn); err != nil {
		return 0, err
	}
	if q.rxN == 0 && q.rxErr == unix.EBADFD {
		// The interface was deleted: the descriptor is dead for good. The
		// reader ends and the port says why; whoever supervises it
		// detaches it.
		err := fmt.Errorf("tap %s: read: interface deleted (%w)", q.p.ifname, q.rxErr)
		q.p.lost(err)
		return 0, fmt.Errorf("%w: %w", err, net.ErrClosed)
	}
	if q.rxN == 0 && q.rxErr != nil {
		return 0, fmt.Errorf("tap %s: read: %w", q.p.ifname, q.rxErr)
	}
	return q.rxN, nil
}

// read drains the queue into the batch. A read fills the room of one buffer,
// which is a byte longer than the largest frame: a frame that fills it was
// cut short by the kernel and is reported (and counted) as oversize.
func (q *queue) read(fd uintptr) bool {
	v, n := q.rxVec, 0
	limit := min(q.p.cfg.Depth, v.Depth())
	for n < limit {
		m, err := unix.Read(int(fd), v.Room(n))
		if err == nil {
			v.Sizes[n] = m
			n++
			continue
		}
		if err == unix.EINTR {
			continue
		}
		if err != unix.EAGAIN {
			q.rxErr = err
		}
		break
	}
	q.rxN = n
	return n > 0 || q.rxErr != nil
}

// readVnet is read for a tap with virtio-net headers: segments still owed
// from a segmentation-offload frame first, then reads until EAGAIN.
func (q *queue) readVnet(fd uintptr) bool {
	v, vr, n := q.rxVec, q.vnet, 0
	limit := min(q.p.cfg.Depth, v.Depth())
	for n < limit {
		if vr.next < vr.plan.Count {
			for n < limit && vr.next < vr.plan.Count {
				size := vr.plan.Size(vr.next)
				if size <= v.MaxFrame {
					vr.plan.Segment(vr.whole, vr.next, v.Room(n))
				}
				v.Sizes[n] = size // a segment too long for the port is counted as oversize
				n++
				vr.next++
			}
			continue
		}
		room := v.Room(n)
		vr.b.SetBuf(0, 1, room)
		m, err := vr.b.Readv(int(fd), 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			if err != unix.EAGAIN {
				q.rxErr = err
			}
			break
		}
		size := m - offload.HdrLen
		if size < 0 {
			v.Sizes[n] = fabric.Rejected(fabric.DropRunt)
			n++
			continue
		}
		h := offload.ParseHdr(vr.hdr[:])
		if !h.IsGSO() {
			if size <= v.MaxFrame {
				offload.CompleteChecksum(h, room[:size])
			}
			v.Sizes[n] = size
			n++
			continue
		}
		k := copy(vr.whole, room[:min(size, len(room))])
		copy(vr.whole[k:size], vr.spill)
		plan, err := offload.NewPlan(h, vr.whole[:size])
		if err != nil {
			v.Sizes[n] = fabric.Rejected(fabric.DropDecap)
			n++
			continue
		}
		vr.plan, vr.next = plan, 0
	}
	q.rxN = n
	return n > 0 || q.rxErr != nil
}

// handedQueue is the Kind of a tap queue's descriptor in a hot upgrade,
// keyed by queueKey.
const handedQueue = "tap-queue"

func queueKey(ifname string, i int) string { return fmt.Sprintf("%s/%d", ifname, i) }

// HandOver gives a new switch process (a hot upgrade) duplicates of the
// tap's queue descriptors: the tap, even one that goes with its last
// descriptor, stays attached through the hand-over.
func (p *Port) HandOver() []handover.Item {
	var items []handover.Item
	for i, q := range p.queues {
		if f, ok := q.fd.DupFile("tap " + p.ifname); ok {
			items = append(items, handover.Item{Kind: handedQueue, Key: queueKey(p.ifname, i), File: f})
		}
	}
	return items
}

// handedQueues takes the queue descriptors an old switch handed over for
// cfg's tap, if it handed over all of them; nil otherwise.
func handedQueues(cfg Config) []int {
	var fds []int
	for i := range cfg.Queues {
		fd, ok := handover.TakeFD(handedQueue, queueKey(cfg.Ifname, i))
		if !ok {
			closeFds(fds)
			return nil
		}
		fds = append(fds, fd)
	}
	return fds
}
