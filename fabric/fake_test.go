package fabric

import (
	"net"
	"sync"
	"time"

	"github.com/umlswitch/umlswitch/frame"
)

// fakePort records what the switch writes to it. With room >= 0 it takes at
// most room frames before reporting ErrWouldBlock, until drain is called.
type fakePort struct {
	name     string
	maxFrame int

	mu      sync.Mutex
	got     [][]byte
	room    int // -1: unbounded
	closed  bool
	waits   int
	ready   chan struct{} // closed by drain to release WaitWritable
	failAt  int           // index (in got order) whose write fails hard; -1 none
	failErr error         // what it fails with; errRefused if nil
	writes  int           // calls of Write
	// A port that reads on its own: WaitWritable sleeps readAfter, then
	// frees readN slots (a UML that was busy for a moment).
	readAfter time.Duration
	readN     int
}

func newFake(name string) *fakePort {
	return &fakePort{name: name, maxFrame: 1518, room: -1, failAt: -1, ready: make(chan struct{})}
}

func (p *fakePort) Write(frames [][]byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.writes++
	if p.closed {
		return 0, net.ErrClosed
	}
	for i, fr := range frames {
		if p.failAt == len(p.got) {
			p.failAt = -1
			if p.failErr != nil {
				return i, p.failErr
			}
			return i, errRefused
		}
		if p.room == 0 {
			return i, ErrWouldBlock
		}
		if p.room > 0 {
			p.room--
		}
		p.got = append(p.got, append([]byte(nil), fr...))
	}
	return len(frames), nil
}

var errRefused = &net.OpError{Op: "write", Err: errString("connection refused")}

type errString string

func (e errString) Error() string { return string(e) }

func (p *fakePort) WaitWritable(d time.Duration) bool {
	p.mu.Lock()
	p.waits++
	ready := p.ready
	after, n := p.readAfter, p.readN
	p.mu.Unlock()
	if n > 0 {
		time.Sleep(after)
		p.drain(n)
		return true
	}
	select {
	case <-ready:
		return true
	case <-time.After(d):
		return false
	}
}

// drain gives the port n more slots and wakes a waiting writer.
func (p *fakePort) drain(n int) {
	p.mu.Lock()
	p.room += n
	close(p.ready)
	p.ready = make(chan struct{})
	p.mu.Unlock()
}

func (p *fakePort) MaxFrame() int { return p.maxFrame }
func (p *fakePort) Name() string  { return p.name }
func (p *fakePort) Close() error {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	return nil
}

func (p *fakePort) frames() [][]byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([][]byte(nil), p.got...)
}

func (p *fakePort) waited() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.waits
}

func (p *fakePort) reset() {
	p.mu.Lock()
	p.got = nil
	p.mu.Unlock()
}

// mkFrame builds an Ethernet frame of size bytes from src to dst; byte 14
// carries tag so tests can tell frames apart.
func mkFrame(dst, src frame.MAC, size int, tag byte) []byte {
	f := make([]byte, size)
	copy(f[0:6], dst[:])
	copy(f[6:12], src[:])
	if size > 14 {
		f[12], f[13] = 0x88, 0xb5
		f[14] = tag
	}
	return f
}

type inFrame struct {
	port frame.PortID
	data []byte
}

// load puts frames into a vector the way a transport's ReceiveFunc would.
func load(v *frame.Vector, frames []inFrame) int {
	for i, in := range frames {
		v.Ports[i] = in.port
		v.Sizes[i] = len(in.data)
		copy(v.Room(i), in.data)
	}
	return len(frames)
}

func (p *fakePort) isClosed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closed
}
