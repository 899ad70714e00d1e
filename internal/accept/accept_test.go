package accept

import (
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/umlswitch/umlswitch/fabric"
	"github.com/umlswitch/umlswitch/internal/limit"
	"github.com/umlswitch/umlswitch/internal/peercred/peertest"
	"github.com/umlswitch/umlswitch/internal/pollfd"
	"github.com/umlswitch/umlswitch/internal/sockport"
	"github.com/umlswitch/umlswitch/transports/porttest"
)

// serve runs a listener of sockport ports on the listening socket fd.
func serve(t *testing.T, fd int, lim *limit.Limiter) (*Listener[*sockport.Port], *porttest.Switch, *porttest.LogBuffer) {
	t.Helper()
	ln, err := pollfd.New(fd, "test listener")
	if err != nil {
		t.Fatal(err)
	}
	logs := &porttest.LogBuffer{}
	var scan sockport.HangupScan
	l := New(ln, Config[*sockport.Port]{Kind: "test", Addr: "test", Clients: lim,
		Logger: slog.New(slog.NewTextHandler(logs, nil)),
		NewPort: func(fd int, name string, gone func()) (*sockport.Port, error) {
			return sockport.New(fd, sockport.Config{Name: name, Depth: 8, MaxFrame: 1518, OnEOF: gone})
		},
		HungUp: func(ports []*sockport.Port) int { return scan.Count(ports) },
	})
	sw := porttest.NewSwitch(t, fabric.Config{})
	l.Start(sw)
	sw.OnStop(func() { l.Close() })
	return l, sw, logs
}

func listening(t *testing.T, domain, typ int, sa unix.Sockaddr) int {
	t.Helper()
	fd, err := unix.Socket(domain, typ|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Bind(fd, sa); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(fd, 64); err != nil {
		t.Fatal(err)
	}
	return fd
}

// hungUp reports whether the listener closed c at once (rather than
// keeping it as a port).
func hungUp(c net.Conn) bool {
	c.SetReadDeadline(time.Now().Add(time.Second))
	_, err := c.Read(make([]byte, 16))
	return err != nil && !os.IsTimeout(err)
}

// A unix listener bounds each peer's connections by its uid: past the
// bound one is closed at once (one log line a second), other users still
// connect, a peer that leaves gives its slot back, and Close gives back
// every slot of a limiter other listeners may share.
func TestClientsBoundByUID(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("connecting as another user needs root")
	}
	dir := peertest.PublicDir(t, false)
	path := filepath.Join(dir, "s")
	fd := listening(t, unix.AF_UNIX, unix.SOCK_SEQPACKET, &unix.SockaddrUnix{Name: path})
	os.Chmod(path, 0o777)
	lim := limit.New("clients", 0, 2)
	_, sw, logs := serve(t, fd, lim)
	dialAs := func(uid uint32) net.Conn {
		c, err := peertest.DialAs(t, uid, uid, nil, "unixpacket", path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	a, _ := dialAs(peertest.Nobody), dialAs(peertest.Nobody)
	sw.WaitPorts(t, 2)
	for i := 0; i < 20; i++ {
		if !hungUp(dialAs(peertest.Nobody)) {
			t.Fatalf("connection %d of nobody over a bound of 2 was kept", i+3)
		}
	}
	if n := strings.Count(logs.String(), `msg="client refused"`); n != 1 {
		t.Fatalf("%d refusal lines for 20 refusals in well under a second, want 1:\n%s", n, logs)
	}
	if !strings.Contains(logs.String(), "uid=65534") || !strings.Contains(logs.String(), "2 clients for uid 65534") {
		t.Fatalf("the refusal does not name the uid and the bound:\n%s", logs)
	}
	dialAs(1000)
	c, err := net.Dial("unixpacket", path) // root
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sw.WaitPorts(t, 4)
	a.Close()
	sw.WaitPorts(t, 3)
	porttest.Eventually(t, "nobody's slot given back", func() bool { return lim.InUse() == 3 })
	if hungUp(dialAs(peertest.Nobody)) {
		t.Fatal("nobody's slot was not given back when its peer left")
	}
	sw.Stop()
	if n := lim.InUse(); n != 0 {
		t.Fatalf("%d slots held after Close", n)
	}
}

// TCP peers have no credentials: they share one bucket.
func TestTCPPeersShareABucket(t *testing.T) {
	fd := listening(t, unix.AF_INET, unix.SOCK_STREAM, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}})
	sa, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	addr := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: sa.(*unix.SockaddrInet4).Port}
	lim := limit.New("clients", 0, 2)
	_, sw, _ := serve(t, fd, lim)
	for i := 0; i < 3; i++ {
		c, err := net.DialTCP("tcp", nil, addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if i < 2 {
			sw.WaitPorts(t, i+1)
		} else if !hungUp(c) {
			t.Fatal("a third TCP peer was kept over a bound of 2")
		}
	}
	if lim.Refused() != 1 {
		t.Fatalf("refused %d, want 1", lim.Refused())
	}
}

func TestBackoff(t *testing.T) {
	var b Backoff
	var got []time.Duration
	for i := 0; i < 10; i++ {
		got = append(got, b.next())
	}
	if got[0] != minBackoff || got[1] != 2*minBackoff || got[9] != maxBackoff {
		t.Fatalf("delays %v", got)
	}
	b.Reset()
	if d := b.next(); d != minBackoff {
		t.Fatalf("after Reset: %v", d)
	}
}
