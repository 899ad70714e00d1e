package sockport

import (
	"errors"
	"net"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/umlswitch/umlswitch/frame"
)

func pair(t *testing.T, typ int) (*Port, int) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, typ|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	p, err := New(fds[0], Config{Name: "test", Depth: 8, MaxFrame: 1518})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close(); unix.Close(fds[1]) })
	return p, fds[1]
}

// A port reads into a lent vector: it holds buffers while frames are in
// hand, gives them back once it parks, and marks every frame with its own
// port whatever the buffers last carried.
func TestReceiveLendsBuffers(t *testing.T) {
	p, peer := pair(t, unix.SOCK_DGRAM)
	r := p.Receiver(7)
	if !r.Lends {
		t.Fatal("a socket port's receiver does not lend")
	}
	v := frame.NewLentVector(r.Depth, r.MaxFrame)
	v.Take()
	v.Ports[0] = 99 // as another port would have left it
	v.Give()
	unix.Write(peer, make([]byte, 60))
	n, err := r.Receive(v)
	if err != nil || n != 1 || v.Sizes[0] != 60 || v.Ports[0] != 7 {
		t.Fatalf("n %d err %v size %d port %d", n, err, v.Sizes[0], v.Ports[0])
	}
	done := make(chan error)
	go func() { _, err := r.Receive(v); done <- err }() // nothing waiting: parks
	time.Sleep(50 * time.Millisecond)
	p.Close()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("receive after close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("close did not wake the reader")
	}
	if v.Bufs != nil {
		t.Fatal("a parked reader kept its buffers")
	}
}

func TestHangupScan(t *testing.T) {
	var ports []*Port
	var peers []int
	for i := 0; i < 4; i++ {
		p, peer := pair(t, unix.SOCK_SEQPACKET)
		ports, peers = append(ports, p), append(peers, peer)
	}
	var s HangupScan
	if n := s.Count(ports); n != 0 {
		t.Fatalf("%d hung up before any peer closed", n)
	}
	unix.Shutdown(peers[1], unix.SHUT_RDWR) // as a close would; the cleanup closes it
	unix.Shutdown(peers[3], unix.SHUT_RDWR)
	ports[2].Close()
	if n := s.Count(ports); n != 3 {
		t.Fatalf("%d hung up or closed, want 3", n)
	}
}
