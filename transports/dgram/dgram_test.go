package dgram

import (
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/umlswitch/umlswitch/fabric"
	"github.com/umlswitch/umlswitch/frame"
	"github.com/umlswitch/umlswitch/internal/pollfd"
	"github.com/umlswitch/umlswitch/internal/unixsock"
	"github.com/umlswitch/umlswitch/transports/portkind"
	"github.com/umlswitch/umlswitch/transports/porttest"
)

// qemu is -netdev dgram's end: a datagram socket bound at its local.path
// that sends to the switch's path.
type qemu struct {
	fd  int
	dst unixsock.Addr
}

func bindQEMU(t testing.TB, path, to string) *qemu {
	t.Helper()
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := unixsock.FromPath(path)
	if err := unixsock.Bind(fd, &a); err != nil {
		t.Fatal(err)
	}
	q := &qemu{fd: fd}
	q.dst, _ = unixsock.FromPath(to)
	t.Cleanup(q.close)
	return q
}

func (q *qemu) send(b []byte) error {
	_, err := unixsock.Sendto(q.fd, b, 0, &q.dst)
	return err
}

func (q *qemu) recv(b []byte, timeout time.Duration) (int, error) {
	return pollfd.ReadTimeout(q.fd, b, timeout)
}

func (q *qemu) close() {
	if q.fd >= 0 {
		unix.Close(q.fd)
		q.fd = -1
	}
}

func openPort(t testing.TB, path, peer string) *Port {
	t.Helper()
	p, err := Open(Config{Options: Options{Path: path, Peer: peer}, Common: portkind.Common{Logger: porttest.Quiet()}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func TestConformance(t *testing.T) {
	porttest.Run(t, func(t *testing.T) *porttest.Harness {
		dir := t.TempDir()
		sw, qp := filepath.Join(dir, "sw.sock"), filepath.Join(dir, "qemu.sock")
		q := bindQEMU(t, qp, sw) // QEMU first: the port connects at once
		p := openPort(t, sw, qp)
		return &porttest.Harness{Port: p, Receiver: p.Receiver(4), ID: 4,
			PeerSend: q.send, PeerRecv: q.recv, Blocks: true, EmptyAndOversize: true}
	})
}

// The switch may start before QEMU, and QEMU may restart: the port
// connects when there are frames to send and the peer is there.
func TestPeerLateAndRestarted(t *testing.T) {
	dir := t.TempDir()
	sw, qp := filepath.Join(dir, "sw.sock"), filepath.Join(dir, "qemu.sock")
	p := openPort(t, sw, qp)
	f := [][]byte{porttest.Frame(60, 1)}
	if n, err := p.Write(f); n != 0 || err == nil {
		t.Fatalf("Write with no peer = %d, %v", n, err)
	}
	v := frame.NewVector(8, p.MaxFrame())
	r := p.Receiver(1)
	buf := make([]byte, 2048)
	for round := range 2 {
		q := bindQEMU(t, qp, sw)
		if err := q.send(porttest.Frame(60, 2)); err != nil {
			t.Fatalf("round %d: QEMU's send: %v", round, err)
		}
		if n, err := r.Receive(v); n != 1 || err != nil || v.Sizes[0] != 60 {
			t.Fatalf("round %d: Receive = %d, %v", round, n, err)
		}
		time.Sleep(retryEvery)
		if n, err := p.Write(f); n != 1 || err != nil {
			t.Fatalf("round %d: Write = %d, %v", round, n, err)
		}
		if n, err := q.recv(buf, time.Second); n != 60 || err != nil {
			t.Fatalf("round %d: QEMU got %d, %v", round, n, err)
		}
		q.close()
		unix.Unlink(qp)
	}
	if _, err := p.Write(f); err == nil {
		t.Fatal("Write to a vanished peer succeeded")
	}
}

func TestThroughSwitch(t *testing.T) {
	porttest.NoLeaks(t, func() {
		s := porttest.NewSwitch(t, fabric.Config{})
		dir := t.TempDir()
		var qs []*qemu
		for i := range 2 {
			sw, qp := filepath.Join(dir, "sw"+string(rune('a'+i))), filepath.Join(dir, "q"+string(rune('a'+i)))
			qs = append(qs, bindQEMU(t, qp, sw))
			p := openPort(t, sw, qp)
			id, err := s.Attach(p)
			if err != nil {
				t.Fatal(err)
			}
			s.Serve(p.Receiver(id))
		}
		qs[0].send(porttest.Ether(frame.Broadcast, frame.MAC{0xfe, 0, 0, 0, 0, 1}, 60, 7))
		buf := make([]byte, 2048)
		if n, err := qs[1].recv(buf, 2*time.Second); n != 60 || err != nil || buf[14] != 7 {
			t.Fatalf("got %d, %v", n, err)
		}
		s.Stop()
		for _, q := range qs {
			q.close()
		}
	})
}
