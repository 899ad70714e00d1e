package vxlan

import (
	"bytes"
	"errors"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/umlswitch/umlswitch/fabric"
)

func TestEncode(t *testing.T) {
	tests := []struct {
		vni  uint32
		want []byte
	}{
		{0, []byte{0x08, 0, 0, 0, 0, 0, 0, 0}},
		{42, []byte{0x08, 0, 0, 0, 0, 0, 42, 0}},
		{0x123456, []byte{0x08, 0, 0, 0, 0x12, 0x34, 0x56, 0}},
		{MaxVNI, []byte{0x08, 0, 0, 0, 0xff, 0xff, 0xff, 0}},
		{1<<24 | 7, []byte{0x08, 0, 0, 0, 0, 0, 7, 0}}, // bits above 24 are ignored
	}
	for _, tt := range tests {
		if h := Encode(tt.vni); !bytes.Equal(h[:], tt.want) {
			t.Errorf("Encode(%#x) = % x, want % x", tt.vni, h, tt.want)
		}
	}
}

func TestDecode(t *testing.T) {
	tests := []struct {
		name string
		b    []byte
		vni  uint32
		err  error
	}{
		{"valid", []byte{0x08, 0, 0, 0, 0, 0, 42, 0}, 42, nil},
		{"valid with a frame after it", []byte{0x08, 0, 0, 0, 0xab, 0xcd, 0xef, 0, 0xff, 0xff}, 0xabcdef, nil},
		{"empty", nil, 0, ErrTruncated},
		{"cut in the vni", []byte{0x08, 0, 0, 0, 0, 0}, 0, ErrTruncated},
		{"one byte short", []byte{0x08, 0, 0, 0, 0, 0, 42}, 0, ErrTruncated},
		{"no I bit", []byte{0x00, 0, 0, 0, 0, 0, 42, 0}, 0, ErrFlags},
		{"I and G (group policy)", []byte{0x88, 0, 0, 0, 0, 0, 42, 0}, 0, ErrFlags},
		{"I and a reserved flag", []byte{0x0c, 0, 0, 0, 0, 0, 42, 0}, 0, ErrFlags},
		{"lowest flag", []byte{0x09, 0, 0, 0, 0, 0, 42, 0}, 0, ErrFlags},
		{"reserved byte 1", []byte{0x08, 1, 0, 0, 0, 0, 42, 0}, 0, ErrReserved},
		{"reserved byte 2", []byte{0x08, 0, 0x80, 0, 0, 0, 42, 0}, 0, ErrReserved},
		{"reserved byte 3", []byte{0x08, 0, 0, 0x10, 0, 0, 42, 0}, 0, ErrReserved},
		{"reserved last byte", []byte{0x08, 0, 0, 0, 0, 0, 42, 1}, 0, ErrReserved},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vni, err := Decode(tt.b)
			if !errors.Is(err, tt.err) || vni != tt.vni {
				t.Fatalf("Decode(% x) = %d, %v; want %d, %v", tt.b, vni, err, tt.vni, tt.err)
			}
		})
	}
}

// Headers Encode builds, read by gopacket's VXLAN decoder with the frame
// after them; and gopacket's headers read by Decode.
func TestAgainstGopacket(t *testing.T) {
	inner := make([]byte, 60)
	inner[0], inner[12], inner[13] = 0xff, 0x08, 0x06
	for _, vni := range []uint32{1, 42, 0x800000, MaxVNI} {
		h := Encode(vni)
		pkt := gopacket.NewPacket(append(h[:], inner...), layers.LayerTypeVXLAN, gopacket.Default)
		v, ok := pkt.Layer(layers.LayerTypeVXLAN).(*layers.VXLAN)
		if !ok {
			t.Fatalf("gopacket found no VXLAN: %v", pkt.ErrorLayer())
		}
		if !v.ValidIDFlag || v.VNI != vni || v.GBPExtension || pkt.Layer(layers.LayerTypeEthernet) == nil {
			t.Fatalf("gopacket read %+v for vni %d", v, vni)
		}

		buf := gopacket.NewSerializeBuffer()
		if err := (&layers.VXLAN{ValidIDFlag: true, VNI: vni}).SerializeTo(buf, gopacket.SerializeOptions{}); err != nil {
			t.Fatal(err)
		}
		if got, err := Decode(buf.Bytes()); err != nil || got != vni {
			t.Fatalf("Decode(% x) = %d, %v; want %d", buf.Bytes(), got, err, vni)
		}
	}
}

// FuzzDecode: any bytes decode or fail without panicking; what decodes is
// a header exactly as Encode writes it, so it round-trips.
func FuzzDecode(f *testing.F) {
	h := Encode(42)
	f.Add(h[:])
	f.Add(append(h[:], 1, 2, 3))
	f.Add([]byte{0x88, 0, 0, 0, 0, 0, 1, 0})
	f.Add([]byte{0x08, 0, 0, 0, 0, 0, 1, 1})
	f.Add([]byte{0x08})
	f.Fuzz(func(t *testing.T, b []byte) {
		vni, err := Decode(b)
		if err != nil {
			if vni != 0 {
				t.Fatalf("vni %d returned with %v", vni, err)
			}
			if len(b) >= HeaderLen && b[0] == FlagI && b[1]|b[2]|b[3]|b[7] == 0 {
				t.Fatalf("valid header % x refused: %v", b[:HeaderLen], err)
			}
			return
		}
		if vni > MaxVNI {
			t.Fatalf("vni %#x wider than 24 bits", vni)
		}
		if re := Encode(vni); !bytes.Equal(re[:], b[:HeaderLen]) {
			t.Fatalf("decoded % x as vni %d, which encodes as % x", b[:HeaderLen], vni, re)
		}
	})
}

// FuzzCheck: a port accepts a packet only if it starts with exactly the
// header the port sends; it calls a well-formed header with another VNI
// bad-key and everything else decap.
func FuzzCheck(f *testing.F) {
	h := Encode(42)
	f.Add(append(h[:], 0xff, 0xff), uint32(42))
	f.Add(append(h[:], 0xff, 0xff), uint32(43))
	f.Add([]byte{0x08, 0, 0, 0, 0, 0, 42, 1}, uint32(42))
	f.Add([]byte{0x08, 0, 0}, uint32(0))
	f.Fuzz(func(t *testing.T, pkt []byte, vni uint32) {
		vni &= MaxVNI
		want := Encode(vni)
		n, reason := checker(vni)(pkt)
		got, err := Decode(pkt)
		switch {
		case reason == 0:
			if n != HeaderLen || !bytes.HasPrefix(pkt, want[:]) {
				t.Fatalf("accepted % x (header length %d), port sends % x", pkt, n, want)
			}
		case reason == fabric.DropAuth:
			if err != nil || got == vni {
				t.Fatalf("bad-key for % x: vni %d, %v", pkt, got, err)
			}
		case reason == fabric.DropDecap:
			if err == nil {
				t.Fatalf("decap drop for a valid header % x", pkt)
			}
		default:
			t.Fatalf("reason %v", reason)
		}
	})
}
