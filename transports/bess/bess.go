// Package bess serves UML's BESS vector transport
// (vecN:transport=bess,src=PATH,dst=SWITCH): a unix SOCK_SEQPACKET listener
// at the switch's path where every connecting UML becomes a port of its
// own, one frame per message with no header, until it closes. BESS itself
// serves one client per socket; here any number share the listener.
package bess

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/umlswitch/umlswitch/fabric"
	"github.com/umlswitch/umlswitch/frame"
	"github.com/umlswitch/umlswitch/internal/pollfd"
	"github.com/umlswitch/umlswitch/internal/sockport"
	"github.com/umlswitch/umlswitch/internal/unixsock"
)

// Config describes a listener.
type Config struct {
	Path     string      // where UMLs connect (their dst=)
	Mode     os.FileMode // chmod of the socket; 0 keeps the umask's
	Owner    int         // chown of the socket: uid, or -1 (or 0 with Group 0) to keep the switch's
	Group    int
	Depth    int
	MaxFrame int
	Logger   *slog.Logger
}

// Transport is a listener and the ports of the UMLs connected to it.
type Transport struct {
	cfg  Config
	log  *slog.Logger
	ln   *pollfd.FD
	reg  fabric.Registry
	seq  atomic.Uint64
	wg   sync.WaitGroup
	mu   sync.Mutex
	live map[*sockport.Port]struct{} // guarded by mu
	done bool                        // guarded by mu
	left chan struct{}               // a port was dropped (capacity 1)

	// accept state, the accept goroutine only
	acceptFn func(uintptr) bool
	newFd    int
	peer     string
	acceptEr error
	ports    []*sockport.Port
	scan     sockport.HangupScan
}

// maxHungUp bounds the ports of clients that have closed but are not yet
// detached. Their readers detach them as soon as they are scheduled, but
// clients that connect, send and close faster than that (a UML in a boot
// loop, a script) would otherwise pile up ports, and every flood goes to each
// of them. Past the bound the listener accepts nobody until they are gone;
// new clients wait in the listen backlog meanwhile.
const maxHungUp = 8

// Listen binds the listener; nothing is accepted before Start.
func Listen(cfg Config) (*Transport, error) {
	if cfg.Depth <= 0 {
		cfg.Depth = 64
	}
	if cfg.MaxFrame <= 0 {
		cfg.MaxFrame = frame.MaxFrameForMTU(frame.DefaultMTU)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	addr, err := unixsock.FromPath(cfg.Path)
	if err != nil {
		return nil, fmt.Errorf("bess: %w", err)
	}
	if err := unixsock.ClearStale(cfg.Path, "unixpacket"); err != nil {
		return nil, fmt.Errorf("bess: %w", err)
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("bess: %w", err)
	}
	if err := unixsock.Bind(fd, &addr); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("bess: bind %s: %w", cfg.Path, err)
	}
	if err := unix.Listen(fd, 64); err != nil {
		unix.Close(fd)
		os.Remove(cfg.Path)
		return nil, fmt.Errorf("bess: listen %s: %w", cfg.Path, err)
	}
	if cfg.Owner == 0 && cfg.Group == 0 {
		cfg.Owner, cfg.Group = -1, -1
	}
	if err := (unixsock.Access{Mode: cfg.Mode, UID: cfg.Owner, GID: cfg.Group}).Apply(cfg.Path); err != nil {
		unix.Close(fd)
		os.Remove(cfg.Path)
		return nil, fmt.Errorf("bess: %w", err)
	}
	ln, err := pollfd.New(fd, "bess "+cfg.Path)
	if err != nil {
		os.Remove(cfg.Path)
		return nil, err
	}
	t := &Transport{cfg: cfg, log: cfg.Logger, ln: ln, live: make(map[*sockport.Port]struct{}), left: make(chan struct{}, 1)}
	t.acceptFn = t.accept
	return t, nil
}

// Path is where UMLs connect.
func (t *Transport) Path() string { return t.cfg.Path }

// Start accepts UMLs and attaches each to reg as a port.
func (t *Transport) Start(reg fabric.Registry) {
	t.reg = reg
	t.wg.Add(1)
	go t.acceptLoop()
	t.log.Info("listening", "transport", "bess", "path", t.cfg.Path)
}

func (t *Transport) accept(lfd uintptr) bool {
	nfd, sa, err := unix.Accept4(int(lfd), unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
	if err == unix.EAGAIN || err == unix.EINTR {
		return false
	}
	t.newFd, t.acceptEr, t.peer = nfd, err, ""
	if su, ok := sa.(*unix.SockaddrUnix); ok {
		t.peer = su.Name // UML's src=, if it bound one
	}
	return true
}

func (t *Transport) acceptLoop() {
	defer t.wg.Done()
	wait := time.NewTimer(time.Hour)
	wait.Stop()
	for {
		t.waitForHungUp(wait)
		if err := t.ln.Read(t.acceptFn); err != nil {
			return // closed
		}
		if t.acceptEr != nil {
			t.log.Warn("accept", "path", t.cfg.Path, "err", t.acceptEr)
			time.Sleep(10 * time.Millisecond) // EMFILE and friends: do not spin
			continue
		}
		t.serve(t.newFd, t.peer)
	}
}

// waitForHungUp returns once at most maxHungUp of the listener's ports
// have a peer that closed. It rechecks whenever a port is dropped, and
// every 10 ms in case a reader drops none (Close also wakes it).
func (t *Transport) waitForHungUp(wait *time.Timer) {
	for {
		t.mu.Lock()
		if t.done || len(t.live) <= maxHungUp {
			t.mu.Unlock()
			return
		}
		t.ports = t.ports[:0]
		for p := range t.live {
			t.ports = append(t.ports, p)
		}
		t.mu.Unlock()
		hungUp := t.scan.Count(t.ports)
		clear(t.ports) // hold no port past its detach
		if hungUp <= maxHungUp {
			return
		}
		wait.Reset(10 * time.Millisecond)
		select {
		case <-t.left:
		case <-wait.C:
		}
	}
}

// serve makes the connection a port. It is detached when the UML closes.
func (t *Transport) serve(fd int, peer string) {
	seq := t.seq.Add(1)
	label := peer
	if label == "" {
		label = "unbound"
	}
	var port *sockport.Port
	port, err := sockport.New(fd, sockport.Config{
		Name:     fmt.Sprintf("bess#%d %s", seq, label),
		Depth:    t.cfg.Depth,
		MaxFrame: t.cfg.MaxFrame,
		OnEOF:    func() { t.log.Debug("bess peer closed", "path", t.cfg.Path, "peer", label); t.drop(port) },
	})
	if err != nil {
		unix.Close(fd)
		t.log.Warn("bess connection", "path", t.cfg.Path, "err", err)
		return
	}
	t.mu.Lock()
	if t.done {
		t.mu.Unlock()
		port.Close()
		return
	}
	t.live[port] = struct{}{}
	t.mu.Unlock()
	id, err := t.reg.Attach(port)
	if err != nil {
		t.drop(port)
		t.log.Warn("bess connection refused", "path", t.cfg.Path, "peer", label, "err", err)
		return
	}
	t.reg.Serve(port.Receiver(id))
}

// drop detaches and forgets a port.
func (t *Transport) drop(p *sockport.Port) {
	t.reg.Detach(p)
	p.Close()
	t.mu.Lock()
	delete(t.live, p)
	t.mu.Unlock()
	select {
	case t.left <- struct{}{}:
	default:
	}
}

// Close stops accepting, detaches every port and removes the socket file.
func (t *Transport) Close() error {
	t.mu.Lock()
	if t.done {
		t.mu.Unlock()
		return nil
	}
	t.done = true
	select { // wake an accept loop waiting for hung-up ports to go
	case t.left <- struct{}{}:
	default:
	}
	ports := make([]*sockport.Port, 0, len(t.live))
	for p := range t.live {
		ports = append(ports, p)
	}
	t.mu.Unlock()
	err := t.ln.Close(nil)
	t.wg.Wait()
	for _, p := range ports {
		if t.reg != nil {
			t.reg.Detach(p)
		}
		p.Close()
	}
	if rerr := os.Remove(t.cfg.Path); rerr != nil && !errors.Is(rerr, os.ErrNotExist) && err == nil {
		err = rerr
	}
	return err
}
