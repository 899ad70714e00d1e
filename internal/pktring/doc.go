// Package pktring is AF_PACKET's memory-mapped rings for the raw port: a
// TPACKET_V3 receive ring (RX), where the kernel packs frames into blocks
// and hands over a whole block at a time, so one wakeup and no system call
// per frame delivers hundreds of them; and a transmit ring (TX), where
// frames are queued in shared memory and one send(2) transmits them all.
//
// The kernel writes the ring; its offsets and lengths are checked before
// any frame is read (Walk, parseFrame), and a frame whose header points
// outside its block is counted and skipped, never read. The only unsafe
// code, the atomic status words the two sides hand blocks and frames over
// with, is in status_unsafe.go.
package pktring
