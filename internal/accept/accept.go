// Package accept runs the switch's listening sockets. Loop is the one
// accept loop every listener uses (the daemon protocol's control socket,
// live capture readers, the benchmark's relay): it stops when the listener
// is closed and paces accept errors instead of spinning. Listener serves a
// socket whose every connection is a port of its own (UML's BESS
// transport, QEMU's stream backend): the bound on ports whose peers have
// hung up, and detaching them all at Close. The socket's kind makes each
// port and finds the hung-up ones; this package owns their lifecycle.
package accept

import (
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/umlswitch/umlswitch/fabric"
	"github.com/umlswitch/umlswitch/frame"
	"github.com/umlswitch/umlswitch/internal/limit"
	"github.com/umlswitch/umlswitch/internal/peercred"
	"github.com/umlswitch/umlswitch/internal/pollfd"
	"github.com/umlswitch/umlswitch/internal/ratelog"
	"github.com/umlswitch/umlswitch/internal/unixsock"
)

// Port is what a kind makes of an accepted connection: a pointer type.
type Port interface {
	comparable
	fabric.Port
	Receiver(id frame.PortID) fabric.Receiver
	// Sockopt runs fn on the connection's socket unless it is closed (a
	// hot upgrade duplicates it).
	Sockopt(fn func(fd int) error) error
}

// MaxHungUp bounds the ports of clients that have closed but are not yet
// detached. Their readers detach them as soon as they are scheduled, but
// clients that connect, send and close faster than that (a UML in a boot
// loop, a script) would otherwise pile up ports, and every flood goes to
// each of them. Past the bound the listener accepts nobody until they are
// gone; new clients wait in the listen backlog meanwhile.
const MaxHungUp = 8

// Config describes a listener.
type Config[P Port] struct {
	Kind   string // for port names and logs: "bess", "stream"
	Addr   string // where it listens, for logs
	Logger *slog.Logger
	// NewPort makes the port of connection fd from peer (its name in
	// logs); the port calls gone when the peer has closed and all it sent
	// is delivered. On an error fd is closed here.
	NewPort func(fd int, name string, gone func()) (P, error)
	// HungUp counts the ports whose peers have closed.
	HungUp func(ports []P) int
	// Tune, if set, adjusts an accepted socket (buffer sizes).
	Tune func(fd int)
	// Clients, if set, bounds the ports of this listener and of the
	// others sharing it, by the peer's uid (SO_PEERCRED; TCP peers, which
	// have none, share peercred.NoUID). A connection over a bound is
	// closed at once.
	Clients *limit.Limiter
	// Allow is the socket's allow_uid= and allow_gid=: a unix peer they
	// do not let in is closed at once, before it counts against Clients,
	// and counted in NotAllowed (if set). Empty: everyone.
	Allow      unixsock.Allow
	NotAllowed *atomic.Uint64
}

// Listener accepts connections and attaches each as a port.
type Listener[P Port] struct {
	cfg  Config[P]
	log  *slog.Logger
	ln   *pollfd.FD
	gate *Gate
	reg  fabric.Registry
	seq  atomic.Uint64
	wg   sync.WaitGroup
	mu   sync.Mutex
	live map[P]peerOf  // guarded by mu
	done bool          // guarded by mu
	left chan struct{} // a port was dropped (capacity 1)
	stop chan struct{} // closed by Close

	// Lines any peer can make the listener write as often as it likes.
	acceptLog, refuseLog, failLog ratelog.Every

	// accept state, the accept goroutine only
	acceptFn func(uintptr) bool
	got      conn
	acceptEr error
	paused   bool // the step accepted nothing: a pause is on
	ports    []P
}

// New serves the listening socket ln; nothing is accepted before Start.
func New[P Port](ln *pollfd.FD, cfg Config[P]) *Listener[P] {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	l := &Listener[P]{cfg: cfg, log: cfg.Logger, ln: ln, gate: NewGate(cfg.Allow, cfg.NotAllowed),
		live: make(map[P]peerOf), left: make(chan struct{}, 1), stop: make(chan struct{})}
	l.acceptFn = l.accept
	return l
}

// Start accepts connections and attaches each to reg as a port.
func (l *Listener[P]) Start(reg fabric.Registry) {
	l.reg = reg
	l.adopt() // what an old switch handed over, first
	l.wg.Add(1)
	go l.acceptLoop()
}

// Accepted is how many connections were accepted so far.
func (l *Listener[P]) Accepted() uint64 { return l.seq.Load() }

func (l *Listener[P]) accept(lfd uintptr) bool {
	if !Begin() {
		l.paused = true
		return true
	}
	nfd, sa, err := unix.Accept4(int(lfd), unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
	if err == unix.EAGAIN || err == unix.EINTR {
		End()
		return false
	}
	if err != nil {
		End()
	}
	l.got, l.acceptEr = conn{fd: nfd}, err
	switch sa := sa.(type) {
	case *unix.SockaddrUnix:
		l.got.peer, l.got.local = sa.Name, true // UML's src=, if it bound one
	case *unix.SockaddrInet4:
		l.got.peer = netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sa.Port)).String()
	case *unix.SockaddrInet6:
		l.got.peer = netip.AddrPortFrom(netip.AddrFrom16(sa.Addr), uint16(sa.Port)).String()
	}
	return true
}

// shed closes the connections waiting on the listener (Loop, out of
// descriptors).
func (l *Listener[P]) shed() int {
	fd, ok := l.ln.Borrow()
	if !ok {
		return 0
	}
	defer l.ln.Return()
	return ShedFD(fd)
}

// peerOf is who is at the other end of a port's connection.
type peerOf struct {
	uid   uint32
	label string
}

// conn is an accepted connection: its descriptor, the peer's address
// for logs, and whether the kernel knows the peer's credentials.
type conn struct {
	fd    int
	peer  string
	local bool // a unix peer
}

func (l *Listener[P]) acceptLoop() {
	defer l.wg.Done()
	wait := time.NewTimer(time.Hour)
	wait.Stop()
	Loop(func() (conn, error) {
		for {
			l.waitForHungUp(wait)
			if err := l.ln.Read(l.acceptFn); err != nil {
				return conn{}, err // closed
			}
			if !l.paused {
				return l.got, l.acceptEr
			}
			l.paused = false
			WaitResumed(l.stop)
		}
	}, l.shed, func(err error) {
		l.acceptLog.Log(l.log, slog.LevelWarn, "accept", "transport", l.cfg.Kind, "addr", l.cfg.Addr, "err", err)
	}, func(c conn) {
		l.admit(c)
		End() // a port now, or refused
	})
}

// admit serves c if Config.Allow lets its peer in and its uid is within
// Config.Clients.
func (l *Listener[P]) admit(c conn) {
	cred := peercred.Unknown
	if c.local {
		if got, err := peercred.FromFD(c.fd); err == nil {
			cred = got
		}
	}
	uid := cred.UID
	if ok, first := l.gate.Admit(cred); !ok {
		if first {
			l.log.Warn("client not allowed: allow_uid= and allow_gid= do not name it", "transport", l.cfg.Kind, "addr", l.cfg.Addr,
				"peer", cred.String())
		}
		unix.Close(c.fd)
		return
	}
	if err := l.cfg.Clients.Acquire(uid); err != nil {
		l.refuseLog.Log(l.log, slog.LevelWarn, "client refused", "transport", l.cfg.Kind, "addr", l.cfg.Addr,
			"uid", uidAttr(uid), "err", err)
		unix.Close(c.fd)
		return
	}
	if l.cfg.Tune != nil {
		l.cfg.Tune(c.fd)
	}
	l.serve(c.fd, c.peer, uid)
}

// uidAttr is a uid for logs: "unknown" for peercred.NoUID.
func uidAttr(uid uint32) any {
	if uid == peercred.NoUID {
		return "unknown"
	}
	return uid
}

// waitForHungUp returns once at most MaxHungUp of the listener's ports
// have a peer that closed. It rechecks whenever a port is dropped, and
// every 10 ms in case a reader drops none (Close also wakes it).
func (l *Listener[P]) waitForHungUp(wait *time.Timer) {
	for {
		l.mu.Lock()
		if l.done || len(l.live) <= MaxHungUp {
			l.mu.Unlock()
			return
		}
		l.ports = l.ports[:0]
		for p := range l.live {
			l.ports = append(l.ports, p)
		}
		l.mu.Unlock()
		hungUp := l.cfg.HungUp(l.ports)
		clear(l.ports) // hold no port past its detach
		if hungUp <= MaxHungUp {
			return
		}
		wait.Reset(10 * time.Millisecond)
		select {
		case <-l.left:
		case <-wait.C:
		}
	}
}

// serve makes the connection a port, holding a slot of uid's in
// Config.Clients. It is detached, and the slot given back, when the peer
// closes.
func (l *Listener[P]) serve(fd int, peer string, uid uint32) {
	seq := l.seq.Add(1)
	label := peer
	if label == "" || label == "@" { // an unbound unix client
		label = "unbound"
	}
	var port P
	port, err := l.cfg.NewPort(fd, fmt.Sprintf("%s#%d %s", l.cfg.Kind, seq, label), func() {
		l.log.Debug("peer closed", "transport", l.cfg.Kind, "addr", l.cfg.Addr, "peer", label)
		l.drop(port)
	})
	if err != nil {
		unix.Close(fd)
		l.cfg.Clients.Release(uid)
		l.failLog.Log(l.log, slog.LevelWarn, "connection", "transport", l.cfg.Kind, "addr", l.cfg.Addr, "err", err)
		return
	}
	l.mu.Lock()
	if l.done {
		l.mu.Unlock()
		port.Close()
		l.cfg.Clients.Release(uid)
		return
	}
	l.live[port] = peerOf{uid: uid, label: label}
	l.mu.Unlock()
	id, err := l.reg.Attach(port)
	if err != nil {
		l.drop(port)
		l.failLog.Log(l.log, slog.LevelWarn, "connection refused", "transport", l.cfg.Kind, "addr", l.cfg.Addr, "peer", label, "err", err)
		return
	}
	l.reg.Serve(port.Receiver(id))
}

// drop detaches and forgets a port, and gives its slot back (once: Close
// may have taken it already).
func (l *Listener[P]) drop(p P) {
	l.reg.Detach(p)
	p.Close()
	l.mu.Lock()
	c, ok := l.live[p]
	delete(l.live, p)
	l.mu.Unlock()
	if ok {
		l.cfg.Clients.Release(c.uid)
	}
	select {
	case l.left <- struct{}{}:
	default:
	}
}

// Close stops accepting and detaches every port; the socket file, if any,
// is the caller's.
func (l *Listener[P]) Close() error {
	l.mu.Lock()
	if l.done {
		l.mu.Unlock()
		return nil
	}
	l.done = true
	close(l.stop)
	select { // wake an accept loop waiting for hung-up ports to go
	case l.left <- struct{}{}:
	default:
	}
	ports := make([]P, 0, len(l.live))
	for p, c := range l.live {
		ports = append(ports, p)
		l.cfg.Clients.Release(c.uid) // the limiter may be shared with listeners that stay
	}
	clear(l.live)
	l.mu.Unlock()
	err := l.ln.Close(nil)
	l.wg.Wait()
	for _, p := range ports {
		if l.reg != nil {
			l.reg.Detach(p)
		}
		p.Close()
	}
	return err
}
