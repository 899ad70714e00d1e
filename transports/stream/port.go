package stream

import (
	"encoding/binary"
	"fmt"
	"net"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/umlswitch/umlswitch/fabric"
	"github.com/umlswitch/umlswitch/frame"
	"github.com/umlswitch/umlswitch/internal/mmsg"
	"github.com/umlswitch/umlswitch/internal/pollfd"
	"github.com/umlswitch/umlswitch/transports/portkind"
)

// txChunk is the most frames one sendmsg carries (two iovecs each at
// most, well under IOV_MAX); longer writes loop.
const txChunk = 64

// Write copies frames, behind their lengths, into one send buffer rather
// than pointing two iovecs at each: the kernel's cost per iovec outweighs
// the copy (64-byte frames with two iovecs each spent 15 % of the switch's
// time in copy_from_iter and ran at 0.53 of a relay writing whole records;
// 512-byte frames at 0.54). The buffer holds a chunk of frames of the
// default MTU; what does not fit (jumbo frames) gets iovecs of its own.
const coalesceFrame = prefixLen + 1522

// errPeerGone is returned without allocating when the peer has vanished.
var errPeerGone = fmt.Errorf("stream: %w", fabric.ErrPeerGone)

// Flushing a kept tail when no Write comes to do it: first after
// flushFirst, doubling up to flushMost while the peer takes nothing.
const (
	flushFirst = time.Millisecond
	flushMost  = 100 * time.Millisecond
)

// PortConfig describes a port over one connected stream socket.
type PortConfig struct {
	Name string
	portkind.Common
	// OnEOF runs once on the reader's goroutine when the stream has ended
	// (the peer closed, or sent a length the port cannot follow) and every
	// whole frame before has been delivered; it should detach the port.
	// The next read then reports net.ErrClosed.
	OnEOF func()
}

// Port is a fabric.Port over a connected, non-blocking stream socket
// carrying QEMU's framing: each frame behind its length, 4 bytes big-endian.
type Port struct {
	cfg PortConfig
	fd  *pollfd.FD

	// Send state, guarded by txMu: the stream must carry frames whole and
	// one after another, whoever writes them.
	txMu    sync.Mutex
	tx      *mmsg.Batch // one message: the send buffer, and frames that did not fit it
	prefix  [txChunk][prefixLen]byte
	coal    []byte // frames behind their lengths; made at the first Write, never grown
	tail    []byte // the unsent end of a frame cut by a short write
	flushAt time.Duration
	flusher *time.Timer // flushes the tail when no Write comes

	// Receive state, used by the single reader goroutine only.
	id     frame.PortID
	rx     *Framer
	got    pollfd.Result         // bytes read, or why none were
	space  []byte                // where the read in progress puts them
	readFn func(fd uintptr) bool // both bound once, so a read allocates no closure
	recvFn func(fd int) (int, error)
	eof    bool // the stream has ended; detach on the next read
}

var _ fabric.Port = (*Port)(nil)

// NewPort takes ownership of fd, a connected non-blocking stream socket.
func NewPort(fd int, cfg PortConfig) (*Port, error) {
	cfg.Common = cfg.Common.Defaulted()
	pfd, err := pollfd.New(fd, cfg.Name)
	if err != nil {
		return nil, err
	}
	p := &Port{cfg: cfg, fd: pfd, tx: mmsg.NewBatch(1, 3*txChunk), rx: NewFramer(cfg.MaxFrame)}
	p.readFn = p.read
	p.recvFn = p.recv
	return p, nil
}

// Name implements fabric.Port.
func (p *Port) Name() string { return p.cfg.Name }

// MaxFrame implements fabric.Port.
func (p *Port) MaxFrame() int { return p.cfg.MaxFrame }

// WaitWritable implements fabric.Port: POLLOUT on a stream socket means
// its send buffer has room.
func (p *Port) WaitWritable(timeout time.Duration) bool { return p.fd.WaitWritable(timeout) }

// Close implements fabric.Port. A kept tail is lost with the connection.
func (p *Port) Close() error {
	p.txMu.Lock()
	if p.flusher != nil {
		p.flusher.Stop()
	}
	p.txMu.Unlock()
	return p.fd.Close(nil)
}

// Write implements fabric.Port with one sendmsg per 64 frames, each frame
// behind its length. A short write never cuts a frame for the peer: the
// unsent end of the frame it cut is kept and goes before anything else,
// and that frame counts as sent.
func (p *Port) Write(frames [][]byte) (int, error) {
	fd, ok := p.fd.Borrow()
	if !ok {
		return 0, net.ErrClosed
	}
	defer p.fd.Return()
	p.txMu.Lock()
	defer p.txMu.Unlock()
	if len(p.tail) > 0 {
		if err := p.flushTail(fd); err != nil {
			return 0, err
		}
		if len(p.tail) > 0 {
			return 0, fabric.ErrWouldBlock
		}
	}
	sent := 0
	for sent < len(frames) {
		chunk := frames[sent:min(len(frames), sent+txChunk)]
		p.tx.Hdrs[0].Msg.SetIovlen(p.gather(chunk))
		_, err := p.tx.Send(fd, 0, 1, unix.MSG_DONTWAIT|unix.MSG_NOSIGNAL)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return sent, sendError(err)
		}
		whole, cut := p.account(chunk, int(p.tx.Hdrs[0].Len))
		sent += whole
		if cut {
			return sent, fabric.ErrWouldBlock
		}
	}
	return sent, nil
}

// gather points the send's iovecs at chunk behind the frames' lengths:
// copied into runs in the send buffer while they fit, a length and a
// frame of their own where they do not. It returns the number of iovecs.
// txMu is held.
func (p *Port) gather(chunk [][]byte) int {
	if p.coal == nil {
		p.coal = make([]byte, 0, txChunk*coalesceFrame)
	}
	buf, run, iov := p.coal[:0], 0, 0
	for i, f := range chunk {
		binary.BigEndian.PutUint32(p.prefix[i][:], uint32(len(f))) // kept for a tail (account)
		if len(buf)+prefixLen+len(f) <= cap(buf) {
			buf = append(buf, p.prefix[i][:]...)
			buf = append(buf, f...)
			continue
		}
		if len(buf) > run {
			p.tx.SetBuf(0, iov, buf[run:])
			iov, run = iov+1, len(buf)
		}
		p.tx.SetBuf(0, iov, p.prefix[i][:])
		p.tx.SetBuf(0, iov+1, f)
		iov += 2
	}
	if len(buf) > run {
		p.tx.SetBuf(0, iov, buf[run:])
		iov++
	}
	return iov
}

// account takes the byte count a send of chunk wrote and returns how many
// frames count as sent: the whole ones, and one cut short, whose end it
// keeps in the tail. cut says the send stopped before the chunk's end.
func (p *Port) account(chunk [][]byte, wrote int) (sent int, cut bool) {
	for sent < len(chunk) && wrote >= prefixLen+len(chunk[sent]) {
		wrote -= prefixLen + len(chunk[sent])
		sent++
	}
	if sent == len(chunk) {
		return sent, false
	}
	if wrote > 0 {
		f := chunk[sent]
		if p.tail == nil {
			p.tail = make([]byte, 0, prefixLen+p.cfg.MaxFrame)
		}
		if wrote < prefixLen {
			p.tail = append(p.tail[:0], p.prefix[sent][wrote:]...)
			p.tail = append(p.tail, f...)
		} else {
			p.tail = append(p.tail[:0], f[wrote-prefixLen:]...)
		}
		sent++
		p.scheduleFlush()
	}
	return sent, true
}

// flushTail writes what it can of the kept tail; txMu is held.
func (p *Port) flushTail(fd int) error {
	for len(p.tail) > 0 {
		n, err := unix.SendmsgN(fd, p.tail, nil, nil, unix.MSG_DONTWAIT|unix.MSG_NOSIGNAL)
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			return nil
		case err != nil:
			p.tail = p.tail[:0]
			return sendError(err)
		}
		p.tail = p.tail[:copy(p.tail, p.tail[n:])]
	}
	p.flushAt = 0
	return nil
}

// scheduleFlush makes sure the tail goes out even if no Write comes;
// txMu is held.
func (p *Port) scheduleFlush() {
	p.flushAt = min(max(2*p.flushAt, flushFirst), flushMost)
	if p.flusher == nil {
		p.flusher = time.AfterFunc(p.flushAt, p.flushLater)
		return
	}
	p.flusher.Reset(p.flushAt)
}

func (p *Port) flushLater() {
	fd, ok := p.fd.Borrow()
	if !ok {
		return
	}
	defer p.fd.Return()
	p.txMu.Lock()
	defer p.txMu.Unlock()
	if len(p.tail) == 0 {
		return
	}
	if p.flushTail(fd) == nil && len(p.tail) > 0 {
		p.scheduleFlush()
	}
}

func sendError(err error) error {
	switch err {
	case unix.EAGAIN:
		return fabric.ErrWouldBlock
	case unix.EPIPE, unix.ECONNRESET, unix.ENOTCONN, unix.ECONNREFUSED:
		return errPeerGone
	}
	return err // an Errno: boxing it does not allocate
}

// Receiver returns the reading side; every frame it reads is marked as
// entering through port id. It lends: the port takes receive buffers only
// while whole frames are waiting (bytes in flight wait in its own buffer).
func (p *Port) Receiver(id frame.PortID) fabric.Receiver {
	p.id = id
	return fabric.Receiver{Name: p.cfg.Name, Depth: p.cfg.Depth, MaxFrame: p.cfg.MaxFrame, Receive: p.receive, Lends: true}
}

// receive delivers the whole frames buffered, reading (and parking) until
// there is one, then reading once more without parking while the batch
// has room.
func (p *Port) receive(v *frame.Vector) (int, error) {
	for !p.ready() {
		if p.eof {
			if n := p.rx.Buffered(); n > 0 && !p.rx.Broken() {
				p.cfg.Logger.Debug("stream ended inside a frame", "port", p.cfg.Name, "bytes", n)
			}
			if p.cfg.OnEOF != nil {
				p.cfg.OnEOF()
			}
			return 0, net.ErrClosed
		}
		if err := p.fd.Read(p.readFn); err != nil {
			return 0, err
		}
		p.readDone()
	}
	v.Take()
	depth := min(p.cfg.Depth, v.Depth())
	n := p.cut(v, 0, depth)
	for n < depth && !p.eof && !p.rx.Broken() {
		fd, ok := p.fd.Borrow()
		if !ok {
			break
		}
		got := p.read(uintptr(fd))
		p.fd.Return()
		if !got {
			break
		}
		p.readDone()
		n = p.cut(v, n, depth)
	}
	return n, nil
}

// ready reports whether the framer holds a frame (or a bad length) to
// deliver.
func (p *Port) ready() bool {
	f := p.rx
	if f.broken || f.w-f.r < prefixLen {
		return false
	}
	n := binary.BigEndian.Uint32(f.buf[f.r:])
	return uint64(n) > uint64(f.max) || f.w-f.r >= prefixLen+int(n)
}

// read reads what the socket holds into the framer; false with nothing
// there yet.
func (p *Port) read(fd uintptr) bool {
	p.space = p.rx.Space()
	if len(p.space) == 0 {
		return false // whole frames wait (never so when receive reads)
	}
	return p.got.Try(fd, p.recvFn)
}

func (p *Port) recv(fd int) (int, error) { return unix.Read(fd, p.space) }

// readDone takes in what read got: bytes, or the end of the stream. Any
// error on a stream ends it.
func (p *Port) readDone() {
	if p.got.Err != nil || p.got.N <= 0 {
		if p.got.Err != nil && p.got.Err != unix.ECONNRESET {
			p.cfg.Logger.Warn("stream read", "port", p.cfg.Name, "err", p.got.Err)
		}
		p.eof = true
		return
	}
	p.rx.Fill(p.got.N)
}

// cut moves whole frames from the framer into v[n:depth] and returns the
// new count. A length over the largest frame is delivered as an oversize
// drop and ends the stream, which cannot be followed past it.
func (p *Port) cut(v *frame.Vector, n, depth int) int {
	for n < depth {
		fr, size, ok := p.rx.Next()
		if !ok {
			break
		}
		v.Ports[n] = p.id
		switch {
		case size > p.cfg.MaxFrame:
			v.Sizes[n] = fabric.Rejected(fabric.DropOversize)
			p.cfg.Logger.Warn("stream frame longer than the port's largest: dropping the connection",
				"port", p.cfg.Name, "length", size, "max_frame", p.cfg.MaxFrame)
			p.eof = true
			return n + 1
		default:
			v.Sizes[n] = copy(v.Room(n), fr)
		}
		n++
	}
	return n
}

// hungUp reports whether the peer has closed (or the port is closed).
func (p *Port) hungUp() bool {
	fd, ok := p.fd.Borrow()
	if !ok {
		return true
	}
	defer p.fd.Return()
	pfd := [1]unix.PollFd{{Fd: int32(fd), Events: unix.POLLRDHUP}}
	n, _ := unix.Poll(pfd[:], 0)
	return n > 0 && pfd[0].Revents&(unix.POLLRDHUP|unix.POLLHUP) != 0
}

// Sockopt runs fn on the socket unless the port is closed (a hot upgrade
// duplicates it).
func (p *Port) Sockopt(fn func(fd int) error) error {
	fd, ok := p.fd.Borrow()
	if !ok {
		return net.ErrClosed
	}
	defer p.fd.Return()
	return fn(fd)
}
