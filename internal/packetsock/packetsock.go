// Package packetsock opens the AF_PACKET socket that plays the host's side
// of an interface for tests and the benchmark: what it sends leaves through
// the interface, what arrives there it reads, and it does not see its own
// transmissions. The raw port binds its own socket with AllProtocols too.
package packetsock

import (
	"fmt"
	"net"

	"golang.org/x/sys/unix"
)

// AllProtocols is ETH_P_ALL in network byte order, as AF_PACKET's socket
// and bind calls take it.
const AllProtocols = unix.ETH_P_ALL<<8&0xff00 | unix.ETH_P_ALL>>8

// Open returns a non-blocking packet socket bound to ifname (in the calling
// thread's network namespace) for every protocol. It needs CAP_NET_RAW.
func Open(ifname string) (int, error) {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return -1, err
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, AllProtocols)
	if err != nil {
		return -1, fmt.Errorf("packet socket: %w (it needs root or CAP_NET_RAW)", err)
	}
	err = unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_IGNORE_OUTGOING, 1)
	if err == nil {
		err = unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: AllProtocols, Ifindex: ifi.Index})
	}
	if err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("packet socket on %s: %w", ifname, err)
	}
	return fd, nil
}
