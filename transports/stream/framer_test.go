package stream

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// record is one frame as QEMU puts it on the stream.
func record(f []byte) []byte {
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(f))), f...)
}

type cut struct {
	size  int
	frame []byte
}

// feed writes stream into f in reads of the given sizes (cycled), taking
// frames after each read as the port does, and returns them and how many
// bytes were left inside a frame.
func feed(t testing.TB, f *Framer, stream []byte, reads []int) (got []cut) {
	for i := 0; len(stream) > 0; i++ {
		n := len(stream)
		if len(reads) > 0 {
			n = max(1, min(n, reads[i%len(reads)]))
		}
		space := f.Space()
		if len(space) == 0 {
			t.Fatalf("no room to read with no whole frame waiting")
		}
		n = copy(space, stream[:n])
		f.Fill(n)
		stream = stream[n:]
		for {
			fr, size, ok := f.Next()
			if !ok {
				break
			}
			got = append(got, cut{size, bytes.Clone(fr)})
		}
		if f.Broken() {
			break
		}
	}
	return got
}

func TestFramer(t *testing.T) {
	a, b, c := bytes.Repeat([]byte{1}, 60), bytes.Repeat([]byte{2}, 1518), bytes.Repeat([]byte{3}, 14)
	stream := bytes.Join([][]byte{record(a), record(b), record(nil), record(c)}, nil)
	want := []cut{{60, a}, {1518, b}, {0, nil}, {14, c}}
	for name, reads := range map[string][]int{
		"one read":                  nil,
		"byte by byte":              {1},
		"prefix split 2+2":          {2, 2, 60, 3},
		"prefix split 3+1":          {3, 1, 61},
		"frames and halves at once": {100, 1000, 7},
	} {
		t.Run(name, func(t *testing.T) {
			f := NewFramer(1518)
			got := feed(t, f, stream, reads)
			if len(got) != len(want) {
				t.Fatalf("got %d frames, want %d", len(got), len(want))
			}
			for i := range want {
				if got[i].size != want[i].size || !bytes.Equal(got[i].frame, want[i].frame) {
					t.Fatalf("frame %d: size %d, want %d", i, got[i].size, want[i].size)
				}
			}
			if f.Buffered() != 0 {
				t.Fatalf("%d bytes left", f.Buffered())
			}
		})
	}
	t.Run("many frames in one read", func(t *testing.T) {
		var s []byte
		for i := range 500 {
			s = append(s, record(bytes.Repeat([]byte{byte(i)}, 60+i%40))...)
		}
		f := NewFramer(1518)
		if got := feed(t, f, s, []int{len(s)}); len(got) != 500 {
			t.Fatalf("got %d frames", len(got))
		}
	})
	t.Run("a length over the largest frame breaks the stream", func(t *testing.T) {
		f := NewFramer(1518)
		s := append(record(a), 0, 0, 0x05, 0xef) // 1519
		s = append(s, record(c)...)
		got := feed(t, f, s, []int{3})
		if len(got) != 2 || got[1].size != 1519 || got[1].frame != nil || !f.Broken() {
			t.Fatalf("got %+v, broken %v", got, f.Broken())
		}
		if _, _, ok := f.Next(); ok {
			t.Fatal("a frame after the stream broke")
		}
	})
	t.Run("a huge length", func(t *testing.T) {
		f := NewFramer(1518)
		got := feed(t, f, []byte{0xff, 0xff, 0xff, 0xff}, nil)
		if len(got) != 1 || got[0].size <= 1518 {
			t.Fatalf("got %+v", got)
		}
	})
	t.Run("end of stream inside a frame", func(t *testing.T) {
		f := NewFramer(1518)
		s := append(record(a), record(b)[:700]...)
		if got := feed(t, f, s, nil); len(got) != 1 || f.Buffered() != 700 {
			t.Fatalf("got %d frames, %d bytes left", len(got), f.Buffered())
		}
	})
	t.Run("largest frames fill the buffer", func(t *testing.T) {
		f := NewFramer(65535)
		var s []byte
		for i := range 10 {
			s = append(s, record(bytes.Repeat([]byte{byte(i)}, 65535-i))...)
		}
		if got := feed(t, f, s, []int{50000, 90000}); len(got) != 10 {
			t.Fatalf("got %d frames", len(got))
		}
	})
}

// FuzzStreamFramer: any byte stream, cut into any reads, never panics and
// yields the frames one read of it yields.
func FuzzStreamFramer(f *testing.F) {
	f.Add(bytes.Join([][]byte{record(make([]byte, 60)), record(nil), record(make([]byte, 14))}, nil), []byte{1, 3, 200})
	f.Add([]byte{0, 0, 0xff, 0xff, 1, 2}, []byte{2})
	f.Add(append(record(make([]byte, 100)), 0, 0, 0), []byte{5, 7})
	f.Fuzz(func(t *testing.T, stream, cuts []byte) {
		reads := make([]int, len(cuts))
		for i, c := range cuts {
			reads[i] = int(c) + 1
		}
		const maxFrame = 300 // small, so that fuzzed lengths are often whole
		whole := feed(t, NewFramer(maxFrame), stream, nil)
		f := NewFramer(maxFrame)
		pieces := feed(t, f, stream, reads)
		if len(whole) != len(pieces) {
			t.Fatalf("one read: %d frames; cut: %d", len(whole), len(pieces))
		}
		for i := range whole {
			if whole[i].size != pieces[i].size || !bytes.Equal(whole[i].frame, pieces[i].frame) {
				t.Fatalf("frame %d differs", i)
			}
			if whole[i].size > maxFrame && (whole[i].frame != nil || i != len(whole)-1) {
				t.Fatalf("frame %d: oversize delivered or followed", i)
			}
		}
	})
}
