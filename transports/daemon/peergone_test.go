package daemon

import (
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/umlswitch/umlswitch/fabric"
	"github.com/umlswitch/umlswitch/frame"
	"github.com/umlswitch/umlswitch/internal/unixsock"
)

// A client whose data socket closes while its control connection stays is
// gone: the first frame the switch sends it finds the peer gone, and the
// kernel then disconnects the switch's data socket, which would take
// datagrams from anyone who reads its name in /proc/net/unix. The port
// refuses them from that moment and is detached.
func TestDataSocketGoneDetaches(t *testing.T) {
	sw := startSwitch(t, fabric.Config{}, Config{})
	a := dial(t, sw.tr.Path(), false)
	b := dial(t, sw.tr.Path(), false)
	sw.WaitPorts(t, 2)
	if err := a.Send(ether(frame.Broadcast, mac(1), 64, 1)); err != nil {
		t.Fatal(err)
	}
	expectFrame(t, b, 1)
	if err := b.Send(ether(frame.Broadcast, mac(2), 64, 2)); err != nil {
		t.Fatal(err)
	}
	expectFrame(t, a, 2)
	dataOfB := b.Remote // the switch's data socket of B
	unix.Close(b.Fd)    // B's data socket goes; its control connection stays
	b.Fd = -1
	// A frame for B finds its peer gone.
	if err := a.Send(ether(mac(2), mac(1), 64, 3)); err != nil {
		t.Fatal(err)
	}
	stranger, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(stranger)
	deadline := time.Now().Add(5 * time.Second)
	for sw.tr.clientCount() > 1 {
		if time.Now().After(deadline) {
			t.Fatalf("B's port still attached with its data socket gone (%d clients)", sw.tr.clientCount())
		}
		// Meanwhile nobody may write into B's port: a broadcast through
		// it would reach A.
		unixsock.Sendto(stranger, ether(frame.Broadcast, mac(9), 64, 9), 0, &dataOfB)
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := unixsock.Sendto(stranger, ether(frame.Broadcast, mac(9), 64, 9), 0, &dataOfB); err == nil {
		t.Fatal("the detached port's socket still takes datagrams")
	}
	expectNothing(t, a)
}

func (t *Transport) clientCount() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.ports)
}
