// Package packetsock hands out AF_PACKET sockets as plain descriptors for
// the batched mmsg loops: mdlayher/packet opens and configures them, and
// the caller owns a duplicate. Open gives the socket that plays the host's
// side of an interface for tests and the benchmark; the raw port builds its
// own with Dup.
package packetsock

import (
	"fmt"
	"net"

	"github.com/mdlayher/packet"
	"golang.org/x/sys/unix"
)

// AllProtocols is ETH_P_ALL in network byte order, as AF_PACKET's bind
// call takes it.
const AllProtocols = unix.ETH_P_ALL<<8&0xff00 | unix.ETH_P_ALL>>8

// Open returns a non-blocking packet socket bound to ifname (in the calling
// thread's network namespace) for every protocol, which does not see its
// own transmissions: what it sends leaves through the interface and what
// arrives there it reads. It needs CAP_NET_RAW.
func Open(ifname string) (int, error) {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return -1, err
	}
	c, err := packet.Listen(ifi, packet.Raw, unix.ETH_P_ALL, nil)
	if err != nil {
		return -1, fmt.Errorf("packet socket on %s: %w (it needs root or CAP_NET_RAW)", ifname, err)
	}
	defer c.Close()
	fd, err := Dup(c, func(fd int) error {
		return unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_IGNORE_OUTGOING, 1)
	})
	if err != nil {
		return -1, fmt.Errorf("packet socket on %s: %w", ifname, err)
	}
	return fd, nil
}

// Dup runs setup on c's socket and returns a duplicate descriptor (close
// on exec, non-blocking like c's), which keeps the socket, its filter and
// its memberships alive after c is closed.
func Dup(c *packet.Conn, setup func(fd int) error) (int, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return -1, err
	}
	dup := -1
	var opErr error
	err = rc.Control(func(fd uintptr) {
		if opErr = setup(int(fd)); opErr == nil {
			dup, opErr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0)
		}
	})
	if err == nil {
		err = opErr
	}
	if err != nil {
		return -1, err
	}
	return dup, nil
}
