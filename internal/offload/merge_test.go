package offload

import (
	"bytes"
	"encoding/binary"
	"net"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// flow describes a TCP stream's segments for stream.
type flow struct {
	v6, vlan bool
	mss      int
	// edit changes segment i's layers before they are serialized (with
	// lengths and checksums made right).
	edit func(i int, eth *layers.Ethernet, vlan *layers.Dot1Q, ip4 *layers.IPv4, ip6 *layers.IPv6, tcp *layers.TCP) []byte
}

// stream returns n consecutive segments of one connection, mss bytes of
// payload each (a pattern that tells segments apart), sequence numbers
// and IPv4 ids following on and wrapping.
func stream(t testing.TB, fl flow, n int) [][]byte {
	t.Helper()
	out := make([][]byte, n)
	for i := range n {
		payload := make([]byte, fl.mss)
		for j := range payload {
			payload[j] = byte(i*31 + j)
		}
		eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2}}
		dot1q := &layers.Dot1Q{VLANIdentifier: 10}
		tcp := &layers.TCP{SrcPort: 40000, DstPort: 80, Seq: 0xfffff000 + uint32(i*fl.mss), Ack: 7, Window: 512, ACK: true,
			Options: []layers.TCPOption{{OptionType: layers.TCPOptionKindNop}, {OptionType: layers.TCPOptionKindNop},
				{OptionType: layers.TCPOptionKindTimestamps, OptionLength: 10, OptionData: []byte{0, 0, 0, 1, 0, 0, 0, 2}}}}
		ip4 := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Id: 0xfffe + uint16(i), Flags: layers.IPv4DontFragment, Protocol: layers.IPProtocolTCP,
			SrcIP: net.IP{10, 0, 0, 1}, DstIP: net.IP{10, 0, 0, 2}}
		ip6 := &layers.IPv6{Version: 6, HopLimit: 64, FlowLabel: 0x12345, NextHeader: layers.IPProtocolTCP,
			SrcIP: net.ParseIP("fd00::1"), DstIP: net.ParseIP("fd00::2")}
		if fl.edit != nil {
			if p := fl.edit(i, eth, dot1q, ip4, ip6, tcp); p != nil {
				payload = p
			}
		}
		stack := []gopacket.SerializableLayer{eth}
		next := layers.EthernetTypeIPv4
		if fl.v6 {
			next = layers.EthernetTypeIPv6
		}
		if fl.vlan {
			eth.EthernetType, dot1q.Type = layers.EthernetTypeDot1Q, next
			stack = append(stack, dot1q)
		} else {
			eth.EthernetType = next
		}
		if fl.v6 {
			tcp.SetNetworkLayerForChecksum(ip6)
			stack = append(stack, ip6)
		} else {
			tcp.SetNetworkLayerForChecksum(ip4)
			stack = append(stack, ip4)
		}
		stack = append(stack, tcp, gopacket.Payload(payload))
		buf := gopacket.NewSerializeBuffer()
		if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, stack...); err != nil {
			t.Fatal(err)
		}
		out[i] = bytes.Clone(buf.Bytes())
	}
	return out
}

// roundTrip checks that the super-frame r describes cuts back into
// exactly frames[:r.Count], and that the header says what the kernel needs.
func roundTrip(t testing.TB, r Run, head *[MaxHeaders]byte, frames [][]byte) {
	t.Helper()
	super := r.Append(nil, head, frames)
	if r.Hdr.HdrLen != uint16(r.Hdrs) || !r.Hdr.IsGSO() || r.Hdr.Flags != FlagNeedsCsum {
		t.Fatalf("header %+v for %d bytes of headers", r.Hdr, r.Hdrs)
	}
	p, err := NewPlan(r.Hdr, super)
	if err != nil {
		t.Fatalf("the super-frame of %d does not plan: %v", r.Count, err)
	}
	if p.Count != r.Count {
		t.Fatalf("the super-frame of %d cuts into %d", r.Count, p.Count)
	}
	for i := range p.Count {
		out := make([]byte, p.Size(i))
		p.Segment(super, i, out)
		if !bytes.Equal(out, frames[i]) {
			t.Fatalf("segment %d of %d differs from the frame merged:\n got % x\nwant % x", i, r.Count, out[:min(len(out), 80)], frames[i][:min(len(frames[i]), 80)])
		}
	}
	// What the host's stack checks of the super-frame itself.
	s, ok := parse(super)
	if !ok {
		t.Fatal("the super-frame's lengths or IPv4 checksum are wrong")
	}
	if got, want := binary.BigEndian.Uint16(super[s.l4+16:]), ^fold(s.pseudo(super)+uint64(len(super)-s.l4)); got != want {
		t.Fatalf("TCP checksum field %#04x, want the pseudo-header's sum %#04x", got, want)
	}
}

func TestCoalesceMergesAStream(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		for _, vlan := range []bool{false, true} {
			frames := stream(t, flow{v6: v6, vlan: vlan, mss: 1448}, 20)
			before := cloneAll(frames)
			var head [MaxHeaders]byte
			r := Coalesce(frames, 64, &head)
			if r.Count != 20 {
				t.Fatalf("v6=%v vlan=%v: merged %d of 20", v6, vlan, r.Count)
			}
			roundTrip(t, r, &head, frames)
			for i := range frames {
				if !bytes.Equal(frames[i], before[i]) {
					t.Fatalf("frame %d was changed", i)
				}
			}
		}
	}
}

func cloneAll(frames [][]byte) [][]byte {
	out := make([][]byte, len(frames))
	for i, f := range frames {
		out[i] = bytes.Clone(f)
	}
	return out
}

// Each rule: segment 3 of 6 breaks it, and the run is the three before it
// (or, for what may end a run, the four up to it).
func TestCoalesceRules(t *testing.T) {
	const k = 3
	type edit = func(i int, eth *layers.Ethernet, vlan *layers.Dot1Q, ip4 *layers.IPv4, ip6 *layers.IPv6, tcp *layers.TCP) []byte
	at := func(f func(eth *layers.Ethernet, vlan *layers.Dot1Q, ip4 *layers.IPv4, ip6 *layers.IPv6, tcp *layers.TCP)) edit {
		return func(i int, eth *layers.Ethernet, vlan *layers.Dot1Q, ip4 *layers.IPv4, ip6 *layers.IPv6, tcp *layers.TCP) []byte {
			if i == k {
				f(eth, vlan, ip4, ip6, tcp)
			}
			return nil
		}
	}
	cases := []struct {
		name     string
		v6, vlan bool
		edit     edit
		raw      func(f []byte) []byte // changes segment k after serializing
		want     int
	}{
		{name: "destination MAC", want: k, edit: at(func(e *layers.Ethernet, _ *layers.Dot1Q, _ *layers.IPv4, _ *layers.IPv6, _ *layers.TCP) {
			e.DstMAC = net.HardwareAddr{2, 0, 0, 0, 0, 9}
		})},
		{name: "VLAN", vlan: true, want: k, edit: at(func(_ *layers.Ethernet, d *layers.Dot1Q, _ *layers.IPv4, _ *layers.IPv6, _ *layers.TCP) {
			d.VLANIdentifier = 11
		})},
		{name: "source address", want: k, edit: at(func(_ *layers.Ethernet, _ *layers.Dot1Q, ip *layers.IPv4, _ *layers.IPv6, _ *layers.TCP) {
			ip.SrcIP = net.IP{10, 0, 0, 9}
		})},
		{name: "destination address", want: k, edit: at(func(_ *layers.Ethernet, _ *layers.Dot1Q, ip *layers.IPv4, _ *layers.IPv6, _ *layers.TCP) {
			ip.DstIP = net.IP{10, 0, 0, 9}
		})},
		{name: "TOS", want: k, edit: at(func(_ *layers.Ethernet, _ *layers.Dot1Q, ip *layers.IPv4, _ *layers.IPv6, _ *layers.TCP) {
			ip.TOS = 1 // ECN bits too: a CE mark ends a run
		})},
		{name: "TTL", want: k, edit: at(func(_ *layers.Ethernet, _ *layers.Dot1Q, ip *layers.IPv4, _ *layers.IPv6, _ *layers.TCP) { ip.TTL = 63 })},
		{name: "DF", want: k, edit: at(func(_ *layers.Ethernet, _ *layers.Dot1Q, ip *layers.IPv4, _ *layers.IPv6, _ *layers.TCP) {
			ip.Flags = 0
		})},
		{name: "more fragments", want: k, edit: at(func(_ *layers.Ethernet, _ *layers.Dot1Q, ip *layers.IPv4, _ *layers.IPv6, _ *layers.TCP) {
			ip.Flags |= layers.IPv4MoreFragments
		})},
		{name: "IPv4 id not next", want: k, edit: at(func(_ *layers.Ethernet, _ *layers.Dot1Q, ip *layers.IPv4, _ *layers.IPv6, _ *layers.TCP) { ip.Id++ })},
		{name: "IPv4 options", want: k, edit: at(func(_ *layers.Ethernet, _ *layers.Dot1Q, ip *layers.IPv4, _ *layers.IPv6, _ *layers.TCP) {
			ip.Options = []layers.IPv4Option{{OptionType: 1}, {OptionType: 1}, {OptionType: 1}, {OptionType: 0}}
		})},
		{name: "flow label", v6: true, want: k, edit: at(func(_ *layers.Ethernet, _ *layers.Dot1Q, _ *layers.IPv4, ip *layers.IPv6, _ *layers.TCP) {
			ip.FlowLabel++
		})},
		{name: "traffic class", v6: true, want: k, edit: at(func(_ *layers.Ethernet, _ *layers.Dot1Q, _ *layers.IPv4, ip *layers.IPv6, _ *layers.TCP) {
			ip.TrafficClass = 4
		})},
		{name: "hop limit", v6: true, want: k, edit: at(func(_ *layers.Ethernet, _ *layers.Dot1Q, _ *layers.IPv4, ip *layers.IPv6, _ *layers.TCP) {
			ip.HopLimit = 63
		})},
		{name: "IPv6 source", v6: true, want: k, edit: at(func(_ *layers.Ethernet, _ *layers.Dot1Q, _ *layers.IPv4, ip *layers.IPv6, _ *layers.TCP) {
			ip.SrcIP = net.ParseIP("fd00::9")
		})},
		{name: "source port", want: k, edit: at(func(_ *layers.Ethernet, _ *layers.Dot1Q, _ *layers.IPv4, _ *layers.IPv6, tcp *layers.TCP) {
			tcp.SrcPort++
		})},
		{name: "destination port", want: k, edit: at(func(_ *layers.Ethernet, _ *layers.Dot1Q, _ *layers.IPv4, _ *layers.IPv6, tcp *layers.TCP) {
			tcp.DstPort++
		})},
		{name: "sequence gap", want: k, edit: at(func(_ *layers.Ethernet, _ *layers.Dot1Q, _ *layers.IPv4, _ *layers.IPv6, tcp *layers.TCP) { tcp.Seq++ })},
		{name: "ack", want: k, edit: at(func(_ *layers.Ethernet, _ *layers.Dot1Q, _ *layers.IPv4, _ *layers.IPv6, tcp *layers.TCP) { tcp.Ack++ })},
		{name: "window", want: k, edit: at(func(_ *layers.Ethernet, _ *layers.Dot1Q, _ *layers.IPv4, _ *layers.IPv6, tcp *layers.TCP) {
			tcp.Window++
		})},
		{name: "urgent pointer", want: k, edit: at(func(_ *layers.Ethernet, _ *layers.Dot1Q, _ *layers.IPv4, _ *layers.IPv6, tcp *layers.TCP) {
			tcp.Urgent = 1
		})},
		{name: "timestamp", want: k, edit: at(func(_ *layers.Ethernet, _ *layers.Dot1Q, _ *layers.IPv4, _ *layers.IPv6, tcp *layers.TCP) {
			tcp.Options[2].OptionData = []byte{0, 0, 0, 2, 0, 0, 0, 2}
		})},
		{name: "options length", want: k, edit: at(func(_ *layers.Ethernet, _ *layers.Dot1Q, _ *layers.IPv4, _ *layers.IPv6, tcp *layers.TCP) {
			tcp.Options = tcp.Options[:2]
		})},
		{name: "SYN", want: k, edit: at(func(_ *layers.Ethernet, _ *layers.Dot1Q, _ *layers.IPv4, _ *layers.IPv6, tcp *layers.TCP) {
			tcp.SYN = true
		})},
		{name: "FIN", want: k, edit: at(func(_ *layers.Ethernet, _ *layers.Dot1Q, _ *layers.IPv4, _ *layers.IPv6, tcp *layers.TCP) {
			tcp.FIN = true
		})},
		{name: "RST", want: k, edit: at(func(_ *layers.Ethernet, _ *layers.Dot1Q, _ *layers.IPv4, _ *layers.IPv6, tcp *layers.TCP) {
			tcp.RST = true
		})},
		{name: "URG", want: k, edit: at(func(_ *layers.Ethernet, _ *layers.Dot1Q, _ *layers.IPv4, _ *layers.IPv6, tcp *layers.TCP) {
			tcp.URG = true
		})},
		{name: "CWR", want: k, edit: at(func(_ *layers.Ethernet, _ *layers.Dot1Q, _ *layers.IPv4, _ *layers.IPv6, tcp *layers.TCP) {
			tcp.CWR = true
		})},
		{name: "ECE", want: k, edit: at(func(_ *layers.Ethernet, _ *layers.Dot1Q, _ *layers.IPv4, _ *layers.IPv6, tcp *layers.TCP) {
			tcp.ECE = true
		})},
		{name: "NS", want: k, edit: at(func(_ *layers.Ethernet, _ *layers.Dot1Q, _ *layers.IPv4, _ *layers.IPv6, tcp *layers.TCP) {
			tcp.NS = true
		})},
		{name: "no ACK", want: k, edit: at(func(_ *layers.Ethernet, _ *layers.Dot1Q, _ *layers.IPv4, _ *layers.IPv6, tcp *layers.TCP) {
			tcp.ACK = false
		})},
		{name: "PSH ends the run after it", want: k + 1, edit: at(func(_ *layers.Ethernet, _ *layers.Dot1Q, _ *layers.IPv4, _ *layers.IPv6, tcp *layers.TCP) {
			tcp.PSH = true
		})},
		{name: "PSH ends an IPv6 run", v6: true, vlan: true, want: k + 1, edit: at(func(_ *layers.Ethernet, _ *layers.Dot1Q, _ *layers.IPv4, _ *layers.IPv6, tcp *layers.TCP) {
			tcp.PSH = true
		})},
		{name: "longer payload", want: k, edit: func(i int, _ *layers.Ethernet, _ *layers.Dot1Q, _ *layers.IPv4, _ *layers.IPv6, _ *layers.TCP) []byte {
			if i == k {
				return make([]byte, 1449)
			}
			return nil
		}},
		{name: "shorter payload ends the run after it", want: k + 1, edit: func(i int, _ *layers.Ethernet, _ *layers.Dot1Q, _ *layers.IPv4, _ *layers.IPv6, _ *layers.TCP) []byte {
			if i == k {
				return []byte("short")
			}
			return nil
		}},
		{name: "no payload", want: k, edit: func(i int, _ *layers.Ethernet, _ *layers.Dot1Q, _ *layers.IPv4, _ *layers.IPv6, _ *layers.TCP) []byte {
			if i == k {
				return []byte{}
			}
			return nil
		}},
		{name: "TCP checksum", want: k, raw: func(f []byte) []byte { f[len(f)-1] ^= 1; return f }},
		{name: "TCP checksum 0xffff for 0", want: k, raw: func(f []byte) []byte { zeroTCPSum(f, 14+20); return f }},
		{name: "IPv4 checksum", want: k, raw: func(f []byte) []byte { f[14+10] ^= 1; return f }},
		{name: "Ethernet padding", want: k, raw: func(f []byte) []byte { return append(f, 0, 0) }},
		{name: "IPv6 extension header", v6: true, want: k, raw: func(f []byte) []byte { f[14+6] = 0; return f }},
		{name: "IPv6 length", v6: true, want: k, raw: func(f []byte) []byte { f[14+5]--; return f }},
		{name: "not IP", want: k, raw: func(f []byte) []byte { f[12] = 0x08; f[13] = 0x06; return f }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			frames := stream(t, flow{v6: c.v6, vlan: c.vlan, mss: 1448, edit: c.edit}, 6)
			if c.raw != nil {
				frames[k] = c.raw(frames[k])
			}
			var head [MaxHeaders]byte
			r := Coalesce(frames, 64, &head)
			if r.Count != c.want {
				t.Fatalf("merged %d, want %d", r.Count, c.want)
			}
			roundTrip(t, r, &head, frames)
			// What broke the run does not merge with what follows it either
			// (that rule again, or the sequence), except a last segment.
			if c.want == k {
				if r := Coalesce(frames[k:], 64, &head); r.Count != 1 {
					t.Fatalf("the breaking frame starts a run of %d", r.Count)
				}
			}
		})
	}
}

// zeroTCPSum rewrites a TCP checksum of 0 as 0xffff (which verifies too),
// or, when it is not 0, makes the payload's last word such that it is.
func zeroTCPSum(f []byte, l4 int) {
	// Adjust the last two bytes so that the checksum computes to 0, then
	// write it as 0xffff.
	binary.BigEndian.PutUint16(f[l4+16:], 0)
	pseudo := sum(f[14+12:14+20], 6+uint64(len(f)-l4))
	last := len(f) - 2
	binary.BigEndian.PutUint16(f[last:], 0)
	c := fold(sum(f[l4:], pseudo)) // what the word must add for a sum of 0xffff
	binary.BigEndian.PutUint16(f[last:], c)
	if fold(sum(f[l4:], pseudo)) != 0 {
		panic("zeroTCPSum")
	}
	binary.BigEndian.PutUint16(f[l4+16:], 0xffff)
}

func TestCoalesceFirstFrame(t *testing.T) {
	var head [MaxHeaders]byte
	psh := stream(t, flow{mss: 1448, edit: func(i int, _ *layers.Ethernet, _ *layers.Dot1Q, _ *layers.IPv4, _ *layers.IPv6, tcp *layers.TCP) []byte {
		tcp.PSH = i == 0
		return nil
	}}, 4)
	if r := Coalesce(psh, 64, &head); r.Count != 1 {
		t.Errorf("a first segment with PSH merged with %d", r.Count-1)
	}
	if r := Coalesce(psh[1:], 64, &head); r.Count != 3 {
		t.Errorf("the rest merged %d of 3", r.Count)
	}
	bad := stream(t, flow{mss: 1448}, 4)
	bad[0][100] ^= 0xff
	if r := Coalesce(bad, 64, &head); r.Count != 1 {
		t.Errorf("a first segment with a bad checksum merged with %d", r.Count-1)
	}
	one := stream(t, flow{mss: 1448}, 1)
	if r := Coalesce(one, 64, &head); r.Count != 1 {
		t.Errorf("a lone frame: %d", r.Count)
	}
	if r := Coalesce(nil, 64, &head); r.Count != 1 {
		t.Errorf("no frames: %d", r.Count)
	}
}

// A super-frame holds at most limit frames, and its IP length fits 16 bits.
func TestCoalesceLimits(t *testing.T) {
	var head [MaxHeaders]byte
	frames := stream(t, flow{mss: 1448}, 60)
	if r := Coalesce(frames, 8, &head); r.Count != 8 {
		t.Fatalf("limit 8: merged %d", r.Count)
	}
	for _, v6 := range []bool{false, true} {
		frames := stream(t, flow{v6: v6, mss: 1448}, 60)
		r := Coalesce(frames, 64, &head)
		hdrs := 20 + 32
		if v6 {
			hdrs = 32 // the IPv6 header is outside its payload length
		}
		if want := (65535 - hdrs) / 1448; r.Count != want {
			t.Fatalf("v6=%v: merged %d, want %d (64 KiB)", v6, r.Count, want)
		}
		roundTrip(t, r, &head, frames)
	}
	// Small segments: limit 64 binds, not the size.
	small := stream(t, flow{mss: 100}, 100)
	if r := Coalesce(small, 64, &head); r.Count != 64 {
		t.Fatalf("merged %d small segments, want 64", r.Count)
	}
}

// encodeFrames lays frames out for FuzzCoalesce: a count byte then each
// frame behind its 16-bit length.
func encodeFrames(fix byte, frames [][]byte) []byte {
	b := []byte{fix}
	for _, f := range frames {
		b = binary.BigEndian.AppendUint16(b, uint16(len(f)))
		b = append(b, f...)
	}
	return b
}

func decodeFrames(b []byte) (fix byte, frames [][]byte) {
	if len(b) == 0 {
		return 0, nil
	}
	fix, b = b[0], b[1:]
	for len(b) >= 2 && len(frames) < 80 {
		n := int(binary.BigEndian.Uint16(b))
		b = b[2:]
		n = min(n, len(b))
		frames = append(frames, b[:n:n])
		b = b[n:]
	}
	return fix, frames
}

// fixSums makes a frame's IPv4 and TCP checksums right where its headers
// say where they are, so that the fuzzer's changes reach the merging rules
// past the checksums.
func fixSums(f []byte) {
	s, ok := parseLoose(f)
	if !ok {
		return
	}
	if !s.v6 {
		ip := f[s.ipOff : s.ipOff+20]
		ip[10], ip[11] = 0, 0
		binary.BigEndian.PutUint16(ip[10:], fold(sum(ip, 0)))
	}
	binary.BigEndian.PutUint16(f[s.l4+16:], 0)
	binary.BigEndian.PutUint16(f[s.l4+16:], fold(sum(f[s.l4:], s.pseudo(f)+uint64(len(f)-s.l4))))
}

// parseLoose finds IP and TCP headers as parse does, without checking
// lengths or checksums.
func parseLoose(f []byte) (s segment, ok bool) {
	if len(f) < 18 {
		return s, false
	}
	s.ipOff = 14
	et := binary.BigEndian.Uint16(f[12:])
	if et == 0x8100 || et == 0x88a8 {
		s.ipOff, et = 18, binary.BigEndian.Uint16(f[16:])
	}
	switch et {
	case 0x0800:
		s.l4 = s.ipOff + 20
	case 0x86dd:
		s.l4, s.v6 = s.ipOff+40, true
	default:
		return s, false
	}
	return s, s.l4+20 <= len(f)
}

// FuzzCoalesce: no batch makes Coalesce panic or change a frame, a run
// stays within its limits, and a super-frame cuts back (NewPlan, Segment)
// into exactly the frames merged.
func FuzzCoalesce(f *testing.F) {
	f.Add(encodeFrames(1, stream(f, flow{mss: 1448}, 5)))
	f.Add(encodeFrames(0, stream(f, flow{v6: true, vlan: true, mss: 100}, 8)))
	f.Add(encodeFrames(1, stream(f, flow{vlan: true, mss: 7, edit: func(i int, _ *layers.Ethernet, _ *layers.Dot1Q, _ *layers.IPv4, _ *layers.IPv6, tcp *layers.TCP) []byte {
		tcp.PSH = i == 2
		return nil
	}}, 4)))
	f.Fuzz(func(t *testing.T, b []byte) {
		fix, frames := decodeFrames(b)
		limit := 2 + int(fix>>1)
		if fix&1 != 0 {
			for _, fr := range frames {
				fixSums(fr)
			}
		}
		before := cloneAll(frames)
		var head [MaxHeaders]byte
		r := Coalesce(frames, limit, &head)
		for i := range frames {
			if !bytes.Equal(frames[i], before[i]) {
				t.Fatalf("frame %d changed", i)
			}
		}
		if r.Count < 1 || (r.Count > 1 && (r.Count > len(frames) || r.Count > limit)) {
			t.Fatalf("a run of %d of %d frames (limit %d)", r.Count, len(frames), limit)
		}
		if r.Count > 1 {
			roundTrip(t, r, &head, frames)
		}
	})
}

// The cost of finding runs in a batch of 64 segments of one flow (1448
// bytes each): mostly the checksums' pass over each payload.
func BenchmarkCoalesce(b *testing.B) {
	frames := stream(b, flow{mss: 1448}, 64)
	var head [MaxHeaders]byte
	b.SetBytes(64 * 1448)
	for range b.N {
		for rest := frames; len(rest) > 0; {
			r := Coalesce(rest, 64, &head)
			rest = rest[r.Count:]
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*64), "ns/seg")
}
