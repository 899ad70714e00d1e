package porttest

import (
	"net"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/umlswitch/umlswitch/internal/nstest"
	"github.com/umlswitch/umlswitch/internal/pollfd"
)

// PacketSocket is an AF_PACKET socket on an interface inside a namespace,
// ignoring its own transmissions: the host's view of a tap or of a veth's
// far end. What it sends leaves through the interface; what arrives there
// it reads.
type PacketSocket struct{ fd int }

// OpenPacketSocket binds one to ifname in ns; t's cleanup closes it.
func OpenPacketSocket(t testing.TB, ns *nstest.NS, ifname string) *PacketSocket {
	t.Helper()
	var h PacketSocket
	err := ns.Do(func() error {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
		if err != nil {
			return err
		}
		h.fd = fd
		if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_IGNORE_OUTGOING, 1); err != nil {
			return err
		}
		return unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index})
	})
	if err != nil {
		t.Fatalf("packet socket on %s: %v", ifname, err)
	}
	t.Cleanup(func() { unix.Close(h.fd) })
	return &h
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// Send transmits one frame.
func (h *PacketSocket) Send(b []byte) error {
	_, err := unix.Write(h.fd, b)
	return err
}

// Recv reads one frame, waiting up to timeout.
func (h *PacketSocket) Recv(b []byte, timeout time.Duration) (int, error) {
	return pollfd.ReadTimeout(h.fd, b, timeout)
}
