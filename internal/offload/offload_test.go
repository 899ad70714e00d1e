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
