// Package pktring is AF_PACKET's memory-mapped receive ring for the raw
// port: the kernel copies each frame into memory it shares with the
// reader and hands it over by a status word, so no system call and no
// skb queue is involved per frame. TPACKET_V3 packs frames into blocks
// and hands over a whole block at a time (full, or after a timeout);
// TPACKET_V2 hands over each frame in a slot of its own at once.
//
// The kernel writes the ring; its offsets and lengths are checked before
// any frame is read (parseFrame, parseSlot), and a frame whose header
// points outside its block or slot is counted and skipped, never read.
// The only unsafe code, the atomic status words the two sides hand blocks
// and slots over with, is in status_unsafe.go.
package pktring
