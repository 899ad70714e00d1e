package instance

import (
	"sync"
	"sync/atomic"
	"time"
)

// Event is one thing that happened, as the event stream shows it (one JSON
// object per line).
type Event struct {
	Time     time.Time         `json:"time"`
	Type     string            `json:"type"` // see the README's list
	Switch   string            `json:"switch,omitempty"`
	Port     string            `json:"port,omitempty"`
	Kind     string            `json:"kind,omitempty"`
	Peer     string            `json:"peer,omitempty"`
	Path     string            `json:"path,omitempty"`
	MAC      string            `json:"mac,omitempty"`
	VLAN     int               `json:"vlan,omitempty"`
	Count    uint64            `json:"count,omitempty"` // drops: new this second; mac-suppressed: events left out; port-detached: drops in all
	RxFrames uint64            `json:"rx_frames,omitempty"`
	TxFrames uint64            `json:"tx_frames,omitempty"`
	Drops    map[string]uint64 `json:"drops,omitempty"` // drops: totals by reason
	Error    string            `json:"error,omitempty"`
	Detail   string            `json:"detail,omitempty"`
}

// subscriberQueue is how many events a reader may be behind; beyond it its
// events are dropped and counted, never waited for. Small: every
// subscriber's queue fills when it stops reading, and 3,000 idle
// subscribers with 1,024 each took a switch from 165 MB to 1.29 GB. A
// reader that keeps up needs few (MAC events are limited to 100 a second).
const subscriberQueue = 128

// Events fans events out to subscribers. Publishing never blocks.
type Events struct {
	mu     sync.Mutex
	subs   map[*Subscription]struct{}
	n      atomic.Int32 // len(subs), read without the lock on hot paths
	closed bool
}

// Subscription is one reader of the stream.
type Subscription struct {
	C       <-chan Event // closed when the instance closes or Cancel is called
	c       chan Event
	dropped atomic.Uint64
	ev      *Events
}

func newEvents() *Events { return &Events{subs: make(map[*Subscription]struct{})} }

// Subscribe starts a reader.
func (e *Events) Subscribe() *Subscription {
	c := make(chan Event, subscriberQueue)
	s := &Subscription{C: c, c: c, ev: e}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		close(c)
		return s
	}
	e.subs[s] = struct{}{}
	e.n.Store(int32(len(e.subs)))
	return s
}

// Cancel stops the reader.
func (s *Subscription) Cancel() {
	e := s.ev
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, ok := e.subs[s]; ok {
		delete(e.subs, s)
		e.n.Store(int32(len(e.subs)))
		close(s.c)
	}
}

// Dropped is how many events this reader lost by falling behind.
func (s *Subscription) Dropped() uint64 { return s.dropped.Load() }

// listened reports whether anyone reads events now.
func (e *Events) listened() bool { return e.n.Load() > 0 }

func (e *Events) publish(ev Event) {
	if !e.listened() {
		return
	}
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for s := range e.subs {
		select {
		case s.c <- ev:
		default:
			s.dropped.Add(1)
		}
	}
}

func (e *Events) close() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.closed = true
	for s := range e.subs {
		close(s.c)
	}
	clear(e.subs)
	e.n.Store(0)
}
