package evpn

import (
	"net/netip"

	"github.com/umlswitch/umlswitch/frame"
)

// vni is one switch in the fabric: what it announces and what it has
// imported.
type vni struct {
	sw      string
	id      uint32
	adv     advertisement
	imports []target // empty: any route target whose number is the VNI

	vteps     map[netip.Addr]int               // remote VTEP: how many type-3 routes name it
	remote    map[frame.MAC]map[string]*Route  // by route key
	byVTEP    map[netip.Addr]map[frame.MAC]int // remote's addresses by VTEP: how many routes name each
	installed map[frame.MAC]netip.Addr         // remote entries the switch holds
	local     map[frame.MAC]uint32             // addresses announced: their sequence numbers

	// Brought back after a restart and not yet confirmed by a route.
	staleVTEPs map[netip.Addr]bool
	staleMACs  map[frame.MAC]bool
}

func newVNI(sw string, id uint32) *vni {
	return &vni{sw: sw, id: id, vteps: make(map[netip.Addr]int), remote: make(map[frame.MAC]map[string]*Route),
		byVTEP: make(map[netip.Addr]map[frame.MAC]int), installed: make(map[frame.MAC]netip.Addr), local: make(map[frame.MAC]uint32),
		staleVTEPs: make(map[netip.Addr]bool), staleMACs: make(map[frame.MAC]bool)}
}

// index counts a type-2 route of m from vtep in byVTEP (n is 1 or -1), so
// that a VTEP joining or leaving looks at its own addresses only.
func (v *vni) index(m frame.MAC, vtep netip.Addr, n int) {
	ms := v.byVTEP[vtep]
	if ms == nil {
		ms = make(map[frame.MAC]int)
		v.byVTEP[vtep] = ms
	}
	if ms[m] += n; ms[m] <= 0 {
		delete(ms, m)
	}
	if len(ms) == 0 {
		delete(v.byVTEP, vtep)
	}
}

// imports reports whether a route with route targets r.rts belongs here.
func (v *vni) imported(r *Route) bool {
	if len(v.imports) == 0 {
		for _, rt := range r.rts {
			if n, ok := rtNumber(rt); ok && n == v.id {
				return true
			}
		}
		return false
	}
	for _, t := range v.imports {
		if t.matches(r.rts) {
			return true
		}
	}
	return false
}

// bestRemote is the remote route that holds m: the highest sequence
// number, then the lowest VTEP address (RFC 7432 section 15.1). Only
// routes from VTEPs that announced the VNI count: without a type-3 route
// there is no tunnel to send on.
func (v *vni) bestRemote(m frame.MAC) *Route {
	var best *Route
	for _, r := range v.remote[m] {
		if v.vteps[r.VTEP] == 0 {
			continue
		}
		if best == nil || r.Seq > best.Seq || r.Seq == best.Seq && r.VTEP.Less(best.VTEP) {
			best = r
		}
	}
	return best
}

// highestSeq is the highest sequence number any VTEP announced for m.
func (v *vni) highestSeq(m frame.MAC) (uint32, bool) {
	var seq uint32
	rs := v.remote[m]
	for _, r := range rs {
		seq = max(seq, r.Seq)
	}
	return seq, len(rs) > 0
}

// remoteWins reports whether a remote route with sequence number seq from
// vtep takes an address this VTEP announces with sequence number mine.
func remoteWins(seq uint32, vtep netip.Addr, mine uint32, self netip.Addr) bool {
	return seq > mine || seq == mine && vtep.Less(self)
}
