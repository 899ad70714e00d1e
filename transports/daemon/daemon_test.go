package daemon

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/umlswitch/umlswitch/fabric"
	"github.com/umlswitch/umlswitch/frame"
	"github.com/umlswitch/umlswitch/internal/unixsock"
	"github.com/umlswitch/umlswitch/transports/portkind"
	"github.com/umlswitch/umlswitch/transports/porttest"
)

func quiet() *slog.Logger { return porttest.Quiet() }

func listen(t *testing.T, cfg Config) *Transport {
	t.Helper()
	if cfg.Path == "" {
		cfg.Path = filepath.Join(t.TempDir(), "ctl")
	}
	cfg.Logger = quiet()
	tr, err := Listen(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr
}

func dial(t *testing.T, ctl string, vde bool) *Client {
	t.Helper()
	cfg := ClientConfig{Ctl: ctl, ConnectBack: vde}
	if vde {
		cfg.LocalPath = filepath.Join(t.TempDir(), fmt.Sprintf(".%05d-%05d", os.Getpid(), time.Now().Nanosecond()%100000))
		cfg.Description = "test user=root pid=1"
	}
	c, err := Dial(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func TestConformance(t *testing.T) {
	for _, vde := range []bool{false, true} {
		name := map[bool]string{false: "UMLStyle", true: "VDEStyle"}[vde]
		t.Run(name, func(t *testing.T) {
			porttest.Run(t, func(t *testing.T) *porttest.Harness {
				tr := listen(t, Config{})
				reg := porttest.NewCapture(7)
				tr.Start(reg)
				c := dial(t, tr.Path(), vde)
				return &porttest.Harness{
					Port: <-reg.Ports, Receiver: <-reg.Receivers, ID: 7,
					PeerSend:         c.Send,
					PeerRecv:         c.Recv,
					Blocks:           true,
					EmptyAndOversize: true,
				}
			})
		})
	}
}

// testSwitch is a real switch with one daemon control socket.
type testSwitch struct {
	*porttest.Switch
	tr *Transport
}

func startSwitch(t *testing.T, swcfg fabric.Config, cfg Config) *testSwitch {
	t.Helper()
	sw := porttest.NewSwitch(t, swcfg)
	tr := listen(t, cfg)
	tr.Start(sw)
	sw.OnStop(func() { tr.Close() })
	return &testSwitch{Switch: sw, tr: tr}
}

// stats returns the counters of the port whose name contains nameHas.
func (s *testSwitch) stats(t *testing.T, nameHas string) fabric.PortStats {
	t.Helper()
	for _, st := range s.Stats() {
		if strings.Contains(st.Name, nameHas) {
			return st
		}
	}
	t.Fatalf("no port named like %q", nameHas)
	return fabric.PortStats{}
}

func mac(i int) frame.MAC { return frame.MAC{0xfe, 0xfd, 0x0a, 0, 0, byte(i)} }

func ether(dst, src frame.MAC, size int, tag byte) []byte { return porttest.Ether(dst, src, size, tag) }

func expectFrame(t *testing.T, c *Client, tag byte) {
	t.Helper()
	buf := make([]byte, 65536)
	n, err := c.Recv(buf, 2*time.Second)
	if err != nil {
		t.Fatalf("expected frame %d: %v", tag, err)
	}
	if n < 15 || buf[14] != tag {
		t.Fatalf("got frame of %d bytes tag %d, want tag %d", n, buf[14], tag)
	}
}

func expectNothing(t *testing.T, c *Client) {
	t.Helper()
	buf := make([]byte, 65536)
	if n, err := c.Recv(buf, 100*time.Millisecond); err == nil {
		t.Fatalf("unexpected frame of %d bytes (tag %d)", n, buf[14])
	}
}

// Four clients, three behaving like UML and one like libvdeplug, learn each
// other and exchange unicast that reaches only its destination.
func TestSwitchWithMixedClients(t *testing.T) {
	s := startSwitch(t, fabric.Config{}, Config{})
	clients := []*Client{dial(t, s.tr.Path(), false), dial(t, s.tr.Path(), false), dial(t, s.tr.Path(), false), dial(t, s.tr.Path(), true)}
	s.WaitPorts(t, 4)
	for i, c := range clients {
		if err := c.Send(ether(frame.Broadcast, mac(i), 60, byte(i))); err != nil {
			t.Fatal(err)
		}
		for j, o := range clients {
			if j != i {
				expectFrame(t, o, byte(i))
			}
		}
	}
	for i, c := range clients {
		j := (i + 1) % len(clients)
		if err := c.Send(ether(mac(j), mac(i), 100, byte(10+i))); err != nil {
			t.Fatal(err)
		}
		expectFrame(t, clients[j], byte(10+i))
	}
	for _, c := range clients {
		expectNothing(t, c)
	}
	if s.Table().Len() != 4 {
		t.Fatalf("learned %d addresses, want 4", s.Table().Len())
	}
	if a, r := s.tr.Counts(); a != 4 || r != 0 {
		t.Fatalf("accepted %d rejected %d", a, r)
	}
	// A client that leaves takes its port and its addresses with it.
	clients[3].Close()
	s.WaitPorts(t, 3)
	// The port leaves the switch's set just before its addresses are flushed.
	porttest.Eventually(t, "3 addresses after a client left", func() bool { return s.Table().Len() == 3 })
}

// With a 9000-byte MTU, jumbo frames cross the daemon protocol whole.
func TestJumboFrames(t *testing.T) {
	s := startSwitch(t, fabric.Config{}, Config{Common: portkind.Common{MaxFrame: frame.MaxFrameForMTU(9000)}})
	a, b := dial(t, s.tr.Path(), false), dial(t, s.tr.Path(), true)
	s.WaitPorts(t, 2)
	big := ether(frame.Broadcast, mac(1), 9018, 1)
	if err := a.Send(big); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 65536)
	n, err := b.Recv(buf, 2*time.Second)
	if err != nil || n != 9018 || buf[14] != 1 {
		t.Fatalf("got %d bytes, %v; want the whole 9018-byte frame", n, err)
	}
}

func TestHub(t *testing.T) {
	s := startSwitch(t, fabric.Config{Hub: true}, Config{})
	a, b, c := dial(t, s.tr.Path(), false), dial(t, s.tr.Path(), false), dial(t, s.tr.Path(), false)
	s.WaitPorts(t, 3)
	a.Send(ether(frame.Broadcast, mac(1), 60, 1))
	expectFrame(t, b, 1)
	expectFrame(t, c, 1)
	b.Send(ether(mac(1), mac(2), 60, 2)) // known unicast: a hub still floods it
	expectFrame(t, a, 2)
	expectFrame(t, c, 2)
}

// rawRequest connects, writes b, and returns the connection.
func rawRequest(t *testing.T, ctl string, b []byte) net.Conn {
	t.Helper()
	c, err := net.Dial("unix", ctl)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if len(b) > 0 {
		if _, err := c.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// expectClosed waits for the switch to close c without replying.
func expectClosed(t *testing.T, c net.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	buf := make([]byte, 200)
	n, err := c.Read(buf)
	if !errors.Is(err, io.EOF) && !errors.Is(err, unix.ECONNRESET) {
		t.Fatalf("read %d bytes, %v: want the switch to hang up", n, err)
	}
}

// Every kind of bad input over the real sockets is rejected or counted, the
// switch keeps serving the good clients, and nothing leaks.
func TestBadInputOverRealSockets(t *testing.T) {
	porttest.NoLeaks(t, func() {
		s := startSwitch(t, fabric.Config{TxHold: 20 * time.Millisecond}, Config{HandshakeTimeout: 300 * time.Millisecond})
		good1, good2 := dial(t, s.tr.Path(), false), dial(t, s.tr.Path(), true)
		s.WaitPorts(t, 2)
		ctl := s.tr.Path()
		a := unixsock.UniqueAbstract("bad-client", os.Getpid())

		t.Run("wrong magic", func(t *testing.T) {
			b := appendV3(nil, 0, &a, "")
			binary.LittleEndian.PutUint32(b, 0xdeadbeef)
			expectClosed(t, rawRequest(t, ctl, b))
		})
		t.Run("version 2", func(t *testing.T) {
			b := appendV3(nil, 0, &a, "")
			b[4] = 2
			expectClosed(t, rawRequest(t, ctl, b))
		})
		t.Run("short request then EOF", func(t *testing.T) {
			c := rawRequest(t, ctl, appendV3(nil, 0, &a, "")[:50])
			c.(*net.UnixConn).CloseWrite()
			expectClosed(t, c)
		})
		t.Run("short request then silence", func(t *testing.T) {
			expectClosed(t, rawRequest(t, ctl, appendV3(nil, 0, &a, "")[:50]))
		})
		t.Run("connect and say nothing", func(t *testing.T) {
			expectClosed(t, rawRequest(t, ctl, nil))
		})
		t.Run("garbage with magic", func(t *testing.T) {
			b := appendV3(nil, 0, &a, "")
			for i := 12; i < len(b); i++ {
				b[i] = byte(i * 7)
			}
			expectClosed(t, rawRequest(t, ctl, b))
		})
		t.Run("unreachable data socket", func(t *testing.T) {
			nobody := unixsock.UniqueAbstract("nobody-bound-this", os.Getpid())
			expectClosed(t, rawRequest(t, ctl, appendV3(nil, 0, &nobody, "")))
		})
		t.Run("an HTTP request without an API", func(t *testing.T) {
			expectClosed(t, rawRequest(t, ctl, []byte("GET /v1/ports HTTP/1.1\r\n\r\n")))
		})
		if _, rejected := s.tr.Counts(); rejected != 8 {
			t.Errorf("rejected %d handshakes, want 8", rejected)
		}

		bad := dial(t, ctl, false)
		s.WaitPorts(t, 3)
		badName := fmt.Sprintf("daemon#%d ", s.tr.seq.Load()) // the newest port is the bad client
		t.Run("empty, runt and oversize datagrams", func(t *testing.T) {
			for _, f := range [][]byte{{}, make([]byte, 13), ether(frame.Broadcast, mac(9), frame.MaxFrameForMTU(frame.DefaultMTU)+1, 9), ether(frame.Broadcast, mac(9), 9000, 9)} {
				if err := bad.Send(f); err != nil {
					t.Fatal(err)
				}
			}
			deadline := time.Now().Add(3 * time.Second)
			for {
				st := s.stats(t, badName)
				if st.Drops[fabric.DropEmpty] == 1 && st.Drops[fabric.DropRunt] == 1 && st.Drops[fabric.DropOversize] == 2 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("drops %v", st.Drops)
				}
				time.Sleep(5 * time.Millisecond)
			}
			expectNothing(t, good1)
			expectNothing(t, good2)
		})
		t.Run("good clients still served", func(t *testing.T) {
			good1.Send(ether(frame.Broadcast, mac(1), 60, 1))
			expectFrame(t, good2, 1)
			good2.Send(ether(mac(1), mac(2), 60, 2))
			expectFrame(t, good1, 2)
		})
		t.Run("client stops reading", func(t *testing.T) {
			// bad never reads: its queue fills, the switch drops for it after
			// the hold bound and keeps delivering to the others.
			for i := 0; i < 200; i++ {
				good1.Send(ether(frame.Broadcast, mac(1), 60, 3))
			}
			for i := 0; i < 200; i++ {
				expectFrame(t, good2, 3)
			}
			deadline := time.Now().Add(3 * time.Second)
			for s.stats(t, badName).Drops[fabric.DropTxFull] == 0 {
				if time.Now().After(deadline) {
					t.Fatal("no tx-full drops counted for the stuck client")
				}
				time.Sleep(5 * time.Millisecond)
			}
		})
		t.Run("client vanishes without closing its control socket", func(t *testing.T) {
			unix.Close(bad.Fd) // data socket gone, control still open: the peer is unreachable
			bad.Fd = -1
			good1.Send(ether(frame.Broadcast, mac(1), 60, 4))
			expectFrame(t, good2, 4)
			bad.Ctl.Close() // now it is gone for good
			s.WaitPorts(t, 2)
		})
		t.Run("client killed mid-handshake", func(t *testing.T) {
			c := rawRequest(t, ctl, appendV3(nil, 0, &a, "")[:100])
			c.Close()
			good1.Send(ether(frame.Broadcast, mac(1), 60, 5))
			expectFrame(t, good2, 5)
		})
		good1.Close()
		good2.Close()
		s.WaitPorts(t, 0)
		s.Stop()
	})
}

func TestSocketFiles(t *testing.T) {
	dir := t.TempDir()
	t.Run("stale socket is replaced", func(t *testing.T) {
		p := filepath.Join(dir, "stale.ctl")
		fd, _ := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM, 0)
		unix.Bind(fd, &unix.SockaddrUnix{Name: p})
		unix.Close(fd) // a socket file nobody listens on, as a killed switch leaves
		tr := listen(t, Config{Options: Options{Path: p}})
		tr.Close()
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Fatalf("socket file left after Close: %v", err)
		}
	})
	t.Run("live socket is an error", func(t *testing.T) {
		p := filepath.Join(dir, "live.ctl")
		listen(t, Config{Options: Options{Path: p}})
		_, err := Listen(Config{Options: Options{Path: p}, Common: portkind.Common{Logger: quiet()}})
		if err == nil || !strings.Contains(err.Error(), "another switch is already running") {
			t.Fatalf("second Listen: %v", err)
		}
	})
	t.Run("a file that is not a socket is an error", func(t *testing.T) {
		p := filepath.Join(dir, "plain")
		os.WriteFile(p, nil, 0o644)
		if _, err := Listen(Config{Options: Options{Path: p}, Common: portkind.Common{Logger: quiet()}}); err == nil || !strings.Contains(err.Error(), "not a socket") {
			t.Fatalf("Listen: %v", err)
		}
	})
	t.Run("mode, owner and group", func(t *testing.T) {
		p := filepath.Join(dir, "owned.ctl")
		tr := listen(t, Config{Options: Options{Path: p, Access: unixsock.Access{Mode: 0o660, UID: 1234, GID: 4321}}})
		fi, err := os.Stat(tr.Path())
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if fi.Mode().Perm() != 0o660 || st.Uid != 1234 || st.Gid != 4321 {
			t.Fatalf("socket %v owned by %d:%d", fi.Mode(), st.Uid, st.Gid)
		}
	})
	t.Run("directory gets the VDE layout", func(t *testing.T) {
		d := filepath.Join(dir, "vde") + "/"
		tr := listen(t, Config{Options: Options{Path: d, Access: unixsock.Access{Mode: 0o777}}})
		if tr.Path() != filepath.Join(dir, "vde", "ctl") {
			t.Fatalf("ctl at %s", tr.Path())
		}
		fi, err := os.Stat(tr.Path())
		if err != nil || fi.Mode().Perm() != 0o777 {
			t.Fatalf("ctl mode %v, %v", fi.Mode(), err)
		}
	})
}

// A version 0 client gets no reply and sends to the shared data path.
func TestCompatV0(t *testing.T) {
	data := filepath.Join(t.TempDir(), "uml.data")
	s := startSwitch(t, fabric.Config{}, Config{Options: Options{CompatV0: true, DataPath: data}})
	modern := dial(t, s.tr.Path(), false)

	fd, _ := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK, 0)
	defer unix.Close(fd)
	local := unixsock.UniqueAbstract("v0-client", os.Getpid())
	unixsock.Bind(fd, &local)
	req := binary.LittleEndian.AppendUint32(nil, 0)
	req = append(req, 0xfe, 0xfd, 0, 0, 0, 0)
	req = append(req, local[:]...)
	ctl := rawRequest(t, s.tr.Path(), req)
	s.WaitPorts(t, 2)

	dataAddr, _ := unixsock.FromPath(data)
	if _, err := unixsock.Sendto(fd, ether(frame.Broadcast, mac(5), 60, 5), 0, &dataAddr); err != nil {
		t.Fatal(err)
	}
	expectFrame(t, modern, 5)
	modern.Send(ether(mac(5), mac(6), 60, 6))
	v0 := &Client{Fd: fd}
	expectFrame(t, v0, 6)

	// A stranger writing to the shared socket is not forwarded.
	other, _ := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM, 0)
	defer unix.Close(other)
	unixsock.Sendto(other, ether(frame.Broadcast, mac(7), 60, 7), 0, &dataAddr)
	expectNothing(t, modern)
	if n := s.tr.Strangers(); n != 1 {
		t.Fatalf("strangers counted %d, want 1", n)
	}
	ctl.Close()
	s.WaitPorts(t, 1)
}

// Clients attaching and detaching as fast as they can, several at once,
// leave no goroutine, descriptor or port behind.
func TestChurnLeavesNothing(t *testing.T) {
	porttest.NoLeaks(t, func() {
		s := startSwitch(t, fabric.Config{}, Config{})
		var wg sync.WaitGroup
		for w := 0; w < 4; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 250; i++ {
					c, err := Dial(ClientConfig{Ctl: s.tr.Path()})
					if err != nil {
						t.Error(err)
						return
					}
					c.Send(ether(frame.Broadcast, mac(w+1), 60, 0))
					c.Close()
				}
			}()
		}
		wg.Wait()
		s.WaitPorts(t, 0)
		if accepted, rejected := s.tr.Counts(); accepted != 1000 || rejected != 0 {
			t.Errorf("accepted %d, rejected %d of 1000", accepted, rejected)
		}
		s.Stop()
	})
}
