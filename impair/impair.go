// Package impair makes a switch port a bad link, as netem and VDE's
// wirefilter do, inside the switch: frames leaving through the port are
// delayed, jittered, lost, duplicated, corrupted or held to a rate. The
// port's frames wait in a queue of buffers allocated once, drained by a
// goroutine of its own, so an impaired port never holds up the switch's
// readers and never allocates per frame.
package impair

import (
	"errors"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/umlswitch/umlswitch/fabric"
	"github.com/umlswitch/umlswitch/frame"
)

// Config is how a port's outgoing link misbehaves. The zero value is a
// perfect link.
type Config struct {
	Delay     time.Duration // added to every frame
	Jitter    time.Duration // up to this much more or less, uniformly
	Reorder   bool          // let jitter reorder frames (by default a frame never overtakes the one before)
	Loss      float64       // probability, 0..1, that a frame is lost
	LossBurst float64       // mean length of a run of losses (Gilbert-Elliott); 0 or 1: independent losses
	Dup       float64       // probability that a frame is sent twice
	Corrupt   float64       // probability that one bit after the Ethernet header is flipped
	Rate      int64         // bits a second; 0: no limit
	Queue     int           // most frames waiting (delay, rate); 0: DefaultQueue
	Seed      uint64        // makes loss, dup and corrupt reproducible; 0: random
}

// DefaultQueue is how many frames an impaired port holds by default.
const DefaultQueue = 1000

// Perfect reports whether c impairs nothing.
func (c Config) Perfect() bool { return c == Config{Seed: c.Seed, Queue: c.Queue} }

// Stats counts what the impairment did.
type Stats struct {
	Delayed    uint64 // frames that went through the queue
	Lost       uint64
	Duplicated uint64
	Corrupted  uint64
	Overflowed uint64 // dropped because the queue was full
}

// Port is an impaired fabric.Port.
type Port struct {
	fabric.Port
	start time.Time

	mu     sync.Mutex // guards everything below but the stats
	cfg    Config
	rng    *rand.Rand
	bad    bool // Gilbert-Elliott: in a run of losses
	slots  [][]byte
	sizes  []int
	due    []int64 // nanoseconds since start
	head   int
	n      int
	flying int   // frames at the head the drainer is sending without the lock
	last   int64 // due time of the newest frame, so that jitter keeps order
	free   int64 // when the rate lets the next frame go
	closed bool

	wake chan struct{}
	done chan struct{}
	out  [][]byte // the drainer's own

	delayed, lost, duplicated, corrupted, overflowed atomic.Uint64
}

// Wrap impairs p as c says and starts the goroutine that sends its queue.
func Wrap(p fabric.Port, c Config) *Port {
	w := &Port{Port: p, start: time.Now(), wake: make(chan struct{}, 1), done: make(chan struct{})}
	w.set(c)
	go w.drain()
	return w
}

// Set changes the impairment at once; frames already queued keep their
// times.
func (p *Port) Set(c Config) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.set(c)
}

func (p *Port) set(c Config) {
	if c.Queue <= 0 {
		c.Queue = DefaultQueue
	}
	seed := c.Seed
	if seed == 0 {
		seed = rand.Uint64()
	}
	if p.rng == nil || c.Seed != p.cfg.Seed {
		p.rng = rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	}
	if c.Queue != len(p.slots) && p.n == 0 {
		size := p.Port.MaxFrame()
		arena := make([]byte, c.Queue*size)
		p.slots = make([][]byte, c.Queue)
		for i := range p.slots {
			p.slots[i] = arena[i*size : (i+1)*size : (i+1)*size]
		}
		p.sizes, p.due, p.head = make([]int, c.Queue), make([]int64, c.Queue), 0
		p.out = make([][]byte, 0, c.Queue)
	}
	p.cfg = c
}

// Config is the impairment now.
func (p *Port) Config() Config {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cfg
}

// Unwrap is the port underneath.
func (p *Port) Unwrap() fabric.Port { return p.Port }

// Stats returns the counters.
func (p *Port) Stats() Stats {
	return Stats{Delayed: p.delayed.Load(), Lost: p.lost.Load(), Duplicated: p.duplicated.Load(),
		Corrupted: p.corrupted.Load(), Overflowed: p.overflowed.Load()}
}

// KernelDrops implements fabric.KernelDropper: the frames the impairment
// dropped count on the port, beside what its own transport reports.
func (p *Port) KernelDrops(totals *[fabric.NumDropReasons]uint64) {
	totals[fabric.DropLoss] += p.lost.Load()
	totals[fabric.DropRate] += p.overflowed.Load()
	if k, ok := p.Port.(fabric.KernelDropper); ok {
		k.KernelDrops(totals)
	}
}

// WaitWritable implements fabric.Port: an impaired port takes frames at
// once (its queue drops what does not fit), so it never holds a sender.
func (p *Port) WaitWritable(time.Duration) bool { return true }

// Write implements fabric.Port: it copies each frame that is not lost into
// the queue, due after the delay and when the rate allows, and returns.
func (p *Port) Write(frames [][]byte) (int, error) {
	now := int64(time.Since(p.start))
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return 0, errors.New("impaired port closed")
	}
	c := &p.cfg
	for _, f := range frames {
		if p.lose(c) {
			p.lost.Add(1)
			continue
		}
		copies := 1
		if c.Dup > 0 && p.rng.Float64() < c.Dup {
			copies = 2
			p.duplicated.Add(1)
		}
		for ; copies > 0; copies-- {
			p.enqueue(c, f, now)
		}
	}
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
	return len(frames), nil
}

// lose draws whether the next frame is lost: independently, or in runs of
// LossBurst frames on average with the same overall rate (a two-state
// Gilbert-Elliott chain that loses every frame in its bad state).
func (p *Port) lose(c *Config) bool {
	if c.Loss <= 0 {
		return false
	}
	if c.LossBurst <= 1 {
		return p.rng.Float64() < c.Loss
	}
	leave := 1 / c.LossBurst               // bad -> good
	enter := c.Loss * leave / (1 - c.Loss) // good -> bad, so that the bad state's share is Loss
	if p.bad {
		p.bad = p.rng.Float64() >= leave
	} else {
		p.bad = p.rng.Float64() < enter
	}
	return p.bad
}

// enqueue copies f to the queue's tail with its due time. Caller holds mu.
func (p *Port) enqueue(c *Config, f []byte, now int64) {
	if p.n == len(p.slots) || len(f) > len(p.slots[0]) {
		p.overflowed.Add(1)
		return
	}
	i := (p.head + p.n) % len(p.slots)
	slot := p.slots[i][:len(f)]
	copy(slot, f)
	if c.Corrupt > 0 && len(f) > frame.HeaderLen && p.rng.Float64() < c.Corrupt {
		bit := frame.HeaderLen*8 + p.rng.IntN((len(f)-frame.HeaderLen)*8)
		slot[bit/8] ^= 1 << (bit % 8)
		p.corrupted.Add(1)
	}
	due := now + int64(c.Delay)
	if c.Jitter > 0 {
		due += p.rng.Int64N(2*int64(c.Jitter)+1) - int64(c.Jitter)
	}
	if !c.Reorder && due < p.last {
		due = p.last
	}
	if c.Rate > 0 {
		due = max(due, p.free)
		p.free = due + int64(len(f))*8*int64(time.Second)/c.Rate
	}
	p.last = max(p.last, due)
	p.sizes[i], p.due[i] = len(f), due
	p.n++
	p.delayed.Add(1)
	// With reorder=1 a frame may be due before those queued ahead of it:
	// move it forward (slot headers only, not the bytes), so the queue
	// stays in order of due time.
	for k := p.n - 1; k > p.flying; k-- { // never into frames being sent
		cur, prev := (p.head+k)%len(p.slots), (p.head+k-1)%len(p.slots)
		if p.due[prev] <= p.due[cur] {
			break
		}
		p.slots[cur], p.slots[prev] = p.slots[prev], p.slots[cur]
		p.sizes[cur], p.sizes[prev] = p.sizes[prev], p.sizes[cur]
		p.due[cur], p.due[prev] = p.due[prev], p.due[cur]
	}
}

// drainSlack is the shortest sleep of the drainer: frames due within it
// of each other leave together, up to that much late. A wake-up per frame
// at a hundred thousand frames a second would cost a core; the rate over
// any longer time is unchanged, since due times come from the rate, not
// from when the drainer woke.
const drainSlack = 200 * time.Microsecond

// drain sends the frames that are due, in order, and sleeps until the next
// one is.
func (p *Port) drain() {
	defer close(p.done)
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return
		}
		now := int64(time.Since(p.start))
		out := p.out[:0]
		for k := 0; k < p.n; k++ {
			i := (p.head + k) % len(p.slots)
			if p.due[i] > now {
				break
			}
			out = append(out, p.slots[i][:p.sizes[i]])
		}
		next := time.Duration(-1)
		if len(out) < p.n {
			next = time.Duration(p.due[(p.head+len(out))%len(p.slots)] - now)
		}
		p.flying = len(out)
		p.mu.Unlock()

		sent := p.send(out)
		p.mu.Lock()
		p.head = (p.head + sent) % max(len(p.slots), 1)
		p.n -= sent
		p.flying = 0
		p.mu.Unlock()
		if sent < len(out) {
			next = time.Millisecond
		}

		if next < 0 {
			<-p.wake
			continue
		}
		t.Reset(max(next, drainSlack))
		select {
		case <-t.C:
		case <-p.wake:
			t.Stop()
		}
	}
}

// send writes out to the port underneath and returns how many frames are
// done with: sent, or dropped for good (refused, or the peer gone). It
// stops early when the port stays full: the rest waits for the next round.
func (p *Port) send(out [][]byte) int {
	sent := 0
	for sent < len(out) {
		n, err := p.Port.Write(out[sent:])
		sent += n
		switch {
		case err == nil:
			return len(out)
		case errors.Is(err, fabric.ErrWouldBlock):
			if !p.Port.WaitWritable(10 * time.Millisecond) {
				return sent
			}
		case errors.Is(err, fabric.ErrPeerGone) || errors.Is(err, net.ErrClosed):
			return len(out)
		default:
			sent++ // that frame was refused; on with the rest
		}
	}
	return sent
}

// Close stops the queue (what waits in it is dropped) and closes the port.
func (p *Port) Close() error {
	p.mu.Lock()
	if !p.closed {
		p.closed = true
		select {
		case p.wake <- struct{}{}:
		default:
		}
	}
	p.mu.Unlock()
	<-p.done
	return p.Port.Close()
}
