package pktring

import (
	"sync/atomic"
	"unsafe"
)

// The status words are how the ring's two sides hand memory over: the
// side that gives a block or frame away stores its status after every
// other write to it, and the side that takes it loads the status before
// any other read. Go's atomics order the accesses as the kernel's smp_mb
// and smp_wmb/READ_ONCE do on its side.

// loadStatus reads the 32-bit status word at b[off:], which must be in
// range and 4-byte aligned (the callers check both).
func loadStatus(b []byte, off int) uint32 {
	return atomic.LoadUint32((*uint32)(unsafe.Pointer(&b[off : off+4][0])))
}

// storeStatus writes the 32-bit status word at b[off:].
func storeStatus(b []byte, off int, v uint32) {
	atomic.StoreUint32((*uint32)(unsafe.Pointer(&b[off : off+4][0])), v)
}
