package stream

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/umlswitch/umlswitch/fabric"
	"github.com/umlswitch/umlswitch/frame"
	"github.com/umlswitch/umlswitch/internal/unixsock"
	"github.com/umlswitch/umlswitch/transports/portkind"
	"github.com/umlswitch/umlswitch/transports/porttest"
)

// qemu is what QEMU's stream backend does at the far end: frames behind
// their length on a non-blocking stream socket. Its sends and receives
// allocate nothing.
type qemu struct {
	fd   int
	wbuf []byte
	rx   *Framer
}

func newQEMU(t testing.TB, fd int) *qemu {
	q := &qemu{fd: fd, wbuf: make([]byte, prefixLen+frame.MaxFrameLimit+1), rx: NewFramer(frame.MaxFrameLimit)}
	t.Cleanup(q.close)
	return q
}

// dialUnix connects to a listener at path, as -netdev stream,server=off does.
func dialUnix(t testing.TB, path string) *qemu {
	t.Helper()
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := unixsock.FromPath(path)
	if err := unixsock.Connect(fd, &a); err != nil {
		t.Fatal(err)
	}
	return newQEMU(t, fd)
}

func dialTCP(t testing.TB, addr string) *qemu {
	t.Helper()
	ap := netip.MustParseAddrPort(addr)
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 64<<10) // so that the port fills
	if err := unix.Connect(fd, &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}); err != nil {
		t.Fatal(err)
	}
	unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	unix.SetNonblock(fd, true)
	return newQEMU(t, fd)
}

// writeRaw writes b whole, waiting while the socket is full.
func (q *qemu) writeRaw(b []byte) error {
	for len(b) > 0 {
		n, err := unix.Write(q.fd, b)
		if err == unix.EAGAIN {
			fds := [1]unix.PollFd{{Fd: int32(q.fd), Events: unix.POLLOUT}}
			unix.Poll(fds[:], 1000)
			continue
		}
		if err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

func (q *qemu) send(f []byte) error {
	binary.BigEndian.PutUint32(q.wbuf, uint32(len(f)))
	n := copy(q.wbuf[prefixLen:], f)
	return q.writeRaw(q.wbuf[:prefixLen+n])
}

// recv reads one frame the port sent.
func (q *qemu) recv(b []byte, timeout time.Duration) (int, error) {
	deadline := time.Now().Add(timeout)
	for {
		if fr, size, ok := q.rx.Next(); ok {
			if fr == nil && size != 0 {
				return 0, fmt.Errorf("bad length %d on the stream", size)
			}
			return copy(b, fr), nil
		}
		n, err := unix.Read(q.fd, q.rx.Space())
		switch {
		case err == unix.EAGAIN:
			left := time.Until(deadline)
			if left <= 0 {
				return 0, os.ErrDeadlineExceeded
			}
			fds := [1]unix.PollFd{{Fd: int32(q.fd), Events: unix.POLLIN}}
			unix.Poll(fds[:], int(left/time.Millisecond)+1)
		case err != nil:
			return 0, err
		case n == 0:
			return 0, errors.New("end of stream")
		default:
			q.rx.Fill(n)
		}
	}
}

func (q *qemu) close() {
	if q.fd >= 0 {
		unix.Close(q.fd)
		q.fd = -1
	}
}

func open(t testing.TB, cfg Config) Transport {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = porttest.Quiet()
	}
	tr, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr
}

func unixPath(t testing.TB) string { return filepath.Join(t.TempDir(), "q.sock") }

func TestConformance(t *testing.T) {
	for _, tcp := range []bool{false, true} {
		t.Run(map[bool]string{false: "unix", true: "tcp"}[tcp], func(t *testing.T) {
			porttest.Run(t, func(t *testing.T) *porttest.Harness {
				cfg := Config{Options: Options{Path: unixPath(t)}}
				if tcp {
					cfg = Config{Options: Options{Host: "127.0.0.1"}}
				}
				tr := open(t, cfg)
				reg := porttest.NewCapture(4)
				tr.Start(reg)
				var q *qemu
				if tcp {
					q = dialTCP(t, tr.(*Listener).Addr())
				} else {
					q = dialUnix(t, tr.Path())
				}
				return &porttest.Harness{Port: <-reg.Ports, Receiver: <-reg.Receivers, ID: 4,
					PeerSend: q.send, PeerRecv: q.recv, Blocks: true}
			})
		})
	}
}

// portPair is a port over one end of a socket pair and QEMU at the other.
func portPair(t *testing.T, maxFrame int, onEOF func()) (*Port, *qemu) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewPort(fds[0], PortConfig{Name: "test", Common: portkind.Common{Depth: 16, MaxFrame: maxFrame, Logger: porttest.Quiet()}, OnEOF: onEOF})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p, newQEMU(t, fds[1])
}

// A peer that stops reading: Write reports ErrWouldBlock and never cuts a
// frame; once the peer reads again every frame reported sent arrives
// whole, in order, the last one too, with no further Write.
func TestFullPeerGetsNoTornFrames(t *testing.T) {
	p, q := portPair(t, 1518, nil)
	unix.SetsockoptInt(q.fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 4096)
	var sent [][]byte
	blocked := 0
	for i := 0; blocked < 3 && i < 100000; i++ {
		var batch [][]byte
		for j := range 1 + i%7 {
			batch = append(batch, porttest.Frame(60+(i*131+j*17)%1459, byte(i+j)))
		}
		n, err := p.Write(batch)
		sent = append(sent, batch[:n]...)
		switch {
		case errors.Is(err, fabric.ErrWouldBlock):
			blocked++
			if p.WaitWritable(20 * time.Millisecond) {
				t.Log("room again before the peer read")
			}
		case err != nil:
			t.Fatal(err)
		}
	}
	if blocked == 0 {
		t.Fatal("the port never filled")
	}
	buf := make([]byte, 2048)
	for i, want := range sent {
		n, err := q.recv(buf, 2*time.Second)
		if err != nil {
			t.Fatalf("frame %d of %d: %v", i, len(sent), err)
		}
		if !bytes.Equal(buf[:n], want) {
			t.Fatalf("frame %d: %d bytes, want %d, or other bytes", i, n, len(want))
		}
	}
	if n, err := q.recv(buf, 50*time.Millisecond); err == nil {
		t.Fatalf("a frame of %d bytes that was never reported sent", n)
	}
}

// receiveN reads n frames (or entries) from the port.
func receiveN(t *testing.T, p *Port, n int) (sizes []int, frames [][]byte, err error) {
	t.Helper()
	v := frame.NewVector(16, p.MaxFrame())
	r := p.Receiver(1)
	for len(sizes) < n {
		m, err := r.Receive(v)
		if err != nil {
			return sizes, frames, err
		}
		for i := range m {
			sizes = append(sizes, v.Sizes[i])
			if v.Sizes[i] > 0 {
				frames = append(frames, bytes.Clone(v.Frame(i)))
			}
		}
	}
	return sizes, frames, nil
}

func TestReceiveBadLengthsAndEndOfStream(t *testing.T) {
	a, b := porttest.Frame(60, 1), porttest.Frame(1000, 2)
	t.Run("split writes, zero length, then a length over the largest", func(t *testing.T) {
		eofs := 0
		p, q := portPair(t, 1518, func() { eofs++ })
		s := bytes.Join([][]byte{record(a), record(nil), record(b), {0, 0, 0x10, 0}, record(a)}, nil)
		for _, cut := range []int{2, 5, 70, 100} { // inside a prefix, inside frames
			q.writeRaw(s[:cut])
			s = s[cut:]
			time.Sleep(2 * time.Millisecond)
		}
		q.writeRaw(s)
		sizes, frames, err := receiveN(t, p, 4)
		if err != nil {
			t.Fatal(err)
		}
		if want := []int{60, 0, 1000, fabric.Rejected(fabric.DropOversize)}; fmt.Sprint(sizes) != fmt.Sprint(want) {
			t.Fatalf("sizes %v, want %v", sizes, want)
		}
		if !bytes.Equal(frames[0], a) || !bytes.Equal(frames[1], b) {
			t.Fatal("frames differ")
		}
		if _, _, err := receiveN(t, p, 1); err == nil || eofs != 1 {
			t.Fatalf("after a bad length: %v, %d calls of OnEOF; want the end", err, eofs)
		}
	})
	t.Run("end of stream inside a frame", func(t *testing.T) {
		eofs := 0
		p, q := portPair(t, 1518, func() { eofs++ })
		q.writeRaw(append(record(a), record(b)[:500]...))
		q.close()
		sizes, _, err := receiveN(t, p, 2)
		if len(sizes) != 1 || sizes[0] != 60 || err == nil || eofs != 1 {
			t.Fatalf("sizes %v, err %v, %d calls of OnEOF", sizes, err, eofs)
		}
	})
}

func mac(i int) frame.MAC { return frame.MAC{0xfe, 0xfd, 0x0c, 0, 0, byte(i)} }

func expect(t *testing.T, q *qemu, tag byte) {
	t.Helper()
	buf := make([]byte, 65536)
	n, err := q.recv(buf, 2*time.Second)
	if err != nil || n < 15 || buf[14] != tag {
		t.Fatalf("want frame %d: got %d bytes, %v", tag, n, err)
	}
}

// Through a real switch: QEMUs come and go on one listener; an empty frame
// is counted and skipped, a bad length is counted and drops the
// connection; nothing leaks.
func TestListenerThroughSwitch(t *testing.T) {
	porttest.NoLeaks(t, func() {
		var log porttest.LogBuffer
		sw := porttest.NewSwitch(t, fabric.Config{TxHold: 20 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(&log, nil))})
		tr := open(t, Config{Options: Options{Path: unixPath(t)}})
		tr.Start(sw)
		sw.OnStop(func() { tr.Close() })
		a, b := dialUnix(t, tr.Path()), dialUnix(t, tr.Path())
		sw.WaitPorts(t, 2)
		a.send(porttest.Ether(frame.Broadcast, mac(1), 60, 1))
		expect(t, b, 1)
		b.send(porttest.Ether(mac(1), mac(2), 60, 2))
		expect(t, a, 2)

		a.send(nil)
		a.send(porttest.Ether(mac(2), mac(1), 1000, 3))
		expect(t, b, 3)
		porttest.Eventually(t, "empty frame counted", func() bool {
			for _, st := range sw.Stats() {
				if st.Drops[fabric.DropEmpty] == 1 {
					return true
				}
			}
			return false
		})
		a.writeRaw([]byte{0, 1, 0, 0}) // 65536: over the largest frame
		sw.WaitPorts(t, 1)
		a.close()
		porttest.Eventually(t, "oversize drop in the detach line", func() bool { return strings.Contains(log.String(), "oversize=1") })
		c := dialUnix(t, tr.Path())
		sw.WaitPorts(t, 2)
		c.send(porttest.Ether(frame.Broadcast, mac(3), 60, 4))
		expect(t, b, 4)
		c.close()
		b.close()
		sw.WaitPorts(t, 0)
		sw.Stop()
	})
}

// connect=1: the switch connects to a QEMU that listens, and connects
// again when it goes away and comes back.
func TestConnectReconnects(t *testing.T) {
	porttest.NoLeaks(t, func() {
		sw := porttest.NewSwitch(t, fabric.Config{})
		path := unixPath(t)
		tr := open(t, Config{Options: Options{Path: path, Connect: true}, MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond})
		tr.Start(sw) // nobody listens yet: it keeps trying
		sw.OnStop(func() { tr.Close() })
		other := dialOther(t, sw)
		for round := range 3 {
			ln, err := unixsock.Listen(path, unixsock.NoOwner)
			if err != nil {
				t.Fatal(err)
			}
			c, err := ln.AcceptUnix()
			if err != nil {
				t.Fatal(err)
			}
			f, _ := c.File()
			c.Close()
			q := newQEMU(t, int(f.Fd()))
			unix.SetNonblock(q.fd, true)
			sw.WaitPorts(t, 2)
			q.send(porttest.Ether(frame.Broadcast, mac(10), 60, byte(round)))
			expect(t, other, byte(round))
			q.close()
			f.Close()
			ln.Close()
			sw.WaitPorts(t, 1)
		}
		other.close()
		sw.Stop()
	})
}

// dialOther is a second port for a switch: a listener's QEMU.
func dialOther(t *testing.T, sw *porttest.Switch) *qemu {
	tr := open(t, Config{Options: Options{Path: filepath.Join(t.TempDir(), "other.sock")}})
	tr.Start(sw)
	sw.OnStop(func() { tr.Close() })
	q := dialUnix(t, tr.Path())
	sw.WaitPorts(t, 1)
	return q
}
