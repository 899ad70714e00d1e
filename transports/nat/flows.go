package nat

import (
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// flows bounds and tracks what the router proxies: every TCP connection
// and UDP flow, out through the NAT or in through a forward, holds a slot
// (max_conns: each is a socket of the switch's process), and every
// goroutine and socket of it is known, so that closing the router ends
// them all and waits for them.
type flows struct {
	max     int
	refused atomic.Uint64 // connections and flows turned away: no slot

	mu      sync.Mutex
	n       int // slots held
	closed  bool
	closers map[io.Closer]struct{}
	wg      sync.WaitGroup
}

func newFlows(max int) *flows { return &flows{max: max, closers: make(map[io.Closer]struct{})} }

// take reserves a slot; false when all are held (counted) or the router
// is closing.
func (f *flows) take() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return false
	}
	if f.n >= f.max {
		f.refused.Add(1)
		return false
	}
	f.n++
	return true
}

func (f *flows) give() {
	f.mu.Lock()
	f.n--
	f.mu.Unlock()
}

func (f *flows) held() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.n
}

// enter counts a goroutine that close waits for; false when the router is
// closing (the goroutine must not start, or return at once).
func (f *flows) enter() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return false
	}
	f.wg.Add(1)
	return true
}

func (f *flows) exit() { f.wg.Done() }

// spawn runs fn on a goroutine close waits for; false when closing.
func (f *flows) spawn(fn func()) bool {
	if !f.enter() {
		return false
	}
	go func() {
		defer f.exit()
		fn()
	}()
	return true
}

// hold has c closed when the router closes; false (c not held) when it is
// closing already.
func (f *flows) hold(c io.Closer) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return false
	}
	f.closers[c] = struct{}{}
	return true
}

func (f *flows) drop(c io.Closer) {
	f.mu.Lock()
	delete(f.closers, c)
	f.mu.Unlock()
}

// shut refuses everything new and closes what is held: the goroutines
// blocked on those sockets return.
func (f *flows) shut() {
	f.mu.Lock()
	f.closed = true
	cs := f.closers
	f.closers = nil
	f.mu.Unlock()
	for c := range cs {
		c.Close()
	}
}

// wait waits for every goroutine entered.
func (f *flows) wait() { f.wg.Wait() }

// splice copies between a guest's connection and a host's both ways until
// both directions end; the end of one (EOF) half-closes the other side, an
// error closes both. It holds both until then, and closes both after.
func (f *flows) splice(guest, host net.Conn) {
	if !f.hold(guest) {
		guest.Close()
		host.Close()
		return
	}
	defer f.drop(guest)
	if !f.hold(host) {
		guest.Close()
		host.Close()
		return
	}
	defer f.drop(host)
	defer guest.Close()
	defer host.Close()
	var wg sync.WaitGroup
	wg.Add(1)
	if !f.spawn(func() { defer wg.Done(); pipe(host, guest) }) {
		return
	}
	pipe(guest, host)
	wg.Wait()
}

// pipe copies from src to dst, then half-closes dst, or closes both on an
// error so that the other direction ends too.
func pipe(dst, src net.Conn) {
	_, err := io.Copy(dst, src)
	if err != nil {
		dst.Close()
		src.Close()
		return
	}
	if cw, ok := dst.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	} else {
		dst.Close()
	}
}

// countedConn is a socket a UDP proxy dialled for one client: its Close,
// which the proxy's reply loop calls as it ends (and the proxy's Close on
// its own), ends the loop's count in close's wait and gives its slot back.
type countedConn struct {
	net.Conn
	f    *flows
	slot bool
	once sync.Once
}

func (c *countedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		if c.slot {
			c.f.give()
		}
		c.f.exit()
	})
	return err
}

// dialCounted dials for a UDP proxy's new client, counting the reply loop
// the proxy starts for it, and with slot, taking a slot for it (a flow of
// a forward: a flow out through the NAT has its slot already).
func (f *flows) dialCounted(slot bool, dial func() (net.Conn, error)) (net.Conn, error) {
	if slot && !f.take() {
		return nil, errNoSlot
	}
	if !f.enter() {
		if slot {
			f.give()
		}
		return nil, net.ErrClosed
	}
	c, err := dial()
	if err != nil {
		if slot {
			f.give()
		}
		f.exit()
		return nil, err
	}
	return &countedConn{Conn: c, f: f, slot: slot}, nil
}

var errNoSlot = errors.New("max_conns reached")

// udpIdle is how long a UDP flow lives without a datagram either way.
const udpIdle = 90 * time.Second

// idleConn ends a UDP proxy's reads from the guest once the flow has been
// idle for udpIdle (the proxy's Run returns then), as gvisor-tap-vsock's
// own forwarder does.
type idleConn struct{ udpConn }

// udpConn is what a UDP proxy listens on (forwarder.NewUDPProxy's).
type udpConn interface {
	ReadFrom(b []byte) (int, net.Addr, error)
	WriteTo(b []byte, addr net.Addr) (int, error)
	SetReadDeadline(t time.Time) error
	io.Closer
}

func (c idleConn) ReadFrom(b []byte) (int, net.Addr, error) {
	c.udpConn.SetReadDeadline(time.Now().Add(udpIdle))
	return c.udpConn.ReadFrom(b)
}

func (c idleConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	c.udpConn.SetReadDeadline(time.Now().Add(udpIdle))
	return c.udpConn.WriteTo(b, addr)
}
