// Package sockport is a switch port over one connected, non-blocking
// datagram or seqpacket socket: a daemon/VDE client's data socket, a BESS
// connection, either socket of a QEMU dgram port, a raw port's packet
// socket. Frames go out with sendmmsg and come in with recvmmsg in batches.
package sockport

import (
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/umlswitch/umlswitch/fabric"
	"github.com/umlswitch/umlswitch/frame"
	"github.com/umlswitch/umlswitch/internal/mmsg"
	"github.com/umlswitch/umlswitch/internal/pollfd"
	"github.com/umlswitch/umlswitch/internal/unixsock"
)

// txChunk is the most frames one sendmmsg carries; longer writes loop. It
// matches UML's default batch depth.
const txChunk = 64

// errPeerGone is returned without allocating when the peer has vanished.
var errPeerGone = fmt.Errorf("socket: %w", fabric.ErrPeerGone)

// Config describes a port.
type Config struct {
	Name     string
	Depth    int    // frames per receive batch
	MaxFrame int    // largest frame sent or accepted
	OnClose  func() // runs once after the socket is closed, e.g. to close a control connection
	// OnEOF, for stream-like sockets (SOCK_SEQPACKET), runs once on the
	// reader's goroutine when the peer has closed and every frame it sent
	// has been delivered; it should detach the port. The next read then
	// reports net.ErrClosed.
	OnEOF func()
	// TxPrefix is a header sent in front of every frame (an empty
	// virtio-net header for a packet socket with PACKET_VNET_HDR).
	TxPrefix []byte
	// Number is the port number the client asked for (VDE's vde://DIR[N]);
	// 0 for none. Whoever names ports honours it (RequestedNumber).
	Number int
	// OnPeerGone, if set, runs once, on the goroutine of the Write that
	// found the peer gone (a connected datagram socket's peer closed: the
	// send failed with ECONNREFUSED). The kernel has then disconnected the
	// socket, which would take datagrams from any sender; the port shuts it
	// for reading first (senders get EPIPE). It should make the port's
	// owner detach it, and must not block.
	OnPeerGone func()
}

// Port is a fabric.Port over one socket.
type Port struct {
	cfg    Config
	fd     *pollfd.FD
	txPool *sync.Pool // *mmsg.Batch, so concurrent writers need no lock

	// Receive state, used by the single reader goroutine only.
	id     frame.PortID
	rxVec  *frame.Vector         // the vector of the read in progress
	rx     *mmsg.Batch           // its receive headers
	got    pollfd.Result         // datagrams read, or why none were
	readFn func(fd uintptr) bool // both bound once, so a read allocates no closure
	recvFn func(fd int) (int, error)
	eof    bool // the peer has gone and its frames were delivered
	hup    [1]unix.PollFd

	peerGone atomic.Bool // OnPeerGone has run
}

// plainTx holds the send scratch of every port without a TxPrefix: scratch
// is needed only during a Write, so thousands of ports share a few.
var plainTx = sync.Pool{New: func() any { return mmsg.NewBatch(txChunk, 1) }}

var _ fabric.Port = (*Port)(nil)

// New takes ownership of fd, which must be a connected non-blocking socket.
func New(fd int, cfg Config) (*Port, error) {
	pfd, err := pollfd.New(fd, cfg.Name)
	if err != nil {
		return nil, err
	}
	p := &Port{cfg: cfg, fd: pfd, txPool: &plainTx}
	if len(cfg.TxPrefix) > 0 {
		p.txPool = &sync.Pool{New: func() any {
			b := mmsg.NewBatch(txChunk, 2)
			for i := range txChunk {
				b.SetBuf(i, 0, cfg.TxPrefix)
			}
			return b
		}}
	}
	p.readFn = p.read
	p.recvFn = p.recv
	return p, nil
}

// Name implements fabric.Port.
func (p *Port) Name() string { return p.cfg.Name }

// RequestedNumber is the port number the client asked for, 0 for none.
func (p *Port) RequestedNumber() int { return p.cfg.Number }

// MaxFrame implements fabric.Port.
func (p *Port) MaxFrame() int { return p.cfg.MaxFrame }

// Write implements fabric.Port with one sendmmsg per 64 frames.
func (p *Port) Write(frames [][]byte) (int, error) {
	fd, ok := p.fd.Borrow()
	if !ok {
		return 0, net.ErrClosed
	}
	defer p.fd.Return()
	b := p.txPool.Get().(*mmsg.Batch)
	defer p.txPool.Put(b)
	sent := 0
	for sent < len(frames) {
		chunk := frames[sent:min(len(frames), sent+txChunk)]
		last := b.PerMsg - 1 // the frame follows the prefix, if any
		for i, f := range chunk {
			b.SetBuf(i, last, f)
		}
		n, err := b.Send(fd, 0, len(chunk), unix.MSG_DONTWAIT|unix.MSG_NOSIGNAL)
		sent += n
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			err = sendError(err)
			if err == errPeerGone && p.cfg.OnPeerGone != nil && !p.peerGone.Swap(true) {
				unix.Shutdown(fd, unix.SHUT_RD)
				p.cfg.OnPeerGone()
			}
			return sent, err
		}
		if n < len(chunk) {
			// Message n failed and the kernel dropped its error. Almost
			// always the peer's queue is full; saying so saves a system
			// call that would only return EAGAIN, and any other error
			// shows on the caller's next attempt after its wait.
			return sent, fabric.ErrWouldBlock
		}
	}
	return sent, nil
}

func sendError(err error) error {
	switch err {
	case unix.EAGAIN:
		return fabric.ErrWouldBlock
	case unix.ECONNREFUSED, unix.ENOTCONN, unix.EPIPE, unix.ECONNRESET, unix.EDESTADDRREQ,
		unix.ENETDOWN, unix.ENXIO, unix.ENODEV: // the last three: a packet socket's interface is down or gone
		return errPeerGone
	}
	return err // an Errno: boxing it does not allocate
}

// WaitWritable implements fabric.Port. On a unix datagram socket connected
// to a peer, POLLOUT means the peer's queue has room.
func (p *Port) WaitWritable(timeout time.Duration) bool { return p.fd.WaitWritable(timeout) }

// Close implements fabric.Port; Config.OnClose runs after the socket is closed.
func (p *Port) Close() error { return p.fd.Close(p.cfg.OnClose) }

// Sockopt runs fn on the socket unless the port is closed; for options and
// statistics the port does not know about.
func (p *Port) Sockopt(fn func(fd int) error) error {
	fd, ok := p.fd.Borrow()
	if !ok {
		return net.ErrClosed
	}
	defer p.fd.Return()
	return fn(int(fd))
}

// ReadWith is for a port whose owner reads the socket itself instead of
// through Receiver: it calls fn with the socket until fn returns true,
// waiting for it to become readable whenever fn returns false, and returns
// net.ErrClosed once the port is closed.
func (p *Port) ReadWith(fn func(fd uintptr) bool) error { return p.fd.Read(fn) }

// LocalAddr is the address the socket is bound to, as the raw 110 bytes.
func (p *Port) LocalAddr() (unixsock.Addr, error) {
	fd, ok := p.fd.Borrow()
	if !ok {
		return unixsock.Addr{}, net.ErrClosed
	}
	defer p.fd.Return()
	return unixsock.Getsockname(fd)
}

// Receiver returns the reading side; every frame it reads is marked as
// entering through port id. It lends: the port holds receive buffers only
// while frames are waiting for it.
func (p *Port) Receiver(id frame.PortID) fabric.Receiver {
	p.id = id
	return fabric.Receiver{Name: p.cfg.Name, Depth: p.cfg.Depth, MaxFrame: p.cfg.MaxFrame, Receive: p.receive, Lends: true}
}

func (p *Port) receive(v *frame.Vector) (int, error) {
	if p.eof {
		p.cfg.OnEOF()
		return 0, net.ErrClosed
	}
	p.rxVec = v
	if err := p.fd.Read(p.readFn); err != nil {
		return 0, err
	}
	switch p.got.Err {
	case nil:
	case unix.ECONNRESET:
		// The peer closed with our frames unread. Its own frames (and, on a
		// stream-like socket, the end of the stream) are still to be read.
		return 0, nil
	default:
		return 0, p.got.Err
	}
	n, rx := p.got.N, p.rx
	for i := 0; i < n; i++ {
		v.Sizes[i] = int(rx.Hdrs[i].Len) // the true length, thanks to MSG_TRUNC
		v.Ports[i] = p.id                // the buffers may have served another port last
	}
	// Once a seqpacket peer has closed, every read returns zero bytes: a
	// trailing run of empty reads on a socket shut down for reading is the
	// end of the stream, not empty frames.
	if p.cfg.OnEOF != nil && n > 0 && v.Sizes[n-1] == 0 && p.shutDown() {
		for n > 0 && v.Sizes[n-1] == 0 {
			n--
		}
		p.eof = true // deliver what came before it; detach on the next read
	}
	return n, nil
}

// HangupScan counts the ports of connection-oriented sockets
// (SOCK_SEQPACKET) whose peer has closed, with one zero-timeout poll(2) for
// all of them. Its scratch is reused from call to call; it is not safe for
// concurrent use.
type HangupScan struct {
	fds  []unix.PollFd
	held []*Port
}

// Count returns how many of ports have a peer that closed, or are closed.
func (s *HangupScan) Count(ports []*Port) int {
	s.fds, s.held = s.fds[:0], s.held[:0]
	gone := 0
	for _, p := range ports {
		fd, ok := p.fd.Borrow()
		if !ok {
			gone++
			continue
		}
		s.held = append(s.held, p)
		s.fds = append(s.fds, unix.PollFd{Fd: int32(fd), Events: unix.POLLRDHUP})
	}
	unix.Poll(s.fds, 0)
	for _, p := range s.held {
		p.fd.Return()
	}
	for _, f := range s.fds {
		if hungUp(f) {
			gone++
		}
	}
	return gone
}

// hungUp reports whether a POLLRDHUP poll found the peer gone.
func hungUp(f unix.PollFd) bool { return f.Revents&(unix.POLLRDHUP|unix.POLLHUP) != 0 }

// shutDown reports whether the peer has closed the connection.
func (p *Port) shutDown() bool {
	fd, ok := p.fd.Borrow()
	if !ok {
		return true
	}
	defer p.fd.Return()
	p.hup[0] = unix.PollFd{Fd: int32(fd), Events: unix.POLLRDHUP}
	n, _ := unix.Poll(p.hup[:], 0)
	return n > 0 && hungUp(p.hup[0])
}

// rxBatch returns the receive headers kept with v's buffers, pointing them
// at the buffers the first time.
func rxBatch(v *frame.Vector) *mmsg.Batch {
	if b, ok := v.Scratch.(*mmsg.Batch); ok {
		return b
	}
	b := mmsg.NewBatch(v.Depth(), 1)
	for i := range v.Depth() {
		b.SetBuf(i, 0, v.Room(i))
	}
	v.Scratch = b
	return b
}

// read takes buffers, fills them with what is waiting and keeps them; with
// nothing waiting it gives them back before the reader parks.
func (p *Port) read(fd uintptr) bool {
	v := p.rxVec
	v.Take()
	p.rx = rxBatch(v)
	if p.got.Try(fd, p.recvFn) {
		return true
	}
	v.Give()
	return false // park on the netpoller until readable
}

func (p *Port) recv(fd int) (int, error) {
	return p.rx.Recv(fd, min(p.cfg.Depth, p.rxVec.Depth()), unix.MSG_DONTWAIT|unix.MSG_TRUNC)
}
