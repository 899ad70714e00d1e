package capture

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/umlswitch/umlswitch/internal/accept"
	"github.com/umlswitch/umlswitch/internal/ratelog"
	"github.com/umlswitch/umlswitch/internal/unixsock"
)

// readerQueue is how many views (one or a few per writer pass) a live
// reader may be behind before its frames are dropped.
const readerQueue = 256

// readerBytes bounds the bytes queued for one reader. A pass's views hold
// its frames, up to a buffer's worth, so a count of views alone let
// readers that took nothing keep hundreds of them (60 such readers held
// 2.3 GB). Past it the reader's frames are dropped and counted; a view
// still goes into an empty queue whatever its size, so that a reader that
// keeps up loses nothing. Queued views hold their chunks: a reader pins
// its bytes and at most a chunk more at each end.
const readerBytes = 4 << 20

// readerStall is how long a write to a reader may go without taking a byte
// before the reader is disconnected: it would hold its connection and its
// queue for nothing. A variable for tests.
var readerStall = 10 * time.Second

// streamOutput serves live readers on a unix stream socket. Each gets the
// header (with every port described so far) when it joins, then what the
// writer encodes. A reader that falls behind loses frames, counted; one
// that goes away is dropped; while there is none the mirror copies nothing.
type streamOutput struct {
	m    *Mirror
	ln   net.Listener
	join chan *reader
	live []*reader // the writer's own
	wg   sync.WaitGroup

	// Lines a peer can make the listener write as often as it likes.
	refused, failed ratelog.Every
}

type reader struct {
	conn    net.Conn
	ch      chan view
	gone    chan struct{}
	hungUp  chan struct{} // closed when the reader's end closed the connection
	release func()        // gives back what Config.Admit took
	queued  atomic.Int64  // bytes in ch and being written
	dropped uint64        // the writer's own

	mu    sync.Mutex // orders the write deadlines of serve and close
	final time.Time  // guarded by mu: close's deadline, once closing
}

func newStreamOutput(path string, access unixsock.Access, m *Mirror) (*streamOutput, error) {
	if access.UID == 0 && access.GID == 0 {
		access.UID, access.GID = -1, -1 // not set
	}
	if access.Mode == 0 {
		access.Mode = DefaultStreamMode
	}
	ln, err := unixsock.Listen(path, access)
	if err != nil {
		return nil, err
	}
	return listenStream(ln, m), nil
}

// listenStream serves live readers that ln accepts.
func listenStream(ln net.Listener, m *Mirror) *streamOutput {
	o := &streamOutput{m: m, ln: ln, join: make(chan *reader, 16)}
	o.wg.Add(1)
	go o.accept()
	return o
}

func (o *streamOutput) accept() {
	defer o.wg.Done()
	accept.Loop(o.ln.Accept, accept.ShedFrom(o.ln), func(err error) {
		o.failed.Log(o.m.log, slog.LevelWarn, "mirror accept", "mirror", o.m.Name(), "err", err)
	}, o.admit)
}

// admit hands c to the writer as a new reader, if Config.Admit lets it in.
func (o *streamOutput) admit(c net.Conn) {
	release := func() {}
	if admit := o.m.cfg.Admit; admit != nil {
		var err error
		if release, err = admit(c); err != nil {
			o.refused.Log(o.m.log, slog.LevelWarn, "mirror reader refused", "mirror", o.m.Name(), "err", err)
			c.Close()
			return
		}
	}
	r := &reader{conn: c, ch: make(chan view, readerQueue), gone: make(chan struct{}), hungUp: make(chan struct{}),
		release: release}
	// A reader sends nothing; what it sends is read and dropped, and its
	// end of the connection closing is seen at once, not at the next
	// write, which a capture of quiet ports may not make for a long time.
	go func() {
		io.Copy(io.Discard, c)
		close(r.hungUp)
	}()
	o.m.mu.Lock()
	o.m.readers++
	o.m.startBuffer()
	o.m.active.Store(true) // start copying now; the writer adds the reader on its next pass
	o.m.mu.Unlock()
	o.join <- r
	select {
	case o.m.wake <- struct{}{}:
	default:
	}
}

// serve writes a reader's chunks until it goes away, stalls or the mirror
// closes.
func (o *streamOutput) serve(r *reader) {
	defer o.wg.Done()
serving:
	for {
		var v view
		select {
		case got, ok := <-r.ch:
			if !ok {
				break serving
			}
			v = got
		case <-r.hungUp:
			break serving
		}
		err := r.send(v.b)
		r.queued.Add(-int64(len(v.b)))
		v.release()
		if errors.Is(err, errStalled) {
			o.m.log.Info("mirror reader stalled: disconnected", "mirror", o.m.Name(), "idle", readerStall)
		}
		if err != nil {
			break
		}
	}
	r.conn.Close()
	r.release()
	close(r.gone)
	select { // the writer notices, and gives the buffer back if it was the last
	case o.m.wake <- struct{}{}:
	default:
	}
	for v := range r.ch { // the writer closes ch once it sees gone
		v.release()
	}
}

// errStalled is send's error for a reader that took nothing for readerStall.
var errStalled = errors.New("reader stalled")

// send writes b to the reader. A write that times out having written
// something is slow progress and goes on; one that wrote nothing in
// readerStall, or ran past the deadline close set, ends the reader.
func (r *reader) send(b []byte) error {
	for {
		r.mu.Lock()
		closing := !r.final.IsZero()
		deadline := time.Now().Add(readerStall)
		if closing && r.final.Before(deadline) {
			deadline = r.final
		}
		r.conn.SetWriteDeadline(deadline)
		r.mu.Unlock()
		n, err := r.conn.Write(b)
		b = b[n:]
		switch {
		case err == nil:
			return nil
		case !errors.Is(err, os.ErrDeadlineExceeded) || closing:
			return err
		case n == 0:
			return errStalled
		}
	}
}

// finish gives the reader until deadline to take what it is owed.
func (r *reader) finish(deadline time.Time) {
	r.mu.Lock()
	r.final = deadline
	r.conn.SetWriteDeadline(deadline)
	r.mu.Unlock()
}

// write is called by the writer goroutine only.
func (o *streamOutput) write(v *view, frames int, hdr []byte) error {
	if v != nil {
		hdr = hdr[:v.hdrBefore] // v describes the ports it adds
	}
	for {
		select {
		case r := <-o.join:
			r.queued.Add(int64(len(hdr)))
			r.ch <- view{b: hdr}
			o.live = append(o.live, r)
			o.wg.Add(1)
			go o.serve(r)
			o.m.log.Info("mirror reader joined", "mirror", o.m.Name())
			continue
		default:
		}
		break
	}
	live := o.live[:0]
	for _, r := range o.live {
		select {
		case <-r.gone:
			close(r.ch)
			o.m.log.Info("mirror reader left", "mirror", o.m.Name(), "dropped", r.dropped)
			o.left()
			continue
		default:
		}
		if v != nil && len(v.b) > 0 && !r.offer(v) {
			r.dropped += uint64(frames)
		}
		live = append(live, r)
	}
	o.live = live
	return nil
}

// left counts a reader gone; after the last one the mirror stops copying
// and drops its buffer. The writer goroutine only.
func (o *streamOutput) left() {
	o.m.mu.Lock()
	defer o.m.mu.Unlock()
	if o.m.readers--; o.m.readers == 0 {
		o.m.active.Store(false)
		o.m.dropBuffer()
	}
}

// offer queues v's bytes for the reader, with a hold on its chunk,
// unless its queue is full, in views or in bytes. The writer goroutine
// only.
func (r *reader) offer(v *view) bool {
	n := int64(len(v.b))
	if q := r.queued.Load(); q > 0 && q+n > readerBytes {
		return false
	}
	r.queued.Add(n) // before serve can take it and subtract
	v.hold()
	select {
	case r.ch <- view{c: v.c, b: v.b}:
		return true
	default:
		v.release()
		r.queued.Add(-n)
		return false
	}
}

// close stops accepting, gives every reader the trailer and what it is
// still owed (a second at most), and removes the socket file.
func (o *streamOutput) close(trailer []byte) error {
	err := o.ln.Close()
	for _, r := range o.live {
		select {
		case <-r.gone:
		default:
			if len(trailer) > 0 {
				select {
				case r.ch <- view{b: trailer}:
				default:
				}
			}
		}
		r.finish(time.Now().Add(time.Second))
		close(r.ch)
		o.m.log.Info("mirror reader left", "mirror", o.m.Name(), "dropped", r.dropped)
	}
	o.live = nil
	o.wg.Wait()
	for {
		select {
		case r := <-o.join: // joined after the writer's last pass
			r.conn.Close()
			r.release()
			continue
		default:
		}
		break
	}
	return err
}
