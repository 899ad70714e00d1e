package instance

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync/atomic"

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
	// readers counts those handed to ln and not gone: the mirror takes a
	// reader in on its own goroutine, and until then it looks idle
	// (Active), but must not be dropped for another capture.
	readers atomic.Int32
}

// LiveSelect narrows a live capture: to the ports named (whole names;
// none: every port) and to one direction ("in", "out"; "" or "both":
// both). Readers that ask the same share one mirror.
type LiveSelect struct {
	Ports []string
	Dir   string
}

func (s LiveSelect) key() string {
	dir := s.Dir
	if dir == "both" {
		dir = ""
	}
	return dir + "|" + strings.Join(slices.Sorted(slices.Values(s.Ports)), ",")
}

// maxLiveSelections bounds the narrowed live captures a switch keeps (a
// mirror each); past it an idle one is dropped, or the request refused.
const maxLiveSelections = 16

// Capture hands c, whose HTTP response header has been written, to switch
// sw's live capture: it gets a pcapng stream of every port until it goes
// away or the switch does.
func (in *Instance) Capture(sw string, c net.Conn) error {
	return in.CaptureSelected(sw, LiveSelect{}, c)
}

// CaptureSelected is Capture of the frames sel selects.
func (in *Instance) CaptureSelected(sw string, sel LiveSelect, c net.Conn) error {
	in.mu.Lock()
	s := in.switchNamed(sw)
	if s == nil {
		in.mu.Unlock()
		return fmt.Errorf("switch %s: %w", sw, ErrNotFound)
	}
	key := sel.key()
	live := s.lives[key]
	var idle *liveCapture
	if live == nil {
		evict, err := s.liveRoom(key)
		if err != nil {
			in.mu.Unlock()
			return err
		}
		if evict != "" {
			idle = s.lives[evict]
			delete(s.lives, evict)
		}
	}
	if live == nil {
		ln := connq.New("switch " + sw)
		live = &liveCapture{ln: ln}
		gone := func() { live.readers.Add(-1) }
		m, err := capture.New(capture.Config{Listener: ln, Ring: liveRing, Logger: in.log, Ports: sel.Ports, ExactPorts: true, Dir: sel.Dir,
			Admit: func(net.Conn) (func(), error) { return gone, nil }})
		if err != nil {
			in.mu.Unlock()
			return err
		}
		live.m = m
		if s.lives == nil {
			s.lives = make(map[string]*liveCapture)
		}
		s.lives[key] = live
		s.core.AddMirror(m)
	}
	live.readers.Add(1) // before in.mu goes: liveRoom sees it
	in.mu.Unlock()
	if idle != nil {
		s.core.RemoveMirror(idle.m)
		idle.close()
	}
	if !live.ln.Deliver(c) {
		live.readers.Add(-1)
		return errors.New("capture closed")
	}
	return nil
}

// CaptureRoom says whether CaptureSelected(sw, sel, ...) would find room
// for sel now, so that a refusal can be answered before the connection is
// handed over (an answer that may be out of date when it comes).
func (in *Instance) CaptureRoom(sw string, sel LiveSelect) error {
	in.mu.Lock()
	defer in.mu.Unlock()
	s := in.switchNamed(sw)
	if s == nil {
		return fmt.Errorf("switch %s: %w", sw, ErrNotFound)
	}
	if s.lives[sel.key()] != nil {
		return nil
	}
	_, err := s.liveRoom(sel.key())
	return err
}

// liveRoom says whether s may make a live capture for key, one it has not:
// yes while it has fewer than maxLiveSelections narrowed ones, or by
// dropping evict, one no one reads nor is joining. Caller holds in.mu.
func (s *switchState) liveRoom(key string) (evict string, err error) {
	whole := (LiveSelect{}).key()
	narrowed := len(s.lives)
	if _, ok := s.lives[whole]; ok {
		narrowed--
	}
	if key == whole || narrowed < maxLiveSelections {
		return "", nil
	}
	for k, l := range s.lives {
		if k != whole && l.readers.Load() == 0 {
			return k, nil
		}
	}
	return "", fmt.Errorf("switch %s: %d captures of other ports or directions are being read: %w", s.name, maxLiveSelections, ErrBusy)
}

// ErrBusy is a request refused for what others hold now.
var ErrBusy = errors.New("busy")

func (l *liveCapture) close() { l.m.Close() }
