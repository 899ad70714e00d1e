package instance

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/umlswitch/umlswitch/transports/portkind"

	"github.com/umlswitch/umlswitch/configs"
	"github.com/umlswitch/umlswitch/fabric"
	"github.com/umlswitch/umlswitch/frame"
	"github.com/umlswitch/umlswitch/impair"
	"github.com/umlswitch/umlswitch/internal/peercred"
	"github.com/umlswitch/umlswitch/policy"
)

// AddPort opens the port spec describes on switch sw and returns its name:
// spec's name=, or the kind and the first free number (tap0, daemon1). It
// is a change made at run time: the run state keeps it (runstate.go).
func (in *Instance) AddPort(sw string, spec configs.Port) (string, error) {
	return in.addPort(sw, spec, nil, true)
}

// addPort is AddPort on behalf of as (nil: the switch itself); runtime
// marks a change made through the API, not by the configuration.
func (in *Instance) addPort(sw string, spec configs.Port, as *peercred.Cred, runtime bool) (string, error) {
	in.mu.Lock()
	if in.closed {
		in.mu.Unlock()
		return "", fmt.Errorf("port %s: shutting down", spec)
	}
	s := in.switchNamed(sw)
	if s == nil {
		in.mu.Unlock()
		return "", fmt.Errorf("switch %s: %w", sw, ErrNotFound)
	}
	name := spec.Name
	if name == "" {
		name = in.newName(spec.Transport, 0, in.portTaken)
	} else if in.portTaken(name) {
		in.mu.Unlock()
		return "", fmt.Errorf("port %s: %w", name, ErrExists)
	}
	spec.Switch = ""
	ps := &portState{name: name, kind: spec.Transport, sw: s, spec: spec, listener: portkind.Listens(spec), id: frame.NoPort,
		runtime: runtime, as: as, linkDown: policy.Of(spec).LinkDown}
	ps.ap = &attachPoint{in: in, ps: ps}
	if ps.listener {
		ps.clients = make(map[fabric.Port]*portState)
	}
	in.ports[name] = ps // reserved while it opens
	in.mu.Unlock()

	d := in.defaults()
	d.Handoff = in.handoff(ps)
	opened, err := in.set.Open(spec, ps.ap, d)
	in.mu.Lock()
	if err == nil && in.closed {
		in.mu.Unlock()
		opened.Close()
		return "", fmt.Errorf("port %s: shutting down", name)
	}
	if err != nil {
		delete(in.ports, name)
		in.mu.Unlock()
		return "", fmt.Errorf("port %s: %w", name, err)
	}
	ps.opened = opened
	in.mu.Unlock()
	if runtime {
		in.runStateChanged()
	}
	if ps.listener {
		in.events.publish(Event{Type: "listener-added", Switch: sw, Port: name, Kind: ps.kind, Path: opened.Path()})
	}
	return name, nil
}

// AddPortAs is AddPort for a caller the control API lets change the
// switch who is not root (nil: the switch itself, or root): a kind that
// takes root's privilege is refused, and the port opens with the caller's
// own credentials, so that any socket or file it creates is one the caller
// could have created, owned by it.
func (in *Instance) AddPortAs(as *peercred.Cred, sw string, spec configs.Port) (string, error) {
	if as == nil {
		return in.AddPort(sw, spec)
	}
	if err := unprivileged(as, spec); err != nil {
		return "", err
	}
	var name string
	err := peercred.Do(*as, func() (err error) {
		name, err = in.addPort(sw, spec, as, true)
		return err
	})
	return name, err
}

// unprivileged refuses a port that takes root's privilege to a caller who
// is not root.
func unprivileged(as *peercred.Cred, spec configs.Port) error {
	if why := configs.Privileged(spec); why != "" {
		return fmt.Errorf("port %s: %s; uid %d is not root: %w", spec, why, as.UID, ErrForbidden)
	}
	return nil
}

// portTaken reports whether a port has name. Caller holds mu.
func (in *Instance) portTaken(name string) bool { return in.ports[name] != nil }

// RemovePort closes the port called name: a configured port or listener
// (whose clients are all detached), or one client of a listener. The run
// state keeps the removal of a configured port.
func (in *Instance) RemovePort(name string) error {
	in.mu.Lock()
	ps := in.ports[name]
	if ps == nil {
		in.mu.Unlock()
		return fmt.Errorf("port %s: %w", name, ErrNotFound)
	}
	if ps.vtep.IsValid() {
		in.mu.Unlock()
		return badInput{fmt.Errorf("port %s: %w", name, errFabricPort)}
	}
	in.mu.Unlock()
	in.closePort(ps)
	if ps.parent == nil {
		in.mu.Lock()
		if !ps.runtime {
			in.removed.ports[ps.name] = removedItem{Switch: ps.sw.name, Name: ps.name, Spec: ps.spec.String()}
		}
		in.mu.Unlock()
		in.runStateChanged()
	}
	return nil
}

func (in *Instance) closePort(ps *portState) {
	if ps.parent != nil { // a client: its control connection closes with it
		ps.parent.ap.Detach(ps.port)
		return
	}
	if ps.opened != nil {
		ps.opened.Close() // detaches through the attach point
	}
	in.mu.Lock()
	if in.ports[ps.name] == ps {
		delete(in.ports, ps.name)
	}
	in.mu.Unlock()
	if ps.listener {
		in.events.publish(Event{Type: "listener-removed", Switch: ps.sw.name, Port: ps.name, Kind: ps.kind})
	}
}

// attachPoint is how every port joins its switch: transports attach the
// ports they open (a listener, each client's) to the attach point of the
// configured port they came from, which gives them their name and switch
// and, later, the per-port policy the configuration gives.
type attachPoint struct {
	in *Instance
	ps *portState
}

var _ fabric.Registry = (*attachPoint)(nil)

// Attach implements fabric.Registry.
func (a *attachPoint) Attach(p fabric.Port) (frame.PortID, error) {
	in, ps := a.in, a.ps
	in.mu.Lock()
	name, client := ps.name, (*portState)(nil)
	if n := requestedNumber(p); ps.listener && n > 0 {
		// VDE's vde://DIR[N]: the client is port N of its listener, as
		// vde_switch would make it, or nothing if N is taken.
		name = fmt.Sprintf("%s.%d", ps.name, n)
		if in.portTaken(name) {
			in.mu.Unlock()
			return 0, fmt.Errorf("port %d of %s is in use (%s)", n, ps.name, name)
		}
	} else if ps.listener {
		name = in.newName(ps.name+".", 1, in.portTaken)
	}
	spec, err := ps.effective(nil)
	if err != nil {
		in.mu.Unlock()
		return 0, err
	}
	link := policy.Impair(spec)
	var held fabric.Port = p
	var w *impair.Port
	if !link.Perfect() {
		w = impair.Wrap(p, link)
		held = w
	}
	if ps.listener {
		client = &portState{name: name, kind: ps.kind, sw: ps.sw, parent: ps, port: p, impaired: w, peer: p.Name(), id: frame.NoPort}
		in.ports[name] = client
		ps.clients[p] = client
	}
	in.mu.Unlock()
	id, err := in.fab.AttachWith(held, fabric.PortOptions{Switch: ps.sw.core, Name: name, Policy: policy.Of(spec),
		VLAN: policy.VLAN(spec)})
	in.mu.Lock()
	if err != nil {
		if client != nil {
			delete(in.ports, name)
			delete(ps.clients, p)
		}
		in.mu.Unlock()
		if w != nil {
			w.Close() // stops its queue; p is closed twice (here and by the caller), which ports allow
		}
		return 0, err
	}
	down := policy.Of(spec).LinkDown
	if client != nil {
		client.id, client.linkDown = id, down
	} else {
		ps.port, ps.impaired, ps.id, ps.peer, ps.absent, ps.linkDown = p, w, id, p.Name(), "", down
	}
	in.mu.Unlock()
	if down { // a tap comes with a carrier: one that starts down (or comes back while down) loses it
		in.setCarrier(name, p, false)
	} else if c := carrierOf(p); c != nil {
		// A tap handed over by an upgrade keeps the carrier the old switch
		// left it; one just opened has one already, and a kernel without
		// TUNSETCARRIER needs no word about a link nobody took down.
		_ = c.SetCarrier(true)
	}
	in.events.publish(Event{Type: "port-attached", Switch: ps.sw.name, Port: name, Kind: ps.kind, Peer: p.Name()})
	return id, nil
}

// carrier is a port whose peer sees a carrier that the switch can take
// away and give back (a tap: the host's ip link shows NO-CARRIER). Other
// ports only go silent while their link is down.
type carrier interface {
	SetCarrier(up bool) error
}

// setCarrier shows p's peer the link's state where it can see one,
// reaching through wrappers (an impairment) to the transport's port. A
// kernel that cannot is logged: the link is down in the switch all the
// same.
func (in *Instance) setCarrier(name string, p fabric.Port, up bool) {
	if c := carrierOf(p); c != nil {
		if err := c.SetCarrier(up); err != nil {
			in.log.Warn("link state: its peer is not shown the carrier", "port", name, "up", up, "err", err)
		}
	}
}

// carrierOf is p, or the port it wraps, as a carrier; nil if neither is.
func carrierOf(p fabric.Port) carrier {
	for p != nil {
		if c, ok := p.(carrier); ok {
			return c
		}
		u, ok := p.(interface{ Unwrap() fabric.Port })
		if !ok {
			return nil
		}
		p = u.Unwrap()
	}
	return nil
}

// effective is the spec ps's ports follow: its configured one (a
// client's is its listener's), with the keys changed at run time and more
// applied. Caller holds mu.
func (ps *portState) effective(more [][2]string) (configs.Port, error) {
	base, kv := ps, slices.Concat(ps.set, more)
	if ps.parent != nil {
		base, kv = ps.parent, slices.Concat(ps.parent.set, kv)
	}
	if len(kv) == 0 {
		return base.spec, nil
	}
	last := map[string]string{} // a key set twice: the later value
	var keys [][2]string
	for _, p := range kv {
		if _, ok := last[p[0]]; !ok {
			keys = append(keys, p)
		}
		last[p[0]] = p[1]
	}
	for i := range keys {
		keys[i][1] = last[keys[i][0]]
	}
	return base.spec.With(keys...)
}

// SetPort changes a port's policy keys while it runs (ctl port set): its
// VLANs, split horizon and limits, and its link's impairment; KEY= takes a
// key back to its default. On a listener it applies to every client, and
// to clients that come later.
func (in *Instance) SetPort(name string, kv [][2]string) error {
	runtime, impairOnly := policy.Keys(), true
	for _, p := range kv {
		if !slices.Contains(runtime, p[0]) {
			return badInput{fmt.Errorf("port %s: %s= does not change at run time (these do: %s)", name, p[0], strings.Join(runtime, ", "))}
		}
		impairOnly = impairOnly && slices.Contains(policy.ImpairKeys, p[0])
	}
	in.swapping.Lock() // no detach between recording a wrapper and the switch holding it
	defer in.swapping.Unlock()
	in.mu.Lock()
	ps := in.ports[name]
	if ps == nil {
		in.mu.Unlock()
		return fmt.Errorf("port %s: %w", name, ErrNotFound)
	}
	if _, err := ps.effective(kv); err != nil {
		in.mu.Unlock()
		return badInput{fmt.Errorf("port %s: %w", name, err)}
	}
	ps.set = append(ps.set, kv...)
	if err := in.pushPolicy(ps, impairOnly); err != nil {
		return err
	}
	in.runStateChanged()
	in.events.publish(Event{Type: "port-changed", Switch: ps.sw.name, Port: name, Detail: fmt.Sprint(kv)})
	return nil
}

// pushPolicy makes the ports of ps (itself, or a listener's clients)
// follow its effective spec: their impairment and, unless impairOnly,
// their policy. Caller holds swapping and mu; mu is unlocked on return.
func (in *Instance) pushPolicy(ps *portState, impairOnly bool) error {
	targets := []*portState{ps}
	if ps.listener {
		targets = targets[:0]
		for _, c := range ps.clients {
			targets = append(targets, c)
		}
	}
	// The link's state as ps's events tell it: once per change, for a
	// listener too, and for a configured port while it is absent.
	wasDown := ps.linkDown
	if spec, err := ps.effective(nil); err == nil {
		ps.linkDown = policy.Of(spec).LinkDown
	}
	nowDown := ps.linkDown
	type change struct {
		t        *portState
		port     fabric.Port  // as attached before the change
		w        *impair.Port // wraps port now; nil: as before
		attached fabric.Port  // as attached after the change
		spec     configs.Port // what it follows now
		flipped  bool         // its link went down or came up
	}
	var changes []change
	for _, t := range targets {
		if t.port == nil {
			continue
		}
		spec, _ := t.effective(nil)
		down := policy.Of(spec).LinkDown
		c := change{t: t, port: t.port, attached: t.port, spec: spec, flipped: down != t.linkDown}
		if t == ps {
			c.flipped = down != wasDown
		}
		t.linkDown = down
		switch cfg := policy.Impair(spec); {
		case t.impaired != nil:
			t.impaired.Set(cfg)
			c.port, c.attached = t.impaired, t.impaired
		case !cfg.Perfect():
			t.impaired = impair.Wrap(t.port, cfg)
			c.w, c.attached = t.impaired, t.impaired
		}
		changes = append(changes, c)
	}
	in.mu.Unlock()
	var errs []error
	for _, c := range changes {
		if c.w != nil {
			if err := in.fab.ReplacePort(c.port, c.w); err != nil {
				// Taken off the switch by other means (its switch went):
				// forget the wrapper and stop it.
				in.forgetWrapper(c.t, c.w)
				errs = append(errs, fmt.Errorf("port %s: %w", c.t.name, err))
				continue
			}
		}
		if !impairOnly {
			pol := policy.Of(c.spec)
			if err := in.fab.SetPolicy(c.attached, pol, policy.VLAN(c.spec)); err != nil {
				errs = append(errs, err)
			} else if c.flipped {
				in.setCarrier(c.t.name, c.attached, !pol.LinkDown)
			}
		}
	}
	if nowDown != wasDown {
		ev := Event{Type: "link-up", Switch: ps.sw.name, Port: ps.name, Kind: ps.kind}
		if nowDown {
			ev.Type = "link-down"
		}
		in.events.publish(ev)
	}
	return errors.Join(errs...)
}

// forgetWrapper undoes SetPort's recording of w on t when the switch did
// not take it, and stops w, whose port the switch no longer holds.
func (in *Instance) forgetWrapper(t *portState, w *impair.Port) {
	in.mu.Lock()
	if t.impaired == w {
		t.impaired = nil
	}
	in.mu.Unlock()
	w.Close() // closes the port too, which ports allow twice
}

// badInput marks an error in what the caller asked for.
type badInput struct{ error }

func (e badInput) Unwrap() error { return e.error }

// IsBadInput reports whether err is about what the caller asked for.
func IsBadInput(err error) bool {
	var b badInput
	return errors.As(err, &b)
}

// requestedNumber is the port number a client asked for, 0 for none.
func requestedNumber(p fabric.Port) int {
	if r, ok := p.(interface{ RequestedNumber() int }); ok {
		return r.RequestedNumber()
	}
	return 0
}

// Detach implements fabric.Registry.
func (a *attachPoint) Detach(p fabric.Port) {
	in, ps := a.in, a.ps
	// Not while SetPort swaps a wrapper in: held is then the one the
	// switch holds, and a port SetPort finds gone is not wrapped.
	in.swapping.Lock()
	defer in.swapping.Unlock()
	in.mu.Lock()
	name, held := ps.name, fabric.Port(nil)
	if ps.listener {
		c := ps.clients[p]
		if c == nil {
			in.mu.Unlock()
			in.fab.Detach(p) // attached before it was known: nothing of ours to forget
			return
		}
		delete(ps.clients, p)
		if in.ports[c.name] == c {
			delete(in.ports, c.name)
		}
		name, held = c.name, c.held()
	} else if ps.port == p {
		held = ps.held()
		ps.port, ps.impaired, ps.id = nil, nil, frame.NoPort
	} else {
		in.mu.Unlock()
		in.fab.Detach(p)
		return
	}
	in.mu.Unlock()
	st, _ := in.fab.PortStatsOf(held)
	in.fab.Detach(held) // closes p too, through the impairment if there is one
	in.events.publish(Event{Type: "port-detached", Switch: ps.sw.name, Port: name, Kind: ps.kind, Peer: p.Name(),
		RxFrames: st.RxFrames, TxFrames: st.TxFrames, Count: st.Dropped()})
}

var _ portkind.Absentee = (*attachPoint)(nil)

// Absent implements portkind.Absentee: the configured port stays listed,
// as absent, until its kind attaches it again.
func (a *attachPoint) Absent(reason string) {
	in, ps := a.in, a.ps
	in.mu.Lock()
	if ps.port == nil {
		ps.absent = reason
	}
	in.mu.Unlock()
	in.events.publish(Event{Type: "port-absent", Switch: ps.sw.name, Port: ps.name, Kind: ps.kind, Error: reason})
}

// Serve implements fabric.Registry.
func (a *attachPoint) Serve(r fabric.Receiver) { a.in.fab.Serve(r) }
