package xsk

import (
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/umlswitch/umlswitch/internal/pollfd"
)

// Config describes one socket: the interface queue it binds to and its UMEM.
type Config struct {
	Ifindex, Queue int
	FrameSize      int  // UMEM frame size: 2048 or 4096 (0: 2048)
	Frames         int  // UMEM frames, a power of two of at least 4 (0: 4096): half receive, half transmit
	ZeroCopy       bool // bind with XDP_ZEROCOPY and fail where the driver cannot; XDP_COPY otherwise
}

const (
	// bindBusyWait is how long a queue another socket holds is waited for.
	bindBusyWait = 2 * time.Second
	// busyPollMicros and busyPollBudget are a busy-polling socket's
	// SO_BUSY_POLL (how long one kick polls the queue) and
	// SO_BUSY_POLL_BUDGET (frames per poll), xdpsock's -B defaults.
	busyPollMicros, busyPollBudget = 20, 64

	defaultFrameSize = 2048
	defaultFrames    = 4096
	maxFrames        = 1 << 20

	// overhead is what a frame carries besides the interface's MTU: its
	// Ethernet header and one VLAN tag.
	overhead = 14 + 4
	minFrame = 14 // an Ethernet header; the kernel would build a runt skb from less
)

// ErrFrameSize is returned by Transmit for a frame shorter than an
// Ethernet header or longer than a UMEM frame.
var ErrFrameSize = errors.New("frame does not fit a UMEM frame")

// MaxMTU is the largest interface MTU whose frames, with one VLAN tag,
// fit a UMEM frame of frameSize bytes after the kernel's headroom
// (XDP_PACKET_HEADROOM). This package is not multi-buffer (XDP_USE_SG):
// a frame larger than that is dropped by the kernel, so Open and Attach
// refuse an interface whose MTU exceeds it.
func MaxMTU(frameSize int) int { return frameSize - unix.XDP_PACKET_HEADROOM - overhead }

// Socket is an AF_XDP socket bound to one queue of an interface, with its
// own UMEM. The first half of the UMEM's frames circulate between the fill
// and RX rings, the second half between the TX and completion rings; both
// fill and completion rings are sized to hold every frame of their half,
// so giving a frame back never finds them full.
//
// One goroutine at a time receives (Receive, Wait); any number transmit.
type Socket struct {
	fd       int
	file     *os.File // the same descriptor, registered with the netpoller
	raw      syscall.RawConn
	ifname   string
	zeroCopy bool
	// busy: the switch busy-polls (pollfd.BusyPolling when the socket was
	// opened). The socket is bound without XDP_USE_NEED_WAKEUP, so the
	// kernel never waits to be told, and Wait's empty recvfrom on each pass
	// of the spin busy-polls the queue's NAPI (SO_BUSY_POLL); a transmit
	// always kicks the TX ring.
	busy      bool
	frameSize uint64
	rxEnd     uint64 // the receive half of the UMEM is [0, rxEnd); transmit is [rxEnd, len(umem))

	umem  []byte
	maps  [][]byte // the four rings' mappings
	fill  ring
	comp  ring
	rx    ring
	tx    ring
	ready func(uintptr) bool // Wait's netpoller callback, bound once

	mu     sync.RWMutex // held shared while the mappings are in use, exclusively by Close
	closed bool

	txMu   sync.Mutex    // guards the TX and completion rings and txFree
	txFree []uint64      // transmit frames neither on the TX ring nor awaiting completion
	bad    atomic.Uint64 // descriptors the kernel gave back outside their half (never expected)

	waitMu   sync.Mutex // one WaitWritable at a time: the write deadline is the file's
	writable func(uintptr) bool
}

// Open creates the socket and its UMEM, maps the four rings, gives the
// receive frames to the kernel and binds to the queue with
// XDP_USE_NEED_WAKEUP (without it, and with SO_BUSY_POLL, on a busy-polling
// switch), in the calling thread's network namespace. No frame
// arrives until an XDP program redirects the queue to it (Program.Register).
func Open(cfg Config) (*Socket, error) {
	if cfg.FrameSize == 0 {
		cfg.FrameSize = defaultFrameSize
	}
	if cfg.Frames == 0 {
		cfg.Frames = defaultFrames
	}
	if cfg.FrameSize != 2048 && cfg.FrameSize != 4096 {
		return nil, fmt.Errorf("xsk: frame size %d: want 2048 or 4096", cfg.FrameSize)
	}
	if cfg.Frames < 4 || cfg.Frames > maxFrames || cfg.Frames&(cfg.Frames-1) != 0 {
		return nil, fmt.Errorf("xsk: %d frames: want a power of two from 4 to %d", cfg.Frames, maxFrames)
	}
	if cfg.Queue < 0 {
		return nil, fmt.Errorf("xsk: queue %d", cfg.Queue)
	}
	ifi, err := net.InterfaceByIndex(cfg.Ifindex)
	if err != nil {
		return nil, fmt.Errorf("xsk: interface %d: %w", cfg.Ifindex, err)
	}
	if err := checkMTU(ifi.Name, ifi.MTU, cfg.FrameSize); err != nil {
		return nil, err
	}
	fd, err := unix.Socket(unix.AF_XDP, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	switch {
	case errors.Is(err, unix.EAFNOSUPPORT):
		return nil, fmt.Errorf("xsk: %s: AF_XDP socket: %w (this kernel has no AF_XDP: CONFIG_XDP_SOCKETS)", ifi.Name, err)
	case err != nil:
		return nil, fmt.Errorf("xsk: %s: AF_XDP socket: %w (it needs root or CAP_NET_RAW)", ifi.Name, err)
	}
	s := &Socket{
		fd:        fd,
		ifname:    ifi.Name,
		zeroCopy:  cfg.ZeroCopy,
		busy:      pollfd.BusyPolling(),
		frameSize: uint64(cfg.FrameSize),
		rxEnd:     uint64(cfg.Frames/2) * uint64(cfg.FrameSize),
	}
	if err := s.setup(cfg); err != nil {
		s.release()
		unix.Close(fd)
		return nil, fmt.Errorf("xsk: %s queue %d: %w", ifi.Name, cfg.Queue, err)
	}
	s.file = os.NewFile(uintptr(fd), "xsk "+ifi.Name)
	if s.raw, err = s.file.SyscallConn(); err != nil {
		s.file.Close()
		s.release()
		return nil, fmt.Errorf("xsk: %s queue %d: %w", ifi.Name, cfg.Queue, err)
	}
	s.ready = s.readyStep
	s.writable = s.writableStep
	return s, nil
}

func checkMTU(ifname string, mtu, frameSize int) error {
	if mtu > MaxMTU(frameSize) {
		return fmt.Errorf("xsk: %s: MTU %d does not fit a %d-byte UMEM frame (at most MTU %d: the kernel keeps %d bytes of headroom, and a frame carries its Ethernet header and a VLAN tag); AF_XDP ports are not multi-buffer: use xdp=0 for jumbo frames",
			ifname, mtu, frameSize, MaxMTU(frameSize), unix.XDP_PACKET_HEADROOM)
	}
	return nil
}

func (s *Socket) setup(cfg Config) error {
	var err error
	s.umem, err = unix.Mmap(-1, 0, cfg.Frames*cfg.FrameSize, unix.PROT_READ|unix.PROT_WRITE,
		unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_POPULATE)
	if err != nil {
		return fmt.Errorf("map the UMEM: %w", err)
	}
	if err := registerUMEM(s.fd, s.umem, cfg.FrameSize); err != nil {
		return fmt.Errorf("register the UMEM (%d bytes; without CAP_IPC_LOCK it counts against RLIMIT_MEMLOCK): %w", len(s.umem), err)
	}
	half := uint32(cfg.Frames / 2)
	for _, o := range []struct {
		opt  int
		name string
	}{{unix.XDP_UMEM_FILL_RING, "fill"}, {unix.XDP_UMEM_COMPLETION_RING, "completion"}, {unix.XDP_RX_RING, "RX"}, {unix.XDP_TX_RING, "TX"}} {
		if err := unix.SetsockoptInt(s.fd, unix.SOL_XDP, o.opt, int(half)); err != nil {
			return fmt.Errorf("size the %s ring: %w", o.name, err)
		}
	}
	off, err := mmapOffsets(s.fd)
	if err != nil {
		return fmt.Errorf("ring offsets: %w", err)
	}
	for _, m := range []struct {
		r     *ring
		off   unix.XDPRingOffset
		pgoff int64
		descs bool
		name  string
	}{
		{&s.fill, off.Fr, unix.XDP_UMEM_PGOFF_FILL_RING, false, "fill"},
		{&s.comp, off.Cr, unix.XDP_UMEM_PGOFF_COMPLETION_RING, false, "completion"},
		{&s.rx, off.Rx, unix.XDP_PGOFF_RX_RING, true, "RX"},
		{&s.tx, off.Tx, unix.XDP_PGOFF_TX_RING, true, "TX"},
	} {
		mem, err := unix.Mmap(s.fd, m.pgoff, ringLen(m.off, half, m.descs), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
		if err != nil {
			return fmt.Errorf("map the %s ring: %w", m.name, err)
		}
		s.maps = append(s.maps, mem)
		if *m.r, err = mapRing(mem, m.off, half, m.descs); err != nil {
			return fmt.Errorf("%s ring: %w", m.name, err)
		}
	}
	// Every receive frame starts on the fill ring; every transmit frame is free.
	for i := uint32(0); i < half; i++ {
		s.fill.addrs[s.fill.prod&s.fill.mask] = uint64(i) * s.frameSize
		s.fill.prod++
	}
	s.fill.submit()
	s.txFree = make([]uint64, 0, half)
	for i := uint64(half); i < uint64(cfg.Frames); i++ {
		s.txFree = append(s.txFree, i*s.frameSize)
	}

	flags := uint16(unix.XDP_COPY)
	if cfg.ZeroCopy {
		flags = unix.XDP_ZEROCOPY
	}
	if !s.busy {
		flags |= unix.XDP_USE_NEED_WAKEUP
	} else {
		// A kick then polls the driver's queue in the switch's own thread
		// for up to busyPollMicros, preferred over the driver's softirq,
		// as the kernel's xdpsock sample does with -B. Not fatal where
		// refused (an older kernel): the kicks still move the rings.
		unix.SetsockoptInt(s.fd, unix.SOL_SOCKET, unix.SO_PREFER_BUSY_POLL, 1)
		unix.SetsockoptInt(s.fd, unix.SOL_SOCKET, unix.SO_BUSY_POLL, busyPollMicros)
		unix.SetsockoptInt(s.fd, unix.SOL_SOCKET, unix.SO_BUSY_POLL_BUDGET, busyPollBudget)
	}
	// A socket just closed lets go of its queue only when the kernel's
	// deferred work frees its buffer pool, a moment later: a port opened
	// again at once (a restart, a port removed and added) finds the queue
	// busy meanwhile, so busy is tried again for a while.
	sa := &unix.SockaddrXDP{Flags: flags, Ifindex: uint32(cfg.Ifindex), QueueID: uint32(cfg.Queue)}
	for deadline := time.Now().Add(bindBusyWait); ; time.Sleep(10 * time.Millisecond) {
		if err = unix.Bind(s.fd, sa); !errors.Is(err, unix.EBUSY) || time.Now().After(deadline) {
			break
		}
	}
	switch {
	case err == nil:
	case cfg.ZeroCopy && (errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EPROTONOSUPPORT)):
		return fmt.Errorf("bind: the driver cannot do zero-copy AF_XDP (bind without it for copy mode): %w", err)
	case errors.Is(err, unix.EBUSY):
		return inUse{fmt.Errorf("bind: another AF_XDP socket has the queue: %w", err)}
	case errors.Is(err, unix.EINVAL):
		return fmt.Errorf("bind: no such queue, or the interface refuses AF_XDP: %w", err)
	default:
		return fmt.Errorf("bind: %w", err)
	}
	// In copy mode the sendto that wakes the kernel also does the sending,
	// 32 frames per call unless the budget is raised (Linux 6.17 and later;
	// older kernels refuse the option, and then each wake sends 32).
	if !cfg.ZeroCopy {
		unix.SetsockoptInt(s.fd, unix.SOL_XDP, unix.XDP_MAX_TX_SKB_BUDGET, int(half))
	}
	return nil
}

// release unmaps the rings and the UMEM.
func (s *Socket) release() {
	for _, m := range s.maps {
		unix.Munmap(m)
	}
	s.maps = nil
	if s.umem != nil {
		unix.Munmap(s.umem)
		s.umem = nil
	}
}

// Fd returns the socket's descriptor, for socket options and diagnostics.
// It stays owned by the Socket: do not close it, nor make it blocking.
func (s *Socket) Fd() int { return s.fd }

// Receive copies up to len(bufs) waiting frames into bufs[i][off:], sets
// sizes[i] to each frame's length and returns how many it copied. A frame
// longer than its buffer is cut, and sizes[i] still says its length. The
// frames go straight back to the fill ring. It never blocks and never
// allocates; after Close it returns 0.
func (s *Socket) Receive(bufs [][]byte, off int, sizes []int) int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return 0
	}
	n := s.rx.pending(uint32(min(len(bufs), len(sizes))))
	// The fill ring holds every receive frame, so it has room for these;
	// should the kernel say otherwise, leave the rest on the RX ring.
	n = s.fill.free(n)
	got := 0
	for i := uint32(0); i < n; i++ {
		d := s.rx.descs[(s.rx.cons+i)&s.rx.mask]
		base := d.Addr &^ (s.frameSize - 1) // frame sizes are powers of two
		if base >= s.rxEnd || d.Addr+uint64(d.Len) > base+s.frameSize {
			s.bad.Add(1) // not a receive frame of ours: neither read it nor give it back
			continue
		}
		copy(bufs[got][off:], s.umem[d.Addr:d.Addr+uint64(d.Len)])
		sizes[got] = int(d.Len)
		got++
		s.fill.addrs[s.fill.prod&s.fill.mask] = base
		s.fill.prod++
	}
	if n > 0 {
		s.rx.release(n)
		s.fill.submit()
	}
	if s.fill.needsWakeup() {
		wakeRX(s.fd)
	}
	return got
}

// Wait waits until a frame is waiting for Receive, up to timeout (no limit
// when timeout <= 0). It returns nil when one is, os.ErrDeadlineExceeded
// when the time ran out, and net.ErrClosed once the socket is closed. It
// parks on the netpoller, not in a system call.
func (s *Socket) Wait(timeout time.Duration) error {
	if s.busy { // the caller spins: poll the queue, give the others a turn and say try again
		if !s.pollBusy() {
			return net.ErrClosed
		}
		runtime.Gosched()
		return nil
	}
	var deadline time.Time
	if timeout > 0 {
		deadline = time.Now().Add(timeout)
	}
	err := s.file.SetReadDeadline(deadline)
	if err == nil {
		err = s.raw.Read(s.ready)
	}
	if err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		return err
	}
	if s.isClosed() {
		return net.ErrClosed
	}
	return fmt.Errorf("xsk: %s: poll: %w", s.ifname, err)
}

// pollBusy is a busy-polling Wait's pass: an empty RX ring has the kernel
// poll the queue (SO_BUSY_POLL). It reports false once the socket is
// closed. The lock keeps Close from unmapping the ring, or closing the
// descriptor (whose number may then be another's), under it.
func (s *Socket) pollBusy() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return false
	}
	if s.rx.empty() {
		wakeRX(s.fd)
	}
	return true
}

func (s *Socket) isClosed() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.closed
}

// readyStep is Wait's netpoller callback. Close waits for it to return
// before it unmaps the rings.
func (s *Socket) readyStep(uintptr) bool {
	if !s.rx.empty() {
		return true
	}
	if s.fill.needsWakeup() {
		wakeRX(s.fd)
	}
	return false
}

// Transmit copies frames into free transmit frames of the UMEM, puts them
// on the TX ring and wakes the kernel. It returns how many it took: fewer
// than len(frames), with a nil error, when the transmit frames are all in
// flight (the caller's "would block": see WaitWritable). A frame that does
// not fit (ErrFrameSize) stops it: frames[n] is the culprit. Frames the
// kernel could not send at once (its device busy) stay on the TX ring for
// the next Transmit or WaitWritable to push. Safe for concurrent callers;
// it allocates nothing, except for an error.
func (s *Socket) Transmit(frames [][]byte) (int, error) {
	s.txMu.Lock()
	defer s.txMu.Unlock()
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return 0, net.ErrClosed
	}
	s.reclaim()
	n := s.tx.free(uint32(min(len(frames), len(s.txFree))))
	var err error
	for i := uint32(0); i < n; i++ {
		f := frames[i]
		if len(f) < minFrame || uint64(len(f)) > s.frameSize {
			err = fmt.Errorf("xsk: %s: %d-byte frame (UMEM frames hold %d-%d): %w", s.ifname, len(f), minFrame, s.frameSize, ErrFrameSize)
			n = i
			break
		}
		addr := s.txFree[len(s.txFree)-1]
		s.txFree = s.txFree[:len(s.txFree)-1]
		copy(s.umem[addr:addr+s.frameSize], f)
		s.tx.descs[s.tx.prod&s.tx.mask] = unix.XDPDesc{Addr: addr, Len: uint32(len(f))}
		s.tx.prod++
	}
	if n > 0 {
		s.tx.submit()
	}
	if werr := s.push(); werr != nil && err == nil {
		err = werr
	}
	s.reclaim()
	return int(n), err
}

// push wakes the kernel while frames wait on the TX ring and it needs a
// wakeup to send them: in copy mode always, since the system call itself
// sends (a batch at a time: it is repeated while the batches go out).
// A busy device or a full socket buffer (EAGAIN, EBUSY, ENOBUFS) ends the
// pushing without error: the frames stay queued. Called with txMu held.
func (s *Socket) push() error {
	for s.tx.queued() > 0 && (!s.zeroCopy || s.busy || s.tx.needsWakeup()) {
		before := s.tx.queued()
		switch e := wakeTX(s.fd); e {
		case 0, unix.EAGAIN, unix.EBUSY, unix.ENOBUFS:
			if s.tx.queued() >= before {
				return nil // no progress: leave them for the next push
			}
		case unix.EINTR:
		default:
			return fmt.Errorf("xsk: %s: wake the kernel to transmit: %w", s.ifname, e)
		}
	}
	return nil
}

// reclaim takes completed transmit frames back. Called with txMu held.
func (s *Socket) reclaim() {
	n := s.comp.pending(s.comp.size)
	for i := uint32(0); i < n; i++ {
		addr := s.comp.addrs[(s.comp.cons+i)&s.comp.mask]
		base := addr &^ (s.frameSize - 1)
		if base < s.rxEnd || base >= uint64(len(s.umem)) || len(s.txFree) == cap(s.txFree) {
			s.bad.Add(1) // not a transmit frame of ours, or one completed twice
			continue
		}
		s.txFree = append(s.txFree, base)
	}
	if n > 0 {
		s.comp.release(n)
	}
}

// WaitWritable waits up to timeout for Transmit to have room again: a free
// transmit frame and a free TX ring slot. It pushes queued frames and
// takes completed ones back as it goes, and parks on the netpoller for
// POLLOUT in between: in copy mode the kernel signals it as each sent
// frame is freed; in zero-copy mode the driver's completions signal
// nothing, so it looks again every millisecond. It reports whether there
// is room; it also returns true once closed (the next Transmit says so).
func (s *Socket) WaitWritable(timeout time.Duration) bool {
	s.waitMu.Lock()
	defer s.waitMu.Unlock()
	if s.writableStep(0) {
		return true
	}
	deadline := time.Now().Add(timeout)
	for {
		until := deadline
		if next := time.Now().Add(time.Millisecond); s.zeroCopy && next.Before(deadline) {
			until = next
		}
		if err := s.file.SetWriteDeadline(until); err != nil {
			return true // closed
		}
		err := s.raw.Write(s.writable)
		if err == nil || !errors.Is(err, os.ErrDeadlineExceeded) {
			return true
		}
		if !time.Now().Before(deadline) {
			return s.writableStep(0)
		}
	}
}

func (s *Socket) writableStep(uintptr) bool {
	s.txMu.Lock()
	defer s.txMu.Unlock()
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return true
	}
	s.push()
	s.reclaim()
	return len(s.txFree) > 0 && s.tx.free(1) == 1
}

// Stats returns the kernel's counters for the socket: frames dropped for
// want of a fill-ring frame or RX-ring room, invalid descriptors.
func (s *Socket) Stats() (unix.XDPStatistics, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return unix.XDPStatistics{}, net.ErrClosed
	}
	st, err := statistics(s.fd)
	if err != nil {
		return st, fmt.Errorf("xsk: %s: statistics: %w", s.ifname, err)
	}
	return st, nil
}

// Close closes the socket, which wakes a Wait and takes the socket out of
// any XSKMAP, then unmaps the rings and the UMEM. Frames still queued for
// transmission are dropped.
func (s *Socket) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true // no Receive, Transmit or Stats touches the mappings from here on
	s.mu.Unlock()
	// Closing the file waits for a netpoller callback in progress (Wait's
	// reads the RX ring), so the mappings go only after it.
	err := s.file.Close()
	s.release()
	if err != nil {
		return fmt.Errorf("xsk: %s: %w", s.ifname, err)
	}
	return nil
}
