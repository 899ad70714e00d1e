package tap

import (
	"bytes"
	"encoding/binary"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/umlswitch/umlswitch/fabric"
	"github.com/umlswitch/umlswitch/frame"
	"github.com/umlswitch/umlswitch/internal/mmsg"
	"github.com/umlswitch/umlswitch/internal/offload"
	"github.com/umlswitch/umlswitch/transports/portkind"
)

// vnetQueue is a queue of a tap opened with VnetHdr, as Open sets it up,
// reading from fd instead of a tap.
func vnetQueue(depth, maxFrame int) *queue {
	p := &Port{cfg: Config{Options: Options{VnetHdr: true}, Common: portkind.Common{Depth: depth, MaxFrame: maxFrame}}}
	q := &queue{p: p}
	q.vnet = &vnetRx{b: mmsg.NewBatch(1, 3), spill: make([]byte, maxTapFrame), whole: make([]byte, maxTapFrame+maxFrame+1)}
	q.vnet.b.SetBuf(0, 0, q.vnet.hdr[:])
	q.vnet.b.SetBuf(0, 2, q.vnet.spill)
	return q
}

// vnetHdr lays h out as the kernel does.
func vnetHdr(h offload.Hdr) []byte {
	b := make([]byte, offload.HdrLen)
	b[0], b[1] = h.Flags, h.GSOType
	binary.NativeEndian.PutUint16(b[2:], h.HdrLen)
	binary.NativeEndian.PutUint16(b[4:], h.GSOSize)
	binary.NativeEndian.PutUint16(b[6:], h.CsumStart)
	binary.NativeEndian.PutUint16(b[8:], h.CsumOffset)
	return b
}

// tsoFrame is an Ethernet/IPv4/TCP frame with n bytes of payload, and the
// header a host sends with it to have it cut at mss.
func tsoFrame(n, mss int) (hdr, f []byte) {
	f = make([]byte, 14+20+20+n)
	binary.BigEndian.PutUint16(f[12:], 0x0800)
	ip := f[14:]
	ip[0], ip[8], ip[9] = 0x45, 64, 6
	binary.BigEndian.PutUint16(ip[2:], uint16(20+20+n))
	copy(ip[12:], []byte{10, 0, 0, 1, 10, 0, 0, 2})
	tcp := f[34:]
	tcp[12], tcp[13] = 5<<4, 0x18
	for i := range n {
		f[54+i] = byte(i)
	}
	return vnetHdr(offload.Hdr{Flags: offload.FlagNeedsCsum, GSOType: offload.GSOTCPv4, GSOSize: uint16(mss), CsumStart: 34, CsumOffset: 16}), f
}

// want is what the switch must see of one datagram read from a tap with
// virtio-net headers, computed with offload's own functions: a runt or a
// GSO frame that does not plan is rejected; a plain frame is passed with
// its checksum completed; a GSO frame becomes its segments.
type want struct {
	size int    // or a Rejected reason
	data []byte // nil when too long for the port (the switch counts it oversize)
}

func expect(dgram []byte, maxFrame int) []want {
	if len(dgram) < offload.HdrLen {
		return []want{{size: fabric.Rejected(fabric.DropRunt)}}
	}
	h, f := offload.ParseHdr(dgram), dgram[offload.HdrLen:]
	if !h.IsGSO() {
		w := want{size: len(f)}
		if len(f) <= maxFrame {
			w.data = bytes.Clone(f)
			offload.CompleteChecksum(h, w.data)
		}
		return []want{w}
	}
	plan, err := offload.NewPlan(h, f)
	if err != nil {
		return []want{{size: fabric.Rejected(fabric.DropDecap)}}
	}
	var out []want
	for i := range plan.Count {
		w := want{size: plan.Size(i)}
		if w.size <= maxFrame {
			w.data = make([]byte, w.size)
			plan.Segment(f, i, w.data)
		}
		out = append(out, w)
	}
	return out
}

// fuzzFrame bounds the frames FuzzReadVnet makes: past a jumbo slot and
// into the spill area, but short of a tap's 64 KiB, which would make every
// run slow to no purpose.
const fuzzFrame = 16 << 10

// FuzzReadVnet feeds datagrams, as a tap with IFF_VNET_HDR hands them
// over (a virtio-net header, then up to 64 KiB of frame, which a guest or
// any local process with the tap can write), through the port's reader,
// batch after batch of a small vector: segments owed across batches, a
// frame split between a slot and the spill area. What reaches the switch
// must be exactly what offload computes for each datagram, in order, each
// within its slot and never longer than a tap read.
//
// Each datagram is a header h, a frame f, and zeros up to pad bytes of
// frame: long frames from short inputs, which keeps the fuzzer's
// minimising quick.
func FuzzReadVnet(f *testing.F) {
	h, tso := tsoFrame(100, 1000)
	f.Add(h, tso, uint16(3000), h[:4], []byte{}, uint16(0), uint8(2), false)
	f.Add(h, tso, uint16(0), vnetHdr(offload.Hdr{}), make([]byte, 60), uint16(0), uint8(1), true)
	plain := vnetHdr(offload.Hdr{Flags: offload.FlagNeedsCsum, CsumStart: 34, CsumOffset: 6})
	f.Add(plain, make([]byte, 60), uint16(2000), plain, make([]byte, 42), uint16(0), uint8(3), false)
	h2, tso2 := tsoFrame(100, 1448)
	f.Add(h2, tso2, uint16(fuzzFrame), h, tso[:60], uint16(9100), uint8(4), true)
	f.Fuzz(func(t *testing.T, h1, f1 []byte, pad1 uint16, h2, f2 []byte, pad2 uint16, depth uint8, jumbo bool) {
		maxFrame := 1518
		if jumbo {
			maxFrame = 9018
		}
		var dgrams [][]byte
		for _, d := range []struct {
			h, f []byte
			pad  uint16
		}{{h1, f1, pad1}, {h2, f2, pad2}} {
			dgram := d.h
			if len(dgram) >= offload.HdrLen {
				dgram = append(dgram[:offload.HdrLen:offload.HdrLen], d.f...)
				if n := offload.HdrLen + min(int(d.pad), fuzzFrame); len(dgram) < n {
					dgram = append(dgram, make([]byte, n-len(dgram))...)
				}
			}
			dgrams = append(dgrams, dgram[:min(len(dgram), offload.HdrLen+fuzzFrame)])
		}
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Close(fds[0])
		defer unix.Close(fds[1])
		unix.SetsockoptInt(fds[0], unix.SOL_SOCKET, unix.SO_SNDBUF, 1<<20)
		var wants []want
		for _, d := range dgrams {
			if _, err := unix.Write(fds[0], d); err != nil {
				t.Skipf("socketpair takes no %d-byte datagram: %v", len(d), err)
			}
			wants = append(wants, expect(d, maxFrame)...)
		}
		q := vnetQueue(int(depth%8)+1, maxFrame)
		v := frame.NewVector(q.p.cfg.Depth, maxFrame)
		q.rxVec = v
		var got int
		for batches := 0; ; batches++ {
			if batches > len(wants)+1 {
				t.Fatalf("%d batches for %d frames: the reader makes no progress", batches, len(wants))
			}
			q.rxN, q.rxErr = 0, nil
			more := q.readVnet(uintptr(fds[1]))
			if q.rxErr != nil {
				t.Fatalf("read: %v", q.rxErr)
			}
			if q.rxN > q.p.cfg.Depth {
				t.Fatalf("%d frames in a batch of %d", q.rxN, q.p.cfg.Depth)
			}
			for i := range q.rxN {
				if got >= len(wants) {
					t.Fatalf("frame %d: more frames than the datagrams make (%d)", got, len(wants))
				}
				w, size := wants[got], v.Sizes[i]
				if size != w.size {
					t.Fatalf("frame %d: size %d, want %d", got, size, w.size)
				}
				if size > maxTapFrame {
					t.Fatalf("frame %d: %d bytes, more than a tap read", got, size)
				}
				if w.data != nil && !bytes.Equal(v.Frame(i), w.data) {
					t.Fatalf("frame %d: %x\nwant %x", got, v.Frame(i), w.data)
				}
				got++
			}
			if !more {
				break
			}
		}
		if got != len(wants) {
			t.Fatalf("%d frames reached the switch, want %d", got, len(wants))
		}
	})
}
