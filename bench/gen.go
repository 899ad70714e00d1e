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
	"github.com/umlswitch/umlswitch/transports/daemon"
)

// GenConfig sets up one load-generator run against a control socket.
type GenConfig struct {
	Ctl         string
	Ports       int           // generator ports, each sending to the next
	Size        int           // frame size in bytes, Ethernet header included
	Depth       int           // frames per sendmmsg/recvmmsg
	Warmup      time.Duration // traffic before the measured window
	Duration    time.Duration // the measured window
	ConnectBack bool          // VDE-style clients instead of UML-style
	Hub         bool          // every frame is delivered to all other ports
	SwitchPID   int           // for CPU accounting; 0 to skip
	CPUs        []int         // pin generator threads here; empty: anywhere
}

// GenResult is what one run measured.
type GenResult struct {
	Window    time.Duration // length of the measured window
	Offered   uint64        // frames the generator handed to the kernel in the window
	Delivered uint64        // frames received in the window
	SentAll   uint64        // over the whole run
	RecvAll   uint64
	Copies    int           // deliveries each sent frame should make
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
	c        *daemon.Client
	mac      frame.MAC
	sent     counter
	received counter
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
	ports := make([]*genPort, cfg.Ports)
	defer func() {
		for _, p := range ports {
			if p != nil {
				p.c.Close()
			}
		}
	}()
	for i := range ports {
		cc := daemon.ClientConfig{Ctl: cfg.Ctl, ConnectBack: cfg.ConnectBack}
		if cfg.ConnectBack { // as libvdeplug does; UML sends the bare 124-byte request, and uml_switch wants exactly that
			cc.Description = fmt.Sprintf("umlswitch-bench port %d", i)
		}
		c, err := daemon.Dial(cc)
		if err != nil {
			return GenResult{}, err
		}
		ports[i] = &genPort{c: c, mac: portMAC(i)}
	}
	if err := learn(ports); err != nil {
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
	copies := 1
	if cfg.Hub {
		copies = cfg.Ports - 1
	}
	genBusy := 0.0
	if pass1 > pass0 {
		genBusy = float64(busy1-busy0) / float64(pass1-pass0)
	}
	return GenResult{Window: window, Offered: sent1 - sent0, Delivered: recv1 - recv0, SentAll: sentAll, RecvAll: recvAll,
		Copies: copies, SwitchCPU: sw1 - sw0, GenCPU: gen1 - gen0, GenBusy: genBusy,
		Steal: (steal1 - steal0).Seconds() / (window.Seconds() * float64(runtime.NumCPU()))}, nil
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

// learn has every port send a broadcast from its address, so the switch
// knows where each one is, and waits until every port heard all the others.
func learn(ports []*genPort) error {
	buf := make([]byte, 65536)
	for i, p := range ports {
		f := ether(frame.Broadcast, p.mac, 60)
		if err := p.c.Send(f); err != nil {
			return fmt.Errorf("bench: port %d: first frame: %w", i, err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for i, p := range ports {
		for heard := 0; heard < len(ports)-1; {
			_, err := unix.Read(p.c.Fd, buf)
			switch {
			case err == nil:
				heard++
			case (err == unix.EAGAIN || err == unix.EINTR) && time.Now().Before(deadline):
				time.Sleep(time.Millisecond)
			default:
				return fmt.Errorf("bench: port %d heard %d of %d learning frames: %w", i, heard, len(ports)-1, err)
			}
		}
	}
	return nil
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
	tx := make([]*mmsg.Batch, len(ports))
	rx := make([]*mmsg.Batch, len(ports))
	backoff := make([]bool, len(ports))
	for i, p := range ports {
		if err := unix.SetNonblock(p.c.Fd, true); err != nil {
			return err
		}
		pfds[i] = unix.PollFd{Fd: int32(p.c.Fd), Events: unix.POLLIN | unix.POLLOUT}
		f := ether(ports[(i+1)%len(ports)].mac, p.mac, cfg.Size)
		tx[i], rx[i] = mmsg.NewBatch(cfg.Depth, 1), mmsg.NewBatch(cfg.Depth, 1)
		for j := 0; j < cfg.Depth; j++ {
			tx[i].SetBuf(j, 0, f)
			if !cfg.ConnectBack {
				tx[i].SetName(j, p.c.Remote[:]) // UML sendto()s the reply address and never connects
			}
			rx[i].SetBuf(j, 0, make([]byte, cfg.Size+1))
		}
	}
	idle := 0
	for !stopRecv.Load() {
		moved := false
		sending := !stopSend.Load()
		for i, p := range ports {
			if sending && !backoff[i] {
				n, err := tx[i].Send(p.c.Fd, 0, cfg.Depth, unix.MSG_DONTWAIT)
				switch err {
				case nil, unix.EINTR, unix.ENOBUFS:
				case unix.EAGAIN:
					backoff[i] = true
				default:
					return fmt.Errorf("bench: send: %w (did the switch stop?)", err)
				}
				p.sent.n.Add(uint64(n))
				moved = moved || n > 0
			} else {
				backoff[i] = false
			}
			n, err := rx[i].Recv(p.c.Fd, cfg.Depth, unix.MSG_DONTWAIT)
			switch err {
			case nil, unix.EAGAIN, unix.EINTR:
			default:
				return fmt.Errorf("bench: receive: %w", err)
			}
			p.received.n.Add(uint64(n))
			moved = moved || n > 0
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
