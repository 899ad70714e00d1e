package bench

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/umlswitch/umlswitch/frame"
	"github.com/umlswitch/umlswitch/internal/mmsg"
	"github.com/umlswitch/umlswitch/internal/xsk"
)

// GenConfig sets up one load-generator run.
type GenConfig struct {
	Transport   *Transport    // nil: the daemon protocol
	Ctl         string        // the daemon protocol's control socket
	Dir         string        // where BESS and stream sockets live
	Ports       int           // generator ports, each sending to the next
	Size        int           // frame size in bytes, Ethernet header included
	Depth       int           // frames per sendmmsg/recvmmsg
	Warmup      time.Duration // traffic before the measured window
	Duration    time.Duration // the measured window
	ConnectBack bool          // VDE-style clients instead of UML-style
	Hub         bool          // every frame is delivered to all other ports
	SwitchPID   int           // for CPU accounting; 0 to skip
	CPUs        []int         // pin generator threads here; empty: anywhere
	// Window is the most frames per port in flight (sent and not yet
	// received); 0 for no limit. Datagram and seqpacket unix sockets hold
	// the generator back by themselves; UDP and IP do not, and an
	// unlimited generator would measure how the switch copes with its
	// socket overflowing rather than how fast it forwards.
	Window int
	// TrunkCtl, if set, is a second control socket whose clients are a
	// trunk's tagged members (vlan-trunk): the odd ports join it and tag
	// their frames with VLAN benchVLAN, the even ones join Ctl.
	TrunkCtl string
	// PortTransports, where one is set, is what port i speaks instead of
	// Transport: a run from a local port to a tunnel, say.
	PortTransports []*Transport
}

// GenResult is what one run measured.
type GenResult struct {
	Window    time.Duration // length of the measured window
	Offered   uint64        // frames the generator handed to the kernel in the window
	Delivered uint64        // frames received in the window
	SentAll   uint64        // over the whole run
	RecvAll   uint64
	Copies    int // deliveries each sent frame should make
	// Short counts frames, over the whole run, that arrived shorter than
	// they were sent (uml_switch cuts frames past 1514 bytes): they are
	// neither delivered nor counted in RecvAll.
	Short     uint64
	SwitchCPU time.Duration // switch CPU time in the window
	GenCPU    time.Duration // generator CPU time in the window
	// GenBusy is the share of the generator's passes in the window that
	// moved frames. A pass that moved nothing waited on the switch; a
	// generator busy nearly all the time may itself be the limit (its CPU
	// time says little: it spins briefly before it sleeps).
	GenBusy float64
	// Steal is the share of the machine's CPU time its hypervisor took in
	// the window: on a shared virtual machine, results with much of it
	// measure the neighbours, not the switch.
	Steal float64
}

type counter struct {
	n atomic.Uint64
	_ [56]byte // one cache line each: threads on different cores add to them
}

// genPort is one generator port: a client of the switch.
type genPort struct {
	c        *client
	mac      frame.MAC
	sent     counter
	received counter // frames of the size sent (tunnel headers may add to it)
	short    counter // frames that arrived shorter than sent: the switch cut them
}

func portMAC(i int) frame.MAC { return frame.MAC{0x02, 0x75, 0x6d, 0x6c, byte(i >> 8), byte(i)} }

// Generate runs the load and measures it.
func Generate(cfg GenConfig) (GenResult, error) {
	if cfg.Ports < 2 {
		return GenResult{}, errors.New("bench: need at least 2 ports")
	}
	if cfg.Size < frame.HeaderLen {
		return GenResult{}, fmt.Errorf("bench: frame size %d is below %d", cfg.Size, frame.HeaderLen)
	}
	ports, err := dialPorts(cfg)
	defer closePorts(ports)
	if err != nil {
		return GenResult{}, err
	}

	var stopSend, stopRecv atomic.Bool
	var wg sync.WaitGroup
	errc := make(chan error, 2*cfg.Ports)
	var passes, busy counter
	wg.Add(1)
	go func() { defer wg.Done(); errc <- loop(cfg, ports, &stopSend, &stopRecv, &passes, &busy) }()
	time.Sleep(cfg.Warmup)
	pass0, busy0 := passes.n.Load(), busy.n.Load()
	sent0, recv0 := sum(ports)
	sw0, gen0, steal0 := cpuOrZero(cfg.SwitchPID), cpuOrZero(unix.Getpid()), stealTime()
	t0 := time.Now()
	time.Sleep(cfg.Duration)
	sent1, recv1 := sum(ports)
	pass1, busy1 := passes.n.Load(), busy.n.Load()
	sw1, gen1, steal1 := cpuOrZero(cfg.SwitchPID), cpuOrZero(unix.Getpid()), stealTime()
	window := time.Since(t0)
	stopSend.Store(true)
	time.Sleep(300 * time.Millisecond) // let frames in flight arrive
	stopRecv.Store(true)
	wg.Wait()
	close(errc)
	for err := range errc {
		if err != nil {
			return GenResult{}, err
		}
	}
	sentAll, recvAll := sum(ports)
	var short uint64
	for _, p := range ports {
		short += p.short.n.Load()
	}
	copies := 1
	if cfg.Hub {
		copies = cfg.Ports - 1
	}
	genBusy := 0.0
	if pass1 > pass0 {
		genBusy = float64(busy1-busy0) / float64(pass1-pass0)
	}
	return GenResult{Window: window, Offered: sent1 - sent0, Delivered: recv1 - recv0, SentAll: sentAll, RecvAll: recvAll, Short: short,
		Copies: copies, SwitchCPU: sw1 - sw0, GenCPU: gen1 - gen0, GenBusy: genBusy,
		Steal: (steal1 - steal0).Seconds() / (window.Seconds() * float64(runtime.NumCPU()))}, nil
}

// dialPorts connects cfg.Ports generator ports to the switch and has it
// learn them all. The caller closes what it returns, error or not.
func dialPorts(cfg GenConfig) ([]*genPort, error) {
	tr := cfg.Transport
	if tr == nil {
		tr = Transports["daemon"]
	}
	var ports []*genPort
	for i := 0; i < cfg.Ports; i++ {
		dial := tr.Dial
		if i < len(cfg.PortTransports) && cfg.PortTransports[i] != nil {
			dial = cfg.PortTransports[i].Dial
		}
		c, err := dial(cfg, i)
		if err != nil {
			return ports, err
		}
		ports = append(ports, &genPort{c: c, mac: portMAC(i)})
	}
	return ports, learn(ports)
}

func closePorts(ports []*genPort) {
	for _, p := range ports {
		p.c.close()
	}
}

func cpuOrZero(pid int) time.Duration {
	if pid <= 0 {
		return 0
	}
	d, _ := cpuTime(pid)
	return d
}

func sum(ports []*genPort) (sent, received uint64) {
	for _, p := range ports {
		sent += p.sent.n.Load()
		received += p.received.n.Load()
	}
	return sent, received
}

// learningFrame is the size of the frames sent while learning; received,
// it ends every datagram, whatever headers a transport puts first.
const learningFrame = 60

// learn has every port send a broadcast from its address, so the switch
// knows where each one is, until every port has heard all the others; a
// port may be attached a moment after its client connected (BESS), and
// floods before that miss it, so broadcasts are sent again every 100 ms.
// Then it drains what came twice.
func learn(ports []*genPort) error {
	buf := make([]byte, 65536)
	heard := make([]map[frame.MAC]bool, len(ports))
	for i := range heard {
		heard[i] = make(map[frame.MAC]bool)
	}
	complete := func() bool {
		for _, h := range heard {
			if len(h) < len(ports)-1 {
				return false
			}
		}
		return true
	}
	sends := make([]func() error, len(ports))
	for i, p := range ports {
		sends[i] = p.c.sender(learningFrameOf(p))
	}
	deadline := time.Now().Add(5 * time.Second)
	for !complete() {
		if time.Now().After(deadline) {
			for i, h := range heard {
				if len(h) < len(ports)-1 {
					return fmt.Errorf("bench: port %d heard %d of %d learning frames: is the switch serving every port?", i, len(h), len(ports)-1)
				}
			}
		}
		// One port at a time, draining between: a burst of broadcasts from
		// every port at once overflows a unix datagram queue (10 deep by
		// default) in a switch that does not wait (uml_switch), and the
		// same ports would lose the same frames every round.
		readAll := func() {
			for i, p := range ports {
				for {
					b, err := p.c.readOne(buf)
					if err != nil {
						break
					}
					if mac, ok := learnedFrom(b); ok && mac != p.mac {
						heard[i][mac] = true
					}
				}
			}
		}
		for i, send := range sends {
			if err := send(); err != nil && err != unix.EAGAIN && !icmpError(err) {
				return fmt.Errorf("bench: port %d: learning frame: %w", i, err)
			}
			time.Sleep(200 * time.Microsecond)
			readAll()
		}
		for end := time.Now().Add(100 * time.Millisecond); time.Now().Before(end) && !complete(); {
			readAll()
			time.Sleep(time.Millisecond)
		}
	}
	time.Sleep(50 * time.Millisecond)
	for _, p := range ports {
		for {
			if _, err := p.c.readOne(buf); err != nil {
				break
			}
		}
	}
	return nil
}

// learningFrameOf is p's learning frame: a broadcast from p's address, of
// learningFrame bytes plus p's tag, that also ends in that address. The
// receiver reads the sender at the end: a tunnel's headers go in front, and
// a tag pushed or popped on the way moves the start.
func learningFrameOf(p *genPort) []byte {
	size := learningFrame
	if p.c.tagged {
		size += frame.VLANTagLen
	}
	f := p.c.frame(frame.Broadcast, p.mac, size)
	copy(f[size-len(p.mac):], p.mac[:])
	return f
}

// learnedFrom returns the generator port that sent learning frame b.
func learnedFrom(b []byte) (frame.MAC, bool) {
	var mac frame.MAC
	if len(b) < frame.HeaderLen {
		return mac, false
	}
	copy(mac[:], b[len(b)-len(mac):])
	return mac, mac[0] == 0x02 && mac[1] == 0x75 && mac[2] == 0x6d && mac[3] == 0x6c // portMAC's
}

// wantSize is the size of the frames port j should receive: frames are
// sent at size bytes, and gain a tag on their way to a trunk from an
// access port, or lose it the other way. In a hub every other port sends
// to j; otherwise the port before it.
func wantSize(ports []*genPort, j, size int, hub bool) int {
	want := -1
	for i, p := range ports {
		if i == j || (!hub && (i+1)%len(ports) != j) {
			continue
		}
		w := size
		switch {
		case ports[j].c.tagged && !p.c.tagged:
			w += frame.VLANTagLen
		case !ports[j].c.tagged && p.c.tagged:
			w -= frame.VLANTagLen
		}
		if want < 0 || w < want {
			want = w
		}
	}
	return want
}

// batch builds n messages that all send f as this client does: after its
// header, to its address.
func (c *client) batch(n int, f []byte) *mmsg.Batch {
	per := 1
	if c.hdr != nil {
		per = 2
	}
	b := mmsg.NewBatch(n, per)
	for j := 0; j < n; j++ {
		if c.hdr != nil {
			b.SetBuf(j, 0, c.hdr)
		}
		b.SetBuf(j, per-1, f)
		if c.to != nil {
			b.SetName(j, c.to)
		}
	}
	return b
}

func ether(dst, src frame.MAC, size int) []byte {
	f := make([]byte, size)
	copy(f, dst[:])
	copy(f[6:], src[:])
	f[12], f[13] = 0x88, 0xb5 // IEEE local experimental ethertype
	return f
}

// spinPasses is how many passes in a row may find nothing to do before the
// generator sleeps: about 100 microseconds of spinning, so that a switch
// that refills a 10-datagram queue a moment later is not made to wait for a
// sleeping generator to wake (which would measure the generator's wakeup
// latency, not the switch), while an idle generator still sleeps.
const spinPasses = 64

// loop drives every port from one thread: each pass offers one batch on
// every port and drains every port once, all without blocking. After
// spinPasses passes that moved nothing it waits in poll for a port to
// become readable or writable.
// One thread means no context switch per batch, and sending and receiving
// take strict turns, so neither side of the generator starves the other.
//
// A port whose last send found the switch full (EAGAIN, nothing sent) skips
// one pass before trying again: where the switch has one shared socket
// (uml_switch), retrying at once only contends for that socket's lock with
// the switch's own reads.
func loop(cfg GenConfig, ports []*genPort, stopSend, stopRecv *atomic.Bool, passes, busy *counter) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := pinThisThread(cfg.CPUs); err != nil {
		return err
	}
	// Idle waits use poll(2), not epoll: an epoll registration would stay
	// on every socket's wait queue and make each datagram the switch sends
	// run epoll's callback, a cost the switch would be charged for.
	pfds := make([]unix.PollFd, len(ports))
	pio := make([]portIO, len(ports))
	backoff := make([]bool, len(ports))
	for i, p := range ports {
		pfds[i] = unix.PollFd{Fd: int32(p.c.fd), Events: unix.POLLIN | unix.POLLOUT}
		pio[i] = p.c.portIO(p.c.frame(ports[(i+1)%len(ports)].mac, p.mac, cfg.Size), cfg.Depth, wantSize(ports, i, cfg.Size, cfg.Hub))
	}
	win := newWindows(cfg.Window, len(ports), cfg.Hub)
	idle := 0
	for !stopRecv.Load() {
		moved := false
		sending := !stopSend.Load()
		for i, p := range ports {
			if k := win.allow(i, cfg.Depth); sending && !backoff[i] && k > 0 {
				n, err := pio[i].send(k)
				switch {
				case err == nil, err == unix.EINTR, err == unix.ENOBUFS, icmpError(err):
				case err == unix.EAGAIN:
					backoff[i] = true
				default:
					return fmt.Errorf("bench: send: %w (did the switch stop?)", err)
				}
				p.sent.n.Add(uint64(n))
				win.sent(i, n)
				moved = moved || n > 0
			} else {
				backoff[i] = false
			}
			got, short, err := pio[i].recv()
			switch {
			case err == nil, err == unix.EAGAIN, err == unix.EINTR, icmpError(err):
			default:
				return fmt.Errorf("bench: receive: %w", err)
			}
			p.received.n.Add(uint64(got))
			p.short.n.Add(uint64(short))
			win.received(i, got+short)
			moved = moved || got+short > 0
		}
		passes.n.Add(1)
		if moved {
			busy.n.Add(1)
			idle = 0
		} else if idle++; idle > spinPasses {
			unix.Poll(pfds, 1)
		}
	}
	return nil
}

// portIO moves one generator port's frames in the loop, never blocking.
type portIO interface {
	// send offers up to k frames and returns how many the socket took:
	// EAGAIN if it took fewer.
	send(k int) (int, error)
	// recv takes what has arrived: frames of the size expected, and frames
	// shorter than that (the switch cut them).
	recv() (got, short int, err error)
}

// portIO is c's side of the loop, sending f to the next port, depth
// frames at a time at most, and expecting frames of want bytes.
func (c *client) portIO(f []byte, depth, want int) portIO {
	if c.framer != nil {
		return newStreamIO(c, f, depth, want)
	}
	if c.xsk != nil {
		return newXSKIO(c.xsk, f, depth, want)
	}
	d := &datagramIO{fd: c.fd, depth: depth, want: want, tx: c.batch(depth, f), rx: mmsg.NewBatch(depth, 1)}
	for j := 0; j < depth; j++ {
		d.rx.SetBuf(j, 0, make([]byte, len(f)+128)) // room for a tunnel's IP and encapsulation headers
	}
	return d
}

// datagramIO moves a datagram or packet socket's frames with sendmmsg and
// recvmmsg.
type datagramIO struct {
	fd, depth, want int
	tx, rx          *mmsg.Batch
}

func (d *datagramIO) send(k int) (int, error) { return d.tx.Send(d.fd, 0, k, unix.MSG_DONTWAIT) }

func (d *datagramIO) recv() (got, short int, err error) {
	n, err := d.rx.Recv(d.fd, d.depth, unix.MSG_DONTWAIT)
	for j := 0; j < n; j++ {
		if int(d.rx.Hdrs[j].Len) < d.want {
			short++
		}
	}
	return n - short, short, err
}

// xskIO moves an AF_XDP generator port's frames through its rings.
type xskIO struct {
	s     *xsk.Socket
	out   [][]byte // depth references to the one frame it sends
	bufs  [][]byte
	sizes []int
	want  int
}

func newXSKIO(s *xsk.Socket, f []byte, depth, want int) *xskIO {
	x := &xskIO{s: s, out: make([][]byte, depth), bufs: make([][]byte, depth), sizes: make([]int, depth), want: want}
	for i := range depth {
		x.out[i], x.bufs[i] = f, make([]byte, len(f)+128)
	}
	return x
}

func (x *xskIO) send(k int) (int, error) {
	n, err := x.s.Transmit(x.out[:k])
	if err == nil && n < k {
		err = unix.EAGAIN
	}
	return n, err
}

func (x *xskIO) recv() (got, short int, err error) {
	n := x.s.Receive(x.bufs, 0, x.sizes)
	for _, size := range x.sizes[:n] {
		if size < x.want {
			short++
		}
	}
	if n == 0 {
		err = unix.EAGAIN
	}
	return n - short, short, err
}

// icmpError reports an error that an ICMP message for an earlier datagram
// left on a UDP or raw socket (the switch's socket was not open yet, say):
// it says nothing about this send or receive.
func icmpError(err error) bool {
	switch err {
	case unix.ECONNREFUSED, unix.EHOSTUNREACH, unix.ENETUNREACH, unix.ENOPROTOOPT, unix.EPROTO:
		return true
	}
	return false
}
