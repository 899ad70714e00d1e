package tap

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/umlswitch/umlswitch/fabric"
	"github.com/umlswitch/umlswitch/frame"
	"github.com/umlswitch/umlswitch/internal/nstest"
	"github.com/umlswitch/umlswitch/transports/portkind"
	"github.com/umlswitch/umlswitch/transports/porttest"
)

var tapSeq int

// openTap creates a tap through the port inside a fresh namespace, brings it
// up quietly (no IPv6 chatter) and returns the port and its host side.
func openTap(t *testing.T, mtu int) (*Port, *porttest.PacketSocket, *nstest.NS) {
	t.Helper()
	return openTapWith(t, mtu, false)
}

// openTapWith is openTap, with virtio-net headers when vnetHdr is set.
func openTapWith(t *testing.T, mtu int, vnetHdr bool) (*Port, *porttest.PacketSocket, *nstest.NS) {
	t.Helper()
	ns := nstest.New(t)
	tapSeq++
	name := fmt.Sprintf("tapt%d", tapSeq)
	var p *Port
	if err := ns.Do(func() (err error) {
		p, err = Open(Config{Options: Options{Ifname: name, Create: true, VnetHdr: vnetHdr}, Common: portkind.Common{MaxFrame: frame.MaxFrameForMTU(1500)}})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	ns.MustRun(t, "sysctl", "-qw", "net.ipv6.conf."+name+".disable_ipv6=1")
	ns.MustRun(t, "ip", "link", "set", name, "mtu", fmt.Sprint(mtu), "up")
	return p, porttest.OpenPacketSocket(t, ns, name), ns
}

func TestConformance(t *testing.T) {
	for _, vnetHdr := range []bool{false, true} {
		t.Run(fmt.Sprintf("vnet_hdr=%v", vnetHdr), func(t *testing.T) {
			porttest.Run(t, func(t *testing.T) *porttest.Harness {
				p, host, _ := openTapWith(t, 1500, vnetHdr)
				return &porttest.Harness{Port: p, Receiver: p.Receiver(3), ID: 3, PeerSend: host.Send, PeerRecv: host.Recv}
			})
		})
	}
}

// The kernel cuts a tap read short without saying so; the port must still
// report a frame longer than its limit as oversize.
func TestOversizeFromHostIsReported(t *testing.T) {
	p, host, _ := openTap(t, 9000)
	v := frame.NewVector(8, p.MaxFrame())
	for _, size := range []int{p.MaxFrame(), 3000, 60} {
		if err := host.Send(porttest.Frame(size, 1)); err != nil {
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

// SetCarrier(false) shows the host NO-CARRIER on the tap, which stays up;
// true gives it the carrier back. A closed port refuses.
func TestSetCarrier(t *testing.T) {
	p, _, ns := openTap(t, 1500)
	carrier := func() string {
		return strings.TrimSpace(ns.MustRun(t, "cat", "/sys/class/net/"+p.Ifname()+"/carrier"))
	}
	if c := carrier(); c != "1" {
		t.Fatalf("carrier %s on a tap the switch holds", c)
	}
	if err := p.SetCarrier(false); err != nil {
		t.Fatal(err)
	}
	if c, show := carrier(), ns.MustRun(t, "ip", "link", "show", p.Ifname()); c != "0" ||
		!strings.Contains(show, "NO-CARRIER") || !strings.Contains(show, ",UP") {
		t.Fatalf("after SetCarrier(false): carrier %s, %s", c, show)
	}
	if err := p.SetCarrier(true); err != nil {
		t.Fatal(err)
	}
	if c, show := carrier(), ns.MustRun(t, "ip", "link", "show", p.Ifname()); c != "1" || strings.Contains(show, "NO-CARRIER") {
		t.Fatalf("after SetCarrier(true): carrier %s, %s", c, show)
	}
	p.Close()
	if err := p.SetCarrier(false); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("SetCarrier on a closed port: %v", err)
	}
}

// A tap deleted under the port: a write drops the whole batch at once
// (not frame by frame), the reader ends with the reason rather than
// parking or spinning, and the port says it is gone, once.
func TestDeletedTapIsReportedGone(t *testing.T) {
	p, _, ns := openTap(t, 1500)
	done := make(chan error, 1)
	go func() {
		v := frame.NewVector(8, p.MaxFrame())
		for {
			if _, err := p.Receiver(3).Receive(v); err != nil {
				done <- err
				return
			}
		}
	}()
	ns.MustRun(t, "ip", "link", "del", p.Ifname())
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) || !strings.Contains(err.Error(), "interface deleted") {
			t.Fatalf("the reader ended with %v, want the deletion and net.ErrClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the reader did not end when its tap was deleted")
	}
	n, err := p.Write([][]byte{porttest.Frame(60, 1), porttest.Frame(60, 2), porttest.Frame(60, 3)})
	if n != 0 || !errors.Is(err, fabric.ErrPeerGone) {
		t.Fatalf("Write = %d, %v; want 0 and ErrPeerGone", n, err)
	}
	select {
	case err := <-p.Gone():
		if !strings.Contains(err.Error(), "interface deleted") {
			t.Fatalf("gone because %v", err)
		}
	default:
		t.Fatal("the port did not say it is gone")
	}
	select {
	case err := <-p.Gone():
		t.Fatalf("said gone twice, again with %v", err)
	default:
	}
}

func TestBadInterface(t *testing.T) {
	if _, err := Open(Config{Options: Options{Ifname: "this-name-is-too-long"}}); err == nil {
		t.Fatal("accepted a name longer than IFNAMSIZ")
	}
	ns := nstest.New(t)
	err := ns.Do(func() error {
		_, err := Open(Config{Options: Options{Ifname: "lo"}})
		return err
	})
	if err == nil {
		t.Fatal("attached to lo as a tap")
	}
}

// tuntapIn reads a tap's kernel settings through netlink.
func tuntapIn(t *testing.T, ns *nstest.NS, name string) (*netlink.Tuntap, bool) {
	t.Helper()
	var tt *netlink.Tuntap
	err := ns.Do(func() error {
		l, err := netlink.LinkByName(name)
		if err != nil {
			return err
		}
		var ok bool
		if tt, ok = l.(*netlink.Tuntap); !ok {
			return fmt.Errorf("%s is a %s", name, l.Type())
		}
		return nil
	})
	var notFound netlink.LinkNotFoundError
	if errors.As(err, &notFound) {
		return nil, false
	}
	if err != nil {
		t.Fatal(err)
	}
	return tt, true
}

func TestCreatePersistOwnerUpMTU(t *testing.T) {
	ns := nstest.New(t)
	var p *Port
	open := func(cfg Config) error {
		return ns.Do(func() (err error) { p, err = Open(cfg); return err })
	}
	if err := open(Config{Options: Options{Ifname: "lab0"}}); err == nil || !strings.Contains(err.Error(), "add create=1") {
		t.Fatalf("a missing tap without create=1: %v", err)
	}
	if err := open(Config{Options: Options{Ifname: "lab0", Create: true, Persist: true, Owner: 1000, Up: true}, MTU: 9000}); err != nil {
		t.Fatal(err)
	}
	tt, ok := tuntapIn(t, ns, "lab0")
	if !ok || tt.Owner != 1000 || tt.NonPersist || tt.MTU != 9000 || tt.Flags&netlink.TUNTAP_NO_PI == 0 ||
		tt.Attrs().RawFlags&unix.IFF_UP == 0 {
		t.Fatalf("tap: %+v", tt)
	}
	p.Close()
	if _, ok := tuntapIn(t, ns, "lab0"); !ok {
		t.Fatal("a persistent tap went away with the port")
	}
	// A later start attaches to it, with or without create=1.
	for _, create := range []bool{false, true} {
		if err := open(Config{Options: Options{Ifname: "lab0", Create: create}}); err != nil {
			t.Fatalf("attach (create=%v): %v", create, err)
		}
		p.Close()
	}
	// Without persist=1 the tap lives as long as the port.
	if err := open(Config{Options: Options{Ifname: "lab1", Create: true}}); err != nil {
		t.Fatal(err)
	}
	if tt, ok := tuntapIn(t, ns, "lab1"); !ok || !tt.NonPersist {
		t.Fatalf("lab1: %+v", tt)
	}
	p.Close()
	porttest.Eventually(t, "lab1 removed", func() bool { _, ok := tuntapIn(t, ns, "lab1"); return !ok })
}

// A multi-queue tap has a reader per queue, and every frame the host sends
// arrives on one of them.
func TestMultiQueueReadsEveryQueue(t *testing.T) {
	ns := nstest.New(t)
	var p *Port
	if err := ns.Do(func() (err error) {
		p, err = Open(Config{Options: Options{Ifname: "mq0", Create: true, Queues: 4}, Common: portkind.Common{MaxFrame: 1518}})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if tt, ok := tuntapIn(t, ns, "mq0"); !ok || tt.Flags&netlink.TUNTAP_MULTI_QUEUE == 0 || tt.Queues != 4 {
		t.Fatalf("mq0: %+v", tt)
	}
	ns.MustRun(t, "sysctl", "-qw", "net.ipv6.conf.mq0.disable_ipv6=1")
	ns.MustRun(t, "ip", "link", "set", "mq0", "up")
	host := porttest.OpenPacketSocket(t, ns, "mq0")
	rs := p.Receivers(2)
	if len(rs) != 4 {
		t.Fatalf("%d receivers", len(rs))
	}
	got := make(chan int, 256)
	for _, r := range rs {
		go func() {
			v := frame.NewVector(8, 1518)
			for {
				n, err := r.Receive(v)
				if err != nil {
					return
				}
				for i := 0; i < n; i++ {
					if v.Ports[i] != 2 {
						t.Errorf("port %d", v.Ports[i])
					}
					got <- int(v.Frame(i)[11])
				}
			}
		}()
	}
	// Frames of many flows (source MACs), so the kernel's hash uses several queues.
	const flows = 64
	for i := range flows {
		f := porttest.Ether(frame.Broadcast, frame.MAC{0xfe, 0xfd, 0, 0, 1, byte(i)}, 60, byte(i))
		if err := host.Send(f); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[int]bool{}
	for len(seen) < flows {
		select {
		case b := <-got:
			seen[b] = true
		case <-time.After(3 * time.Second):
			t.Fatalf("%d of %d frames arrived", len(seen), flows)
		}
	}
	// A second port cannot attach to it with a different queue setting.
	if err := ns.Do(func() error { _, err := Open(Config{Options: Options{Ifname: "mq0", Queues: 1}}); return err }); err == nil {
		t.Fatal("attached to a multi-queue tap as a single queue")
	}
}

// With vnet_hdr=1 the host hands the tap whole TSO frames; the port cuts
// them into valid segments that reassemble to the payload, across batches.
// The host side here sends a 20000-byte TCP frame with a segmentation-
// offload header, as the host's TCP stack would.
func TestVnetHdrCutsTSOFrames(t *testing.T) {
	ns := nstest.New(t)
	var p *Port
	if err := ns.Do(func() (err error) {
		p, err = Open(Config{Options: Options{Ifname: "vn0", Create: true, VnetHdr: true, Up: true}, Common: portkind.Common{Depth: 8, MaxFrame: 1518}})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ns.MustRun(t, "sysctl", "-qw", "net.ipv6.conf.vn0.disable_ipv6=1")
	payload := make([]byte, 20000)
	for i := range payload {
		payload[i] = byte(i % 251)
	}
	porttest.SendTSO(t, ns, "vn0", payload, 1400)
	porttest.ReceiveTSO(t, p.Receiver(1), frame.NewVector(8, 1518), payload)
	// The other way, frames go out with an empty header and arrive intact.
	host := porttest.OpenPacketSocket(t, ns, "vn0")
	want := porttest.Frame(200, 9)
	if n, err := p.Write([][]byte{want}); n != 1 || err != nil {
		t.Fatalf("Write = %d, %v", n, err)
	}
	buf := make([]byte, 2048)
	n, err := host.Recv(buf, 2*time.Second)
	if err != nil || !bytes.Equal(buf[:n], want) {
		t.Fatalf("host got % x, %v", buf[:min(n, 20)], err)
	}
}
