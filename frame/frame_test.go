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
	if MaxFrameForMTU(1500) != 1522 {
		t.Fatal("MaxFrameForMTU(1500) != 1522")
	}
}

// A lent vector holds buffers only between Take and Give; its Scratch
// travels with the buffers, and a vector that owns its buffers ignores both.
func TestLentVector(t *testing.T) {
	v := NewLentVector(4, 1518)
	if v.Bufs != nil || v.Depth() != 4 {
		t.Fatalf("a new lent vector holds %d buffers, depth %d", len(v.Bufs), v.Depth())
	}
	v.Take()
	if len(v.Bufs) != 4 || len(v.Sizes) != 4 || len(v.Ports) != 4 || len(v.Room(3)) != 1519 {
		t.Fatalf("Take gave %d buffers", len(v.Bufs))
	}
	first := &v.Bufs[0][0]
	v.Take() // holds already: nothing changes
	if &v.Bufs[0][0] != first {
		t.Fatal("a second Take replaced the buffers")
	}
	v.Scratch = "headers"
	v.Give()
	if v.Bufs != nil || v.Sizes != nil || v.Ports != nil || v.Scratch != nil {
		t.Fatal("Give kept buffers")
	}
	v.Give() // holds none: nothing happens
	// The pool usually hands the same set back on the same goroutine; when
	// it does, its scratch comes with it.
	v.Take()
	if &v.Bufs[0][0] == first && v.Scratch != "headers" {
		t.Fatalf("scratch %v did not travel with its buffers", v.Scratch)
	}
	v.Give()

	own := NewVector(2, 1518)
	own.Give()
	own.Take()
	if len(own.Bufs) != 2 {
		t.Fatal("Give or Take changed a vector that owns its buffers")
	}
}

func TestLentVectorDoesNotAllocate(t *testing.T) {
	v := NewLentVector(64, 1518)
	v.Take()
	v.Give()
	if n := testing.AllocsPerRun(100, func() { v.Take(); v.Give() }); n != 0 {
		t.Fatalf("%v allocations per Take and Give", n)
	}
}
