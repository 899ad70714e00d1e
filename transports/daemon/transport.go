package daemon

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/umlswitch/umlswitch/transports/portkind"

	"golang.org/x/sys/unix"

	"github.com/umlswitch/umlswitch/fabric"
	"github.com/umlswitch/umlswitch/internal/accept"
	"github.com/umlswitch/umlswitch/internal/limit"
	"github.com/umlswitch/umlswitch/internal/peercred"
	"github.com/umlswitch/umlswitch/internal/ratelog"
	"github.com/umlswitch/umlswitch/internal/sockport"
	"github.com/umlswitch/umlswitch/internal/statefile"
	"github.com/umlswitch/umlswitch/internal/unixsock"
)

// Defaults for Config fields left zero.
const (
	DefaultHandshakeTimeout = 5 * time.Second
	// DefaultV0DataPath is where uml_switch -compat-v0 binds its data socket.
	DefaultV0DataPath = "/tmp/uml.data"
)

// Config describes one control socket: its keys and what the switch adds.
type Config struct {
	Options // the spec's keys; Path is the control socket, or a directory that gets DIR/ctl
	portkind.Common
	HandshakeTimeout time.Duration
	// Clients, if set, bounds the clients of every listener together and
	// per uid (their control connection's SO_PEERCRED).
	Clients *limit.Limiter
	// NotAllowed counts the clients and API callers the socket's
	// allow_uid= and allow_gid= refused (Options.Allow); nil: not counted.
	NotAllowed *atomic.Uint64
	// Handoff, if set, takes the connections that are not clients: those
	// whose first byte is an upper-case ASCII letter, as an HTTP method
	// starts (a request starts with its magic, or with a small type in
	// version 0). It gets the connection with that byte still to read and
	// owns it from then on. Nil: such connections are rejected.
	Handoff func(net.Conn)
}

// Transport is a control socket and the ports of the clients it accepted.
type Transport struct {
	cfg     Config
	log     *slog.Logger
	ctlPath string
	ln      *unixsock.Listener
	gate    *accept.Gate
	v0      *v0Socket
	reg     fabric.Registry

	state *statefile.Saver // the control socket's state file (CTL.state)

	mu      sync.Mutex
	ports   map[*sockport.Port]client  // attached through this transport
	pending map[*net.UnixConn]struct{} // still in handshake
	closed  bool
	stop    chan struct{} // closed by Close
	wg      sync.WaitGroup

	seq      atomic.Uint64
	accepted atomic.Uint64
	rejected atomic.Uint64

	// Lines any local user can make the switch write as often as it likes.
	acceptLog, refuseLog, rejectLog ratelog.Every
}

// client is what a port's client is known by.
type client struct {
	uid       uint32        // its control connection's (peercred.NoUID: unknown)
	number    int           // the port number it asked for, 0 for none
	saved     savedClient   // how the state file lists it; zero for a version 0 client, which it does not
	takenBack bool          // restored from the state file
	ctl       *net.UnixConn // its control connection; nil for one taken back without it
}

// Listen binds the control socket (and, with CompatV0, the shared data
// socket). Nothing is accepted before Start.
func Listen(cfg Config) (*Transport, error) {
	cfg.Common = cfg.Common.Defaulted()
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if cfg.CompatV0 && cfg.DataPath == "" {
		cfg.DataPath = DefaultV0DataPath
	}
	ctl, _, err := ctlPathFor(cfg.Path)
	if err != nil {
		return nil, fmt.Errorf("daemon %s: %w", cfg.Path, err)
	}
	ln, err := unixsock.Listen(ctl, cfg.Access.Owned())
	if err != nil {
		return nil, fmt.Errorf("daemon: %w", err)
	}
	t := &Transport{cfg: cfg, log: cfg.Logger, ctlPath: ctl, ln: ln, gate: accept.NewGate(cfg.Allow, cfg.NotAllowed),
		ports: make(map[*sockport.Port]client), pending: make(map[*net.UnixConn]struct{}), stop: make(chan struct{})}
	if err := t.openState(ctl, cfg.Access.Owned().UID); err != nil {
		ln.Close()
		return nil, fmt.Errorf("daemon: state file: %w", err)
	}
	if cfg.CompatV0 {
		if t.v0, err = listenV0(cfg.DataPath, cfg); err != nil {
			ln.Close()
			return nil, fmt.Errorf("daemon: %w", err)
		}
	}
	return t, nil
}

// Path is the control socket clients connect to.
func (t *Transport) Path() string { return t.ctlPath }

// Counts returns how many clients were accepted and rejected so far.
func (t *Transport) Counts() (accepted, rejected uint64) {
	return t.accepted.Load(), t.rejected.Load()
}

// Strangers counts the datagrams dropped on the -compat-v0 shared data
// socket because their sender was no client's data socket.
func (t *Transport) Strangers() uint64 {
	if t.v0 == nil {
		return 0
	}
	return t.v0.strangers.Load()
}

// Start accepts clients and attaches each to reg as a port.
func (t *Transport) Start(reg fabric.Registry) {
	t.reg = reg
	if t.v0 != nil {
		reg.Serve(t.v0.receiver(t.cfg))
	}
	t.restore(t.loadState()) // before new clients, so those taken back keep their numbers
	t.wg.Add(1)
	go t.acceptLoop()
	attrs := []any{"transport", "daemon", "ctl", t.ctlPath, "compat_v0", t.cfg.CompatV0}
	if from := t.ln.From(); from != "" {
		attrs = append(attrs, "from", from) // systemd's socket unit, or the switch this one upgraded
	}
	t.log.Info("listening", attrs...)
	t.checkNoFile()
}

// checkNoFile warns when the descriptor limit is below what the bound on
// clients lets them hold (two each: control and data), so that the bound,
// not EMFILE, is what stops a user who opens many.
func (t *Transport) checkNoFile() {
	total, _ := t.cfg.Clients.Bounds()
	if total <= 0 {
		return
	}
	need := uint64(2*total + 64) // and some for the switch's own sockets
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err == nil && rl.Cur < need {
		t.log.Warn("the descriptor limit is below what max_clients needs", "nofile", rl.Cur, "max_clients", total, "need", need)
	}
}

func (t *Transport) acceptLoop() {
	defer t.wg.Done()
	accept.Loop(accept.Pausable(t.ln, t.ln.AcceptUnix, t.stop), accept.ShedFrom(t.ln), func(err error) {
		t.acceptLog.Log(t.log, slog.LevelWarn, "accept", "ctl", t.ctlPath, "err", err)
	}, t.admit)
}

// admit runs c's handshake on a goroutine of its own if the socket's
// allow_uid= and allow_gid= let its peer in and its uid is within
// Config.Clients. The lists are checked before a byte is read: a peer they
// refuse is neither a client nor a caller of the control API.
func (t *Transport) admit(c *net.UnixConn) {
	cred, err := peercred.FromConn(c)
	if err != nil {
		cred = peercred.Unknown // another user namespace: one bucket for all such peers
	}
	if ok, first := t.gate.Admit(cred); !ok {
		t.rejected.Add(1)
		if first {
			t.log.Warn("client not allowed: allow_uid= and allow_gid= do not name it", "ctl", t.ctlPath, "peer", cred.String())
		}
		c.Close()
		accept.End()
		return
	}
	// The slot is taken before the handshake: connections that never
	// finish it hold descriptors too.
	if err := t.cfg.Clients.Acquire(cred.UID); err != nil {
		t.rejected.Add(1)
		t.refuseLog.Log(t.log, slog.LevelWarn, "client refused", "ctl", t.ctlPath, "uid", uidAttr(cred.UID), "err", err)
		c.Close()
		accept.End()
		return
	}
	if !t.track(c) { // closing: the next accept says so and ends the loop
		t.cfg.Clients.Release(cred.UID)
		c.Close()
		accept.End()
		return
	}
	t.wg.Add(1)
	go t.serveClient(c, cred)
}

// uidAttr is a uid for logs: "unknown" for peercred.NoUID.
func uidAttr(uid uint32) any {
	if uid == peercred.NoUID {
		return "unknown"
	}
	return uid
}

func (t *Transport) track(c *net.UnixConn) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return false
	}
	t.pending[c] = struct{}{}
	return true
}

// serveClient runs one client's handshake, then watches its control
// connection: EOF or an error there detaches the port. Bytes after the
// request (a description cut across reads) are ignored.
//
// The client's slot in Config.Clients is given back when it returns: once
// the port is gone, the handshake failed, or the connection was handed off
// (the API bounds its own connections).
func (t *Transport) serveClient(c *net.UnixConn, cred peercred.Cred) {
	defer t.wg.Done()
	settle := sync.OnceFunc(accept.End) // a port, handed off, or gone: see accept.Pause
	defer settle()
	released := false
	release := func() {
		if !released {
			released = true
			t.cfg.Clients.Release(cred.UID)
		}
	}
	defer release()
	seq := t.seq.Add(1)
	port, req, err := t.handshake(c, cred, seq)
	if errors.Is(err, errHandedOff) {
		t.mu.Lock()
		delete(t.pending, c)
		closed := t.closed
		t.mu.Unlock()
		if closed {
			c.Close()
			return
		}
		c.SetReadDeadline(time.Time{})
		release()
		settle()
		t.cfg.Handoff(&prefixConn{UnixConn: c, head: req.head})
		return
	}
	t.mu.Lock()
	delete(t.pending, c)
	if err == nil && t.closed {
		err = net.ErrClosed
	}
	if err == nil {
		err = t.numberFree(req.WantPort, cred.UID)
	}
	if err == nil {
		cl := client{uid: cred.UID, number: req.WantPort, ctl: c}
		if local, lerr := port.LocalAddr(); lerr == nil && req.Version != 0 {
			cl.saved = saved(&req, local, cred)
		}
		t.ports[port] = cl
	}
	t.mu.Unlock()
	if err == nil {
		err = t.attach(c, port, &req)
	}
	if err == nil {
		t.saveSoon()
	}
	if err != nil {
		t.rejected.Add(1)
		t.rejectLog.Log(t.log, slog.LevelWarn, "client rejected", "ctl", t.ctlPath, "client", seq, "uid", uidAttr(cred.UID), "err", err)
		if port != nil {
			t.forget(port)
			port.Close()
		} else {
			c.Close()
		}
		return
	}
	t.accepted.Add(1)
	settle()
	t.log.Debug("client attached", "ctl", t.ctlPath, "client", seq, "peer", cred.String(), "data", req.Addr.String())
	var buf [64]byte
	for {
		if _, err = c.Read(buf[:]); err != nil {
			break
		}
	}
	t.log.Debug("client control connection ended", "ctl", t.ctlPath, "client", seq, "err", err)
	if req.Version == 0 {
		t.v0.remove(&req.Addr)
	}
	t.reg.Detach(port)
	t.forget(port)
}

// numberFree refuses a port number (VDE's vde://DIR[N]) that a client of
// another user holds, saying whose it is, as vde_switch does: any local
// user can take a number first, and an administrator must be able to see
// who did. Numbers held otherwise are the switch's to refuse (Attach).
// Caller holds mu.
func (t *Transport) numberFree(n int, uid uint32) error {
	if n <= 0 {
		return nil
	}
	for p, cl := range t.ports {
		if cl.number == n && cl.uid != uid {
			return fmt.Errorf("port %d is held by uid %v (%s)", n, uidAttr(cl.uid), p.Name())
		}
	}
	return nil
}

// attach adds the port to the switch and only then replies with its data
// address, so that nothing the client sends or is sent can reach the
// switch before the port exists.
func (t *Transport) attach(c *net.UnixConn, port *sockport.Port, req *Request) error {
	id, err := t.reg.Attach(port)
	if err != nil {
		return err
	}
	if req.Version == 0 {
		t.v0.add(&req.Addr, id) // its frames arrive on the shared socket; it expects no reply
		return nil
	}
	t.reg.Serve(port.Receiver(id))
	local, err := port.LocalAddr()
	if err == nil {
		c.SetWriteDeadline(time.Now().Add(t.cfg.HandshakeTimeout))
		_, err = c.Write(local[:])
		c.SetWriteDeadline(time.Time{})
	}
	if err != nil {
		t.reg.Detach(port)
		return fmt.Errorf("reply: %w", err)
	}
	return nil
}

func (t *Transport) forget(p *sockport.Port) {
	t.mu.Lock()
	delete(t.ports, p)
	t.mu.Unlock()
	t.saveSoon()
}

// handshake reads the request and makes the client's data socket,
// connected to the client. On success the returned port owns c.
func (t *Transport) handshake(c *net.UnixConn, cred peercred.Cred, seq uint64) (*sockport.Port, Request, error) {
	c.SetReadDeadline(time.Now().Add(t.cfg.HandshakeTimeout))
	req, err := readRequest(c, t.cfg.CompatV0, t.cfg.Handoff != nil)
	if err != nil {
		return nil, req, err
	}
	c.SetReadDeadline(time.Time{})

	// Connected before replying: VDE clients unlink their path as soon as
	// the reply arrives, and only accept frames from the address in it.
	// Version 0 clients get one too: the switch sends to them through it.
	fd, err := dataSocket(&req.Addr, cred)
	if err != nil {
		return nil, req, err
	}
	port, err := sockport.New(fd, sockport.Config{
		Name:     fmt.Sprintf("daemon#%d %s", seq, label(&req)),
		Depth:    t.cfg.Depth,
		MaxFrame: t.cfg.MaxFrame,
		OnClose:  func() { c.Close() },
		// The client's data socket closed while its control connection
		// stays: the client is gone. Ending the control connection detaches
		// the port (serveClient), before a stranger finds the now
		// unconnected data socket in /proc/net/unix.
		OnPeerGone: func() { c.Close() },
		Number:     req.WantPort,
	})
	return port, req, err
}

// errHandedOff: the connection is not a client's (see Config.Handoff).
var errHandedOff = errors.New("not a client")

// readRequest reads until the fixed part of the request is in; whatever
// arrived with it is the description. With handoff, a first byte that
// starts an HTTP method ends it early with errHandedOff and the bytes read
// in the returned request's head.
func readRequest(c *net.UnixConn, allowV0, handoff bool) (Request, error) {
	var buf [MaxRequest]byte
	n := 0
	for {
		if handoff && n > 0 && buf[0] >= 'A' && buf[0] <= 'Z' {
			return Request{head: append([]byte(nil), buf[:n]...)}, errHandedOff
		}
		need, err := requestLen(buf[:n], allowV0)
		if err != nil {
			return Request{}, err
		}
		if n >= need {
			return ParseRequest(buf[:n], allowV0)
		}
		m, err := c.Read(buf[n:])
		n += m
		if err != nil && n < MaxRequest {
			if need, lerr := requestLen(buf[:n], allowV0); lerr == nil && n >= need {
				return ParseRequest(buf[:n], allowV0)
			}
			return Request{}, fmt.Errorf("request: read %d bytes: %w", n, err)
		}
	}
}

// prefixConn is a connection whose first bytes were already read.
type prefixConn struct {
	*net.UnixConn
	head []byte
}

func (c *prefixConn) Read(b []byte) (int, error) {
	if len(c.head) > 0 {
		n := copy(b, c.head)
		c.head = c.head[n:]
		return n, nil
	}
	return c.UnixConn.Read(b)
}

// label names a client in logs: its description (VDE), else the pid that
// UML and uml_switch put in their abstract address, else its path.
func label(r *Request) string {
	switch {
	case r.Description != "":
		return r.Description
	case r.Addr.IsAbstract():
		return fmt.Sprintf("pid=%d", binary.LittleEndian.Uint32(r.Addr[6:10]))
	default:
		return r.Addr.FilesystemPath()
	}
}

// Close stops accepting, detaches every port of this transport and removes
// its socket files.
func (t *Transport) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	close(t.stop)
	ports := make([]*sockport.Port, 0, len(t.ports))
	for p := range t.ports {
		ports = append(ports, p)
	}
	for c := range t.pending {
		c.Close()
	}
	t.mu.Unlock()

	err := t.ln.Close()
	t.stopSaving() // with every client in it, for the next switch to take back
	for _, p := range ports {
		if t.reg != nil {
			t.reg.Detach(p)
		}
		p.Close()
	}
	if t.v0 != nil {
		t.v0.close()
	}
	t.wg.Wait()
	return err
}
