package accept

import (
	"encoding/json"
	"os"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/umlswitch/umlswitch/internal/handover"
	"github.com/umlswitch/umlswitch/internal/pollfd"
)

// handed is what a listener hands over of one connection: who its peer is.
type handed struct {
	UID   uint32 `json:"uid"`
	Label string `json:"label"`
}

// handoverKind names the connections of this listener in a hot upgrade.
func (l *Listener[P]) handoverKind() string { return "accepted " + l.cfg.Kind + " " + l.cfg.Addr }

// HandOver gives a new switch process (a hot upgrade) a duplicate of every
// connection's socket, with its peer's uid and name: the new switch makes
// each a port again (see Start), and the peers never see the switch go.
func (l *Listener[P]) HandOver() []handover.Item {
	l.mu.Lock()
	defer l.mu.Unlock()
	var items []handover.Item
	n := 0
	for p, c := range l.live {
		var f *os.File
		p.Sockopt(func(fd int) error {
			nfd, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
			if err == nil {
				f = os.NewFile(uintptr(nfd), p.Name())
			}
			return err
		})
		if f == nil {
			continue // closed meanwhile
		}
		meta, _ := json.Marshal(handed{UID: c.uid, Label: c.label})
		n++
		items = append(items, handover.Item{Kind: l.handoverKind(), Key: strconv.Itoa(n), Meta: meta, File: f})
	}
	return items
}

// adopt makes a port of every connection an old switch handed over for
// this listener, as if it had just been accepted.
func (l *Listener[P]) adopt() {
	for _, it := range handover.All(l.handoverKind()) {
		var h handed
		json.Unmarshal(it.Meta, &h)
		fd, ok := it.Descriptor()
		if !ok {
			continue
		}
		l.cfg.Clients.Acquire(h.UID) // admitted before: over a bound now or not, it stays
		l.serve(fd, h.Label, h.UID)
	}
}

// HandOverListener is the listening socket ln, bound at path, as a hot
// upgrade hands it over (see unixsock.ListenPath).
func HandOverListener(ln *pollfd.FD, path string) []handover.Item {
	f, ok := ln.DupFile("listener " + path)
	if !ok {
		return nil
	}
	return []handover.Item{{Kind: handover.Listener, Key: path, File: f}}
}
