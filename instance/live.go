package instance

import (
	"errors"
	"fmt"
	"net"

	"github.com/umlswitch/umlswitch/capture"
	"github.com/umlswitch/umlswitch/internal/connq"
)

// liveRing is the buffer of a switch's live capture: readers of the API's
// capture stream are people watching, so it is smaller than a file
// mirror's, and it is held only while someone watches (capture.Mirror
// allocates it for the first reader and drops it after the last).
const liveRing = 2 << 20

// liveCapture is a switch's capture for the API's readers: a stream mirror
// fed with the connections the API hands over.
type liveCapture struct {
	m  *capture.Mirror
	ln *connq.Listener
}

// Capture hands c, whose HTTP response header has been written, to switch
// sw's live capture: it gets a pcapng stream of every port until it goes
// away or the switch does.
func (in *Instance) Capture(sw string, c net.Conn) error {
	in.mu.Lock()
	s := in.switchNamed(sw)
	if s == nil {
		in.mu.Unlock()
		return fmt.Errorf("switch %s: %w", sw, ErrNotFound)
	}
	live := s.live
	if live == nil {
		ln := connq.New("switch " + sw)
		m, err := capture.New(capture.Config{Listener: ln, Ring: liveRing, Logger: in.log})
		if err != nil {
			in.mu.Unlock()
			return err
		}
		live = &liveCapture{m: m, ln: ln}
		s.live = live
		s.core.AddMirror(m)
	}
	in.mu.Unlock()
	if !live.ln.Deliver(c) {
		return errors.New("capture closed")
	}
	return nil
}

func (l *liveCapture) close() { l.m.Close() }
