package fabric

import (
	"encoding/binary"
	"fmt"
	"strings"
	"testing"

	"github.com/umlswitch/umlswitch/frame"
)

// vlanRig is a switch whose ports have the given VLAN keys.
func vlanRig(t testing.TB, vls ...VLAN) *rig {
	t.Helper()
	opts := make([]PortOptions, len(vls))
	for i, vl := range vls {
		opts[i].VLAN = vl
	}
	return optionsRig(t, opts...)
}

func trunk(list string, native uint16) VLAN {
	s, err := frame.ParseVLANSet(list)
	if err != nil {
		panic(err)
	}
	return VLAN{Trunk: &s, Native: native}
}

var (
	q10  = frame.MakeTag(frame.TPID8021Q, 10)
	q20  = frame.MakeTag(frame.TPID8021Q, 20)
	q30  = frame.MakeTag(frame.TPID8021Q, 30)
	s100 = frame.MakeTag(frame.TPID8021AD, 100)
)

// vframe is a frame of size bytes (tags included) from src to dst with
// the given tags, outer first; the byte after the type field is mark.
func vframe(dst, src frame.MAC, size int, mark byte, tags ...frame.Tag) []byte {
	f := append(append([]byte(nil), dst[:]...), src[:]...)
	for _, t := range tags {
		f = append(f, t[:]...)
	}
	f = append(f, 0x88, 0xb5, mark)
	for i := 0; len(f) < size; i++ {
		f = append(f, byte(i))
	}
	return f
}

// describe writes a frame as its tags and mark ("8100/10 #3"), and checks
// that its payload is intact.
func describe(t *testing.T, f []byte) string {
	t.Helper()
	var parts []string
	rest := f[12:]
	for len(rest) >= 4 && (binary.BigEndian.Uint16(rest) == frame.TPID8021Q || binary.BigEndian.Uint16(rest) == frame.TPID8021AD) {
		parts = append(parts, fmt.Sprintf("%x/%d", binary.BigEndian.Uint16(rest), binary.BigEndian.Uint16(rest[2:])&0xfff))
		rest = rest[4:]
	}
	if len(rest) < 3 || rest[0] != 0x88 || rest[1] != 0xb5 {
		t.Fatalf("frame %x: no payload after the tags", f)
	}
	for i, b := range rest[3:] {
		if b != byte(i) {
			t.Fatalf("frame %x: payload changed at %d", f, i)
		}
	}
	return strings.Join(append(parts, fmt.Sprintf("#%d", rest[2])), " ")
}

// got describes what each port received, then resets them.
func (r *rig) got(t *testing.T) []string {
	t.Helper()
	out := make([]string, len(r.ports))
	for i, p := range r.ports {
		var fs []string
		for _, f := range p.frames() {
			fs = append(fs, describe(t, f))
		}
		out[i] = strings.Join(fs, ", ")
		p.reset()
	}
	return out
}

func (r *rig) sendFrames(port int, frames ...[]byte) {
	in := make([]inFrame, len(frames))
	for i, f := range frames {
		in[i] = inFrame{port: r.ids[port], data: f}
	}
	r.send(in...)
}

func expect(t *testing.T, what string, got, want []string) {
	t.Helper()
	if strings.Join(got, " | ") != strings.Join(want, " | ") {
		t.Errorf("%s:\n got  %q\n want %q", what, got, want)
	}
}

// Access ports of two VLANs, a trunk of both, a trunk of one with a
// native VLAN, and a port without keys: floods stay in their VLAN and
// leave each port in its form.
func TestVLANFloodsStayInTheirVLAN(t *testing.T) {
	r := vlanRig(t, VLAN{Access: 10}, VLAN{Access: 10}, VLAN{Access: 20}, trunk("10;20", 0), trunk("20", 10), VLAN{})
	r.sendFrames(0, vframe(frame.Broadcast, macA, 60, 1))
	expect(t, "flood from access 10", r.got(t), []string{"", "#1", "", "8100/10 #1", "#1", "8100/10 #1"})
	r.sendFrames(2, vframe(frame.Broadcast, macB, 60, 2))
	expect(t, "flood from access 20", r.got(t), []string{"", "", "", "8100/20 #2", "8100/20 #2", "8100/20 #2"})
	r.sendFrames(3, vframe(frame.Broadcast, macC, 64, 3, q10), vframe(frame.Broadcast, macC, 64, 4, q20))
	expect(t, "floods from the trunk", r.got(t), []string{"#3", "#3", "#4", "", "8100/20 #4, #3", "8100/10 #3, 8100/20 #4"})
	r.sendFrames(4, vframe(frame.Broadcast, macX, 60, 5))
	expect(t, "untagged on a trunk with native 10", r.got(t), []string{"#5", "#5", "", "8100/10 #5", "", "8100/10 #5"})
	// Untagged frames of the port without keys are a VLAN of their own.
	r.sendFrames(5, vframe(frame.Broadcast, macX, 60, 6))
	expect(t, "untagged from the port without keys", r.got(t), []string{"", "", "", "", "", ""})
}

func TestVLANDrops(t *testing.T) {
	r := vlanRig(t, VLAN{Access: 10}, trunk("10", 0), trunk("10", 0))
	r.sendFrames(0, vframe(frame.Broadcast, macA, 64, 1, q10))
	r.sendFrames(1, vframe(frame.Broadcast, macA, 64, 2, q30), vframe(frame.Broadcast, macA, 60, 3))
	expect(t, "refused frames", r.got(t), []string{"", "", ""})
	if r.drops(0, DropVLANMismatch) != 1 || r.drops(1, DropVLANFiltered) != 1 || r.drops(1, DropVLANMismatch) != 1 {
		t.Errorf("drops: access mismatch %d, trunk filtered %d, trunk mismatch %d",
			r.drops(0, DropVLANMismatch), r.drops(1, DropVLANFiltered), r.drops(1, DropVLANMismatch))
	}
	// A priority-tagged frame (VLAN 0) belongs to the port's VLAN.
	r.sendFrames(0, vframe(frame.Broadcast, macB, 64, 4, frame.MakeTag(frame.TPID8021Q, 0)))
	expect(t, "priority tag on an access port", r.got(t), []string{"", "8100/10 8100/0 #4", "8100/10 8100/0 #4"})
}

// The table is keyed by VLAN and address: the same address on two ports
// in two VLANs, and unicast finds the right one.
func TestVLANLearningIsPerVLAN(t *testing.T) {
	r := vlanRig(t, VLAN{Access: 10}, VLAN{Access: 20}, trunk("10;20", 0))
	r.sendFrames(0, vframe(frame.Broadcast, macA, 60, 1))
	r.sendFrames(1, vframe(frame.Broadcast, macA, 60, 2))
	r.got(t)
	r.sendFrames(2, vframe(macA, macB, 64, 3, q20), vframe(macA, macB, 64, 4, q10))
	expect(t, "unicast per VLAN", r.got(t), []string{"#4", "#3", ""})
	es := r.sw.Default().Entries()
	if len(es) != 4 || es[0].MAC != macA || es[0].VLAN != 10 || es[1].VLAN != 20 || es[0].Port == es[1].Port {
		t.Errorf("entries %+v", es)
	}
	// Without VLAN keys anywhere, learning is still per tag.
	k := vlanRig(t, VLAN{}, VLAN{}, VLAN{})
	k.sendFrames(0, vframe(frame.Broadcast, macA, 64, 1, q10))
	k.sendFrames(1, vframe(frame.Broadcast, macA, 64, 2, q20))
	k.got(t)
	k.sendFrames(2, vframe(macA, macB, 64, 3, q10), vframe(macA, macB, 64, 4, q20), vframe(macA, macB, 60, 5))
	expect(t, "plain switch, per tag", k.got(t), []string{"8100/10 #3, #5", "8100/20 #4, #5", ""})
}

// A qinq port carries its frames, tagged or not, in service VLAN 100: out
// of a trunk in an 802.1ad tag, back out of another qinq port as they came.
// A 1500-byte payload with both tags is not oversize.
func TestQinQ(t *testing.T) {
	r := vlanRig(t, VLAN{QinQ: 100}, trunk("100", 0), VLAN{Access: 100}, VLAN{QinQ: 200})
	full := frame.MaxFrameForMTU(1500) - frame.VLANTagLen // 1500 bytes of payload with a customer tag
	r.sendFrames(0, vframe(frame.Broadcast, macA, full, 1, q10), vframe(frame.Broadcast, macA, 60, 2))
	expect(t, "from the qinq port", r.got(t), []string{"", "88a8/100 8100/10 #1, 88a8/100 #2", "8100/10 #1, #2", ""})
	if r.drops(0, DropOversize)+r.drops(1, DropTxOversize) != 0 {
		t.Errorf("a full frame in two tags counted oversize")
	}
	r.sendFrames(1, vframe(frame.Broadcast, macB, full+4, 3, s100, q10))
	expect(t, "from the trunk", r.got(t), []string{"8100/10 #3", "", "8100/10 #3", ""})
}

// A batch mixing VLANs and forms, with destinations that are full for a
// while: every port gets every frame in its own form, in order per VLAN,
// whichever pass wrote it and however often the frames changed form.
func TestVLANFormsSurviveHolding(t *testing.T) {
	r := vlanRig(t, VLAN{Access: 10}, trunk("10;20", 0), VLAN{Access: 10}, trunk("10;20", 20), VLAN{})
	// Port 4 is full while the others take the batch: by the time it
	// drains, the frames it wants as they came were popped for port 0.
	r.ports[1].room, r.ports[2].room, r.ports[4].room = 1, 0, 0
	for _, p := range []int{1, 2, 4} {
		r.ports[p].readAfter, r.ports[p].readN = 0, 1
	}
	r.sendFrames(1, vframe(frame.Broadcast, macA, 64, 1, q10), vframe(frame.Broadcast, macA, 64, 2, q20),
		vframe(frame.Broadcast, macA, 64, 3, q10))
	r.sendFrames(0, vframe(frame.Broadcast, macB, 60, 4), vframe(frame.Broadcast, macB, 60, 5))
	expect(t, "held and flipped", r.got(t), []string{
		"#1, #3",
		"8100/10 #4, 8100/10 #5",
		"#1, #3, #4, #5",
		"8100/10 #1, 8100/10 #3, #2, 8100/10 #4, 8100/10 #5",
		"8100/10 #1, 8100/20 #2, 8100/10 #3, 8100/10 #4, 8100/10 #5",
	})
}

func TestVLANChecks(t *testing.T) {
	all, none := *trunk("all", 0).Trunk, frame.VLANSet{}
	for _, v := range []VLAN{
		{Access: 10, Native: 10}, {Access: 10, Trunk: &all}, {QinQ: 10, Trunk: &all}, {Native: 10},
		{Access: 4095}, {QinQ: 5000}, {Trunk: &none},
	} {
		if _, err := newRig(t, 0, Config{}).sw.AttachWith(newFake("x"), PortOptions{VLAN: v}); err == nil {
			t.Errorf("%+v accepted", v)
		}
	}
	if _, err := newRig(t, 0, Config{}).sw.AttachWith(newFake("x"), PortOptions{VLAN: VLAN{Trunk: &all}}); err != nil {
		t.Errorf("trunk=all: %v", err)
	}
	r := vlanRig(t, VLAN{Access: 10})
	if err := r.sw.Default().SetStatic(20, macA, r.ids[0]); err == nil {
		t.Error("a static entry in a VLAN the port does not carry")
	}
	if err := r.sw.Default().SetStatic(10, macA, r.ids[0]); err != nil {
		t.Error(err)
	}
}

// Forwarding with VLANs allocates nothing: pushes and pops happen in the
// vector's headroom.
func TestVLANForwardingDoesNotAllocate(t *testing.T) {
	r := &rig{sw: New(Config{Logger: quiet()}), v: frame.NewVector(64, 1518)}
	for i, vl := range []VLAN{{Access: 10}, trunk("10;20", 0), {Access: 10}, {QinQ: 20}, {}} {
		id, err := r.sw.AttachWith(nullPort{name: fmt.Sprint(i)}, PortOptions{VLAN: vl})
		if err != nil {
			t.Fatal(err)
		}
		r.ids = append(r.ids, id)
	}
	r.fw = newForwarder(r.sw, 64)
	var batch []inFrame
	for i := 0; i < 16; i++ {
		batch = append(batch,
			inFrame{r.ids[0], vframe(frame.Broadcast, macA, 60, 1)},
			inFrame{r.ids[1], vframe(macA, macB, 64, 2, q10)},
			inFrame{r.ids[1], vframe(frame.Broadcast, macB, 64, 3, q20)},
			inFrame{r.ids[3], vframe(frame.Broadcast, macC, 64, 4, q10)})
	}
	r.fw.forward(r.v, load(r.v, batch)) // learns and sizes the staging lists
	allocs := testing.AllocsPerRun(200, func() { r.fw.forward(r.v, load(r.v, batch)) })
	if allocs != 0 && !raceEnabled {
		t.Fatalf("%v allocations per batch", allocs)
	}
}

// BenchmarkForwardVLAN compares unicast between two ports without VLAN
// keys, between two access ports of one VLAN, from an access port to a
// trunk (a push) and from a trunk to an access port (a pop). Every op
// reloads its 64-frame batch (a push or pop changes it), the baseline too.
func BenchmarkForwardVLAN(b *testing.B) {
	access, tr := VLAN{Access: 10}, trunk("10", 0)
	cases := []struct {
		name     string
		in, out  VLAN
		inTagged bool
	}{
		{"untagged", VLAN{}, VLAN{}, false},
		{"access-access", access, access, false},
		{"access-trunk", access, tr, false},
		{"trunk-access", tr, access, true},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			r := &rig{sw: New(Config{Logger: quiet()}), v: frame.NewVector(64, 1518)}
			for i, vl := range []VLAN{c.in, c.out} {
				id, err := r.sw.AttachWith(nullPort{name: fmt.Sprint(i)}, PortOptions{VLAN: vl})
				if err != nil {
					b.Fatal(err)
				}
				r.ids = append(r.ids, id)
			}
			r.fw = newForwarder(r.sw, 64)
			src, dst := frame.MAC{2, 0, 0, 0, 0, 1}, frame.MAC{2, 0, 0, 0, 0, 2}
			var tags []frame.Tag
			if c.out.Trunk != nil {
				tags = []frame.Tag{q10}
			}
			r.fw.forward(r.v, load(r.v, []inFrame{{r.ids[1], vframe(frame.Broadcast, dst, 60, 0, tags...)}}))
			tags = nil
			if c.inTagged {
				tags = []frame.Tag{q10}
			}
			var batch []inFrame
			for i := 0; i < 64; i++ {
				batch = append(batch, inFrame{r.ids[0], vframe(dst, src, 64, 0, tags...)})
			}
			b.ResetTimer()
			for b.Loop() {
				r.fw.forward(r.v, load(r.v, batch))
			}
			reportRate(b, len(batch))
		})
	}
}

// FuzzVLANForward sends arbitrary frames, tagged or not, from every kind
// of port into a switch with access ports, trunks (with and without a
// native VLAN), QinQ and ports without keys, one of them full: nothing
// panics, nothing leaves a port larger than it carries, frames leave access
// and QinQ ports without their VLAN's tag (unless the customer's own inner
// tag names the same VLAN: popping the outer one shows it, as it should)
// and trunks with a tag they carry.
func FuzzVLANForward(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3}, vframe(frame.Broadcast, macA, 64, 1, q10), vframe(macA, macB, 60, 2))
	f.Add([]byte{1, 4, 5}, vframe(frame.Broadcast, macA, 68, 1, s100, q10), vframe(frame.Broadcast, macB, 17, 2))
	// An inner tag of the access port's own VLAN (found by CI's fuzzing).
	f.Add([]byte{1, 4}, vframe(frame.Broadcast, macA, 22, 1, q10, frame.MakeTag(frame.TPID8021Q, 0x300a)), vframe(frame.Broadcast, macB, 22, 2, s100, s100))
	f.Fuzz(func(t *testing.T, ports []byte, a, b []byte) {
		vls := []VLAN{{Access: 10}, trunk("10;20", 0), trunk("20;100", 10), {QinQ: 100}, {}, {Access: 20}}
		r := vlanRig(t, vls...)
		r.ports[2].room, r.ports[2].readN = 1, 1 // full after each frame: the rest are held, frame by frame
		var batch []inFrame
		for i, p := range ports {
			if len(batch) == 64 {
				break
			}
			data := a
			if i%2 == 1 {
				data = b
			}
			if len(data) > 2100 {
				data = data[:2100] // longer than the vector holds: oversize either way
			}
			batch = append(batch, inFrame{port: r.ids[int(p)%len(vls)], data: data})
		}
		r.send(batch...)
		// A frame sent in with two tags may leave with its inner one alone.
		innerOnly := func(got []byte) bool {
			for _, in := range [][]byte{a, b} {
				if _, tagged := frame.OuterVLAN(in); tagged && nestedTag(in) && len(in) == len(got)+frame.VLANTagLen &&
					string(in[:12]) == string(got[:12]) && string(in[16:]) == string(got[12:]) {
					return true
				}
			}
			return false
		}
		for i, p := range r.ports {
			for _, got := range p.frames() {
				if len(got) > p.maxFrame {
					t.Fatalf("port %d sent %d bytes, carries %d", i, len(got), p.maxFrame)
				}
				vid, tagged := frame.OuterVLAN(got)
				switch vl := vls[i]; {
				case innerOnly(got):
				case vl.Access != 0 && tagged && vid == vl.Access, vl.QinQ != 0 && tagged && vid == vl.QinQ && frame.EtherType(got) == frame.TPID8021AD:
					t.Fatalf("port %d (%+v) sent its VLAN's tag: %x", i, vl, got)
				case vl.Trunk != nil && tagged && vid != 0 && !vl.Trunk.Has(vid):
					t.Fatalf("trunk %d sent VLAN %d", i, vid)
				}
			}
		}
	})
}

// VLANs together with a hub and with policies: a hub floods everything but
// only inside the frame's VLAN; split horizon still holds between trunks.
func TestVLANWithHubAndPolicies(t *testing.T) {
	hub := optionsRig(t, PortOptions{VLAN: VLAN{Access: 10}}, PortOptions{VLAN: VLAN{Access: 10}}, PortOptions{VLAN: VLAN{Access: 20}},
		PortOptions{VLAN: trunk("10;20", 0)})
	hub.sw.Default().Reconfigure(true, 0, 0)
	hub.sendFrames(1, vframe(frame.Broadcast, macB, 60, 0))
	hub.got(t)
	hub.sendFrames(0, vframe(macB, macA, 60, 1)) // known unicast, flooded by a hub within VLAN 10
	expect(t, "hub", hub.got(t), []string{"", "#1", "", "8100/10 #1"})

	g := Policy{SplitHorizon: "fabric"}
	r := optionsRig(t, PortOptions{VLAN: trunk("10;20", 0), Policy: g}, PortOptions{VLAN: trunk("10", 0), Policy: g},
		PortOptions{VLAN: VLAN{Access: 10}}, PortOptions{VLAN: VLAN{Access: 20}})
	r.sendFrames(0, vframe(frame.Broadcast, macA, 64, 2, q10), vframe(frame.Broadcast, macA, 64, 3, q20))
	expect(t, "split horizon between trunks", r.got(t), []string{"", "", "#2", "#3"})
	r.sendFrames(2, vframe(frame.Broadcast, macB, 60, 4))
	expect(t, "from an access port to both trunks", r.got(t), []string{"8100/10 #4", "8100/10 #4", "", ""})
}

// A frame of VLAN 10 with a second tag inside (VLAN 48) leaves a trunk
// whose native VLAN is 10 only if it can keep a tag: untagged it would
// reach the trunk's peer as a frame of VLAN 48, which the trunk does not
// carry (double-tag VLAN hopping). It is dropped there and counted; a
// plain frame of VLAN 10 still leaves untagged.
func TestDoubleTagDoesNotHopOverANativeTrunk(t *testing.T) {
	r := vlanRig(t, trunk("10;20", 0), trunk("20;100", 10), VLAN{Access: 10})
	q48 := frame.MakeTag(frame.TPID8021Q, 48)
	r.sendFrames(0, vframe(frame.Broadcast, macA, 64, 1, q10, q48), vframe(frame.Broadcast, macA, 64, 2, q10))
	expect(t, "from the trunk", r.got(t), []string{"", "#2", "8100/48 #1, #2"})
	if n := r.drops(1, DropVLANFiltered); n != 1 {
		t.Errorf("the native trunk counted %d vlan-filtered drops, want 1", n)
	}
}
