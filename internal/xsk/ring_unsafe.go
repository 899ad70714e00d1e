package xsk

import (
	"fmt"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ring is one single-producer, single-consumer ring shared with the
// kernel: the fill and TX rings we produce, the RX and completion rings we
// consume. Its indices run freely over uint32 and wrap; an entry's slot is
// the index masked by size-1. The side we own keeps its index locally and
// publishes it with an atomic store, after the entries it covers are
// written (produce) or read (consume); the other side's index is read with
// an atomic load only when the cached copy says there is nothing to do.
type ring struct {
	producer *uint32
	consumer *uint32
	flags    *uint32
	addrs    []uint64       // fill and completion rings: UMEM addresses
	descs    []unix.XDPDesc // RX and TX rings: address, length, options
	mask     uint32
	size     uint32

	prod uint32 // producer side: our next index; consumer side: the kernel's last seen
	cons uint32 // consumer side: our next index; producer side: the kernel's last seen
}

// mapRing lays a ring over mem, the ring's mapping, at the kernel's
// offsets. Offsets that do not fit the mapping are an error, not a panic.
func mapRing(mem []byte, off unix.XDPRingOffset, size uint32, descs bool) (ring, error) {
	end := uint64(len(mem))
	for _, o := range []uint64{off.Producer, off.Consumer, off.Flags} {
		if o%4 != 0 || o+4 > end {
			return ring{}, fmt.Errorf("ring offsets %+v do not fit its %d-byte mapping", off, end)
		}
	}
	entry := uint64(8)
	if descs {
		entry = uint64(unsafe.Sizeof(unix.XDPDesc{}))
	}
	if off.Desc%8 != 0 || off.Desc+uint64(size)*entry > end {
		return ring{}, fmt.Errorf("ring offsets %+v do not fit its %d-byte mapping", off, end)
	}
	r := ring{
		producer: (*uint32)(unsafe.Pointer(&mem[off.Producer])),
		consumer: (*uint32)(unsafe.Pointer(&mem[off.Consumer])),
		flags:    (*uint32)(unsafe.Pointer(&mem[off.Flags])),
		mask:     size - 1,
		size:     size,
	}
	if descs {
		r.descs = unsafe.Slice((*unix.XDPDesc)(unsafe.Pointer(&mem[off.Desc])), size)
	} else {
		r.addrs = unsafe.Slice((*uint64)(unsafe.Pointer(&mem[off.Desc])), size)
	}
	// The kernel starts every ring at zero, but a ring laid over memory
	// that is not (tests) starts where that memory says.
	r.prod = atomic.LoadUint32(r.producer)
	r.cons = atomic.LoadUint32(r.consumer)
	return r, nil
}

// ringLen is the length of the mapping a ring of size entries needs.
func ringLen(off unix.XDPRingOffset, size uint32, descs bool) int {
	entry := uint64(8)
	if descs {
		entry = uint64(unsafe.Sizeof(unix.XDPDesc{}))
	}
	return int(off.Desc + uint64(size)*entry)
}

// free returns how many entries the producer may write, at most want.
func (r *ring) free(want uint32) uint32 {
	n := r.size - (r.prod - r.cons)
	if n < want {
		r.cons = atomic.LoadUint32(r.consumer)
		n = r.size - (r.prod - r.cons)
	}
	if n > r.size { // the kernel's index ran ahead of ours: trust neither
		return 0
	}
	return min(n, want)
}

// submit publishes the entries written since the last submit.
func (r *ring) submit() { atomic.StoreUint32(r.producer, r.prod) }

// pending returns how many entries the consumer may read, at most want.
func (r *ring) pending(want uint32) uint32 {
	n := r.prod - r.cons
	if n < want {
		r.prod = atomic.LoadUint32(r.producer)
		n = r.prod - r.cons
	}
	return min(n, want, r.size)
}

// release gives n read entries back to the producer.
func (r *ring) release(n uint32) {
	r.cons += n
	atomic.StoreUint32(r.consumer, r.cons)
}

// queued returns how many entries the kernel has not consumed yet, of a
// ring we produce.
func (r *ring) queued() uint32 { return r.prod - atomic.LoadUint32(r.consumer) }

// empty reports, for a ring we consume, whether the kernel has nothing new.
func (r *ring) empty() bool { return atomic.LoadUint32(r.producer) == r.cons }

// needsWakeup reports whether the kernel asks for a system call before it
// looks at this ring again (XDP_USE_NEED_WAKEUP).
func (r *ring) needsWakeup() bool { return atomic.LoadUint32(r.flags)&unix.XDP_RING_NEED_WAKEUP != 0 }
