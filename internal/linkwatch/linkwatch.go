// Package linkwatch tells a port on a host interface when an interface of
// its name comes or goes: it listens to the kernel's link notifications
// (rtnetlink) in the network namespace it was started in, and runs work
// in that namespace, so a port opened there can be opened there again.
// It does not poll.
package linkwatch

import (
	"fmt"
	"runtime"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Change is one notification about the watched name.
type Change struct {
	Index int  // the interface's index
	Gone  bool // deleted (or renamed away); otherwise it exists now
}

// resubscribeAfter is the pause before listening again when the kernel
// dropped the subscription (its queue overflowed).
const resubscribeAfter = time.Second

// Watcher watches one interface name. C delivers its changes until Close.
type Watcher struct {
	C    <-chan Change
	c    chan Change
	name string
	ns   netns.NsHandle
	stop chan struct{}
	done chan struct{}
}

// New starts watching name in the calling thread's network namespace.
func New(name string) (*Watcher, error) {
	ns, err := netns.Get()
	if err != nil {
		return nil, fmt.Errorf("watch %s: network namespace: %w", name, err)
	}
	c := make(chan Change)
	w := &Watcher{C: c, c: c, name: name, ns: ns, stop: make(chan struct{}), done: make(chan struct{})}
	updates, nlStop, err := w.subscribe(false)
	if err != nil {
		ns.Close()
		return nil, err
	}
	go w.run(updates, nlStop)
	return w, nil
}

// subscribe listens to link notifications; with existing, the kernel
// first lists every interface there is (as if each had just come).
func (w *Watcher) subscribe(existing bool) (chan netlink.LinkUpdate, chan struct{}, error) {
	updates, nlStop := make(chan netlink.LinkUpdate, 16), make(chan struct{})
	err := netlink.LinkSubscribeWithOptions(updates, nlStop, netlink.LinkSubscribeOptions{
		Namespace: &w.ns, ListExisting: existing, ErrorCallback: func(error) {}})
	if err != nil {
		return nil, nil, fmt.Errorf("watch %s: link notifications: %w", w.name, err)
	}
	return updates, nlStop, nil
}

// run forwards the changes of the watched name. netlink's own goroutine
// closes updates once nlStop is closed (or its socket fails); run drains
// it to the end, so that goroutine never outlives the watcher.
func (w *Watcher) run(updates chan netlink.LinkUpdate, nlStop chan struct{}) {
	defer close(w.done)
	for {
		select {
		case <-w.stop:
			close(nlStop)
			for range updates {
			}
			return
		case u, ok := <-updates:
			if !ok {
				// The kernel dropped notifications: listen again, and
				// hear about every interface that exists now.
				close(nlStop)
				if updates, nlStop = w.resubscribe(); updates == nil {
					return
				}
				continue
			}
			if u.Link == nil || u.Link.Attrs().Name != w.name {
				continue
			}
			ch := Change{Index: int(u.Index), Gone: u.Header.Type == unix.RTM_DELLINK}
			select {
			case w.c <- ch:
			case <-w.stop:
				close(nlStop)
				for range updates {
				}
				return
			}
		}
	}
}

// resubscribe tries again each resubscribeAfter until it works or the
// watcher stops (nil then).
func (w *Watcher) resubscribe() (chan netlink.LinkUpdate, chan struct{}) {
	for {
		select {
		case <-w.stop:
			return nil, nil
		case <-time.After(resubscribeAfter):
		}
		if updates, nlStop, err := w.subscribe(true); err == nil {
			return updates, nlStop
		}
	}
}

// Do runs f on an OS thread in the watched namespace: whatever it opens
// there belongs to that namespace.
func (w *Watcher) Do(f func() error) error { return InNamespace(w.ns, f) }

// InNamespace runs f on an OS thread in the network namespace ns.
func InNamespace(ns netns.NsHandle, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// The thread stays locked, and dies with this goroutine, unless it
		// is back in its own namespace.
		orig, err := netns.Get()
		if err != nil {
			errc <- err
			return
		}
		defer orig.Close()
		if !orig.Equal(ns) {
			if err := netns.Set(ns); err != nil {
				errc <- err
				return
			}
		}
		err = f()
		if netns.Set(orig) == nil {
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	return <-errc
}

// Close stops watching and waits until nothing runs for it.
func (w *Watcher) Close() {
	close(w.stop)
	<-w.done
	w.ns.Close()
}
