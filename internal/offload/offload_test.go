package offload

import (
	"bytes"
	"encoding/binary"
	"net"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// tcpFrame builds a valid Ethernet/IP/TCP frame with payload, optionally
// behind a VLAN tag, with flags set from fin/psh/cwr.
func tcpFrame(t testing.TB, v6, vlan bool, payload []byte, flags func(*layers.TCP)) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2}}
	tcp := &layers.TCP{SrcPort: 40000, DstPort: 80, Seq: 0xfffff000, Ack: 7, Window: 512, ACK: true,
		Options: []layers.TCPOption{{OptionType: layers.TCPOptionKindNop}, {OptionType: layers.TCPOptionKindNop},
			{OptionType: layers.TCPOptionKindTimestamps, OptionLength: 10, OptionData: make([]byte, 8)}}}
	if flags != nil {
		flags(tcp)
	}
	var stack []gopacket.SerializableLayer
	stack = append(stack, eth)
	next := layers.EthernetTypeIPv4
	if v6 {
		next = layers.EthernetTypeIPv6
	}
	if vlan {
		eth.EthernetType = layers.EthernetTypeDot1Q
		stack = append(stack, &layers.Dot1Q{VLANIdentifier: 10, Type: next})
	} else {
		eth.EthernetType = next
	}
	if v6 {
		ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolTCP,
			SrcIP: net.ParseIP("fd00::1"), DstIP: net.ParseIP("fd00::2")}
		tcp.SetNetworkLayerForChecksum(ip)
		stack = append(stack, ip)
	} else {
		ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Id: 0xfffe, Protocol: layers.IPProtocolTCP,
			SrcIP: net.IP{10, 0, 0, 1}, DstIP: net.IP{10, 0, 0, 2}}
		tcp.SetNetworkLayerForChecksum(ip)
		stack = append(stack, ip)
	}
	stack = append(stack, tcp, gopacket.Payload(payload))
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, stack...); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// gsoHdr is what a host sends with such a frame: TSO at mss, and the TCP
// checksum left as the pseudo-header's sum.
func gsoHdr(f []byte, v6, vlan bool, mss int) Hdr {
	l4 := 14 + 20
	if v6 {
		l4 = 14 + 40
	}
	if vlan {
		l4 += 4
	}
	h := Hdr{Flags: FlagNeedsCsum, GSOType: GSOTCPv4, GSOSize: uint16(mss), CsumStart: uint16(l4), CsumOffset: 16}
	if v6 {
		h.GSOType = GSOTCPv6
	}
	return h
}

func TestSegmentsAreValidAndReassemble(t *testing.T) {
	payload := make([]byte, 10000)
	for i := range payload {
		payload[i] = byte(i * 7)
	}
	for _, v6 := range []bool{false, true} {
		for _, vlan := range []bool{false, true} {
			f := tcpFrame(t, v6, vlan, payload, func(tcp *layers.TCP) { tcp.PSH, tcp.FIN, tcp.CWR = true, true, true })
			h := gsoHdr(f, v6, vlan, 1448)
			p, err := NewPlan(h, f)
			if err != nil {
				t.Fatalf("v6=%v vlan=%v: %v", v6, vlan, err)
			}
			if p.Count != 7 {
				t.Fatalf("%d segments, want 7", p.Count)
			}
			var got []byte
			seq := uint32(0xfffff000)
			for i := 0; i < p.Count; i++ {
				out := make([]byte, p.Size(i))
				p.Segment(f, i, out)
				pkt := gopacket.NewPacket(out, layers.LayerTypeEthernet, gopacket.Default)
				tcp, _ := pkt.Layer(layers.LayerTypeTCP).(*layers.TCP)
				if tcp == nil || pkt.ErrorLayer() != nil {
					t.Fatalf("segment %d does not decode: %v", i, pkt.ErrorLayer())
				}
				checkSums(t, pkt, out)
				if tcp.Seq != seq {
					t.Fatalf("segment %d seq %#x, want %#x", i, tcp.Seq, seq)
				}
				last := i == p.Count-1
				if tcp.FIN != last || tcp.PSH != last || tcp.CWR != (i == 0) || !tcp.ACK {
					t.Fatalf("segment %d flags fin=%v psh=%v cwr=%v", i, tcp.FIN, tcp.PSH, tcp.CWR)
				}
				if !v6 {
					if id := pkt.Layer(layers.LayerTypeIPv4).(*layers.IPv4).Id; id != uint16(0xfffe+i) {
						t.Fatalf("segment %d id %#x", i, id)
					}
				}
				seq += uint32(len(tcp.Payload))
				got = append(got, tcp.Payload...)
			}
			if !bytes.Equal(got, payload) {
				t.Fatalf("v6=%v vlan=%v: payload does not reassemble", v6, vlan)
			}
		}
	}
}

// checkSums recomputes the IPv4 and TCP checksums of a segment.
func checkSums(t *testing.T, pkt gopacket.Packet, raw []byte) {
	t.Helper()
	tcp := pkt.Layer(layers.LayerTypeTCP).(*layers.TCP)
	var pseudo uint64
	if ip, ok := pkt.Layer(layers.LayerTypeIPv4).(*layers.IPv4); ok {
		if fold(sum(ip.Contents, 0)) != 0 {
			t.Fatal("IPv4 header checksum wrong")
		}
		pseudo = sum(ip.SrcIP.To4(), sum(ip.DstIP.To4(), 0))
	} else {
		ip := pkt.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
		pseudo = sum(ip.SrcIP, sum(ip.DstIP, 0))
	}
	l4 := append(append([]byte(nil), tcp.Contents...), tcp.Payload...)
	if fold(sum(l4, pseudo+6+uint64(len(l4)))) != 0 {
		t.Fatal("TCP checksum wrong")
	}
}

func TestCompleteChecksum(t *testing.T) {
	f := tcpFrame(t, false, false, []byte("odd-length payload!"), nil)
	want := binary.BigEndian.Uint16(f[34+16:])
	// Leave the pseudo-header's sum in the field, as a sender with offload does.
	l4len := len(f) - 34
	partial := ^fold(sum(f[26:34], 6+uint64(l4len)))
	binary.BigEndian.PutUint16(f[34+16:], partial)
	CompleteChecksum(Hdr{Flags: FlagNeedsCsum, CsumStart: 34, CsumOffset: 16}, f)
	if got := binary.BigEndian.Uint16(f[34+16:]); got != want {
		t.Fatalf("checksum %#04x, want %#04x", got, want)
	}
	// No flag, or a field past the end: nothing changes.
	before := bytes.Clone(f)
	CompleteChecksum(Hdr{CsumStart: 34, CsumOffset: 16}, f)
	CompleteChecksum(Hdr{Flags: FlagNeedsCsum, CsumStart: uint16(len(f)), CsumOffset: 16}, f)
	if !bytes.Equal(before, f) {
		t.Fatal("changed a frame it should have left alone")
	}
}

func TestMalformedPlans(t *testing.T) {
	f := tcpFrame(t, false, false, make([]byte, 3000), nil)
	good := gsoHdr(f, false, false, 1000)
	for name, h := range map[string]Hdr{
		"mss 0":          {Flags: FlagNeedsCsum, GSOType: GSOTCPv4, CsumStart: 34, CsumOffset: 16},
		"udp":            {Flags: FlagNeedsCsum, GSOType: 3, GSOSize: 1000, CsumStart: 34, CsumOffset: 6},
		"no csum":        {GSOType: GSOTCPv4, GSOSize: 1000, CsumStart: 34, CsumOffset: 16},
		"start past end": {Flags: FlagNeedsCsum, GSOType: GSOTCPv4, GSOSize: 1000, CsumStart: 9000, CsumOffset: 16},
		"start not l4":   {Flags: FlagNeedsCsum, GSOType: GSOTCPv4, GSOSize: 1000, CsumStart: 30, CsumOffset: 16},
		"v6 on v4":       {Flags: FlagNeedsCsum, GSOType: GSOTCPv6, GSOSize: 1000, CsumStart: 54, CsumOffset: 16},
	} {
		if _, err := NewPlan(h, f); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := NewPlan(good, f[:50]); err == nil {
		t.Error("accepted a frame cut inside the TCP header")
	}
}

// FuzzPlan: no header and frame make planning or cutting panic, and every
// segment fits the size the plan gives.
func FuzzPlan(f *testing.F) {
	fr := tcpFrame(f, false, true, make([]byte, 3000), nil)
	h := gsoHdr(fr, false, true, 1000)
	b := make([]byte, HdrLen)
	b[0], b[1] = h.Flags, h.GSOType
	binary.NativeEndian.PutUint16(b[4:], h.GSOSize)
	binary.NativeEndian.PutUint16(b[6:], h.CsumStart)
	binary.NativeEndian.PutUint16(b[8:], h.CsumOffset)
	f.Add(b, fr)
	f.Fuzz(func(t *testing.T, hdr, frame []byte) {
		if len(hdr) < HdrLen {
			return
		}
		h := ParseHdr(hdr)
		CompleteChecksum(h, bytes.Clone(frame))
		p, err := NewPlan(h, frame)
		if err != nil {
			return
		}
		if p.Count > len(frame) {
			t.Fatalf("%d segments of a %d-byte frame", p.Count, len(frame))
		}
		out := make([]byte, len(frame))
		for i := 0; i < p.Count; i++ {
			if p.Size(i) > len(frame) {
				t.Fatalf("segment %d: %d bytes of a %d-byte frame", i, p.Size(i), len(frame))
			}
			p.Segment(frame, i, out[:p.Size(i)])
		}
	})
}

// udpFrame builds a valid Ethernet/IP/UDP frame.
func udpFrame(t testing.TB, v6 bool, payload []byte) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2}, EthernetType: layers.EthernetTypeIPv4}
	udp := &layers.UDP{SrcPort: 40000, DstPort: 53}
	var ip gopacket.SerializableLayer
	if v6 {
		eth.EthernetType = layers.EthernetTypeIPv6
		ip6 := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolUDP, SrcIP: net.ParseIP("fd00::1"), DstIP: net.ParseIP("fd00::2")}
		udp.SetNetworkLayerForChecksum(ip6)
		ip = ip6
	} else {
		ip4 := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: net.IP{10, 0, 0, 1}, DstIP: net.IP{10, 0, 0, 2}}
		udp.SetNetworkLayerForChecksum(ip4)
		ip = ip4
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, ip, udp, gopacket.Payload(payload)); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// A frame whose checksum field holds the pseudo-header's sum (what a veth
// passes on from its peer's stack) gets its whole checksum; a whole one,
// right or wrong, and what is not TCP or UDP, stay as they are.
func TestCompletePartial(t *testing.T) {
	cases := []struct {
		name      string
		f         []byte
		ip, l4    int // where the IP and transport headers start
		proto, at int // the transport protocol, and where its checksum is in its header
	}{
		{"tcp4", tcpFrame(t, false, false, []byte("odd-length payload!"), nil), 14, 34, 6, 16},
		{"tcp4 vlan", tcpFrame(t, false, true, make([]byte, 1000), nil), 18, 38, 6, 16},
		{"tcp6", tcpFrame(t, true, false, []byte("payload"), nil), 14, 54, 6, 16},
		{"udp4", udpFrame(t, false, []byte("a datagram")), 14, 34, 17, 6},
		{"udp6", udpFrame(t, true, []byte("another one")), 14, 54, 17, 6},
	}
	for _, c := range cases {
		at := c.l4 + c.at
		want := binary.BigEndian.Uint16(c.f[at:])
		whole := bytes.Clone(c.f)
		if CompletePartial(whole) || !bytes.Equal(whole, c.f) {
			t.Errorf("%s: a whole checksum was touched", c.name)
		}
		wrong := bytes.Clone(c.f)
		binary.BigEndian.PutUint16(wrong[at:], want^0x1234)
		if CompletePartial(wrong) || binary.BigEndian.Uint16(wrong[at:]) != want^0x1234 {
			t.Errorf("%s: a wrong checksum was touched", c.name)
		}
		// What a stack leaves for offload: the pseudo-header's sum.
		addrs := c.f[c.ip+12 : c.ip+20]
		if c.l4-c.ip == 40 {
			addrs = c.f[c.ip+8 : c.ip+40]
		}
		l4len := int(binary.BigEndian.Uint16(c.f[c.ip+4:])) // IPv6's payload length
		if c.l4-c.ip == 20 {
			l4len = int(binary.BigEndian.Uint16(c.f[c.ip+2:])) - 20 // IPv4's total, less its header (a short frame is padded)
		}
		partial := bytes.Clone(c.f)
		binary.BigEndian.PutUint16(partial[at:], ^fold(sum(addrs, uint64(c.proto)+uint64(l4len))))
		if !CompletePartial(partial) || binary.BigEndian.Uint16(partial[at:]) != want {
			t.Errorf("%s: completed to %#04x, want %#04x", c.name, binary.BigEndian.Uint16(partial[at:]), want)
		}
	}
	if CompletePartial(nil) || CompletePartial(make([]byte, 60)) {
		t.Error("completed a frame with no IP in it")
	}
}

// FuzzCompletePartial: no frame makes it panic or write outside the
// checksum field, and a frame it completed is left alone the second time.
func FuzzCompletePartial(f *testing.F) {
	f.Add(tcpFrame(f, false, true, make([]byte, 100), nil))
	f.Add(udpFrame(f, true, []byte("x")))
	f.Fuzz(func(t *testing.T, frame []byte) {
		before := bytes.Clone(frame)
		if !CompletePartial(frame) {
			if !bytes.Equal(before, frame) {
				t.Fatal("changed a frame it did not complete")
			}
			return
		}
		diff := 0
		for i := range frame {
			if frame[i] != before[i] {
				diff++
			}
		}
		if diff > 2 {
			t.Fatalf("%d bytes changed", diff)
		}
		if again := bytes.Clone(frame); CompletePartial(again) && !bytes.Equal(again, frame) {
			t.Fatal("completed twice, differently")
		}
	})
}

// sumWords is sum as the RFC writes it: 16-bit words one by one.
func sumWords(b []byte, s uint64) uint64 {
	for ; len(b) >= 2; b = b[2:] {
		s += uint64(binary.BigEndian.Uint16(b))
	}
	if len(b) == 1 {
		s += uint64(b[0]) << 8
	}
	return s
}

// FuzzSum: the word-at-a-time sum folds to the plain one's, and stays
// small enough for callers to add lengths to it.
func FuzzSum(f *testing.F) {
	f.Add(bytes.Repeat([]byte{0xff}, 1500), uint32(0xffffffff))
	f.Add([]byte{1, 2, 3}, uint32(6))
	f.Add([]byte{}, uint32(0))
	f.Fuzz(func(t *testing.T, b []byte, s uint32) {
		got := sum(b, uint64(s))
		if got >= 1<<34 {
			t.Fatalf("sum %#x", got)
		}
		if fold(got) != fold(sumWords(b, uint64(s))) {
			t.Fatalf("fold %#04x, want %#04x", fold(got), fold(sumWords(b, uint64(s))))
		}
		if (got == 0) != (sumWords(b, uint64(s)) == 0) {
			t.Fatal("zero where the plain sum is not, or the other way")
		}
	})
}

// sum against the plain word-by-word loop, over a segment's payload.
func BenchmarkSum(b *testing.B) {
	buf := make([]byte, 1448)
	for i := range buf {
		buf[i] = byte(i * 7)
	}
	var s uint64
	b.Run("word-at-a-time", func(b *testing.B) {
		b.SetBytes(int64(len(buf)))
		for range b.N {
			s += sum(buf, 0)
		}
	})
	b.Run("16-bit", func(b *testing.B) {
		b.SetBytes(int64(len(buf)))
		for range b.N {
			s += sumWords(buf, 0)
		}
	})
	_ = s
}
