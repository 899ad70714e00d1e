package tap

import (
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/umlswitch/umlswitch/fabric"
	"github.com/umlswitch/umlswitch/frame"
	"github.com/umlswitch/umlswitch/internal/nstest"
	"github.com/umlswitch/umlswitch/internal/pollfd"
	"github.com/umlswitch/umlswitch/transports/porttest"
)

// hostSide is an AF_PACKET socket on the tap's host side: what it sends
// leaves the host through the tap and reaches the port; what the port writes
// arrives on it. It ignores its own outgoing frames.
type hostSide struct{ fd int }

func openHostSide(t *testing.T, ns *nstest.NS, ifname string) *hostSide {
	t.Helper()
	var h hostSide
	err := ns.Do(func() error {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		proto := int(htons(unix.ETH_P_ALL))
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, proto)
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

func (h *hostSide) send(b []byte) error {
	_, err := unix.Write(h.fd, b)
	return err
}

func (h *hostSide) recv(b []byte, timeout time.Duration) (int, error) {
	return pollfd.ReadTimeout(h.fd, b, timeout)
}

var tapSeq int

// openTap creates a tap through the port inside a fresh namespace, brings it
// up quietly (no IPv6 chatter) and returns the port and its host side.
func openTap(t *testing.T, mtu int) (*Port, *hostSide, *nstest.NS) {
	t.Helper()
	ns := nstest.New(t)
	tapSeq++
	name := fmt.Sprintf("tapt%d", tapSeq)
	var p *Port
	if err := ns.Do(func() (err error) {
		p, err = Open(Config{Ifname: name, MaxFrame: frame.MaxFrameForMTU(1500)})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	ns.MustRun(t, "sysctl", "-qw", "net.ipv6.conf."+name+".disable_ipv6=1")
	ns.MustRun(t, "ip", "link", "set", name, "mtu", fmt.Sprint(mtu), "up")
	return p, openHostSide(t, ns, name), ns
}

func TestConformance(t *testing.T) {
	porttest.Run(t, func(t *testing.T) *porttest.Harness {
		p, host, _ := openTap(t, 1500)
		return &porttest.Harness{Port: p, Receiver: p.Receiver(3), ID: 3, PeerSend: host.send, PeerRecv: host.recv}
	})
}

// The kernel cuts a tap read short without saying so; the port must still
// report a frame longer than its limit as oversize.
func TestOversizeFromHostIsReported(t *testing.T) {
	p, host, _ := openTap(t, 9000)
	v := frame.NewVector(8, p.MaxFrame())
	for _, size := range []int{p.MaxFrame(), 3000, 60} {
		if err := host.send(porttest.Frame(size, 1)); err != nil {
			t.Fatal(err)
		}
	}
	var sizes []int
	for len(sizes) < 3 {
		n, err := p.Receiver(0).Receive(v)
		if err != nil {
			t.Fatal(err)
		}
		sizes = append(sizes, v.Sizes[:n]...)
	}
	if sizes[0] != p.MaxFrame() || sizes[1] <= p.MaxFrame() || sizes[2] != 60 {
		t.Fatalf("sizes %v: want %d, more than %d, 60", sizes, p.MaxFrame(), p.MaxFrame())
	}
}

func TestWriteWhileDownDropsTheBatch(t *testing.T) {
	p, _, ns := openTap(t, 1500)
	ns.MustRun(t, "ip", "link", "set", p.Ifname(), "down")
	n, err := p.Write([][]byte{porttest.Frame(60, 1), porttest.Frame(60, 2)})
	if n != 0 || !errors.Is(err, fabric.ErrPeerGone) {
		t.Fatalf("Write = %d, %v; want 0 and ErrPeerGone", n, err)
	}
}

func TestBadInterface(t *testing.T) {
	if _, err := Open(Config{Ifname: "this-name-is-too-long"}); err == nil {
		t.Fatal("accepted a name longer than IFNAMSIZ")
	}
	ns := nstest.New(t)
	err := ns.Do(func() error {
		_, err := Open(Config{Ifname: "lo"})
		return err
	})
	if err == nil {
		t.Fatal("attached to lo as a tap")
	}
}
