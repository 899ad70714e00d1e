package bench

import (
	"encoding/binary"
	"net"
	"sync"
	"sync/atomic"

	"github.com/umlswitch/umlswitch/frame"
	"github.com/umlswitch/umlswitch/internal/accept"
	"github.com/umlswitch/umlswitch/internal/unixsock"
)

// streamRelay is the relay's own listener for QEMU's stream framing (a
// relay -port transport=stream,path=P): the ceiling of a stream port, with
// none of umlswitch's port machinery. Each connection's reader reads what
// is there into one buffer, finds the whole records in it, and writes them
// on, depth records at a time, in one write each, straight from that
// buffer: to the connection that owns the first record's destination, or
// to every other connection. Nothing is copied into frame vectors, nothing
// is learned past each run's first source, and a write waits for the
// destination to take it all, so that no record is ever cut.
type streamRelay struct {
	hub      bool
	depth    int
	maxFrame int
	ln       *unixsock.Listener

	mu     sync.Mutex
	closed bool
	conns  atomic.Pointer[[]*streamConn]
	owner  sync.Map // frame.MAC -> *streamConn, from each run's first source
	wg     sync.WaitGroup
}

// streamConn is one connection; writers take wmu so that runs from
// several readers never interleave.
type streamConn struct {
	c   *net.UnixConn
	wmu sync.Mutex
}

func (c *streamConn) write(b []byte) {
	c.wmu.Lock()
	c.c.Write(b) // all of it, or the connection is gone
	c.wmu.Unlock()
}

// listenStreamRelay listens on path and relays between whoever connects.
func listenStreamRelay(path string, hub bool, depth, maxFrame int) (*streamRelay, error) {
	ln, err := unixsock.Listen(path, unixsock.NoOwner)
	if err != nil {
		return nil, err
	}
	r := &streamRelay{hub: hub, depth: depth, maxFrame: maxFrame, ln: ln}
	r.conns.Store(&[]*streamConn{})
	r.wg.Add(1)
	go r.accept()
	return r, nil
}

func (r *streamRelay) accept() {
	defer r.wg.Done()
	accept.Loop(r.ln.AcceptUnix, accept.ShedFrom(r.ln), func(error) {}, r.add) // a relay for measurements logs nothing
}

// add relays c's frames from now on, unless the relay is closing.
func (r *streamRelay) add(c *net.UnixConn) {
	sc := &streamConn{c: c}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		c.Close()
		return
	}
	conns := append(append([]*streamConn(nil), *r.conns.Load()...), sc)
	r.conns.Store(&conns)
	r.mu.Unlock()
	r.wg.Add(1)
	go r.serve(sc)
}

// serve relays what in sends until it closes or goes out of step (a
// length past the largest frame).
func (r *streamRelay) serve(in *streamConn) {
	defer r.wg.Done()
	defer r.drop(in)
	buf := make([]byte, max(64<<10, 2*(streamPrefix+r.maxFrame)))
	rd, wr := 0, 0
	for {
		n, err := in.c.Read(buf[wr:])
		if n <= 0 {
			if err == nil {
				continue
			}
			return
		}
		wr += n
		for {
			end, count := rd, 0
			var first []byte
			for count < r.depth && wr-end >= streamPrefix {
				size := int(binary.BigEndian.Uint32(buf[end:]))
				if size > r.maxFrame {
					return
				}
				if wr-end < streamPrefix+size {
					break
				}
				if count == 0 {
					first = buf[end+streamPrefix : end+streamPrefix+size]
				}
				end += streamPrefix + size
				count++
			}
			if count == 0 {
				break
			}
			r.relay(in, buf[rd:end], first)
			rd = end
		}
		switch {
		case rd == wr:
			rd, wr = 0, 0
		case len(buf)-wr < streamPrefix+r.maxFrame: // make room for a whole record after the cut one
			wr = copy(buf, buf[rd:wr])
			rd = 0
		}
	}
}

// relay writes recs, whole records that came in on in, to the owner of
// the first one's destination, or to every other connection.
func (r *streamRelay) relay(in *streamConn, recs, first []byte) {
	if len(first) >= 12 {
		src, dst := frame.SrcMAC(first), frame.DstMAC(first)
		if _, ok := r.owner.Load(src); !ok {
			r.owner.Store(src, in)
		}
		if !r.hub && !dst.IsMulticast() {
			if c, ok := r.owner.Load(dst); ok {
				c.(*streamConn).write(recs)
				return
			}
		}
	}
	for _, c := range *r.conns.Load() {
		if c != in {
			c.write(recs)
		}
	}
}

// drop forgets a connection that ended.
func (r *streamRelay) drop(c *streamConn) {
	c.c.Close()
	r.mu.Lock()
	defer r.mu.Unlock()
	var conns []*streamConn
	for _, x := range *r.conns.Load() {
		if x != c {
			conns = append(conns, x)
		}
	}
	r.conns.Store(&conns)
	r.owner.Range(func(k, v any) bool {
		if v == c {
			r.owner.Delete(k)
		}
		return true
	})
}

// Close stops listening, ends every connection and waits for the readers.
func (r *streamRelay) Close() {
	r.ln.Close()
	r.mu.Lock()
	r.closed = true
	for _, c := range *r.conns.Load() {
		c.c.Close()
	}
	r.mu.Unlock()
	r.wg.Wait()
}
