package gre

import (
	"encoding/binary"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// Headers as UML builds them, checked against gopacket's GRE decoder.
func TestEncodeAgainstGopacket(t *testing.T) {
	tests := []struct {
		name           string
		hasKey, seq    bool
		key            uint32
		wantLen, seqAt int
	}{
		{"plain", false, false, 0, 4, -1},
		{"key", true, false, 0xfffffffe, 8, -1},
		{"sequence", false, true, 0, 8, 4},
		{"key and sequence", true, true, 7, 12, 8},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hdr, seqAt := Encode(tt.hasKey, tt.key, tt.seq)
			if len(hdr) != tt.wantLen || seqAt != tt.seqAt {
				t.Fatalf("len %d seqAt %d", len(hdr), seqAt)
			}
			if seqAt >= 0 {
				binary.BigEndian.PutUint32(hdr[seqAt:], 42)
			}
			frame := make([]byte, 60)
			frame[12], frame[13] = 0x08, 0x06
			pkt := gopacket.NewPacket(append(hdr, frame...), layers.LayerTypeGRE, gopacket.Default)
			g, ok := pkt.Layer(layers.LayerTypeGRE).(*layers.GRE)
			if !ok {
				t.Fatalf("gopacket found no GRE: %v", pkt.ErrorLayer())
			}
			if g.Protocol != layers.EthernetTypeTransparentEthernetBridging || g.ChecksumPresent || g.Version != 0 ||
				g.KeyPresent != tt.hasKey || g.Key != tt.key || g.SeqPresent != tt.seq {
				t.Fatalf("gopacket read %+v", g)
			}
			if tt.seq && g.Seq != 42 {
				t.Fatalf("sequence %d", g.Seq)
			}
			if pkt.Layer(layers.LayerTypeEthernet) == nil {
				t.Fatal("gopacket found no Ethernet frame after the header")
			}
			h, err := Parse(hdr)
			if err != nil || h.Len != len(hdr) || h.HasKey != tt.hasKey || h.Key != tt.key || h.HasSeq != tt.seq {
				t.Fatalf("Parse: %+v, %v", h, err)
			}
		})
	}
}

// Headers gopacket builds (checksum included), read by Parse.
func TestParseGopacketHeaders(t *testing.T) {
	for _, g := range []*layers.GRE{
		{Protocol: layers.EthernetTypeTransparentEthernetBridging},
		{Protocol: layers.EthernetTypeTransparentEthernetBridging, KeyPresent: true, Key: 9, SeqPresent: true, Seq: 3},
		{Protocol: layers.EthernetTypeTransparentEthernetBridging, ChecksumPresent: true, KeyPresent: true, Key: 5},
	} {
		buf := gopacket.NewSerializeBuffer()
		if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{ComputeChecksums: true}, g, gopacket.Payload(make([]byte, 14))); err != nil {
			t.Fatal(err)
		}
		h, err := Parse(buf.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		if h.Checksum != g.ChecksumPresent || h.HasKey != g.KeyPresent || h.Key != g.Key || h.HasSeq != g.SeqPresent ||
			h.Seq != g.Seq || h.Proto != ProtoTEB || len(buf.Bytes())-h.Len != 14 {
			t.Fatalf("%+v from %+v", h, g)
		}
	}
}

func TestParseRejects(t *testing.T) {
	for _, b := range [][]byte{{}, {0x20, 0, 0x65}, {0x20, 0, 0x65, 0x58, 0, 0}, {0x10, 0, 0x65, 0x58}, {0x40, 0, 0x65, 0x58, 0, 0, 0, 0}} {
		if _, err := Parse(b); err == nil {
			t.Errorf("%x accepted", b)
		}
	}
}

// FuzzParse: any bytes decode or fail; a decoded header never claims more
// bytes than there are, and its flags agree with its fields.
func FuzzParse(f *testing.F) {
	for _, c := range []struct{ k, s bool }{{false, false}, {true, false}, {false, true}, {true, true}} {
		h, _ := Encode(c.k, 7, c.s)
		f.Add(append(h, make([]byte, 14)...))
	}
	f.Add([]byte{0x80, 0, 0x65, 0x58, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := Parse(b)
		if err != nil {
			return
		}
		want := 4
		for _, on := range []bool{h.Checksum, h.HasKey, h.HasSeq} {
			if on {
				want += 4
			}
		}
		if h.Len != want || h.Len > len(b) {
			t.Fatalf("Len %d, want %d, input %d bytes", h.Len, want, len(b))
		}
		flags := binary.BigEndian.Uint16(b)
		if h.HasKey != (flags&flagKey != 0) || h.HasSeq != (flags&flagSequence != 0) {
			t.Fatal("flags and fields disagree")
		}
	})
}

// FuzzCheck: a port accepts a packet only if its header is exactly the one
// the port would send (the sequence number may differ), so no other peer's
// configuration, checksum or truncated header ever reaches the switch.
func FuzzCheck(f *testing.F) {
	h, _ := Encode(true, 7, true)
	f.Add(append(h, 1, 2, 3), true, uint32(7), true)
	f.Add([]byte{0x00, 0x00, 0x65, 0x58}, false, uint32(0), false)
	f.Add([]byte{0xb0, 0x00, 0x65, 0x58, 0, 0, 0, 0, 0, 0, 0, 7}, true, uint32(7), true)
	f.Fuzz(func(t *testing.T, pkt []byte, hasKey bool, key uint32, seq bool) {
		want, seqAt := Encode(hasKey, key, seq)
		n, reason := checker(firstWord(hasKey, seq), hasKey, key, len(want))(pkt)
		if reason != 0 {
			return
		}
		if n != len(want) || len(pkt) < n {
			t.Fatalf("accepted with header length %d of a %d-byte packet, want %d", n, len(pkt), len(want))
		}
		got := append([]byte(nil), pkt[:n]...)
		if seqAt >= 0 {
			copy(got[seqAt:], want[seqAt:seqAt+4]) // the sequence is the peer's to choose
		}
		if string(got) != string(want) {
			t.Fatalf("accepted header % x, port sends % x", pkt[:n], want)
		}
	})
}
