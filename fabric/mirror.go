package fabric

import (
	"slices"
	"sync"
	"sync/atomic"

	"github.com/umlswitch/umlswitch/frame"
)

// Direction says whether a mirrored frame was entering or leaving a port.
type Direction uint8

const (
	DirIn  Direction = 1 // received on the port
	DirOut Direction = 2 // handed to the port's Write, which took it
)

// Mirror sees the frames that cross the switch: each valid frame as it
// enters its port, and each frame a port's Write took, as it leaves, in
// runs of one port and direction (a batch's worth at a time, so a mirror
// pays its locking and its clock once per run). It is called from every
// reader goroutine at once; it must neither block nor keep frames.
type Mirror interface {
	Frames(port frame.PortID, name string, dir Direction, frames [][]byte)
}

// activeMirror is a mirror that is idle at times (a live stream with no
// reader); while every mirror is idle forwarding does not call them.
type activeMirror interface{ Active() bool }

// anyActive reports whether some mirror of ms wants frames now.
func anyActive(ms []Mirror) bool {
	for _, m := range ms {
		if a, ok := m.(activeMirror); !ok || a.Active() {
			return true
		}
	}
	return false
}

// mirrorList is a switch's mirrors: nil when nothing captures, so
// forwarding pays one load.
type mirrorList struct {
	mu  sync.Mutex
	cur atomic.Pointer[[]Mirror]
}

// active returns the mirrors, or nil when none wants frames now.
func (l *mirrorList) active() []Mirror {
	if ms := l.cur.Load(); ms != nil && anyActive(*ms) {
		return *ms
	}
	return nil
}

func (l *mirrorList) add(m Mirror) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var next []Mirror
	if cur := l.cur.Load(); cur != nil {
		next = slices.Clone(*cur)
	}
	next = append(next, m)
	l.cur.Store(&next)
}

func (l *mirrorList) remove(m Mirror) {
	l.mu.Lock()
	defer l.mu.Unlock()
	cur := l.cur.Load()
	if cur == nil {
		return
	}
	next := slices.DeleteFunc(slices.Clone(*cur), func(x Mirror) bool { return x == m })
	if len(next) == 0 {
		l.cur.Store(nil)
		return
	}
	l.cur.Store(&next)
}

// AddMirror starts showing the switch's frames to m.
func (d *Switch) AddMirror(m Mirror) { d.mirrors.add(m) }

// RemoveMirror stops showing frames to m. Readers that loaded the old list
// may still show it the rest of their batch.
func (d *Switch) RemoveMirror(m Mirror) { d.mirrors.remove(m) }

// AddMirror starts showing the default switch's frames to m.
func (s *Fabric) AddMirror(m Mirror) { s.def.AddMirror(m) }

// RemoveMirror stops showing the default switch's frames to m.
func (s *Fabric) RemoveMirror(m Mirror) { s.def.RemoveMirror(m) }

// mirrorAll shows frames, of e in direction dir, to every mirror.
func mirrorAll(ms []Mirror, e *portEntry, dir Direction, frames [][]byte) {
	for _, m := range ms {
		m.Frames(e.id, e.name, dir, frames)
	}
}

// flushMirrored shows the frames that entered e, gathered by forward, to
// the mirrors of e's switch.
func (f *forwarder) flushMirrored(e *portEntry) {
	if len(f.mirrored) > 0 {
		mirrorAll(f.mirrors, e, DirIn, f.mirrored)
		clear(f.mirrored) // the vector's buffers are not the forwarder's to hold
		f.mirrored = f.mirrored[:0]
	}
}
