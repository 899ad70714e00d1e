package fabric

import (
	"slices"

	"github.com/umlswitch/umlswitch/frame"
)

// Direction says whether a mirrored frame was entering or leaving a port.
type Direction uint8

const (
	DirIn  Direction = 1 // received on the port
	DirOut Direction = 2 // handed to the port's Write, which took it
)

// Mirror sees the frames that cross the switch: each valid frame as it
// enters its port, and each frame a port's Write took, as it leaves. It is
// called from every reader goroutine at once; it must neither block nor
// keep f.
type Mirror interface {
	Frame(port frame.PortID, name string, dir Direction, f []byte)
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

// AddMirror starts showing frames to m.
func (s *Switch) AddMirror(m Mirror) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var next []Mirror
	if cur := s.mirrors.Load(); cur != nil {
		next = slices.Clone(*cur)
	}
	next = append(next, m)
	s.mirrors.Store(&next)
}

// RemoveMirror stops showing frames to m. Readers that loaded the old list
// may still show it the rest of their batch.
func (s *Switch) RemoveMirror(m Mirror) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur := s.mirrors.Load()
	if cur == nil {
		return
	}
	next := slices.DeleteFunc(slices.Clone(*cur), func(x Mirror) bool { return x == m })
	if len(next) == 0 {
		s.mirrors.Store(nil)
		return
	}
	s.mirrors.Store(&next)
}

// mirrorAll shows f to every mirror.
func mirrorAll(ms []Mirror, e *portEntry, dir Direction, f []byte) {
	for _, m := range ms {
		m.Frame(e.id, e.name, dir, f)
	}
}
