package porttest

import (
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/umlswitch/umlswitch/internal/nstest"
	"github.com/umlswitch/umlswitch/internal/packetsock"
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
	err := ns.Do(func() (err error) {
		h.fd, err = packetsock.Open(ifname)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(h.fd) })
	return &h
}

// Send transmits one frame.
func (h *PacketSocket) Send(b []byte) error {
	_, err := unix.Write(h.fd, b)
	return err
}

// Recv reads one frame, waiting up to timeout.
func (h *PacketSocket) Recv(b []byte, timeout time.Duration) (int, error) {
	return pollfd.ReadTimeout(h.fd, b, timeout)
}
