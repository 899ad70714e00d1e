package fabric

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/umlswitch/umlswitch/frame"
)

// Defaults for Config fields left zero.
const (
	DefaultMACAge       = 300 * time.Second
	DefaultMACTableSize = 8192
	// DefaultTxHold is how long a full destination may take nothing before
	// the frames held for it are dropped and it is marked stalled. UML's
	// receive queue is 10 datagrams deep, so a UML that is not scheduled
	// for a moment fills it at once; on a busy lab host (or a virtual
	// machine whose CPU is stolen) a few milliseconds without being
	// scheduled is normal, and measured with 5 ms those moments cost
	// frames. A stopped UML costs each sender this bound once, then its
	// frames are dropped without waiting until it reads again.
	DefaultTxHold = 10 * time.Millisecond
)

// Config sets the fabric's behaviour. Zero fields take the defaults. Hub,
// MACAge and MACTableSize configure the default switch (see Switch).
type Config struct {
	Hub          bool          // flood every frame, learn nothing
	MACAge       time.Duration // how long an address stays learned unseen
	MACTableSize int           // most addresses learned at once
	TxHold       time.Duration // most time a full destination may take nothing before it is stalled
	Logger       *slog.Logger
}

func (c *Config) setDefaults() {
	if c.MACAge <= 0 {
		c.MACAge = DefaultMACAge
	}
	if c.MACTableSize <= 0 {
		c.MACTableSize = DefaultMACTableSize
	}
	if c.TxHold <= 0 {
		c.TxHold = DefaultTxHold
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// portEntry is the fabric's record of one attached port. It never changes
// after Attach except for its atomics.
type portEntry struct {
	id       frame.PortID
	ref      portRef
	port     Port
	sw       *Switch
	name     string
	maxFrame int
	pol      *portPolicy // nil: no policy (the common case)
	vl       *portVLAN   // nil: no VLAN keys (the common case)
	stats    *counters
	// stalled is set when the port stayed full past the hold bound and
	// cleared as soon as it takes a frame again: while set, readers drop
	// frames for it instead of waiting, so a stopped peer costs one failed
	// send per batch rather than the bound.
	stalled atomic.Bool
	// slow is the port's hold debt: a port that keeps senders waiting
	// while taking frames one by one stops being waited for (slow.go).
	slow slowMeter
}

// portSet is an immutable snapshot of the attached ports, replaced as a whole
// on Attach and Detach and loaded once per batch by readers.
type portSet struct {
	byID  []*portEntry   // indexed by PortID, nil where free
	live  []*portEntry   // attached ports in id order
	flood [][]*portEntry // by Switch.idx: its attached ports in id order
	// policed, by Switch.idx, says whether a port of the switch has a
	// policy: floods in a switch without one take the plain loop.
	policed []bool
	// vlans, by Switch.idx, says whether a port of the switch has VLAN
	// keys: frames of a switch without change no tags and flood everywhere.
	vlans []bool
}

func (s *portSet) get(id frame.PortID) *portEntry {
	if int(id) < len(s.byID) {
		return s.byID[id]
	}
	return nil
}

// resolve turns a table entry into a live port, or nil if that port is gone.
func (s *portSet) resolve(ref portRef, ok bool) *portEntry {
	if !ok {
		return nil
	}
	if e := s.get(ref.id()); e != nil && e.ref == ref {
		return e
	}
	return nil
}

// Fabric is the forwarding engine: ports, the readers that feed them, and
// one or more switches (collision domains, each with its own MAC table)
// that the ports belong to. Its methods are safe for concurrent use.
type Fabric struct {
	cfg   Config
	log   *slog.Logger
	def   *Switch // the switch Attach uses; nil once removed
	ports atomic.Pointer[portSet]
	// clock is the coarse time readers stamp MAC entries with, in
	// nanoseconds since start, advanced by Run's ticker.
	clock atomic.Int64
	start time.Time

	mu       sync.Mutex // guards gens, switches, closed and replacing ports
	gens     []uint16   // generation of each id slot
	switches []*Switch  // by idx, nil where free
	closed   bool

	// forwarders are taken by a reader for one batch at a time: their
	// staging lists grow with the number of ports, so one per reader would
	// cost readers times ports.
	forwarders sync.Pool

	readers sync.WaitGroup
}

var _ Registry = (*Fabric)(nil)

// New returns a fabric with one switch (DefaultSwitch) and no ports.
func New(cfg Config) *Fabric {
	cfg.setDefaults()
	s := &Fabric{cfg: cfg, log: cfg.Logger, start: time.Now()}
	s.ports.Store(&portSet{})
	s.forwarders.New = func() any { return newForwarder(s, defaultDepth) }
	s.def, _ = s.NewSwitch(SwitchConfig{Name: DefaultSwitch, Hub: cfg.Hub, MACAge: cfg.MACAge, MACTableSize: cfg.MACTableSize})
	return s
}

// defaultDepth sizes a new forwarder; its lists grow if a reader's batches
// are deeper.
const defaultDepth = 64

// now is the time in nanoseconds since the fabric started, for the hold
// paths; readers stamp MAC entries with the coarser clock.
func (s *Fabric) now() int64 { return int64(time.Since(s.start)) }

// Table exposes the default switch's MAC table for inspection.
func (s *Fabric) Table() *MACTable { return s.def.table }

// Default is the switch that Attach uses.
func (s *Fabric) Default() *Switch { return s.def }

// PortOptions are what a port is attached with.
type PortOptions struct {
	Switch *Switch // nil: the default switch
	Name   string  // for logs and counters; empty: the port's own Name
	Policy Policy
	VLAN   VLAN
}

// Attach adds p as a new port of the default switch.
func (s *Fabric) Attach(p Port) (frame.PortID, error) { return s.AttachWith(p, PortOptions{}) }

// AttachWith adds p as a new port with the given options.
func (s *Fabric) AttachWith(p Port, o PortOptions) (frame.PortID, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, fmt.Errorf("attach %s: %w", p.Name(), net.ErrClosed)
	}
	d := o.Switch
	if d == nil {
		d = s.def
	}
	if d == nil || d.removed || d.fab != s {
		return 0, fmt.Errorf("attach %s: no such switch", p.Name())
	}
	if err := o.VLAN.Check(); err != nil {
		return 0, fmt.Errorf("attach %s: %w", p.Name(), err)
	}
	name := o.Name
	if name == "" {
		name = p.Name()
	}
	old := s.ports.Load()
	id := -1
	for i, e := range old.byID {
		if e == nil {
			id = i
			break
		}
	}
	if id < 0 {
		if len(old.byID) >= frame.MaxPorts {
			return 0, fmt.Errorf("attach %s: switch already has %d ports", p.Name(), frame.MaxPorts)
		}
		id = len(old.byID)
		s.gens = append(s.gens, 0)
	}
	s.gens[id]++
	e := &portEntry{id: frame.PortID(id), ref: makeRef(frame.PortID(id), s.gens[id]), port: p, sw: d, pol: d.policyFor(o.Policy),
		vl: newPortVLAN(o.VLAN), name: name, maxFrame: p.MaxFrame(), stats: new(counters)}
	byID := append([]*portEntry(nil), old.byID...)
	if id == len(byID) {
		byID = append(byID, e)
	} else {
		byID[id] = e
	}
	s.replacePorts(byID)
	s.log.Info("port attached", "port", id, "name", e.name, "switch", d.name, "peer", p.Name(), "max_frame", e.maxFrame)
	return e.id, nil
}

// replacePorts publishes a new snapshot with byID as its ports. Caller
// holds mu.
func (s *Fabric) replacePorts(byID []*portEntry) {
	next := &portSet{byID: byID, flood: make([][]*portEntry, len(s.switches)), policed: make([]bool, len(s.switches)),
		vlans: make([]bool, len(s.switches))}
	for _, e := range byID {
		if e != nil {
			next.live = append(next.live, e)
			next.flood[e.sw.idx] = append(next.flood[e.sw.idx], e)
			next.policed[e.sw.idx] = next.policed[e.sw.idx] || e.pol != nil
			next.vlans[e.sw.idx] = next.vlans[e.sw.idx] || e.vl != nil
		}
	}
	s.ports.Store(next)
}

// ReplacePort puts next in old's place: same id, name, switch, policy and
// counters (an impairment wrapped round a running port). old is not
// closed; next is expected to own it. Readers holding the previous
// snapshot may still write to old for the rest of their batch.
func (s *Fabric) ReplacePort(old, next Port) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	byID := append([]*portEntry(nil), s.ports.Load().byID...)
	for i, e := range byID {
		if e != nil && e.port == old {
			byID[i] = &portEntry{id: e.id, ref: e.ref, port: next, sw: e.sw, pol: e.pol, vl: e.vl, name: e.name,
				maxFrame: next.MaxFrame(), stats: e.stats}
			s.replacePorts(byID)
			return nil
		}
	}
	return fmt.Errorf("replace %s: not attached", old.Name())
}

// SetPolicy changes the policy and VLAN membership of port p while it
// runs. When its VLANs change, the addresses learned on it are forgotten:
// they were learned in VLANs it may no longer carry. So are they when its
// link goes down: frames to its hosts flood, and reach them where they
// moved to.
func (s *Fabric) SetPolicy(p Port, pol Policy, vl VLAN) error {
	if err := vl.Check(); err != nil {
		return fmt.Errorf("port %s: %w", p.Name(), err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	byID := append([]*portEntry(nil), s.ports.Load().byID...)
	for i, e := range byID {
		if e == nil || e.port != p {
			continue
		}
		next := &portEntry{id: e.id, ref: e.ref, port: e.port, sw: e.sw, pol: e.sw.policyFor(pol), vl: newPortVLAN(vl),
			name: e.name, maxFrame: e.maxFrame, stats: e.stats}
		byID[i] = next
		s.replacePorts(byID)
		if !sameVLAN(e.vl, next.vl) || (next.pol.down() && !e.pol.down()) {
			e.sw.table.FlushPort(e.id)
		}
		return nil
	}
	return fmt.Errorf("port %s: not attached", p.Name())
}

// Detach removes p, forgets its addresses and closes it.
func (s *Fabric) Detach(p Port) {
	s.mu.Lock()
	old := s.ports.Load()
	var e *portEntry
	for _, c := range old.live {
		if c.port == p {
			e = c
			break
		}
	}
	if e == nil {
		s.mu.Unlock()
		return
	}
	id := e.id
	byID := append([]*portEntry(nil), old.byID...)
	byID[id] = nil // the slot is reused by a later Attach, with a new generation
	s.replacePorts(byID)
	// Flush before another Attach can reuse the id. A reader still holding
	// the old snapshot may learn an address on this port afterwards; its
	// generation no longer resolves, and it ages out.
	flushed := e.sw.table.FlushPort(id)
	e.sw.table.removePinnedOf(id)
	s.mu.Unlock()

	if err := e.port.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		s.log.Warn("port close", "port", id, "name", e.name, "err", err)
	}
	st := e.stats.snapshot(id, e.name, e.port)
	s.log.Info("port detached", "port", id, "name", e.name, "switch", e.sw.name, "peer", e.port.Name(), "rx", st.RxFrames, "tx", st.TxFrames,
		"drops", st.dropSummary(), "stalls", st.Stalls, "slowed", st.Slowed, "macs_flushed", flushed)
}

// Serve runs r on its own goroutine until it reports net.ErrClosed.
func (s *Fabric) Serve(r Receiver) {
	s.readers.Add(1)
	go s.runReceiver(r)
}

func (s *Fabric) runReceiver(r Receiver) {
	defer s.readers.Done()
	var v *frame.Vector
	if r.Lends {
		v = frame.NewLentVector(r.Depth, r.MaxFrame)
	} else {
		v = frame.NewVector(r.Depth, r.MaxFrame)
	}
	defer v.Give()
	s.log.Debug("receiver started", "name", r.Name, "depth", r.Depth)
	var (
		failures  int
		lastLog   time.Time
		suppressd int
	)
	for {
		n, err := r.Receive(v)
		if err == nil {
			failures = 0
			f := s.forwarders.Get().(*forwarder)
			f.forward(v, n)
			s.forwarders.Put(f)
			continue
		}
		if errors.Is(err, net.ErrClosed) {
			s.log.Debug("receiver stopped", "name", r.Name)
			return
		}
		// Transient: log at most once a second, and back off when errors
		// repeat so a broken socket cannot spin a core.
		failures++
		if now := time.Now(); now.Sub(lastLog) >= time.Second {
			s.log.Warn("receive", "name", r.Name, "err", err, "suppressed", suppressd)
			lastLog, suppressd = now, 0
		} else {
			suppressd++
		}
		if failures > 16 {
			time.Sleep(min(time.Duration(failures)*time.Millisecond, 100*time.Millisecond))
		}
	}
}

// Run keeps the fabric's clock and ages the MAC tables until ctx ends.
func (s *Fabric) Run(ctx context.Context) error {
	t := time.NewTicker(s.tick())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-t.C:
			c := int64(now.Sub(s.start))
			s.clock.Store(c)
			for _, d := range s.Switches() {
				d.age(c)
			}
			t.Reset(s.tick()) // a switch added since may age faster
		}
	}
}

// tick is how often Run ages: a quarter of the shortest ageing time, at
// most a second.
func (s *Fabric) tick() time.Duration {
	tick := time.Second
	for _, d := range s.Switches() {
		tick = min(tick, d.MACAge()/4)
	}
	return max(tick, time.Millisecond)
}

// Now is the fabric's clock, as MAC entries are stamped with it.
func (s *Fabric) Now() int64 { return s.clock.Load() }

// Close detaches every port and waits for all receivers to stop. Transports
// that own shared sockets must be closed first so their receivers return.
func (s *Fabric) Close() {
	s.mu.Lock()
	s.closed = true
	live := s.ports.Load().live
	s.mu.Unlock()
	for _, e := range live {
		s.Detach(e.port)
	}
	s.readers.Wait()
}

// Stats returns a snapshot of every attached port's counters.
func (s *Fabric) Stats() []PortStats { return snapshotAll(s.ports.Load().live) }

func snapshotAll(ports []*portEntry) []PortStats {
	out := make([]PortStats, 0, len(ports))
	for _, e := range ports {
		out = append(out, e.stats.snapshot(e.id, e.name, e.port))
	}
	return out
}

// PortName is the name port id was attached with, or "" if none is.
func (s *Fabric) PortName(id frame.PortID) string {
	if e := s.ports.Load().get(id); e != nil {
		return e.name
	}
	return ""
}

// PortStatsOf returns the counters of p, if it is attached.
func (s *Fabric) PortStatsOf(p Port) (PortStats, bool) {
	for _, e := range s.ports.Load().live {
		if e.port == p {
			return e.stats.snapshot(e.id, e.name, e.port), true
		}
	}
	return PortStats{}, false
}

// PortStats returns the counters of port id, if it is attached.
func (s *Fabric) PortStats(id frame.PortID) (PortStats, bool) {
	e := s.ports.Load().get(id)
	if e == nil {
		return PortStats{}, false
	}
	return e.stats.snapshot(id, e.name, e.port), true
}
