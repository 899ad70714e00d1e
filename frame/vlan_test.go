package frame

import (
	"bytes"
	"testing"
)

func TestVLANSet(t *testing.T) {
	for _, tt := range []struct {
		in, out string
		n       int
	}{
		{"10", "10", 1},
		{"10;20;30-40", "10;20;30-40", 13},
		{" 30-32 ; 10 ;31", "10;30-32", 4},
		{"1-4094", "all", 4094},
		{"all", "all", 4094},
		{"4094;1", "1;4094", 2},
	} {
		s, err := ParseVLANSet(tt.in)
		if err != nil {
			t.Fatalf("%q: %v", tt.in, err)
		}
		if got := s.String(); got != tt.out || s.Len() != tt.n {
			t.Errorf("%q: %q with %d VLANs, want %q with %d", tt.in, got, s.Len(), tt.out, tt.n)
		}
	}
	for _, bad := range []string{"", "0", "4095", "10-5", "x", "10,20", "-3", "1-", "10;;20", "65546"} {
		if _, err := ParseVLANSet(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// tagged is an 802.1Q frame of VLAN vid with a payload of n bytes.
func tagged(vid uint16, n int) []byte {
	f := make([]byte, 0, HeaderLen+VLANTagLen+n)
	f = append(f, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12)
	tag := MakeTag(TPID8021Q, vid)
	f = append(f, tag[:]...)
	f = append(f, 0x08, 0x00)
	for i := 0; i < n; i++ {
		f = append(f, byte(i))
	}
	return f
}

func TestPushPop(t *testing.T) {
	fr := tagged(10, 46)
	buf := make([]byte, Headroom+len(fr))
	copy(buf[Headroom:], fr)
	if vid, ok := OuterVLAN(buf[Headroom:]); !ok || vid != 10 {
		t.Fatalf("OuterVLAN = %d, %v", vid, ok)
	}
	tag := PopTag(buf, Headroom)
	untagged := buf[Headroom+VLANTagLen:]
	if tag.VID() != 10 || len(untagged) != len(fr)-4 || EtherType(untagged) != 0x0800 ||
		!bytes.Equal(untagged[:12], fr[:12]) || !bytes.Equal(untagged[14:], fr[18:]) {
		t.Fatalf("popped: %x (tag %x)", untagged, tag)
	}
	if _, ok := OuterVLAN(untagged); ok {
		t.Fatal("a popped frame still has a tag")
	}
	PushTag(buf, Headroom+VLANTagLen, tag)
	if !bytes.Equal(buf[Headroom:], fr) {
		t.Fatalf("pushed back: %x, want %x", buf[Headroom:], fr)
	}
	if _, ok := OuterVLAN(fr[:17]); ok {
		t.Fatal("a frame shorter than its tag counts as tagged")
	}
}

// FuzzTags: popping and pushing any tagged frame gives it back, and the
// set parser reads what it writes.
func FuzzTags(f *testing.F) {
	f.Add(tagged(10, 4), "10;20;30-40")
	f.Add(tagged(4094, 0), "all")
	f.Add([]byte{1, 2, 3}, "1-")
	f.Fuzz(func(t *testing.T, fr []byte, list string) {
		if s, err := ParseVLANSet(list); err == nil {
			text := s.String()
			again, err := ParseVLANSet(text)
			if text == "" || err != nil || again != s {
				t.Fatalf("%q read as %q, which reads back as %v (%v)", list, text, again.String(), err)
			}
		}
		vid, ok := OuterVLAN(fr)
		if !ok {
			return
		}
		buf := make([]byte, Headroom+len(fr))
		copy(buf[Headroom:], fr)
		tag := PopTag(buf, Headroom)
		if tag.VID() != vid {
			t.Fatalf("popped VLAN %d, OuterVLAN said %d", tag.VID(), vid)
		}
		PushTag(buf, Headroom+VLANTagLen, tag)
		if !bytes.Equal(buf[Headroom:], fr) {
			t.Fatalf("pop and push changed %x into %x", fr, buf[Headroom:])
		}
	})
}
