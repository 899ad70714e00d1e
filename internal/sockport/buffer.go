package sockport

import "golang.org/x/sys/unix"

// SetBuffer sets a socket's receive (unix.SO_RCVBUF) or send
// (unix.SO_SNDBUF) buffer to size bytes, past the system's limit
// (net.core.rmem_max and wmem_max, 212992 on a default Debian) where the
// process may (as root). A socket that many peers or a fast host feed
// needs room for bursts. Failing leaves the default, which still works.
func SetBuffer(fd, opt, size int) {
	force := unix.SO_RCVBUFFORCE
	if opt == unix.SO_SNDBUF {
		force = unix.SO_SNDBUFFORCE
	}
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, force, size) != nil {
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, opt, size)
	}
}
