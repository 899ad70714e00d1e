package fabric

import (
	"errors"
	"fmt"

	"github.com/umlswitch/umlswitch/frame"
)

// VLAN is a port's 802.1Q membership. The zero value is a port with none
// of the VLAN keys: a trunk of every VLAN that passes tags untouched, whose
// untagged frames make a VLAN of their own (0) that only such ports carry.
// A switch whose ports all have the zero value forwards as a switch
// without VLANs, learning per tag.
type VLAN struct {
	Access uint16         // vlan=N: untagged frames join N, frames leave untagged, tagged ones are refused
	Trunk  *frame.VLANSet // trunk=LIST: a tagged member of these VLANs
	Native uint16         // native=N: a trunk's untagged VLAN
	// QinQ (qinq=N) carries every frame of the port, tagged or not, in
	// service VLAN N: it leaves trunks inside an 802.1ad tag N, and
	// leaves this port as it came.
	QinQ uint16
}

// IsZero reports whether v sets nothing.
func (v VLAN) IsZero() bool { return v.Access == 0 && v.Trunk == nil && v.Native == 0 && v.QinQ == 0 }

// Check reports a membership that makes no sense.
func (v VLAN) Check() error {
	in := func(n uint16) bool { return n >= 1 && n <= frame.MaxVLAN }
	switch {
	case v.Access != 0 && (v.Trunk != nil || v.Native != 0 || v.QinQ != 0):
		return errors.New("vlan= makes an access port: it takes no trunk=, native= or qinq=")
	case v.QinQ != 0 && (v.Trunk != nil || v.Native != 0):
		return errors.New("qinq= carries every frame of the port in one VLAN: it takes no trunk= or native=")
	case v.Native != 0 && v.Trunk == nil:
		return errors.New("native= is a trunk's untagged VLAN: give trunk= too")
	case v.Access != 0 && !in(v.Access), v.Native != 0 && !in(v.Native), v.QinQ != 0 && !in(v.QinQ):
		return fmt.Errorf("VLAN ids run from 1 to %d", frame.MaxVLAN)
	case v.Trunk != nil && v.Trunk.Len() == 0 && v.Native == 0:
		return errors.New("trunk= carries no VLAN")
	}
	return nil
}

type vlanMode uint8

const (
	modeAccess vlanMode = iota + 1
	modeTrunk
	modeQinQ
)

// portVLAN is a VLAN as forwarding reads it; a port without VLAN keys has
// a nil pointer.
type portVLAN struct {
	mode vlanMode
	pvid uint16 // access VLAN, native VLAN (0: none) or service VLAN
	tags frame.VLANSet
	tpid uint16 // of the tag a frame that came in untagged gets on a trunk
}

func newPortVLAN(v VLAN) *portVLAN {
	switch {
	case v.IsZero():
		return nil
	case v.Access != 0:
		return &portVLAN{mode: modeAccess, pvid: v.Access, tpid: frame.TPID8021Q}
	case v.QinQ != 0:
		return &portVLAN{mode: modeQinQ, pvid: v.QinQ, tpid: frame.TPID8021AD}
	}
	p := &portVLAN{mode: modeTrunk, pvid: v.Native, tpid: frame.TPID8021Q}
	if v.Trunk != nil {
		p.tags = *v.Trunk
	}
	return p
}

func sameVLAN(a, b *portVLAN) bool { return a == b || (a != nil && b != nil && *a == *b) }

// egress says whether a frame of VLAN vid may leave through a port with
// membership p, and whether it leaves tagged.
func (p *portVLAN) egress(vid uint16) (member, tagged bool) {
	switch {
	case p == nil:
		return true, vid != 0
	case p.mode != modeTrunk:
		return vid == p.pvid, false
	case vid == p.pvid && vid != 0:
		return true, false
	}
	return p.tags.Has(vid), true
}

// vlanMeta is what forwarding knows of one frame of a batch in a switch
// with VLAN ports, besides its VLAN: whether it came tagged with its VLAN's
// tag, the tag it gets (or had) and whether the buffer now holds it in the
// other form. flipped is false outside transmit.
type vlanMeta struct {
	tag     frame.Tag
	tagged  bool
	nested  bool // tagged, and another VLAN tag follows its own
	flipped bool
}

// nestedTag reports whether a tagged frame carries a second VLAN tag right
// after its outer one.
func nestedTag(fr []byte) bool {
	if len(fr) < 18 {
		return false
	}
	t := uint16(fr[16])<<8 | uint16(fr[17])
	return t == frame.TPID8021Q || t == frame.TPID8021AD
}

// classify finds the VLAN of frame i from port in of a switch with VLAN
// ports, notes in f.meta how to push or pop its tag, and reports false
// (counting the drop) for a frame the port may not send in.
func (f *forwarder) classify(in *portEntry, i int, fr []byte) (uint16, bool) {
	m := &f.meta[i]
	vid, tagged := frame.OuterVLAN(fr)
	tagged = tagged && vid != 0 // a priority tag alone does not name a VLAN
	*m = vlanMeta{tagged: tagged, nested: tagged && nestedTag(fr)}
	p := in.vl
	switch {
	case p == nil:
		if tagged {
			return vid, true
		}
		return 0, true
	case p.mode == modeQinQ:
		m.tagged = false // its tags are payload: they stay inside
	case tagged && p.mode == modeAccess:
		in.stats.drop(DropVLANMismatch, 1)
		return 0, false
	case tagged:
		if vid != p.pvid && !p.tags.Has(vid) {
			in.stats.drop(DropVLANFiltered, 1)
			return 0, false
		}
		return vid, true
	case p.pvid == 0: // an untagged frame on a trunk without native=
		in.stats.drop(DropVLANMismatch, 1)
		return 0, false
	}
	m.tag = frame.MakeTag(p.tpid, p.pvid)
	return p.pvid, true
}

// stageVLAN queues frame i of VLAN vid for out, in the form out sends it.
// It reports false if out does not carry vid.
func (f *forwarder) stageVLAN(out *portEntry, i, size int, vid uint16) bool {
	member, tagged := out.vl.egress(vid)
	if !member {
		return false
	}
	m := &f.meta[i]
	if tagged == m.tagged {
		f.stage(out, i, size)
		return true
	}
	if m.nested && !tagged && out.vl != nil && out.vl.mode == modeTrunk {
		// Leaving a trunk untagged in its native VLAN, the frame would
		// show its inner tag as its own: a frame of VLAN 10 would reach
		// the trunk's peer, which reads tags as VLANs, as one of a VLAN
		// the trunk does not carry (double-tag VLAN hopping). Access and
		// QinQ ports pop a service tag to show the customer's tags: that
		// is what they are for.
		out.stats.drop(DropVLANFiltered, 1)
		return true
	}
	if tagged {
		size += frame.VLANTagLen
	} else {
		size -= frame.VLANTagLen
	}
	if size > out.maxFrame {
		out.stats.drop(DropTxOversize, 1)
		return true
	}
	id := out.id
	if int(id) >= len(f.lists) {
		f.grow(int(id) + 1)
	}
	if len(f.lists[id]) == 0 && len(f.flips[id]) == 0 {
		f.touched = append(f.touched, id)
	}
	f.flips[id] = append(f.flips[id], uint16(i))
	f.flipping = true
	return true
}

// form returns frame k in the form asked for: as it came (flip false) or
// with its tag pushed or popped (flip true). A frame changes form in place,
// at most once per destination list, so a flood to ports that want both
// forms moves 12 bytes once, not per port.
func (f *forwarder) form(v *frame.Vector, k int, flip bool) []byte {
	m := &f.meta[k]
	buf, size := v.Bufs[k], v.Sizes[k]
	const h, t = frame.Headroom, frame.VLANTagLen
	if m.flipped != flip {
		switch {
		case m.tagged && flip:
			m.tag = frame.PopTag(buf, h)
		case m.tagged:
			frame.PushTag(buf, h+t, m.tag)
		case flip:
			frame.PushTag(buf, h, m.tag)
		default:
			frame.PopTag(buf, h-t)
		}
		if flip {
			f.undo = append(f.undo, uint16(k))
		}
		m.flipped = flip
	}
	switch {
	case !flip:
		return buf[h : h+size]
	case m.tagged:
		return buf[h+t : h+size]
	}
	return buf[h-t : h+size]
}
