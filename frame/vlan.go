package frame

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
)

// 802.1Q and 802.1ad tags.
const (
	TPID8021Q  = 0x8100 // a customer VLAN tag (802.1Q)
	TPID8021AD = 0x88a8 // a service VLAN tag (802.1ad, QinQ's outer tag)
	MaxVLAN    = 4094   // VLAN ids run from 1 to 4094; 0 and 4095 are reserved
)

// Tag is a VLAN tag as it sits in a frame: TPID, then priority, DEI and
// VLAN id.
type Tag [VLANTagLen]byte

// MakeTag is the tag of VLAN vid with protocol tpid and priority 0.
func MakeTag(tpid, vid uint16) Tag {
	var t Tag
	binary.BigEndian.PutUint16(t[0:], tpid)
	binary.BigEndian.PutUint16(t[2:], vid&0xfff)
	return t
}

// VID is the tag's VLAN id.
func (t Tag) VID() uint16 { return binary.BigEndian.Uint16(t[2:]) & 0xfff }

// OuterVLAN returns the VLAN id of f's outer tag (802.1Q or 802.1ad) and
// whether it has one. A frame too short to hold a whole tag has none.
func OuterVLAN(f []byte) (vid uint16, tagged bool) {
	if len(f) < HeaderLen+VLANTagLen {
		return 0, false
	}
	if t := EtherType(f); t != TPID8021Q && t != TPID8021AD {
		return 0, false
	}
	return binary.BigEndian.Uint16(f[14:]) & 0xfff, true
}

// PushTag puts t in front of the type field of the frame that starts at
// buf[start], moving the two addresses 4 bytes towards the front: the
// frame then starts at start-VLANTagLen and nothing else moves. start must
// leave that room (a Vector's Headroom does) and the frame must hold its
// addresses.
func PushTag(buf []byte, start int, t Tag) {
	copy(buf[start-VLANTagLen:start+8], buf[start:start+12])
	copy(buf[start+8:start+12], t[:])
}

// PopTag takes out the outer tag of the frame that starts at buf[start],
// which must have one, and returns it: the addresses move 4 bytes towards
// the end and the frame then starts at start+VLANTagLen.
func PopTag(buf []byte, start int) Tag {
	var t Tag
	copy(t[:], buf[start+12:start+16])
	copy(buf[start+VLANTagLen:start+16], buf[start:start+12])
	return t
}

// VLANSet is a set of VLAN ids, 1 to 4094, as a bitmap: a trunk's members.
type VLANSet [64]uint64

// Has reports whether vid is in the set.
func (s *VLANSet) Has(vid uint16) bool { return s[vid>>6&63]&(1<<(vid&63)) != 0 }

// Add puts vid in the set.
func (s *VLANSet) Add(vid uint16) { s[vid>>6&63] |= 1 << (vid & 63) }

// Len is the number of VLANs in the set.
func (s *VLANSet) Len() int {
	n := 0
	for vid := uint16(1); vid <= MaxVLAN; vid++ {
		if s.Has(vid) {
			n++
		}
	}
	return n
}

// ParseVLANSet reads a VLAN list as trunk= takes it: ids and ranges
// separated by semicolons ("10;20;30-40"), or "all" (1-4094).
func ParseVLANSet(text string) (VLANSet, error) {
	var s VLANSet
	if strings.TrimSpace(text) == "all" {
		for vid := uint16(1); vid <= MaxVLAN; vid++ {
			s.Add(vid)
		}
		return s, nil
	}
	if strings.TrimSpace(text) == "" {
		return s, fmt.Errorf("empty VLAN list: write ids and ranges like 10;20;30-40, or all")
	}
	for _, item := range strings.Split(text, ";") {
		item = strings.TrimSpace(item)
		lo, hi, isRange := strings.Cut(item, "-")
		first, err := ParseVLAN(lo)
		if err != nil {
			return s, err
		}
		last := first
		if isRange {
			if last, err = ParseVLAN(hi); err != nil {
				return s, err
			}
			if last < first {
				return s, fmt.Errorf("VLAN range %q runs backwards", item)
			}
		}
		for vid := first; vid <= last; vid++ {
			s.Add(vid)
		}
	}
	return s, nil
}

// ParseVLAN reads one VLAN id, 1 to 4094.
func ParseVLAN(text string) (uint16, error) {
	n, err := strconv.ParseUint(strings.TrimSpace(text), 10, 16)
	if err != nil || n < 1 || n > MaxVLAN {
		return 0, fmt.Errorf("%q is not a VLAN id from 1 to %d", text, MaxVLAN)
	}
	return uint16(n), nil
}

// String writes the set as ParseVLANSet reads it, ranges folded: "all"
// for every VLAN, "" for none.
func (s VLANSet) String() string {
	var b strings.Builder
	n := 0
	for vid := uint16(1); vid <= MaxVLAN; vid++ {
		if !s.Has(vid) {
			continue
		}
		last := vid
		for last < MaxVLAN && s.Has(last+1) {
			last++
		}
		if b.Len() > 0 {
			b.WriteByte(';')
		}
		b.WriteString(strconv.Itoa(int(vid)))
		if last > vid {
			b.WriteByte('-')
			b.WriteString(strconv.Itoa(int(last)))
		}
		n += int(last-vid) + 1
		vid = last
	}
	if n == MaxVLAN {
		return "all"
	}
	return b.String()
}
