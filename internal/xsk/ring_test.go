package xsk

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// sharedRing lays two views over one Go-allocated ring whose indices
// start at start: ours (the producer) and the kernel's (the consumer),
// as the real rings are shared. The test rings cross 2^32.
func sharedRing(t *testing.T, size uint32, descs bool, start uint32) (prod, cons ring) {
	t.Helper()
	off := unix.XDPRingOffset{Producer: 0, Consumer: 64, Flags: 128, Desc: 192}
	mem := make([]byte, ringLen(off, size, descs))
	binary.NativeEndian.PutUint32(mem[off.Producer:], start)
	binary.NativeEndian.PutUint32(mem[off.Consumer:], start)
	var err error
	if prod, err = mapRing(mem, off, size, descs); err != nil {
		t.Fatal(err)
	}
	if cons, err = mapRing(mem, off, size, descs); err != nil {
		t.Fatal(err)
	}
	return prod, cons
}

// Random batches through a ring of 8 across the wrap of its uint32
// indices: what comes out is what went in, in order, and the producer
// never sees more room than the ring has.
func TestRingWrapsAround(t *testing.T) {
	for _, descs := range []bool{false, true} {
		const size = 8
		prod, cons := sharedRing(t, size, descs, 1<<32-50)
		rng := rand.New(rand.NewPCG(3, 4))
		var next, want uint64
		for step := 0; step < 2000; step++ {
			if free := prod.free(size + 1); free > size || free != size-(prod.prod-cons.cons) {
				t.Fatalf("step %d: %d free with %d queued", step, free, prod.prod-cons.cons)
			}
			n := prod.free(uint32(rng.IntN(size + 2)))
			for i := uint32(0); i < n; i++ {
				if descs {
					prod.descs[prod.prod&prod.mask] = unix.XDPDesc{Addr: next, Len: uint32(next)}
				} else {
					prod.addrs[prod.prod&prod.mask] = next
				}
				prod.prod++
				next++
			}
			prod.submit()
			m := cons.pending(uint32(rng.IntN(size + 2)))
			if m > prod.prod-cons.cons {
				t.Fatalf("step %d: %d pending with %d queued", step, m, prod.prod-cons.cons)
			}
			for i := uint32(0); i < m; i++ {
				var got uint64
				if descs {
					d := cons.descs[(cons.cons+i)&cons.mask]
					got = d.Addr
					if d.Len != uint32(got) {
						t.Fatalf("descriptor %d has length %d", got, d.Len)
					}
				} else {
					got = cons.addrs[(cons.cons+i)&cons.mask]
				}
				if got != want {
					t.Fatalf("step %d: read %d, want %d", step, got, want)
				}
				want++
			}
			cons.release(m)
		}
		if prod.prod > 1<<20 || want < 1000 {
			t.Fatalf("the indices did not wrap (producer at %d) or too little went through (%d)", prod.prod, want)
		}
	}
}

// Indices the kernel could not have written (a consumer ahead of the
// producer, a producer a whole ring ahead) give no room and no more
// entries than the ring holds.
func TestRingDistrustsIndices(t *testing.T) {
	prod, cons := sharedRing(t, 4, false, 10)
	// The kernel "consumed" entries never produced; asking for more room
	// than the cached index gives makes the producer read it.
	*cons.consumer = 20
	if n := prod.free(5); n != 0 {
		t.Fatalf("free = %d with the consumer ahead", n)
	}
	prod2, cons2 := sharedRing(t, 4, false, 10)
	*prod2.producer = 30
	if n := cons2.pending(100); n != 4 {
		t.Fatalf("pending = %d with the producer 20 ahead of a ring of 4", n)
	}
}

func TestMapRingRefusesBadOffsets(t *testing.T) {
	mem := make([]byte, 256)
	for _, off := range []unix.XDPRingOffset{
		{Producer: 254, Consumer: 4, Flags: 8, Desc: 64},
		{Producer: 0, Consumer: 2, Flags: 8, Desc: 64},
		{Producer: 0, Consumer: 4, Flags: 8, Desc: 200}, // 8 entries of 8 bytes run past 256
		{Producer: 0, Consumer: 4, Flags: 1 << 63, Desc: 64},
	} {
		if _, err := mapRing(mem, off, 8, false); err == nil {
			t.Errorf("offsets %+v accepted", off)
		}
	}
	if unsafe.Sizeof(unix.XDPDesc{}) != 16 {
		t.Fatal("struct xdp_desc is 16 bytes")
	}
}
