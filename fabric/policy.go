package fabric

import (
	"sync"

	"github.com/umlswitch/umlswitch/frame"
)

// Policy is what the switch does with a port's frames besides forwarding
// them: the loop-free meshes, quiet ports and limits a lab's topology
// asks for. The zero value is no policy, and costs forwarding nothing.
type Policy struct {
	// SplitHorizon names a group: a frame that arrived on a port of the
	// group never leaves through another port of it (a full mesh of
	// tunnels between switches is then loop-free).
	SplitHorizon string
	NoFlood      bool // no unknown unicast out of this port
	NoBroadcast  bool // no broadcast out of this port
	Isolated     bool // talks only to ports that are not isolated (the Linux bridge's isolated on)
	MACLimit     int  // most addresses learned on this port; beyond it new sources are dropped
	Storm        int  // flooded frames (broadcast, multicast, unknown unicast) a second it may send in
	NoLinkLocal  bool // drop frames to 01:80:c2:00:00:00-0f (STP, LACP, LLDP, 802.1X) coming in
	// LinkDown breaks the port's link (a failure drill): nothing it sends
	// comes in, nothing goes out through it; both count as link-down.
	LinkDown bool
}

// portPolicy is a Policy as forwarding reads it; a port without one has a
// nil pointer, so the common case is one comparison.
type portPolicy struct {
	group       uint16 // split horizon group id in the port's switch; 0: none
	noFlood     bool
	noBroadcast bool
	isolated    bool
	macLimit    int
	storm       *tokenBucket
	noLinkLocal bool
	linkDown    bool
}

func (p Policy) empty() bool { return p == Policy{} }

// policyFor builds a port's policy; caller holds s.mu (group ids).
func (d *Switch) policyFor(p Policy) *portPolicy {
	if p.empty() {
		return nil
	}
	pp := &portPolicy{noFlood: p.NoFlood, noBroadcast: p.NoBroadcast, isolated: p.Isolated, macLimit: p.MACLimit,
		noLinkLocal: p.NoLinkLocal, linkDown: p.LinkDown}
	if p.SplitHorizon != "" {
		if d.groups == nil {
			d.groups = make(map[string]uint16)
		}
		id, ok := d.groups[p.SplitHorizon]
		if !ok {
			id = uint16(len(d.groups) + 1)
			d.groups[p.SplitHorizon] = id
		}
		pp.group = id
	}
	if p.Storm > 0 {
		pp.storm = newTokenBucket(p.Storm)
	}
	return pp
}

// apart reports whether policy forbids frames from in to out: the same
// split horizon group, or both isolated.
func apart(in, out *portPolicy) bool {
	if in == nil || out == nil {
		return false
	}
	return (in.group != 0 && in.group == out.group) || (in.isolated && out.isolated)
}

// apartReason is why apart refused a unicast frame.
func apartReason(in, out *portPolicy) DropReason {
	if in.group != 0 && in.group == out.group {
		return DropSplitHorizon
	}
	return DropIsolated
}

// floodsTo reports whether a frame to dst flooded from a port with policy
// in goes out of a port with policy out.
func floodsTo(in, out *portPolicy, dst frame.MAC) bool {
	if apart(in, out) {
		return false
	}
	if out == nil {
		return true
	}
	switch {
	case out.noBroadcast && dst.IsBroadcast():
		return false
	case out.noFlood && !dst.IsMulticast():
		return false // unknown unicast (or any unicast, in a hub)
	}
	return true
}

// down reports whether the port's link is down.
func (p *portPolicy) down() bool { return p != nil && p.linkDown }

// txDown reports whether e's link is down, counting on e the frame that
// would have left through it.
func (e *portEntry) txDown() bool {
	if e.pol.down() {
		e.stats.drop(DropLinkDown, 1)
		return true
	}
	return false
}

// isLinkLocal reports whether dst is one of 802.1D's reserved addresses,
// 01:80:c2:00:00:00 to 0f, which a bridge would keep to itself.
func isLinkLocal(dst frame.MAC) bool {
	return dst[0] == 0x01 && dst[1] == 0x80 && dst[2] == 0xc2 && dst[3] == 0 && dst[4] == 0 && dst[5] <= 0x0f
}

// tokenBucket admits rate events a second, with a burst of a second's
// worth, on the fabric's nanosecond clock.
type tokenBucket struct {
	mu     sync.Mutex
	rate   int64 // events a second
	tokens int64 // in billionths of an event
	last   int64
}

func newTokenBucket(rate int) *tokenBucket {
	return &tokenBucket{rate: int64(rate), tokens: int64(rate) * 1e9}
}

// take admits one event at time now (nanoseconds) or reports false.
func (b *tokenBucket) take(now int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if d := now - b.last; d > 0 {
		b.tokens = min(b.tokens+d*b.rate, b.rate*1e9)
		b.last = now
	}
	if b.tokens < 1e9 {
		return false
	}
	b.tokens -= 1e9
	return true
}
