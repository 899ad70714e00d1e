// Package stream serves QEMU's stream socket backends: -netdev stream (and
// the legacy -netdev socket,connect=/listen=), which carry each frame behind
// its length, 4 bytes big-endian, over a unix or TCP stream socket. The
// switch either listens, and every QEMU that connects is a port of its own
// until it closes, or connects to a QEMU that listens (server=on) and
// connects again whenever it goes away.
package stream

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/umlswitch/umlswitch/transports/portkind"

	"golang.org/x/sys/unix"

	"github.com/umlswitch/umlswitch/fabric"
	"github.com/umlswitch/umlswitch/internal/accept"
	"github.com/umlswitch/umlswitch/internal/handover"
	"github.com/umlswitch/umlswitch/internal/limit"
	"github.com/umlswitch/umlswitch/internal/pollfd"
	"github.com/umlswitch/umlswitch/internal/unixsock"
)

// Config describes a stream listener or connecting port: its keys and what
// the switch adds.
type Config struct {
	Options // a unix socket (Path), or a TCP address (Host, default 127.0.0.1) and Port
	portkind.Common
	// Clients, if set, bounds the clients of every listener together and
	// per uid; a connection over a bound is closed at once.
	Clients *limit.Limiter
	// NotAllowed counts the clients the socket's allow_uid= and allow_gid=
	// refused (Options.Allow); nil: not counted.
	NotAllowed *atomic.Uint64
	// Backoff bounds the waits between attempts to connect; zero values
	// mean 100 ms and 2 s.
	MinBackoff, MaxBackoff time.Duration
}

// Transport is a listener or a connecting port.
type Transport interface {
	// Start attaches the ports to reg as QEMUs connect (or are reached).
	Start(reg fabric.Registry)
	// Path is the unix socket a listener listens on, empty otherwise.
	Path() string
	// Close detaches every port and stops listening or connecting.
	Close() error
}

// Open binds the listener or prepares the connecting port cfg describes;
// nothing is accepted or connected before Start.
func Open(cfg Config) (Transport, error) {
	cfg.Common = cfg.Common.Defaulted()
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = 100 * time.Millisecond
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = max(2*time.Second, cfg.MinBackoff)
	}
	a, err := resolve(cfg)
	if err != nil {
		return nil, fmt.Errorf("stream: %w", err)
	}
	if cfg.Connect {
		return newDialer(cfg, a), nil
	}
	return listen(cfg, a)
}

// addr is where the socket listens or connects.
type addr struct {
	unix bool
	path unixsock.Addr
	ip   netip.AddrPort
	name string // for logs and port names
}

func resolve(cfg Config) (addr, error) {
	if cfg.Path != "" {
		a, err := unixsock.FromPath(cfg.Path)
		return addr{unix: true, path: a, name: cfg.Path}, err
	}
	host := cfg.Host
	if host == "" {
		host = "127.0.0.1"
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		ips, lerr := net.DefaultResolver.LookupNetIP(context.Background(), "ip", host)
		if lerr != nil || len(ips) == 0 {
			return addr{}, fmt.Errorf("host %q: %v", host, lerr)
		}
		ip = ips[0]
	}
	ap := netip.AddrPortFrom(ip.Unmap(), uint16(cfg.Port))
	return addr{ip: ap, name: ap.String()}, nil
}

// socket makes a non-blocking stream socket of a's family.
func (a addr) socket() (int, error) {
	family := unix.AF_UNIX
	if !a.unix {
		family = unix.AF_INET
		if a.ip.Addr().Is6() {
			family = unix.AF_INET6
		}
	}
	return unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
}

func (a addr) sockaddr() unix.Sockaddr {
	if a.ip.Addr().Is4() {
		return &unix.SockaddrInet4{Port: int(a.ip.Port()), Addr: a.ip.Addr().As4()}
	}
	return &unix.SockaddrInet6{Port: int(a.ip.Port()), Addr: a.ip.Addr().As16()}
}

// bind binds a TCP address (unix sockets: unixsock.BindPath).
func (a addr) bind(fd int) error {
	unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
	return unix.Bind(fd, a.sockaddr())
}

func (a addr) connect(fd int) error {
	if a.unix {
		return unixsock.Connect(fd, &a.path)
	}
	return unix.Connect(fd, a.sockaddr())
}

// tune readies a connected socket: TCP sends every frame at once.
func (a addr) tune(fd int) {
	if !a.unix {
		unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	}
}

// Listener accepts QEMUs; each connection is a port until it closes.
type Listener struct {
	cfg  Config
	addr addr
	log  *slog.Logger
	ln   *pollfd.FD
	sock *unixsock.Socket // a unix socket's file, removed on Close
	acc  *accept.Listener[*Port]
}

func listen(cfg Config, a addr) (*Listener, error) {
	var (
		fd   int
		sock *unixsock.Socket
		err  error
	)
	if a.unix {
		// One handed over (a socket unit's, an upgrade's), or a new one:
		// BindPath replaces a stale socket file, refuses a live one, and
		// sets mode and owner on the new socket, never through a link.
		if fd, sock, err = unixsock.ListenPath(cfg.Path, unix.SOCK_STREAM, cfg.Access.Owned(), 64); err != nil {
			return nil, fmt.Errorf("stream: %w", err)
		}
	} else if handed, ok := handover.TakeFD(handedTCP, a.name); ok {
		fd = handed // a hot upgrade's, bound and listening
	} else {
		if fd, err = a.socket(); err != nil {
			return nil, fmt.Errorf("stream: %w", err)
		}
		fail := func(what string, err error) (*Listener, error) {
			unix.Close(fd)
			return nil, fmt.Errorf("stream: %s %s: %w", what, a.name, err)
		}
		if err := a.bind(fd); err != nil {
			return fail("bind", err)
		}
		if err := unix.Listen(fd, 64); err != nil {
			return fail("listen", err)
		}
	}
	ln, err := pollfd.New(fd, "stream "+a.name)
	if err != nil { // fd closed
		if sock != nil {
			sock.Remove()
		}
		return nil, err
	}
	l := &Listener{cfg: cfg, addr: a, log: cfg.Logger, ln: ln, sock: sock}
	l.acc = accept.New(ln, accept.Config[*Port]{Kind: "stream", Addr: a.name, Logger: cfg.Logger, Tune: a.tune, Clients: cfg.Clients, Allow: cfg.Allow, NotAllowed: cfg.NotAllowed,
		NewPort: func(fd int, name string, gone func()) (*Port, error) {
			return NewPort(fd, PortConfig{Name: name, Common: cfg.Common, OnEOF: gone})
		},
		HungUp: func(ports []*Port) int {
			n := 0
			for _, p := range ports {
				if p.hungUp() {
					n++
				}
			}
			return n
		},
	})
	return l, nil
}

// Path implements Transport.
func (l *Listener) Path() string {
	if l.addr.unix {
		return l.cfg.Path
	}
	return ""
}

// Addr is where the listener listens: its path or its TCP address (with
// the port the kernel chose for port 0).
func (l *Listener) Addr() string {
	if l.addr.unix {
		return l.cfg.Path
	}
	fd, ok := l.ln.Borrow()
	if !ok {
		return l.addr.name
	}
	defer l.ln.Return()
	switch sa, _ := unix.Getsockname(fd); sa := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sa.Port)).String()
	case *unix.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr), uint16(sa.Port)).String()
	}
	return l.addr.name
}

// Start implements Transport.
func (l *Listener) Start(reg fabric.Registry) {
	l.acc.Start(reg)
	l.log.Info("listening", "transport", "stream", "addr", l.Addr())
}

// Close implements Transport: it stops accepting, detaches every port and
// removes a unix socket file.
// Kinds of a stream port's sockets in a hot upgrade, keyed by address: a
// TCP listening socket, and a connecting port's connection.
const (
	handedTCP  = "stream-tcp-listener"
	handedConn = "stream-connection"
)

// HandOver gives a new switch process (a hot upgrade) every QEMU's
// connection and the listening socket.
func (l *Listener) HandOver() []handover.Item {
	items := l.acc.HandOver()
	if l.addr.unix {
		return append(items, accept.HandOverListener(l.ln, l.cfg.Path)...)
	}
	if f, ok := l.ln.DupFile("stream " + l.addr.name); ok {
		items = append(items, handover.Item{Kind: handedTCP, Key: l.addr.name, File: f})
	}
	return items
}

func (l *Listener) Close() error {
	err := l.acc.Close()
	if l.sock != nil {
		if rerr := l.sock.Remove(); err == nil {
			err = rerr
		}
	}
	return err
}

// Dialer connects to a QEMU that listens and connects again, after a
// backoff, whenever the connection ends or cannot be made.
type Dialer struct {
	cfg  Config
	addr addr
	log  *slog.Logger
	reg  fabric.Registry
	stop chan struct{}
	gone chan struct{} // the connection ended (capacity 1)
	wg   sync.WaitGroup
	seq  int

	mu   sync.Mutex
	port *Port // the connection's port, nil between connections
	done bool
}

func newDialer(cfg Config, a addr) *Dialer {
	return &Dialer{cfg: cfg, addr: a, log: cfg.Logger, stop: make(chan struct{}), gone: make(chan struct{}, 1)}
}

// Path implements Transport: a dialer listens on nothing.
func (d *Dialer) Path() string { return "" }

// Start implements Transport.
func (d *Dialer) Start(reg fabric.Registry) {
	d.reg = reg
	d.wg.Add(1)
	go d.loop()
}

// HandOver gives a new switch process (a hot upgrade) the connection to
// QEMU, if there is one now: the new switch carries on with it instead of
// connecting again.
func (d *Dialer) HandOver() []handover.Item {
	d.mu.Lock()
	p := d.port
	d.mu.Unlock()
	if p == nil {
		return nil
	}
	if f, ok := p.fd.DupFile("stream " + d.addr.name); ok {
		return []handover.Item{{Kind: handedConn, Key: d.addr.name, File: f}}
	}
	return nil
}

func (d *Dialer) loop() {
	defer d.wg.Done()
	backoff := d.cfg.MinBackoff
	failing := false
	if fd, ok := handover.TakeFD(handedConn, d.addr.name); ok && d.attach(fd) {
		select { // the old switch's connection first
		case <-d.gone:
		case <-d.stop:
			return
		}
	}
	for {
		fd, err := d.dial()
		switch {
		case err != nil:
			if !failing {
				d.log.Info("stream: cannot connect, retrying", "addr", d.addr.name, "err", err)
				failing = true
			}
		case d.attach(fd):
			failing = false
			backoff = d.cfg.MinBackoff
			select {
			case <-d.gone:
			case <-d.stop:
				return
			}
		}
		select {
		case <-d.stop:
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, d.cfg.MaxBackoff)
	}
}

// dial connects, waiting up to a second for a TCP handshake.
func (d *Dialer) dial() (int, error) {
	fd, err := d.addr.socket()
	if err != nil {
		return -1, err
	}
	err = d.addr.connect(fd)
	if err == unix.EINPROGRESS {
		pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
		for deadline := time.Now().Add(time.Second); err == unix.EINPROGRESS; {
			if time.Now().After(deadline) {
				err = unix.ETIMEDOUT
				break
			}
			select {
			case <-d.stop:
				err = net.ErrClosed
			default:
			}
			if n, _ := unix.Poll(pfd, 100); n > 0 {
				var soerr int
				soerr, err = unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR)
				if err == nil && soerr != 0 {
					err = unix.Errno(soerr)
				}
			}
		}
	}
	if err != nil {
		unix.Close(fd)
		return -1, err
	}
	d.addr.tune(fd)
	return fd, nil
}

// attach makes the connection a port; false if it could not.
func (d *Dialer) attach(fd int) bool {
	d.seq++
	var port *Port
	port, err := NewPort(fd, PortConfig{
		Name:   fmt.Sprintf("stream %s #%d", d.addr.name, d.seq),
		Common: portkind.Common{Depth: d.cfg.Depth, MaxFrame: d.cfg.MaxFrame, Logger: d.log},
		OnEOF:  func() { d.drop(port) },
	})
	if err != nil {
		unix.Close(fd)
		d.log.Warn("stream connection", "addr", d.addr.name, "err", err)
		return false
	}
	d.mu.Lock()
	if d.done {
		d.mu.Unlock()
		port.Close()
		return false
	}
	d.port = port
	d.mu.Unlock()
	id, err := d.reg.Attach(port)
	if err != nil {
		d.drop(port)
		d.log.Warn("stream connection refused", "addr", d.addr.name, "err", err)
		return false
	}
	d.log.Info("stream connected", "addr", d.addr.name)
	d.reg.Serve(port.Receiver(id))
	return true
}

// drop detaches the connection's port and wakes the loop to connect again.
func (d *Dialer) drop(p *Port) {
	d.reg.Detach(p)
	p.Close()
	d.mu.Lock()
	if d.port == p {
		d.port = nil
	}
	d.mu.Unlock()
	d.log.Info("stream connection ended", "addr", d.addr.name)
	select {
	case d.gone <- struct{}{}:
	default:
	}
}

// Close implements Transport.
func (d *Dialer) Close() error {
	d.mu.Lock()
	if d.done {
		d.mu.Unlock()
		return nil
	}
	d.done = true
	p := d.port
	d.port = nil
	d.mu.Unlock()
	close(d.stop)
	d.wg.Wait()
	if p != nil {
		if d.reg != nil {
			d.reg.Detach(p)
		}
		p.Close()
	}
	return nil
}
