package bess

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/umlswitch/umlswitch/fabric"
	"github.com/umlswitch/umlswitch/frame"
	"github.com/umlswitch/umlswitch/internal/accept"
	"github.com/umlswitch/umlswitch/internal/pollfd"
	"github.com/umlswitch/umlswitch/internal/unixsock"
	"github.com/umlswitch/umlswitch/transports/portkind"
	"github.com/umlswitch/umlswitch/transports/porttest"
)

// client is what UML's bess transport does: a SOCK_SEQPACKET socket bound to
// src and connected to the switch's path.
type client struct{ fd int }

func dial(t testing.TB, path string) *client {
	t.Helper()
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	src, _ := unixsock.FromPath(filepath.Join(t.TempDir(), "uml.sock"))
	if err := unixsock.Bind(fd, &src); err != nil {
		t.Fatal(err)
	}
	dst, _ := unixsock.FromPath(path)
	if err := unixsock.Connect(fd, &dst); err != nil {
		t.Fatal(err)
	}
	c := &client{fd: fd}
	t.Cleanup(c.close)
	return c
}

func (c *client) send(b []byte) error {
	_, err := unix.Write(c.fd, b)
	return err
}

func (c *client) recv(b []byte, timeout time.Duration) (int, error) {
	return pollfd.ReadTimeout(c.fd, b, timeout)
}

func (c *client) close() {
	if c.fd >= 0 {
		unix.Close(c.fd)
		c.fd = -1
	}
}

func listen(t *testing.T, cfg Config) *Transport {
	t.Helper()
	if cfg.Path == "" {
		cfg.Path = filepath.Join(t.TempDir(), "sw.bess")
	}
	cfg.Logger = porttest.Quiet()
	tr, err := Listen(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr
}

func TestConformance(t *testing.T) {
	porttest.Run(t, func(t *testing.T) *porttest.Harness {
		tr := listen(t, Config{})
		reg := porttest.NewCapture(4)
		tr.Start(reg)
		c := dial(t, tr.Path())
		return &porttest.Harness{Port: <-reg.Ports, Receiver: <-reg.Receivers, ID: 4,
			PeerSend: c.send, PeerRecv: c.recv, Blocks: true, EmptyAndOversize: true}
	})
}

// testSwitch is a real switch with one BESS listener.
type testSwitch struct {
	*porttest.Switch
	tr *Transport
}

func startSwitch(t *testing.T) *testSwitch {
	t.Helper()
	sw := porttest.NewSwitch(t, fabric.Config{TxHold: 20 * time.Millisecond})
	tr := listen(t, Config{})
	tr.Start(sw)
	sw.OnStop(func() { tr.Close() })
	return &testSwitch{Switch: sw, tr: tr}
}

func ether(dst, src frame.MAC, size int, tag byte) []byte { return porttest.Ether(dst, src, size, tag) }

func mac(i int) frame.MAC { return frame.MAC{0xfe, 0xfd, 0x0b, 0, 0, byte(i)} }

func expect(t *testing.T, c *client, tag byte) {
	t.Helper()
	buf := make([]byte, 65536)
	n, err := c.recv(buf, 2*time.Second)
	if err != nil || n < 15 || buf[14] != tag {
		t.Fatalf("want frame %d: got %d bytes, %v", tag, n, err)
	}
}

// Several UMLs share one listener, each its own port, and reach each other.
func TestManyClientsShareOneListener(t *testing.T) {
	s := startSwitch(t)
	var cs []*client
	for i := 0; i < 4; i++ {
		cs = append(cs, dial(t, s.tr.Path()))
	}
	s.WaitPorts(t, 4)
	for i, c := range cs {
		c.send(ether(frame.Broadcast, mac(i), 60, byte(i)))
		for j, o := range cs {
			if j != i {
				expect(t, o, byte(i))
			}
		}
	}
	cs[0].send(ether(mac(3), mac(0), 200, 9))
	expect(t, cs[3], 9)
	for _, st := range s.Stats() {
		if !strings.Contains(st.Name, "uml.sock") {
			t.Errorf("port %q is not named after the UML's src path", st.Name)
		}
	}
}

// A UML that closes is detached after the frames it sent just before are
// delivered; one that connects and vanishes goes too; bad messages are
// counted; nothing leaks.
func TestClientsComeAndGo(t *testing.T) {
	porttest.NoLeaks(t, func() {
		s := startSwitch(t)
		a, b := dial(t, s.tr.Path()), dial(t, s.tr.Path())
		s.WaitPorts(t, 2)
		b.send(ether(frame.Broadcast, mac(2), 60, 0))
		expect(t, a, 0)

		t.Run("bad messages are counted", func(t *testing.T) {
			for _, f := range [][]byte{{}, make([]byte, 10), ether(frame.Broadcast, mac(2), frame.MaxFrameForMTU(frame.DefaultMTU)+1, 1)} {
				if err := b.send(f); err != nil {
					t.Fatal(err)
				}
			}
			deadline := time.Now().Add(2 * time.Second)
			for {
				var st fabric.PortStats
				for _, x := range s.Stats() {
					if x.RxFrames > 0 {
						st = x
					}
				}
				if st.Drops[fabric.DropEmpty] == 1 && st.Drops[fabric.DropRunt] == 1 && st.Drops[fabric.DropOversize] == 1 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("drops %v", st.Drops)
				}
				time.Sleep(5 * time.Millisecond)
			}
		})
		t.Run("frames sent right before closing arrive", func(t *testing.T) {
			for i := 0; i < 5; i++ {
				b.send(ether(frame.Broadcast, mac(2), 60, byte(10+i)))
			}
			b.close()
			for i := 0; i < 5; i++ {
				expect(t, a, byte(10+i))
			}
			s.WaitPorts(t, 1)
		})
		t.Run("connect and vanish", func(t *testing.T) {
			c := dial(t, s.tr.Path())
			s.WaitPorts(t, 2)
			c.close()
			s.WaitPorts(t, 1)
		})
		t.Run("peer closes with frames unread", func(t *testing.T) {
			c := dial(t, s.tr.Path())
			s.WaitPorts(t, 2)
			a.send(ether(frame.Broadcast, mac(1), 60, 20)) // queued for c, never read
			time.Sleep(20 * time.Millisecond)
			c.close()
			s.WaitPorts(t, 1)
		})
		a.close()
		s.WaitPorts(t, 0)
		s.Stop()
	})
}

func TestSocketFiles(t *testing.T) {
	p := filepath.Join(t.TempDir(), "sw.bess")
	tr := listen(t, Config{Options: Options{Path: p}})
	if _, err := Listen(Config{Options: Options{Path: p}, Common: portkind.Common{Logger: porttest.Quiet()}}); err == nil || !strings.Contains(err.Error(), "another switch is already running") {
		t.Fatalf("second listener: %v", err)
	}
	tr.Close()
	if _, err := os.Stat(p); !os.IsNotExist(err) {
		t.Fatalf("socket file left after Close: %v", err)
	}
	// A stale seqpacket socket file is replaced.
	fd, _ := unix.Socket(unix.AF_UNIX, unix.SOCK_SEQPACKET, 0)
	unix.Bind(fd, &unix.SockaddrUnix{Name: p})
	unix.Close(fd)
	listen(t, Config{Options: Options{Path: p}})
	if _, err := Listen(Config{Options: Options{Path: fmt.Sprintf("/%0108d", 0)}, Common: portkind.Common{Logger: porttest.Quiet()}}); err == nil {
		t.Fatal("accepted a path too long for a unix socket")
	}
}

// heldRegistry attaches ports but runs their receivers only when told to,
// so ports of clients that closed stay attached until then.
type heldRegistry struct {
	mu        sync.Mutex
	attached  int
	most      int
	receivers []fabric.Receiver
}

func (r *heldRegistry) Attach(p fabric.Port) (frame.PortID, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.attached++
	r.most = max(r.most, r.attached)
	return 1, nil
}

func (r *heldRegistry) Detach(p fabric.Port) {
	r.mu.Lock()
	r.attached--
	r.mu.Unlock()
	p.Close()
}

func (r *heldRegistry) Serve(rc fabric.Receiver) {
	r.mu.Lock()
	r.receivers = append(r.receivers, rc)
	r.mu.Unlock()
}

// run starts every receiver served so far; each reads until its port goes.
func (r *heldRegistry) run() {
	r.mu.Lock()
	rs := r.receivers
	r.receivers = nil
	r.mu.Unlock()
	for _, rc := range rs {
		go func() {
			v := frame.NewLentVector(rc.Depth, rc.MaxFrame)
			for {
				if _, err := rc.Receive(v); err != nil {
					return
				}
			}
		}()
	}
}

func (r *heldRegistry) counts() (attached, most int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.attached, r.most
}

// Clients that connect, send and close faster than their ports' readers
// run do not pile up ports: past accept.MaxHungUp the listener stops accepting
// until the readers have detached them, then takes the rest.
func TestClosedClientsDoNotPileUp(t *testing.T) {
	porttest.NoLeaks(t, func() {
		tr := listen(t, Config{})
		reg := &heldRegistry{}
		const clients = 3 * accept.MaxHungUp
		for i := 0; i < clients; i++ { // all in the backlog, closed, before accepting starts
			fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				t.Fatal(err)
			}
			if err := unix.Connect(fd, &unix.SockaddrUnix{Name: tr.Path()}); err != nil {
				t.Fatal(err)
			}
			unix.Write(fd, ether(frame.Broadcast, mac(i), 60, 0))
			unix.Close(fd)
		}
		tr.Start(reg)
		time.Sleep(200 * time.Millisecond) // the listener takes what it will
		if attached, _ := reg.counts(); attached != accept.MaxHungUp+1 {
			t.Fatalf("%d ports of closed clients attached, want the bound %d and one more", attached, accept.MaxHungUp)
		}
		deadline := time.Now().Add(5 * time.Second)
		for tr.accepted() < clients {
			reg.run()
			if time.Now().After(deadline) {
				t.Fatalf("%d of %d clients accepted", tr.accepted(), clients)
			}
			time.Sleep(5 * time.Millisecond)
		}
		porttest.Eventually(t, "every port detached", func() bool { reg.run(); a, _ := reg.counts(); return a == 0 })
		if _, most := reg.counts(); most > accept.MaxHungUp+1 {
			t.Fatalf("%d ports attached at once", most)
		}
		tr.Close()
	})
}

func (t *Transport) accepted() int { return int(t.acc.Accepted()) }
