package l2tpv3

import (
	"encoding/hex"
	"strings"
	"testing"
)

// Headers as UML 6.1 was seen sending them (wire-formats.md section 3.5:
// tx_session 0xffff, with the options below), built by Encode with the
// counter the first frame carries.
func TestEncodeMatchesUMLCaptures(t *testing.T) {
	tests := []struct {
		name   string
		l      Layout
		cookie uint64
		want   string
	}{
		{"udp, no options", Layout{UDP: true}, 0, "00030000 0000ffff"},
		{"udp, 32-bit cookie, counter", Layout{UDP: true, Cookie: 4, Counter: true}, 0x11223344, "00030000 0000ffff 11223344 00000001"},
		{"udp, 64-bit cookie, pinned counter", Layout{UDP: true, Cookie: 8, Counter: true}, 0x1122334455667788, "00030000 0000ffff 1122334455667788 00000000"},
		{"ip, cookie", Layout{Cookie: 4}, 0xabcd, "0000ffff 0000abcd"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hdr, at := Encode(tt.l, 0xffff, tt.cookie)
			if tt.l.Counter {
				if at != len(hdr)-4 {
					t.Fatalf("counter at %d", at)
				}
				if !strings.Contains(tt.name, "pinned") {
					hdr[len(hdr)-1] = 1 // the first frame's count
				}
			}
			want, _ := hex.DecodeString(strings.ReplaceAll(tt.want, " ", ""))
			if string(hdr) != string(want) {
				t.Fatalf("% x, want % x", hdr, want)
			}
			if len(hdr) != tt.l.Len() {
				t.Fatalf("Len %d for %d bytes", tt.l.Len(), len(hdr))
			}
			h, err := Parse(hdr, tt.l)
			if err != nil || h.Session != 0xffff || h.Cookie != tt.cookie {
				t.Fatalf("Parse: %+v %v", h, err)
			}
		})
	}
}

func TestParseTruncated(t *testing.T) {
	l := Layout{UDP: true, Cookie: 8, Counter: true}
	hdr, _ := Encode(l, 1, 2)
	for n := 0; n < len(hdr); n++ {
		if _, err := Parse(hdr[:n], l); err == nil {
			t.Fatalf("%d bytes accepted", n)
		}
	}
}

// FuzzParse: any bytes under any layout decode or fail, never past the end.
func FuzzParse(f *testing.F) {
	hdr, _ := Encode(Layout{UDP: true, Cookie: 4, Counter: true}, 7, 9)
	f.Add(hdr, true, uint8(4), true)
	f.Add([]byte{0, 0, 0, 1}, false, uint8(0), false)
	f.Fuzz(func(t *testing.T, b []byte, udp bool, cookie uint8, counter bool) {
		l := Layout{UDP: udp, Cookie: []int{0, 4, 8}[int(cookie)%3], Counter: counter}
		h, err := Parse(b, l)
		if err != nil {
			if len(b) >= l.Len() {
				t.Fatalf("%d bytes refused for a %d-byte layout: %v", len(b), l.Len(), err)
			}
			return
		}
		if len(b) < l.Len() {
			t.Fatal("decoded past the end")
		}
		re, _ := Encode(l, h.Session, h.Cookie)
		if string(re[l.SessionAt():l.SessionAt()+4+l.Cookie]) != string(b[l.SessionAt():l.SessionAt()+4+l.Cookie]) {
			t.Fatal("session and cookie do not round-trip")
		}
	})
}

// FuzzCheck: a session's port accepts a packet only if it is long enough
// for the session's layout and carries the session's cookie.
func FuzzCheck(f *testing.F) {
	hdr, _ := Encode(Layout{UDP: true, Cookie: 8, Counter: true}, 7, 0x1122334455667788)
	f.Add(hdr, true, uint8(8), true, uint64(0x1122334455667788))
	f.Add([]byte{0, 0, 0, 7, 0, 0, 0, 9}, false, uint8(4), false, uint64(9))
	f.Fuzz(func(t *testing.T, pkt []byte, udp bool, cookie uint8, counter bool, rxCookie uint64) {
		l := Layout{UDP: udp, Cookie: []int{0, 4, 8}[int(cookie)%3], Counter: counter}
		if l.Cookie == 4 {
			rxCookie &= 0xffffffff
		}
		n, reason := checker(l, rxCookie)(pkt)
		if reason != 0 {
			return
		}
		if n != l.Len() || len(pkt) < n {
			t.Fatalf("accepted %d-byte header of a %d-byte packet, layout wants %d", n, len(pkt), l.Len())
		}
		h, err := Parse(pkt, l)
		if err != nil || (l.Cookie > 0 && h.Cookie != rxCookie) {
			t.Fatalf("accepted cookie %#x, want %#x (%v)", h.Cookie, rxCookie, err)
		}
	})
}
