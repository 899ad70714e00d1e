package tunnel

import (
	"io"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/umlswitch/umlswitch/fabric"
	"github.com/umlswitch/umlswitch/frame"
	"github.com/umlswitch/umlswitch/internal/nstest"
)

// stalledRegistry serves no receiver: an endpoint's reader that has
// fallen behind.
type stalledRegistry struct{}

func (stalledRegistry) Attach(fabric.Port) (frame.PortID, error) { return 1, nil }
func (stalledRegistry) Detach(p fabric.Port)                     { p.Close() }
func (stalledRegistry) Serve(fabric.Receiver)                    {}

// Packets the socket's receive queue has no room for are counted as the
// port's rx-overrun (and the endpoint's Overrun) instead of vanishing.
func TestReceiveOverrun(t *testing.T) {
	ns := nstest.New(t)
	local := netip.MustParseAddrPort("127.0.0.1:4789")
	tb := NewTable(stalledRegistry{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	var e *Endpoint
	err := ns.Do(func() (err error) {
		e, err = tb.Acquire(EndpointConfig{Kind: Kind{Name: "udp", Type: unix.SOCK_DGRAM}, Local: local,
			NewRouter: func() Router { return fixedRouter{} }, HeaderLen: 8, Depth: 8, MaxFrame: 1518})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	p := e.NewPort(PortConfig{Name: "udp", MaxFrame: 1518, Peer: netip.MustParseAddrPort("127.0.0.1:4790"), CounterAt: -1})
	defer p.Close()
	fd, _ := e.fd.Borrow()
	unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 1) // the kernel's least: a few packets
	e.fd.Return()

	var sender int
	if err := ns.Do(func() (err error) {
		sender, err = unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(sender)
	to := &unix.SockaddrInet4{Port: int(local.Port()), Addr: local.Addr().As4()}
	pkt := make([]byte, 100)
	pkt[0] = 1
	const sent = 200
	for i := 0; i < sent; i++ {
		if err := unix.Sendto(sender, pkt, 0, to); err != nil {
			t.Fatal(err)
		}
	}
	var drops [fabric.NumDropReasons]uint64
	deadline := time.Now().Add(5 * time.Second)
	for {
		var d [fabric.NumDropReasons]uint64
		if kd, ok := any(p).(fabric.KernelDropper); ok {
			kd.KernelDrops(&d)
		}
		drops = d
		if drops[fabric.DropRxOverrun] > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n := drops[fabric.DropRxOverrun]; n == 0 || n >= sent {
		t.Fatalf("rx-overrun %d of %d sent to a socket with room for a few", n, sent)
	}
	// A port opened now shares the socket, not its past.
	later := e.NewPort(PortConfig{Name: "later", MaxFrame: 1518, Peer: netip.MustParseAddrPort("127.0.0.1:4791"), CounterAt: -1})
	tb.mu.Lock()
	e.refs++ // as Acquire would for it
	tb.mu.Unlock()
	defer later.Close()
	var d [fabric.NumDropReasons]uint64
	later.KernelDrops(&d)
	if d[fabric.DropRxOverrun] != 0 {
		t.Fatalf("a port opened after the overrun counts %d of it", d[fabric.DropRxOverrun])
	}
	if st := tb.Stats(); len(st) != 1 || st[0].Overrun != drops[fabric.DropRxOverrun] {
		t.Fatalf("endpoint stats %+v; want Overrun %d", st, drops[fabric.DropRxOverrun])
	}
}
