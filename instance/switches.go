package instance

import (
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/umlswitch/umlswitch/capture"
	"github.com/umlswitch/umlswitch/configs"
	"github.com/umlswitch/umlswitch/fabric"
	"github.com/umlswitch/umlswitch/frame"
	"github.com/umlswitch/umlswitch/internal/peercred"
	"github.com/umlswitch/umlswitch/internal/unixsock"
	"github.com/umlswitch/umlswitch/transports"
)

// AddSwitch adds the switch sp describes with its ports and mirrors; if
// one of them fails, the switch is removed again. It is a change made at
// run time: the run state keeps it.
func (in *Instance) AddSwitch(sp configs.Switch) error {
	return in.addSwitchWhole(sp, true)
}

// addSwitchWhole is AddSwitch; runtime marks a change made through the
// API, not by the configuration.
func (in *Instance) addSwitchWhole(sp configs.Switch, runtime bool) error {
	if err := configs.CheckName(sp.Name); err != nil {
		return fmt.Errorf("switch: %w", err)
	}
	err := in.addSwitch(sp, runtime)
	if err != nil && !errors.Is(err, ErrExists) {
		in.mu.Lock()
		sw := in.switchNamed(sp.Name)
		in.mu.Unlock()
		if sw != nil {
			in.closeSwitch(sw, true) // what of it opened
		}
	}
	if err == nil && runtime {
		in.runStateChanged()
	}
	return err
}

func (in *Instance) addSwitch(sp configs.Switch, runtime bool) error {
	in.mu.Lock()
	if in.closed {
		in.mu.Unlock()
		return fmt.Errorf("switch %s: shutting down", sp.Name)
	}
	if in.switchNamed(sp.Name) != nil {
		in.mu.Unlock()
		return fmt.Errorf("switch %s: %w", sp.Name, ErrExists)
	}
	sw := &switchState{name: sp.Name, plan: configs.Switch{Name: sp.Name, Hub: sp.Hub, MACAge: sp.MACAge, MACTableSize: sp.MACTableSize},
		runtime: runtime}
	dom, err := in.fab.NewSwitch(fabric.SwitchConfig{Name: sp.Name, Hub: sp.Hub, MACAge: sp.MACAge,
		MACTableSize: sp.MACTableSize, OnMAC: in.onMAC(sw)})
	if err != nil {
		in.mu.Unlock()
		return fmt.Errorf("switch %s: %w", sp.Name, err)
	}
	sw.core = dom
	sw.vni.Store(sp.VNI)
	in.switches = append(in.switches, sw)
	in.mu.Unlock()
	in.events.publish(Event{Type: "switch-added", Switch: sp.Name})
	for _, p := range sp.Ports {
		if _, err := in.addPort(sp.Name, p, nil, runtime); err != nil {
			return fmt.Errorf("switch %s: %w", sp.Name, err)
		}
	}
	for _, m := range sp.Mirrors {
		if _, err := in.addMirror(sp.Name, m, nil, runtime); err != nil {
			return fmt.Errorf("switch %s: %w", sp.Name, err)
		}
	}
	return nil
}

// RemoveSwitch closes a switch's ports and mirrors and removes it. The run
// state keeps the removal of a configured switch.
func (in *Instance) RemoveSwitch(name string) error {
	in.mu.Lock()
	sw := in.switchNamed(name)
	in.mu.Unlock()
	if sw == nil {
		return fmt.Errorf("switch %s: %w", name, ErrNotFound)
	}
	in.closeSwitch(sw, true)
	if !sw.runtime {
		in.mu.Lock()
		in.removed.switches[name] = true
		in.mu.Unlock()
	}
	in.runStateChanged()
	return nil
}

func (in *Instance) closeSwitch(sw *switchState, announce bool) {
	in.mu.Lock()
	var ports []*portState
	for _, p := range in.ports {
		if p.sw == sw && p.parent == nil {
			ports = append(ports, p)
		}
	}
	var mirrors []*mirrorState
	for _, m := range in.mirrors {
		if m.sw == sw {
			mirrors = append(mirrors, m)
		}
	}
	in.mu.Unlock()
	for _, p := range ports {
		in.closePort(p)
	}
	for _, m := range mirrors {
		in.closeMirror(m)
	}
	in.fab.RemoveSwitch(sw.core)
	in.mu.Lock()
	in.switches = slices.DeleteFunc(in.switches, func(x *switchState) bool { return x == sw })
	for name, p := range in.ports {
		if p.sw == sw {
			delete(in.ports, name) // clients a closing listener had not detached yet
		}
	}
	lives := sw.lives
	sw.lives = nil
	in.mu.Unlock()
	for _, l := range lives {
		l.close()
	}
	if announce {
		in.events.publish(Event{Type: "switch-removed", Switch: sw.name})
	}
}

// AddMirrorAs is AddMirror for a caller who is not root (nil: the switch
// itself, or root): its file or socket is created with the caller's own
// credentials, and a SPAN port that takes root's privilege is refused.
func (in *Instance) AddMirrorAs(as *peercred.Cred, sw string, m configs.Mirror) (string, error) {
	if as == nil {
		return in.AddMirror(sw, m)
	}
	if m.Port != nil {
		if err := unprivileged(as, *m.Port); err != nil {
			return "", fmt.Errorf("mirror: %w", err)
		}
	}
	var name string
	err := peercred.Do(*as, func() (err error) {
		name, err = in.addMirror(sw, m, as, true)
		return err
	})
	return name, err
}

// AddMirror starts the capture m describes on switch sw and returns its
// name. It is a change made at run time: the run state keeps it.
func (in *Instance) AddMirror(sw string, m configs.Mirror) (string, error) {
	return in.addMirror(sw, m, nil, true)
}

// addMirror is AddMirror on behalf of as (nil: the switch itself), who
// owns the files a rotating capture goes on creating; runtime marks a
// change made through the API, not by the configuration.
func (in *Instance) addMirror(sw string, m configs.Mirror, as *peercred.Cred, runtime bool) (string, error) {
	in.mu.Lock()
	s := in.switchNamed(sw)
	if s == nil {
		in.mu.Unlock()
		return "", fmt.Errorf("switch %s: %w", sw, ErrNotFound)
	}
	name := m.Name
	if name == "" {
		name = in.newName("mirror", 0, func(n string) bool { return in.mirrors[n] != nil })
	} else if in.mirrors[name] != nil {
		in.mu.Unlock()
		return "", fmt.Errorf("mirror %s: %w", name, ErrExists)
	}
	ms := &mirrorState{name: name, sw: s, spec: m, as: as, runtime: runtime}
	in.mirrors[name] = ms // reserved while it opens
	in.mu.Unlock()
	err := in.openMirror(ms)
	in.mu.Lock()
	if err != nil {
		delete(in.mirrors, name)
		in.mu.Unlock()
		return "", fmt.Errorf("mirror %s: %w", name, err)
	}
	in.mu.Unlock()
	if runtime {
		in.runStateChanged()
	}
	return name, nil
}

func (in *Instance) openMirror(ms *mirrorState) error {
	mc := ms.spec
	access := unixsock.Access{Mode: mc.Mode, UID: -1, GID: -1}
	if mc.HasOwner {
		access.UID = int(mc.Owner)
	}
	if mc.HasGroup {
		access.GID = int(mc.Group)
	}
	c := capture.Config{File: mc.File, Stream: mc.Stream, Access: access, Format: mc.Format, Snaplen: mc.Snaplen,
		Ports: mc.Ports, Dir: mc.Dir, Rotate: mc.Rotate, Keep: mc.Keep, Logger: in.log, Owner: ms.as}
	if mc.Stream != "" {
		c.Admit = in.admitReader(ms)
	}
	var span *transports.Span
	if mc.Port != nil {
		// Through the instance's set: a tunnel port shares its local
		// address's socket with the switch's tunnel ports there.
		var err error
		if span, err = transports.NewSpan(in.set, *mc.Port, in.defaults()); err != nil {
			return fmt.Errorf("port: %w", err)
		}
		c.Sink = span
	}
	m, err := capture.New(c)
	if err != nil {
		if span != nil {
			span.Close()
		}
		return err
	}
	// ms is listed (reserved) while it opens: the views and the run state
	// read it under mu.
	in.mu.Lock()
	ms.m, ms.span = m, span
	in.mu.Unlock()
	ms.sw.core.AddMirror(m)
	in.log.Info("mirror", "name", ms.name, "switch", ms.sw.name, "to", m.Name())
	return nil
}

// admitReader decides who may read a capture socket: whoever the control
// API lets capture (root, the switch's own user, api_uid and api_gid), the
// socket's own owner= and group=, and the user who asked for the mirror;
// within the API's limits, where its readers count. The socket's mode is
// the first gate (0600 unless given), this the second: a mode opened for
// guests never opens the lab's traffic to every user.
func (in *Instance) admitReader(ms *mirrorState) func(net.Conn) (func(), error) {
	var ownUIDs, ownGIDs []uint32
	if ms.spec.HasOwner {
		ownUIDs = append(ownUIDs, ms.spec.Owner)
	}
	if ms.spec.HasGroup {
		ownGIDs = append(ownGIDs, ms.spec.Group)
	}
	if ms.as != nil {
		ownUIDs = append(ownUIDs, ms.as.UID)
	}
	self := uint32(os.Geteuid())
	return func(c net.Conn) (func(), error) {
		in.mu.Lock() // the configuration's grants as a reload left them
		uids, gids := slices.Concat(ownUIDs, in.plan.APIUIDs), slices.Concat(ownGIDs, in.plan.APIGIDs)
		in.mu.Unlock()
		cred := peercred.Unknown
		if sc, ok := c.(syscall.Conn); ok {
			if got, err := peercred.FromConn(sc); err == nil {
				cred = got
			}
		}
		if !cred.Known() || (cred.UID != 0 && cred.UID != self && !cred.In(uids, gids)) {
			in.apiRefused.Add(1)
			return nil, fmt.Errorf("%w: reading capture socket %s is for root, the switch's own user (uid %d), api_uid and api_gid, "+
				"and the socket's owner= and group=; this reader is %s", ErrForbidden, ms.spec.Stream, self, cred)
		}
		if err := in.apiConns.Acquire(cred.UID); err != nil {
			return nil, err
		}
		return func() { in.apiConns.Release(cred.UID) }, nil
	}
}

// RemoveMirror stops the mirror called name; what it captured so far is
// written out first.
func (in *Instance) RemoveMirror(name string) error {
	in.mu.Lock()
	ms := in.mirrors[name]
	in.mu.Unlock()
	if ms == nil {
		return fmt.Errorf("mirror %s: %w", name, ErrNotFound)
	}
	in.closeMirror(ms)
	if !ms.runtime {
		in.mu.Lock()
		in.removed.mirrors[name] = removedItem{Switch: ms.sw.name, Name: name, Spec: ms.spec.String()}
		in.mu.Unlock()
	}
	in.runStateChanged()
	return nil
}

func (in *Instance) closeMirror(ms *mirrorState) {
	in.mu.Lock()
	if in.mirrors[ms.name] != ms {
		in.mu.Unlock()
		return
	}
	delete(in.mirrors, ms.name)
	in.mu.Unlock()
	ms.sw.core.RemoveMirror(ms.m)
	ms.m.Close()
	if ms.span != nil {
		if n := ms.span.Dropped(); n > 0 {
			in.log.Info("mirror port", "port", ms.span.Name(), "dropped", n)
		}
		ms.span.Close()
	}
}

// FlushFDB forgets the learned addresses of a switch, or of one port when
// target names a port; static entries stay. It returns how many it forgot.
func (in *Instance) FlushFDB(target string) (int, error) {
	in.mu.Lock()
	sw := in.switchNamed(target)
	ps := in.ports[target]
	in.mu.Unlock()
	switch {
	case sw != nil:
		return sw.core.Table().Flush(), nil
	case ps != nil && ps.listener:
		n := 0
		for _, c := range in.clientsOf(ps) {
			n += ps.sw.core.FlushPort(c.id)
		}
		return n, nil
	case ps != nil && ps.id != frame.NoPort:
		return ps.sw.core.FlushPort(ps.id), nil
	case ps != nil:
		return 0, nil // not attached now: it holds no addresses
	}
	return 0, fmt.Errorf("no switch or port called %s: %w", target, ErrNotFound)
}

func (in *Instance) clientsOf(ps *portState) []*portState {
	in.mu.Lock()
	defer in.mu.Unlock()
	var out []*portState
	for _, c := range ps.clients {
		if c.id != frame.NoPort {
			out = append(out, c)
		}
	}
	return out
}

// AddStatic pins mac in vlan to port on switch sw.
func (in *Instance) AddStatic(sw, mac, port string, vlan uint16) error {
	m, err := frame.ParseMAC(mac)
	if err != nil {
		return err
	}
	in.mu.Lock()
	s := in.switchNamed(sw)
	ps := in.ports[port]
	in.mu.Unlock()
	switch {
	case s == nil:
		return fmt.Errorf("switch %s: %w", sw, ErrNotFound)
	case ps == nil:
		return fmt.Errorf("port %s: %w", port, ErrNotFound)
	case ps.sw != s:
		return fmt.Errorf("port %s is on switch %s, not %s", port, ps.sw.name, sw)
	case ps.listener:
		return fmt.Errorf("port %s is a listener: name one of its clients", port)
	case ps.id == frame.NoPort:
		return fmt.Errorf("port %s is not attached now", port)
	}
	if err := s.core.SetStatic(vlan, m, ps.id); err != nil {
		return err
	}
	in.mu.Lock()
	in.statics[staticKey{sw: sw, mac: m, vlan: vlan}] = port
	in.mu.Unlock()
	in.runStateChanged()
	return nil
}

// DelStatic removes the static entry for mac in vlan on switch sw.
func (in *Instance) DelStatic(sw, mac string, vlan uint16) error {
	m, err := frame.ParseMAC(mac)
	if err != nil {
		return err
	}
	in.mu.Lock()
	s := in.switchNamed(sw)
	in.mu.Unlock()
	if s == nil {
		return fmt.Errorf("switch %s: %w", sw, ErrNotFound)
	}
	in.mu.Lock()
	_, recorded := in.statics[staticKey{sw: sw, mac: m, vlan: vlan}]
	delete(in.statics, staticKey{sw: sw, mac: m, vlan: vlan})
	in.mu.Unlock()
	if recorded {
		in.runStateChanged()
	}
	if !s.core.Table().RemoveStatic(vlan, m) {
		return fmt.Errorf("static entry %s (VLAN %d) on %s: %w", m, vlan, sw, ErrNotFound)
	}
	return nil
}

// macLimiter bounds the MAC events a switch publishes: a flood of new
// source addresses must not become a flood of events. It runs on the
// learning path, so it is a few atomics.
type macLimiter struct {
	sec        atomic.Int64
	n          atomic.Int64
	suppressed atomic.Uint64
}

// macEventsPerSecond is how many MAC events a switch publishes a second;
// the rest are counted and reported as one mac-suppressed event.
const macEventsPerSecond = 100

func (l *macLimiter) allow() bool {
	s := time.Now().Unix()
	if l.sec.Load() != s {
		l.sec.Store(s)
		l.n.Store(0)
	}
	if l.n.Add(1) > macEventsPerSecond {
		l.suppressed.Add(1)
		return false
	}
	return true
}

// onMAC turns a switch's table changes into events while anyone listens.
func (in *Instance) onMAC(sw *switchState) func(fabric.MACEvent) {
	return func(e fabric.MACEvent) {
		if sw.vni.Load() != 0 {
			in.speaker.MACsChanged(sw.name)
		}
		if e.Kind == fabric.MACFlushed { // the port's detach says it
			return
		}
		if !in.events.listened() || !sw.mac.allow() {
			return
		}
		in.events.publish(Event{Type: "mac-" + e.Kind.String(), Switch: sw.name, MAC: e.MAC.String(), VLAN: int(e.VLAN),
			Port: in.fab.PortName(e.Port)})
	}
}
