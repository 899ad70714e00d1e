package porttest

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/umlswitch/umlswitch/fabric"
	"github.com/umlswitch/umlswitch/internal/pollfd"
	"github.com/umlswitch/umlswitch/tunnel"
)

// TunnelPeer is the far end of a tunnel port as a UML or another tunnel
// endpoint runs it: a socket bound to its own address and connected to the
// switch's, sending a fixed header in front of every frame.
type TunnelPeer struct {
	Fd   int    // receives, and sends unless TxFd differs
	TxFd int    // sends (a VXLAN peer sends from another source port)
	Hdr  []byte // sent in front of every frame
	// hdrLen checks a received packet's header (after any IPv4 header a
	// raw socket hands over) and returns its length.
	hdrLen    func(pkt []byte) (int, error)
	stripIPv4 bool
	scratch   []byte
}

// ErrShort is what a peer's Recv returns for a packet shorter than its
// header.
var ErrShort = errors.New("porttest: packet shorter than the tunnel header")

// NewTunnelPeer wraps sockets from DialTunnel (txFd may equal fd); t's
// cleanup closes them. stripIPv4 is for raw IPv4 sockets, which hand over
// the IP header too. hdrLen checks and measures a received header.
func NewTunnelPeer(t testing.TB, fd, txFd int, hdr []byte, stripIPv4 bool, hdrLen func(pkt []byte) (int, error)) *TunnelPeer {
	t.Cleanup(func() {
		unix.Close(fd)
		if txFd != fd {
			unix.Close(txFd)
		}
	})
	return &TunnelPeer{Fd: fd, TxFd: txFd, Hdr: hdr, hdrLen: hdrLen, stripIPv4: stripIPv4, scratch: make([]byte, 70000)}
}

// DialTunnel opens a non-blocking socket of type typ and protocol proto,
// bound to local and connected to remote (ports are 0 for raw sockets).
// Call it inside the namespace the peer lives in.
func DialTunnel(typ, proto int, local, remote netip.AddrPort) (int, error) {
	family := unix.AF_INET
	if local.Addr().Is6() {
		family = unix.AF_INET6
	}
	fd, err := unix.Socket(family, typ|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, proto)
	if err != nil {
		return -1, err
	}
	if err := unix.Bind(fd, Sockaddr(local)); err != nil {
		unix.Close(fd)
		return -1, err
	}
	if err := unix.Connect(fd, Sockaddr(remote)); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// Sockaddr converts an address and port for the socket calls.
func Sockaddr(a netip.AddrPort) unix.Sockaddr {
	if a.Addr().Is4() {
		return &unix.SockaddrInet4{Addr: a.Addr().As4(), Port: int(a.Port())}
	}
	return &unix.SockaddrInet6{Addr: a.Addr().As16(), Port: int(a.Port())}
}

// Send encapsulates f with the peer's header.
func (u *TunnelPeer) Send(f []byte) error {
	n := copy(u.scratch, u.Hdr)
	n += copy(u.scratch[n:], f)
	return u.SendRaw(u.scratch[:n])
}

// SendRaw sends b as it is.
func (u *TunnelPeer) SendRaw(b []byte) error {
	_, err := unix.Write(u.TxFd, b)
	return err
}

// Recv reads one packet, waiting up to timeout, checks its header and
// copies the frame behind it into b.
func (u *TunnelPeer) Recv(b []byte, timeout time.Duration) (int, error) {
	n, err := pollfd.ReadTimeout(u.Fd, u.scratch, timeout)
	if err != nil {
		return 0, err
	}
	pkt := u.scratch[:n]
	if u.stripIPv4 {
		pkt = pkt[int(pkt[0]&0x0f)*4:]
	}
	h, err := u.hdrLen(pkt)
	if err != nil {
		return 0, err
	}
	if h > len(pkt) {
		return 0, ErrShort
	}
	return copy(b, pkt[h:]), nil
}

// Expect fails t unless the next frame u receives, within two seconds,
// carries tag (the byte Ether puts after the header).
func (u *TunnelPeer) Expect(t testing.TB, tag byte) {
	t.Helper()
	b := make([]byte, 2048)
	n, err := u.Recv(b, 2*time.Second)
	if err != nil || n < 15 || b[14] != tag {
		t.Fatalf("want frame %d: %d bytes, %v", tag, n, err)
	}
}

// ExpectNothing fails t if u receives a frame within 100 ms.
func (u *TunnelPeer) ExpectNothing(t testing.TB) {
	t.Helper()
	b := make([]byte, 2048)
	if n, err := u.Recv(b, 100*time.Millisecond); err == nil {
		t.Fatalf("unexpected frame of %d bytes (tag %d)", n, b[min(n, 14)])
	}
}

// NewTunnelSwitch is a switch and the tunnel table its ports share.
func NewTunnelSwitch(t testing.TB) (*Switch, *tunnel.Table) {
	sw := NewSwitch(t, fabric.Config{})
	return sw, tunnel.NewTable(sw, Quiet())
}
