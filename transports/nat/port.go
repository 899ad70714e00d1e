package nat

import (
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/umlswitch/umlswitch/fabric"
	"github.com/umlswitch/umlswitch/frame"
)

// queue is a bounded FIFO of frames in buffers allocated once. Writers copy
// frames in under mu; the one reader takes a run of them out without the
// lock (writers never touch the slots between tail and head) and gives the
// slots back with release.
type queue struct {
	mu         sync.Mutex
	bufs       [][]byte // slots, each maxFrame long
	sizes      []int
	head, tail uint64        // next slot to fill, next to read; head-tail <= len(bufs)
	closed     bool          // guarded by mu
	ready      chan struct{} // a token when frames were added: the reader's wake-up
}

func newQueue(slots, maxFrame int) *queue {
	arena := make([]byte, slots*maxFrame)
	q := &queue{bufs: make([][]byte, slots), sizes: make([]int, slots), ready: make(chan struct{}, 1)}
	for i := range q.bufs {
		q.bufs[i] = arena[i*maxFrame : (i+1)*maxFrame : (i+1)*maxFrame]
	}
	return q
}

// slot returns the buffer of position i and its frame's size.
func (q *queue) slot(i uint64) ([]byte, *int) {
	j := i % uint64(len(q.bufs))
	return q.bufs[j], &q.sizes[j]
}

// pending returns the positions of the frames waiting, from..to, and
// whether the queue is closed.
func (q *queue) pending() (from, to uint64, closed bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.tail, q.head, q.closed
}

// release gives the slots before to back.
func (q *queue) release(to uint64) {
	q.mu.Lock()
	q.tail = to
	q.mu.Unlock()
}

// wake gives the reader a token, without waiting.
func (q *queue) wake() {
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

func (q *queue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.wake()
}

// inQueueSlots and outQueueSlots size the two queues: a burst of a guest's
// (or of the stack's TCP) frames fits; beyond it the switch holds its
// sender (in) or the stack's frames are dropped (out) and TCP slows down.
const (
	inQueueSlots  = 256
	outQueueSlots = 256
)

// port is the router's side of the switch: frames the switch writes go
// into in, for the stack's goroutine (deliver); frames the stack sends
// come out of out through the port's receiver. The switch is never held by
// the stack: a full in queue is ErrWouldBlock, as a full socket is, and a
// full out queue drops the stack's frame (counted).
type port struct {
	name     string
	mac      frame.MAC
	maxFrame int
	in, out  *queue
	room     chan struct{} // a token when in's reader freed slots: WaitWritable's wake-up
	done     chan struct{} // closed by Close
	once     sync.Once

	outDropped atomic.Uint64 // stack's frames out had no room for, or too long
}

var _ fabric.Port = (*port)(nil)

func newPort(name string, mac frame.MAC, maxFrame int) *port {
	return &port{name: name, mac: mac, maxFrame: maxFrame, in: newQueue(inQueueSlots, maxFrame),
		out: newQueue(outQueueSlots, maxFrame), room: make(chan struct{}, 1), done: make(chan struct{})}
}

// Write takes the frames for the router: those to its address or
// broadcast into in; the rest (flooded unicast, multicast: the router has
// no IPv6 and joins no group) it takes and ignores, as a NIC's filter
// does. It does not allocate.
func (p *port) Write(frames [][]byte) (int, error) {
	q := p.in
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return 0, net.ErrClosed
	}
	n, added := 0, false
	for _, f := range frames {
		if len(f) < frame.HeaderLen || len(f) > p.maxFrame {
			n++ // the switch bounds frames by MaxFrame already
			continue
		}
		if dst := frame.DstMAC(f); dst != p.mac && !dst.IsBroadcast() {
			n++
			continue
		}
		if q.head-q.tail == uint64(len(q.bufs)) {
			break
		}
		buf, size := q.slot(q.head)
		*size = copy(buf, f)
		q.head++
		n++
		added = true
	}
	q.mu.Unlock()
	if added {
		q.wake()
	}
	if n < len(frames) {
		return n, fabric.ErrWouldBlock
	}
	return n, nil
}

// WaitWritable waits until the stack's goroutine has freed slots of in.
func (p *port) WaitWritable(timeout time.Duration) bool {
	q := p.in
	q.mu.Lock()
	free := q.head-q.tail < uint64(len(q.bufs)) || q.closed
	q.mu.Unlock()
	if free {
		return true
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-p.room:
		return true
	case <-p.done:
		return true
	case <-t.C:
		return false
	}
}

// freed tells a waiting writer that in has room again.
func (p *port) freed() {
	select {
	case p.room <- struct{}{}:
	default:
	}
}

func (p *port) MaxFrame() int { return p.maxFrame }
func (p *port) Name() string  { return p.name }

// Close stops both queues: Write and the receiver report net.ErrClosed,
// the stack's goroutine ends. The stack itself goes with the Router.
func (p *port) Close() error {
	p.once.Do(func() {
		close(p.done)
		p.in.close()
		p.out.close()
	})
	return nil
}

// send puts a frame the stack built, in pieces, into out; it never waits.
func (p *port) send(pieces [][]byte) {
	total := 0
	for _, b := range pieces {
		total += len(b)
	}
	q := p.out
	q.mu.Lock()
	if q.closed || total > p.maxFrame || q.head-q.tail == uint64(len(q.bufs)) {
		q.mu.Unlock()
		p.outDropped.Add(1)
		return
	}
	buf, size := q.slot(q.head)
	n := 0
	for _, b := range pieces {
		n += copy(buf[n:], b)
	}
	// Pad to Ethernet's least frame (60 bytes before the FCS), as a NIC
	// does: the stack's ARP frames are 42.
	for ; n < minFrame; n++ {
		buf[n] = 0
	}
	*size = n
	q.head++
	q.mu.Unlock()
	q.wake()
}

const minFrame = 60

// receiver reads what the stack sent into the switch's batches.
func (p *port) receiver(id frame.PortID, depth int) fabric.Receiver {
	q := p.out
	return fabric.Receiver{Name: p.name, Depth: depth, MaxFrame: p.maxFrame, Receive: func(v *frame.Vector) (int, error) {
		for {
			from, to, closed := q.pending()
			if closed {
				return 0, net.ErrClosed
			}
			if from == to {
				<-q.ready // close gives a token too
				continue
			}
			n := 0
			for i := from; i < to && n < v.Depth(); i++ {
				buf, size := q.slot(i)
				v.Sizes[n] = copy(v.Room(n), buf[:*size])
				v.Ports[n] = id
				n++
			}
			q.release(from + uint64(n))
			return n, nil
		}
	}}
}
