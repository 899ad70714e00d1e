package portkind

import (
	"errors"
	"net"
	"sync/atomic"
	"time"

	"github.com/umlswitch/umlswitch/configs"
	"github.com/umlswitch/umlswitch/fabric"
	"github.com/umlswitch/umlswitch/frame"
	"github.com/umlswitch/umlswitch/internal/handover"
	"github.com/umlswitch/umlswitch/internal/linkwatch"
)

// Vanishing is a port whose host interface can go away under it (ip link
// del): Gone delivers, once, what showed that it went (a read or write
// that found it gone). Its readers then end as if it were closed. Host
// trusts Gone over the kernel's notices that the name left the namespace.
type Vanishing interface {
	Gone() <-chan error
	// Closed reports whether the port was closed: a tap the port created
	// goes away when it closes (the switch shutting down), which is no
	// loss.
	Closed() bool
}

// Absentee is a Registry that keeps a configured port listed while its
// interface is gone: Absent says the port is detached for that reason,
// until the next Attach.
type Absentee interface {
	Absent(reason string)
}

// Host is the Open of a kind whose one port sits on a host interface that
// may vanish and come back (tap, raw), as Open vSwitch treats one: the
// port stays configured. When the interface goes (a netlink notice, or
// the port's own Vanishing report), the port is detached and said absent
// (env.Registry's Absentee, one warning in the log); when an interface of
// that name exists again, open opens it again and it is attached. open
// runs again right after a loss too, so a port whose options create its
// interface creates it again. The first open's error is Open's, except in
// the new switch of a hot upgrade while the old one still runs: a port
// whose interface does not exist, or that the old switch holds (ErrHeld),
// starts absent there instead of failing the upgrade.
func Host[O any, P fabric.Port](ifname func(o *O) string, open func(o *O, env Env) (P, error),
	receivers func(p P, id frame.PortID) []fabric.Receiver) func(configs.Options, Env) (Opened, error) {
	return func(o configs.Options, env Env) (Opened, error) {
		opts := o.(*O)
		w, err := linkwatch.New(ifname(opts)) // first: no change after the open is missed
		if err != nil {
			return nil, err
		}
		h := &hostPort[P]{env: env, ifname: ifname(opts), w: w, stop: make(chan struct{}), done: make(chan struct{}),
			open:      func() (P, error) { return open(opts, env) },
			receivers: receivers}
		p, err := open(opts, env)
		if err == nil {
			err = h.attach(p)
		}
		switch {
		case err == nil || !handover.PredecessorRunning():
		case errors.Is(err, ErrHeld):
			// The old switch of this upgrade holds it to the end (an XDP
			// program and its queues): absent until that switch has gone.
			h.predecessor = handover.PredecessorGone()
			env.Logger.Info("port waits for the switch this one takes over from to let go of it",
				"ifname", h.ifname, "why", err)
			h.absent("held by the switch this one takes over from until it has gone")
			err = nil
		case !h.exists():
			// Gone under the old switch, which kept the port absent: so
			// does this one, rather than fail the upgrade.
			env.Logger.Warn("port absent: its interface does not exist; it is attached when one of that name exists",
				"ifname", h.ifname, "err", err)
			h.absent("no interface of that name")
			err = nil
		}
		if err != nil {
			w.Close()
			return nil, err
		}
		go h.run()
		return h, nil
	}
}

// ErrHeld is what a kind's open error wraps (Held) when another process
// holds what the port needs. In the new switch of a hot upgrade that
// process may be the old switch, which lets go only when it exits: the
// port then starts absent and is opened once the old switch has gone.
var ErrHeld = errors.New("held by another process")

// Held marks err as ErrHeld, its message unchanged.
func Held(err error) error { return held{err} }

type held struct{ error }

func (e held) Is(target error) bool { return target == ErrHeld }
func (e held) Unwrap() error        { return e.error }

// heldRetries and heldRetryEvery bound how long a port held by the old
// switch is tried again after it has gone: what it held is let go of a
// moment after its exit at the latest (an AF_XDP socket's buffers are
// freed by the kernel's deferred work).
const (
	heldRetries    = 20
	heldRetryEvery = 100 * time.Millisecond
)

// hostPort supervises one port on a host interface. Its goroutine alone
// attaches and detaches after the first attach.
type hostPort[P fabric.Port] struct {
	env       Env
	ifname    string
	w         *linkwatch.Watcher
	open      func() (P, error)
	receivers func(p P, id frame.PortID) []fabric.Receiver
	stop      chan struct{}
	done      chan struct{}

	port     fabric.Port  // nil while absent
	current  atomic.Value // port, for HandOver on another goroutine (a holder: nil is not storable)
	gone     <-chan error
	attempts int // failed opens this absence: only the first is a warning
	// predecessor, while the old switch of an upgrade holds the port, is
	// closed once it has gone; heldTries counts the opens tried since.
	predecessor <-chan struct{}
	retry       <-chan time.Time
	heldTries   int
}

func (h *hostPort[P]) attach(p P) error {
	id, err := h.env.Registry.Attach(p)
	if err != nil {
		p.Close()
		return err
	}
	h.port, h.gone, h.attempts = p, nil, 0
	h.current.Store(portHolder{p})
	if v, ok := fabric.Port(p).(Vanishing); ok {
		h.gone = v.Gone()
	}
	for _, r := range h.receivers(p, id) {
		h.env.Registry.Serve(r)
	}
	return nil
}

func (h *hostPort[P]) run() {
	defer close(h.done)
	for {
		select {
		case <-h.stop:
			return
		case err := <-h.gone:
			h.lose(err.Error())
		case <-h.predecessor:
			h.predecessor = nil
			h.openHeld()
		case <-h.retry:
			h.retry = nil
			h.openHeld()
		case c := <-h.w.C:
			switch {
			case c.Gone && h.port != nil && h.gone == nil:
				// A port that reports its own loss is trusted instead: a
				// tap moved to another namespace leaves this one, yet its
				// descriptor still works.
				h.lose("interface deleted")
			case !c.Gone && h.port == nil:
				h.reopen()
			}
		}
	}
}

// openHeld opens the port the old switch held, now that it has gone,
// trying again a while if it is still held.
func (h *hostPort[P]) openHeld() {
	if h.port != nil {
		return
	}
	err := h.openAttach()
	switch {
	case err == nil:
		h.env.Logger.Info("port opened: the old switch has let go of it", "ifname", h.ifname)
	case errors.Is(err, ErrHeld) && h.heldTries < heldRetries:
		h.heldTries++
		h.retry = time.After(heldRetryEvery)
	default:
		h.env.Logger.Warn("port absent: opening it after the old switch had gone failed", "ifname", h.ifname, "err", err)
	}
}

// lose detaches the port, says so once, and opens it again at once in
// case its options create the interface.
func (h *hostPort[P]) lose(reason string) {
	if h.port == nil {
		return
	}
	if v, ok := h.port.(Vanishing); ok && v.Closed() {
		h.port, h.gone = nil, nil // its owner closed it: Close follows
		return
	}
	h.env.Registry.Detach(h.port)
	h.port, h.gone = nil, nil
	h.current.Store(portHolder{})
	h.env.Logger.Warn("port absent: its interface is gone; it is attached again when one of that name exists",
		"ifname", h.ifname, "reason", reason)
	h.absent(reason)
	h.reopen()
}

// absent says the port is absent (env.Registry's Absentee), for reason.
func (h *hostPort[P]) absent(reason string) {
	if a, ok := h.env.Registry.(Absentee); ok {
		a.Absent(reason)
	}
}

// exists reports whether an interface of the port's name exists.
func (h *hostPort[P]) exists() bool {
	return h.w.Do(func() error {
		_, err := net.InterfaceByName(h.ifname)
		return err
	}) == nil
}

// openAttach opens the port in the namespace it was first opened in, and
// attaches it.
func (h *hostPort[P]) openAttach() error {
	var p P
	err := h.w.Do(func() (err error) {
		p, err = h.open()
		return err
	})
	if err != nil {
		return err
	}
	return h.attach(p)
}

// reopen opens the port again in the namespace it was first opened in.
func (h *hostPort[P]) reopen() {
	err := h.openAttach()
	if err == nil {
		h.env.Logger.Info("port present again", "ifname", h.ifname)
		return
	}
	if h.attempts++; h.attempts == 2 { // the first follows the loss itself, and usually finds nothing
		h.env.Logger.Warn("port absent: reopening failed", "ifname", h.ifname, "err", err)
	} else {
		h.env.Logger.Debug("port absent: reopening failed", "ifname", h.ifname, "err", err)
	}
}

type portHolder struct{ p fabric.Port }

// HandOver is the attached port's, if it can hand over (a hot upgrade).
func (h *hostPort[P]) HandOver() []handover.Item {
	held, _ := h.current.Load().(portHolder)
	if ho, ok := held.p.(interface{ HandOver() []handover.Item }); ok {
		return ho.HandOver()
	}
	return nil
}

// Close stops watching and detaches the port if it is attached.
func (h *hostPort[P]) Close() error {
	close(h.stop)
	<-h.done
	h.w.Close()
	if h.port != nil {
		h.env.Registry.Detach(h.port)
		h.port = nil
	}
	return nil
}
