package fabric

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/umlswitch/umlswitch/frame"
)

// DefaultDomain names the domain a switch starts with.
const DefaultDomain = "default"

// DomainConfig describes a domain. Zero fields take the switch's defaults.
type DomainConfig struct {
	Name         string
	Hub          bool          // flood every frame, learn nothing
	MACAge       time.Duration // how long an address stays learned unseen
	MACTableSize int           // most addresses learned at once
	// OnMAC, if set, hears of every address learned, moved or aged. It is
	// called on the forwarding path when an address is new or moves, so it
	// must be quick and never block.
	OnMAC func(MACEvent)
}

// Domain is one collision domain of a switch, what users call a switch: its
// ports flood to each other and learn into its own MAC table, and a frame
// never leaves the domain it arrived in. Ports of every domain share the
// switch's readers and id space, so one socket (a tunnel endpoint) can feed
// ports of several domains.
type Domain struct {
	sw      *Switch
	name    string
	idx     int // its flood list in portSet.flood
	hub     atomic.Bool
	table   *MACTable
	mirrors mirrorList
	ev      evictionLog
	removed bool              // guarded by sw.mu
	groups  map[string]uint16 // split horizon groups' ids; guarded by sw.mu
}

// NewDomain adds an empty domain.
func (s *Switch) NewDomain(cfg DomainConfig) (*Domain, error) {
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
	idx := len(s.domains)
	for i, d := range s.domains {
		if d == nil {
			idx = i
			break
		}
	}
	d := &Domain{sw: s, name: cfg.Name, idx: idx, table: NewMACTable(cfg.MACTableSize, cfg.MACAge)}
	d.hub.Store(cfg.Hub)
	d.table.notify = cfg.OnMAC
	if idx == len(s.domains) {
		s.domains = append(s.domains, d)
	} else {
		s.domains[idx] = d
	}
	s.replacePorts(s.ports.Load().byID)
	return d, nil
}

// RemoveDomain detaches d's ports and removes it.
func (s *Switch) RemoveDomain(d *Domain) {
	for _, e := range s.ports.Load().live {
		if e.dom == d {
			s.Detach(e.port)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if d.removed || d.sw != s {
		return
	}
	d.removed = true
	// A port attached while the loop above ran is detached here, without
	// the log line: the domain is going.
	byID := append([]*portEntry(nil), s.ports.Load().byID...)
	var late []*portEntry
	for i, e := range byID {
		if e != nil && e.dom == d {
			byID[i] = nil
			late = append(late, e)
		}
	}
	s.domains[d.idx] = nil
	s.replacePorts(byID)
	if s.def == d {
		s.def = nil
	}
	for _, e := range late {
		e.port.Close()
	}
}

// Domains lists the domains.
func (s *Switch) Domains() []*Domain {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*Domain, 0, len(s.domains))
	for _, d := range s.domains {
		if d != nil {
			out = append(out, d)
		}
	}
	return out
}

// Name is the domain's name.
func (d *Domain) Name() string { return d.name }

// Hub reports whether the domain floods everything.
func (d *Domain) Hub() bool { return d.hub.Load() }

// MACAge is how long an address stays learned unseen.
func (d *Domain) MACAge() time.Duration { return time.Duration(d.table.age.Load()) }

// MACTableSize is the most addresses the domain learns at once.
func (d *Domain) MACTableSize() int { return int(d.table.max.Load()) }

// Reconfigure changes the domain's hub mode, ageing and table size while it
// runs (a reload). A smaller table keeps what it holds until addresses age
// or new ones evict them.
func (d *Domain) Reconfigure(hub bool, macAge time.Duration, tableSize int) {
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

// Table is the domain's MAC table.
func (d *Domain) Table() *MACTable { return d.table }

// Stats returns a snapshot of the counters of the domain's ports.
func (d *Domain) Stats() []PortStats {
	var ports []*portEntry
	for _, e := range d.sw.ports.Load().live {
		if e.dom == d {
			ports = append(ports, e)
		}
	}
	return snapshotAll(ports)
}

// Attach adds p to the domain: a domain is a Registry for transports.
func (d *Domain) Attach(p Port) (frame.PortID, error) {
	return d.sw.AttachWith(p, PortOptions{Domain: d})
}

// Detach removes p from the switch.
func (d *Domain) Detach(p Port) { d.sw.Detach(p) }

// Serve runs r on the switch.
func (d *Domain) Serve(r Receiver) { d.sw.Serve(r) }

// Entries lists the domain's MAC table.
func (d *Domain) Entries() []MACEntry {
	set := d.sw.ports.Load()
	out := d.table.Entries(d.sw.clock.Load())
	for i := range out {
		if set.resolve(out[i].ref, true) == nil && !out[i].Static {
			out[i].Port = frame.NoPort // learned on a port that has gone, not yet flushed
		}
	}
	return out
}

// SetStatic pins mac in vlan to port id of this domain.
func (d *Domain) SetStatic(vlan uint16, mac frame.MAC, id frame.PortID) error {
	if mac.IsMulticast() {
		return fmt.Errorf("static entry %s: a group address cannot live on one port", mac)
	}
	d.sw.mu.Lock()
	defer d.sw.mu.Unlock()
	e := d.sw.ports.Load().get(id)
	if e == nil || e.dom != d {
		return fmt.Errorf("static entry %s: port %d is not in switch %s", mac, id, d.name)
	}
	if member, _ := e.vl.egress(vlan); !member || vlan > frame.MaxVLAN {
		return fmt.Errorf("static entry %s: port %s does not carry VLAN %d", mac, e.name, vlan)
	}
	d.table.setStatic(vlan, mac, e.ref)
	return nil
}

// FlushPort forgets the addresses learned on port id.
func (d *Domain) FlushPort(id frame.PortID) int { return d.table.FlushPort(id) }

// age removes the addresses not seen for the ageing time and reports
// table evictions.
func (d *Domain) age(now int64) {
	if n := d.table.Age(now); n > 0 {
		d.sw.log.Debug("mac entries aged out", "switch", d.name, "count", n)
	}
	d.ev.tick(d)
}

// evictionLog reports MAC table evictions once per burst: when a tick first
// sees them and when a tick sees none again.
type evictionLog struct {
	seen, from uint64
	on         bool
}

func (l *evictionLog) tick(d *Domain) {
	n := d.table.Evicted()
	log := d.sw.log
	switch {
	case n != l.seen && !l.on:
		id, held := d.table.Heaviest()
		name := ""
		if e := d.sw.ports.Load().get(id); e != nil {
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
