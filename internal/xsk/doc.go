// Package xsk is AF_XDP for the raw port: a socket bound to one queue of
// an interface with its own UMEM and four rings (Socket), and the XDP
// program that steers each queue's frames to its socket, through an
// optional filter block (Program). The program is written with
// cilium/ebpf's asm package, so building needs no C compiler.
//
// Receive and Transmit copy frames between the caller's buffers and the
// UMEM: the UMEM never leaves this package, and neither does unsafe (in
// the *_unsafe.go files). Neither allocates per frame nor blocks; Wait and
// WaitWritable park on Go's netpoller.
//
// Frames are single-buffer: an interface whose MTU does not fit one UMEM
// frame is refused (MaxMTU).
package xsk
