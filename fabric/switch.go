package fabric

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/umlswitch/umlswitch/frame"
)

// DefaultSwitch names the switch a fabric starts with.
const DefaultSwitch = "default"

// SwitchConfig describes a switch. Zero fields take the fabric's defaults.
type SwitchConfig struct {
	Name         string
	Hub          bool          // flood every frame, learn nothing
	MACAge       time.Duration // how long an address stays learned unseen
	MACTableSize int           // most addresses learned at once
	// OnMAC, if set, hears of every address learned, moved or aged. It is
	// called on the forwarding path when an address is new or moves, so it
	// must be quick and never block.
	OnMAC func(MACEvent)
}

// Switch is what users call a switch (ctl switch add): one collision
// switch whose ports flood to each other and learn into its own MAC table;
// a frame never leaves the switch it arrived in. The ports of every switch
// share the fabric's readers and id space, so one socket (a tunnel
// endpoint) can feed ports of several switches.
type Switch struct {
	fab     *Fabric
	name    string
	idx     int // its flood list in portSet.flood
	hub     atomic.Bool
	table   *MACTable
	mirrors mirrorList
	ev      evictionLog
	removed bool              // guarded by sw.mu
	groups  map[string]uint16 // split horizon groups' ids; guarded by sw.mu
}

// NewSwitch adds an empty switch.
func (s *Fabric) NewSwitch(cfg SwitchConfig) (*Switch, error) {
	if cfg.MACAge <= 0 {
		cfg.MACAge = DefaultMACAge
	}
	if cfg.MACTableSize <= 0 {
		cfg.MACTableSize = DefaultMACTableSize
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errors.New("switch closed")
	}
	idx := len(s.switches)
	for i, d := range s.switches {
		if d == nil {
			idx = i
			break
		}
	}
	d := &Switch{fab: s, name: cfg.Name, idx: idx, table: NewMACTable(cfg.MACTableSize, cfg.MACAge)}
	d.hub.Store(cfg.Hub)
	d.table.notify = cfg.OnMAC
	if idx == len(s.switches) {
		s.switches = append(s.switches, d)
	} else {
		s.switches[idx] = d
	}
	s.replacePorts(s.ports.Load().byID)
	return d, nil
}

// RemoveSwitch detaches d's ports and removes it.
func (s *Fabric) RemoveSwitch(d *Switch) {
	for _, e := range s.ports.Load().live {
		if e.sw == d {
			s.Detach(e.port)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if d.removed || d.fab != s {
		return
	}
	d.removed = true
	// A port attached while the loop above ran is detached here, without
	// the log line: the switch is going.
	byID := append([]*portEntry(nil), s.ports.Load().byID...)
	var late []*portEntry
	for i, e := range byID {
		if e != nil && e.sw == d {
			byID[i] = nil
			late = append(late, e)
		}
	}
	s.switches[d.idx] = nil
	s.replacePorts(byID)
	if s.def == d {
		s.def = nil
	}
	for _, e := range late {
		e.port.Close()
	}
}

// Switches lists the switches.
func (s *Fabric) Switches() []*Switch {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*Switch, 0, len(s.switches))
	for _, d := range s.switches {
		if d != nil {
			out = append(out, d)
		}
	}
	return out
}

// Name is the switch's name.
func (d *Switch) Name() string { return d.name }

// Hub reports whether the switch floods everything.
func (d *Switch) Hub() bool { return d.hub.Load() }

// MACAge is how long an address stays learned unseen.
func (d *Switch) MACAge() time.Duration { return time.Duration(d.table.age.Load()) }

// MACTableSize is the most addresses the switch learns at once.
func (d *Switch) MACTableSize() int { return int(d.table.max.Load()) }

// Reconfigure changes the switch's hub mode, ageing and table size while it
// runs (a reload). A smaller table keeps what it holds until addresses age
// or new ones evict them.
func (d *Switch) Reconfigure(hub bool, macAge time.Duration, tableSize int) {
	if macAge <= 0 {
		macAge = DefaultMACAge
	}
	if tableSize <= 0 {
		tableSize = DefaultMACTableSize
	}
	if d.hub.Swap(hub) != hub && hub {
		d.table.Flush() // a hub learns nothing; what it knew would go stale
	}
	d.table.age.Store(int64(macAge))
	d.table.max.Store(int64(tableSize))
}

// Table is the switch's MAC table.
func (d *Switch) Table() *MACTable { return d.table }

// Stats returns a snapshot of the counters of the switch's ports.
func (d *Switch) Stats() []PortStats {
	var ports []*portEntry
	for _, e := range d.fab.ports.Load().live {
		if e.sw == d {
			ports = append(ports, e)
		}
	}
	return snapshotAll(ports)
}

// Attach adds p to the switch: a switch is a Registry for transports.
func (d *Switch) Attach(p Port) (frame.PortID, error) {
	return d.fab.AttachWith(p, PortOptions{Switch: d})
}

// Detach removes p from the switch.
func (d *Switch) Detach(p Port) { d.fab.Detach(p) }

// Serve runs r on the switch.
func (d *Switch) Serve(r Receiver) { d.fab.Serve(r) }

// Entries lists the switch's MAC table.
func (d *Switch) Entries() []MACEntry {
	set := d.fab.ports.Load()
	out := d.table.Entries(d.fab.clock.Load())
	for i := range out {
		if set.resolve(out[i].ref, true) == nil && !out[i].Static && !out[i].Remote {
			out[i].Port = frame.NoPort // learned on a port that has gone, not yet flushed
		}
	}
	return out
}

// SetStatic pins mac in vlan to port id of this switch.
func (d *Switch) SetStatic(vlan uint16, mac frame.MAC, id frame.PortID) error {
	d.fab.mu.Lock() // held until the entry is in: Detach removes a port's static entries under it
	defer d.fab.mu.Unlock()
	ref, err := d.pinnable(vlan, mac, id)
	if err != nil {
		return fmt.Errorf("static entry %s: %w", mac, err)
	}
	d.table.setStatic(vlan, mac, ref)
	return nil
}

// SetRemote points mac in vlan at port id of this switch, the tunnel to
// the remote VTEP that advertised mac (an EVPN type-2 route). The entry
// never ages and is never evicted; it replaces a learned entry, and moves
// when set again with another port. A frame from mac on any other port (a
// host that moved here) makes it an ordinary learned entry there, with a
// MACMoved event. A static entry for mac stays, and SetRemote fails.
func (d *Switch) SetRemote(vlan uint16, mac frame.MAC, id frame.PortID) error {
	d.fab.mu.Lock() // as SetStatic
	defer d.fab.mu.Unlock()
	ref, err := d.pinnable(vlan, mac, id)
	if err != nil {
		return fmt.Errorf("remote entry %s: %w", mac, err)
	}
	if !d.table.setRemote(vlan, mac, ref) {
		return fmt.Errorf("remote entry %s: VLAN %d has a static entry for it, and a static entry is the operator's word", mac, vlan)
	}
	return nil
}

// RemoveRemote removes the remote entry for mac in vlan if it points at
// port id, and reports whether it did: a withdrawal by one VTEP leaves
// alone what another VTEP or local learning has taken over since.
func (d *Switch) RemoveRemote(vlan uint16, mac frame.MAC, id frame.PortID) bool {
	return d.table.removeRemote(vlan, mac, id)
}

// pinnable checks that mac in vlan may be pinned to port id of this
// switch and returns the port's ref. Caller holds fab.mu.
func (d *Switch) pinnable(vlan uint16, mac frame.MAC, id frame.PortID) (portRef, error) {
	if mac.IsMulticast() {
		return 0, errors.New("a group address cannot live on one port")
	}
	e := d.fab.ports.Load().get(id)
	if e == nil || e.sw != d {
		return 0, fmt.Errorf("port %d is not in switch %s", id, d.name)
	}
	if member, _ := e.vl.egress(vlan); !member || vlan > frame.MaxVLAN {
		return 0, fmt.Errorf("port %s does not carry VLAN %d", e.name, vlan)
	}
	return e.ref, nil
}

// FlushPort forgets the addresses learned on port id; static and remote
// entries pointing at it stay.
func (d *Switch) FlushPort(id frame.PortID) int { return d.table.FlushPort(id) }

// age removes the addresses not seen for the ageing time and reports
// table evictions.
func (d *Switch) age(now int64) {
	if n := d.table.Age(now); n > 0 {
		d.fab.log.Debug("mac entries aged out", "switch", d.name, "count", n)
	}
	d.ev.tick(d)
}

// evictionLog reports MAC table evictions once per burst: when a tick first
// sees them and when a tick sees none again.
type evictionLog struct {
	seen, from uint64
	on         bool
}

func (l *evictionLog) tick(d *Switch) {
	n := d.table.Evicted()
	log := d.fab.log
	switch {
	case n != l.seen && !l.on:
		id, held := d.table.Heaviest()
		name := ""
		if e := d.fab.ports.Load().get(id); e != nil {
			name = e.name
		}
		log.Warn("mac table full: evicting the oldest addresses of the port holding the most",
			"switch", d.name, "size", d.MACTableSize(), "port", id, "name", name, "holds", held)
		l.on, l.from = true, l.seen
	case n == l.seen && l.on:
		log.Info("mac table evictions ended", "switch", d.name, "evicted", n-l.from)
		l.on = false
	}
	l.seen = n
}
