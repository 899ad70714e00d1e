package unixsock

import "sync"

// The datagram sockets this process has bound to a name (the -compat-v0
// shared data socket, dgram ports), by the address the kernel holds for
// them: a client that names one of them as its own data socket would make
// the switch send its frames to itself.
var own struct {
	sync.Mutex
	addrs map[Addr]int
}

// MarkOwn records that this process has bound a datagram socket at a (as
// Getsockname returns it); ForgetOwn undoes it once the socket is closed.
func MarkOwn(a Addr) {
	own.Lock()
	defer own.Unlock()
	if own.addrs == nil {
		own.addrs = make(map[Addr]int)
	}
	own.addrs[canonicalAddr(a)]++
}

// ForgetOwn is the inverse of MarkOwn.
func ForgetOwn(a Addr) {
	own.Lock()
	defer own.Unlock()
	c := canonicalAddr(a)
	if own.addrs[c]--; own.addrs[c] <= 0 {
		delete(own.addrs, c)
	}
}

// IsOwn reports whether a (a connected socket's peer, as Getpeername
// returns it) is one of this process's own bound datagram sockets.
func IsOwn(a Addr) bool {
	own.Lock()
	defer own.Unlock()
	return own.addrs[canonicalAddr(a)] > 0
}

// canonicalAddr ends a filesystem path at its NUL, so that addresses the
// kernel returns with different lengths compare equal; abstract names keep
// every byte.
func canonicalAddr(a Addr) Addr {
	if a.IsAbstract() {
		return a
	}
	var c Addr
	copy(c[:2], a[:2])
	p := a.FilesystemPath()
	copy(c[2:], p)
	return c
}
