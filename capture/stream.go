package capture

import (
	"errors"
	"net"
	"sync"
	"time"

	"github.com/umlswitch/umlswitch/internal/unixsock"
)

// readerQueue is how many chunks (one per writer pass) a live reader may
// be behind before its frames are dropped.
const readerQueue = 256

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
}

type reader struct {
	conn    net.Conn
	ch      chan []byte
	gone    chan struct{}
	dropped uint64 // the writer's own
}

func newStreamOutput(path string, access unixsock.Access, m *Mirror) (*streamOutput, error) {
	ln, err := unixsock.Listen(path)
	if err != nil {
		return nil, err
	}
	if access.UID == 0 && access.GID == 0 {
		access.UID, access.GID = -1, -1 // not set
	}
	if err := access.Apply(path); err != nil {
		ln.Close()
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
	for {
		c, err := o.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			o.m.log.Warn("mirror accept", "err", err)
			time.Sleep(100 * time.Millisecond)
			continue
		}
		if cr, ok := c.(interface{ CloseRead() error }); ok {
			cr.CloseRead()
		}
		r := &reader{conn: c, ch: make(chan []byte, readerQueue), gone: make(chan struct{})}
		o.join <- r
		o.m.active.Store(true) // start copying now; the writer adds the reader on its next pass
		select {
		case o.m.wake <- struct{}{}:
		default:
		}
	}
}

// serve writes a reader's chunks until it goes away or the mirror closes.
func (o *streamOutput) serve(r *reader) {
	defer o.wg.Done()
	for chunk := range r.ch {
		if _, err := r.conn.Write(chunk); err != nil {
			break
		}
	}
	r.conn.Close()
	close(r.gone)
	for range r.ch { // the writer closes ch once it sees gone
	}
}

// write is called by the writer goroutine only.
func (o *streamOutput) write(chunk []byte, frames int, hdr []byte) error {
	for {
		select {
		case r := <-o.join:
			r.ch <- hdr
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
			continue
		default:
		}
		if len(chunk) > 0 {
			select {
			case r.ch <- chunk:
			default:
				r.dropped += uint64(frames)
			}
		}
		live = append(live, r)
	}
	o.live = live
	if len(o.live) == 0 && len(o.join) == 0 {
		o.m.active.Store(false)
	}
	return nil
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
				case r.ch <- trailer:
				default:
				}
			}
		}
		r.conn.SetWriteDeadline(time.Now().Add(time.Second))
		close(r.ch)
	}
	o.live = nil
	o.wg.Wait()
	for {
		select {
		case r := <-o.join: // joined after the writer's last pass
			r.conn.Close()
			continue
		default:
		}
		break
	}
	return err
}
