// Package mmsg issues recvmmsg(2) and sendmmsg(2) over reusable message
// vectors. It exists because golang.org/x/net's batch I/O refuses AF_UNIX,
// AF_PACKET and tap descriptors and allocates an address per datagram.
//
// A Batch is built once per reader or writer and re-pointed at buffers with
// SetBuf; no call here allocates. All unsafe code lives in mmsg_unsafe.go.
package mmsg
