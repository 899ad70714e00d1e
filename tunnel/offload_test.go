package tunnel

import (
	"bytes"
	"encoding/binary"
	"io"
	"log/slog"
	"math"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/umlswitch/umlswitch/fabric"
	"github.com/umlswitch/umlswitch/frame"
)

// groCmsg is a UDP_GRO control message as the kernel writes it.
func groCmsg(c []byte, seg int) int {
	binary.NativeEndian.PutUint64(c, uint64(unix.CmsgLen(4)))
	binary.NativeEndian.PutUint32(c[8:], unix.SOL_UDP)
	binary.NativeEndian.PutUint32(c[12:], unix.UDP_GRO)
	binary.NativeEndian.PutUint32(c[cmsgData:], uint32(seg))
	return unix.CmsgSpace(4)
}

// FuzzGRO feeds batches of datagrams, some coalesced, through an
// endpoint's receive path as recvmmsg would leave them (each scattered over
// its slot and its overflow area, with its UDP_GRO size), and checks that
// the frames come out whole and in order across as many receives as it
// takes, each segment treated as a datagram of its own.
func FuzzGRO(f *testing.F) {
	f.Add([]byte{3, 40, 0, 7, 1, 0, 100, 1}, uint8(4))
	f.Add([]byte{200, 30, 250, 1, 1, 7, 0, 0, 9, 9}, uint8(1))
	f.Add([]byte{0, 0, 255, 255, 5, 0}, uint8(3))
	const maxFrame, hdr = 100, 4
	p := &Port{id: 5}
	p.check = func(b []byte) (int, fabric.DropReason) {
		if len(b) < hdr {
			return 0, fabric.DropDecap
		}
		return hdr, 0
	}
	// Endpoints by depth, made once: their buffers are large, and what a
	// run leaves in them must not matter to the next.
	var eps [8]*Endpoint
	f.Fuzz(func(t *testing.T, spec []byte, depth uint8) {
		d := int(depth%8) + 1
		e := eps[d-1]
		if e == nil {
			e = &Endpoint{gro: true, rxHint: hdr, depth: d, maxFrame: maxFrame, router: fixedRouter{p}}
			e.bind(frame.NewVector(d, maxFrame+slack))
			eps[d-1] = e
		}
		v := e.rxVec
		e.g.resetControl(e.rx)
		e.malformed.Store(0)

		// Each message: a length and a segment size from spec (0: not
		// coalesced); its bytes count up from the message's number, and a
		// segment's first byte is odd when it should reach the port.
		type segment struct {
			data  []byte
			total int
		}
		var want []segment
		n := 0
		for ; n < d && len(spec) >= 3; n++ {
			total := int(binary.BigEndian.Uint16(spec)) // UDP's limit, as the areas are
			seg := int(spec[2])
			spec = spec[3:]
			data := make([]byte, total)
			for j := range data {
				data[j] = byte(n*7 + j)
			}
			size := total
			if seg > 0 && seg < total {
				size = seg
				e.rx.Hdrs[n].Msg.SetControllen(groCmsg(e.g.ctrl[n][:], seg))
			} else {
				e.rx.Hdrs[n].Msg.SetControllen(0)
			}
			for off := 0; off < total || off == 0; off += size {
				s := data[off:min(off+size, total)]
				want = append(want, segment{s, len(s)})
				if size == 0 {
					break
				}
			}
			// The kernel scatters what fits and reports the true length.
			got := min(total, e.g.stride)
			k := copy(v.Bufs[n][frame.Headroom-hdr:], data[:got])
			copy(e.g.over[n*e.g.stride+e.g.l0:], data[k:got])
			e.rx.Hdrs[n].Len = uint32(total)
			binary.LittleEndian.PutUint16(e.names[n][:], unix.AF_INET)
			e.rx.Hdrs[n].Msg.Namelen = unix.SizeofSockaddrInet4
		}
		if n == 0 {
			return
		}
		e.got.N = n
		var out []segment
		collect := func(k int) {
			for i := 0; i < k; i++ {
				var s segment
				switch {
				case v.Ports[i] == frame.NoPort:
					s.total = -1 // set aside
				case v.Sizes[i] < 0:
					s.total = -2 // rejected by the port
				default:
					s.total = v.Sizes[i]
					if s.total <= maxFrame {
						s.data = append([]byte(nil), v.Frame(i)...)
					}
				}
				out = append(out, s)
			}
		}
		k := e.decapBatch(v)
		if k > d {
			t.Fatalf("%d slots filled of %d", k, d)
		}
		collect(k)
		for rounds := 0; e.g.pending(); rounds++ {
			if rounds > len(want) {
				t.Fatal("the batch never drains")
			}
			k = e.drain(v)
			if k == 0 || k > d {
				t.Fatalf("drain filled %d of %d slots", k, d)
			}
			collect(k)
		}
		if len(out) != len(want) {
			t.Fatalf("%d frames for %d segments", len(out), len(want))
		}
		for i, w := range want {
			o := out[i]
			switch {
			case len(w.data) == 0 || w.data[0]&1 == 0:
				if o.total != -1 {
					t.Fatalf("segment %d: for no port, got %+v", i, o)
				}
			case w.total < hdr:
				if o.total != -2 {
					t.Fatalf("segment %d: short, got %+v", i, o)
				}
			case o.total != w.total-hdr:
				t.Fatalf("segment %d: size %d, want %d", i, o.total, w.total-hdr)
			case o.total <= maxFrame && !bytes.Equal(o.data, w.data[hdr:]):
				t.Fatalf("segment %d: frame % x, want % x", i, o.data, w.data[hdr:])
			}
		}
	})
}

// Frames of one size, in a row, share a message; a shorter one ends the
// run, a longer one starts a new one; runs stop at the byte bound and at
// the size limit a path set.
func TestCoalesce(t *testing.T) {
	tests := []struct {
		name  string
		sizes []int
		gso   bool
		limit int
		want  []uint8 // first frame of each message, then the count of frames
	}{
		{"equal", []int{60, 60, 60}, true, 1 << 20, []uint8{0, 3}},
		{"shorter ends a run", []int{60, 60, 50, 60}, true, 1 << 20, []uint8{0, 3, 4}},
		{"longer starts a run", []int{50, 60, 60, 100}, true, 1 << 20, []uint8{0, 1, 3, 4}},
		{"off", []int{60, 60}, false, 1 << 20, []uint8{0, 1, 2}},
		{"at the limit", []int{60, 60, 20, 20}, true, 68, []uint8{0, 1, 2, 4}},
		{"byte bound", []int{30000, 30000, 30000}, true, 1 << 20, []uint8{0, 2, 3}},
		{"one", []int{1518}, true, 1 << 20, []uint8{0, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s txScratch
			s.b = newTxBatch()
			for i := range s.ctrl {
				segmentCmsg(s.ctrl[i][:])
			}
			chunk := make([][]byte, len(tt.sizes))
			for i, n := range tt.sizes {
				chunk[i] = make([]byte, n)
				s.b.SetBuf(i, 1, chunk[i])
			}
			m := s.coalesce(chunk, 8, tt.gso, tt.limit)
			if got := s.first[:m+1]; !bytes.Equal(got, tt.want) {
				t.Fatalf("messages start at %v, want %v", got, tt.want)
			}
			for j := 0; j < m; j++ {
				h := s.b.Hdrs[j].Msg
				frames := int(s.first[j+1] - s.first[j])
				if h.Iov != &s.b.Iovs[2*int(s.first[j])] || int(h.Iovlen) != 2*frames {
					t.Fatalf("message %d: wrong iovecs", j)
				}
				if frames > 1 {
					c := s.ctrl[j][:h.Controllen]
					if h.Control == nil || binary.NativeEndian.Uint16(c[cmsgData:]) != uint16(8+tt.sizes[s.first[j]]) {
						t.Fatalf("message %d: no segment size", j)
					}
				} else if h.Control != nil || h.Controllen != 0 {
					t.Fatalf("message %d of one frame carries a control message", j)
				}
			}
		})
	}
}

func TestGROSegment(t *testing.T) {
	c := make([]byte, 64)
	n := groCmsg(c, 1400)
	if got := groSegment(c[:n]); got != 1400 {
		t.Fatalf("%d", got)
	}
	for _, bad := range [][]byte{nil, c[:8], {0xff, 0xff, 0, 0, 0, 0, 0, 0, 17, 0, 0, 0, 104, 0, 0, 0}} {
		if got := groSegment(bad); got != 0 {
			t.Fatalf("% x: %d", bad, got)
		}
	}
}

func TestRefused(t *testing.T) {
	p := &Port{ep: &Endpoint{t: NewTable(nil, slog.New(slog.NewTextHandler(io.Discard, nil)))}}
	p.gsoLimit.Store(math.MaxInt32)
	if !p.refused(unix.EINVAL, 1554) || p.gsoLimit.Load() != 1554 {
		t.Fatalf("EINVAL: limit %d", p.gsoLimit.Load())
	}
	if !p.refused(unix.EMSGSIZE, 1600) || p.gsoLimit.Load() != 1554 {
		t.Fatalf("a larger refused size raised the limit to %d", p.gsoLimit.Load())
	}
	if !p.refused(unix.EMSGSIZE, 900) || p.gsoLimit.Load() != 900 {
		t.Fatalf("EMSGSIZE: limit %d", p.gsoLimit.Load())
	}
	if p.gsoOff.Load() || !p.refused(unix.EIO, 100) || !p.gsoOff.Load() {
		t.Fatal("EIO did not turn GSO off")
	}
	if p.refused(unix.ECONNREFUSED, 100) || p.refused(unix.ENOBUFS, 100) {
		t.Fatal("an error about the peer or the queue was taken for a GSO refusal")
	}
}
