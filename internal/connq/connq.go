// Package connq is a net.Listener fed by hand: connections that arrived
// elsewhere (on a switch's control socket) are handed to a server that
// wants a listener (the HTTP API, a live capture stream).
package connq

import (
	"net"
	"sync"
)

// Listener hands over connections given to Deliver.
type Listener struct {
	name string
	c    chan net.Conn
	once sync.Once
	done chan struct{}
}

// New returns a listener whose Addr is name.
func New(name string) *Listener {
	return &Listener{name: name, c: make(chan net.Conn), done: make(chan struct{})}
}

// Deliver waits until Accept takes c and reports true, or until the
// listener closes and reports false: the caller still owns c then.
func (l *Listener) Deliver(c net.Conn) bool {
	select {
	case l.c <- c:
		return true
	case <-l.done:
		return false
	}
}

// Accept implements net.Listener.
func (l *Listener) Accept() (net.Conn, error) {
	select {
	case c := <-l.c:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close implements net.Listener: Accept and Deliver return at once.
func (l *Listener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

// Addr implements net.Listener.
func (l *Listener) Addr() net.Addr { return addr(l.name) }

type addr string

func (a addr) Network() string { return "handoff" }
func (a addr) String() string  { return string(a) }
