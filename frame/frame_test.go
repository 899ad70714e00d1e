package frame

import "testing"

func TestMAC(t *testing.T) {
	tests := []struct {
		name            string
		in              string
		multi, broadcst bool
	}{
		{"unicast", "fe:fd:0a:00:00:01", false, false},
		{"broadcast", "ff:ff:ff:ff:ff:ff", true, true},
		{"ipv4 multicast", "01:00:5e:00:00:01", true, false},
		{"ipv6 multicast", "33:33:00:00:00:01", true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := ParseMAC(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if m.IsMulticast() != tt.multi || m.IsBroadcast() != tt.broadcst {
				t.Errorf("%s: multicast=%v broadcast=%v", m, m.IsMulticast(), m.IsBroadcast())
			}
			if m.String() != tt.in {
				t.Errorf("String() = %q, want %q", m.String(), tt.in)
			}
		})
	}
	if _, err := ParseMAC("00:00:00:00:fe:80:00:00:00:00:00:00:02:00:5e:10:00:00:00:01"); err == nil {
		t.Error("ParseMAC accepted a 20-byte address")
	}
}

func TestVectorLayout(t *testing.T) {
	v := NewVector(4, 1518)
	if v.Depth() != 4 {
		t.Fatalf("depth %d", v.Depth())
	}
	for i := range v.Bufs {
		if len(v.Room(i)) != 1519 {
			t.Fatalf("room %d = %d bytes, want the frame and one spare byte", i, len(v.Room(i)))
		}
		// Writing past one buffer must not be possible through its slice.
		if cap(v.Bufs[i]) != Headroom+1519 {
			t.Fatalf("cap %d", cap(v.Bufs[i]))
		}
	}
	v.Room(0)[0] = 0xaa
	v.Sizes[0] = 14
	if got := v.Frame(0); len(got) != 14 || got[0] != 0xaa {
		t.Fatalf("Frame(0) = %x", got)
	}
	if MaxFrameForMTU(1500) != 1518 {
		t.Fatal("MaxFrameForMTU(1500) != 1518")
	}
}
