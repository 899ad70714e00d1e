package daemon

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/umlswitch/umlswitch/fabric"
	"github.com/umlswitch/umlswitch/frame"
	"github.com/umlswitch/umlswitch/internal/limit"
	"github.com/umlswitch/umlswitch/internal/peercred"
	"github.com/umlswitch/umlswitch/internal/peercred/peertest"
	"github.com/umlswitch/umlswitch/internal/pollfd"
	"github.com/umlswitch/umlswitch/internal/unixsock"
	"github.com/umlswitch/umlswitch/transports/porttest"
)

// The switch usually runs as root with a control socket every user may
// connect to: a client must get a port and no more. These tests act as
// nobody (peertest: a thread with another uid) against the switch.

const nobody = peertest.Nobody

var nobodyCred = peercred.Cred{UID: nobody, GID: nobody, Groups: []uint32{nobody}}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("acting as another user needs root")
	}
}

// startLogged is startSwitch with the transport's log kept in the result.
func startLogged(t *testing.T, cfg Config) (*testSwitch, *porttest.LogBuffer) {
	t.Helper()
	logs := &porttest.LogBuffer{}
	cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if cfg.Path == "" {
		cfg.Path = filepath.Join(t.TempDir(), "ctl")
	}
	sw := porttest.NewSwitch(t, fabric.Config{})
	tr, err := Listen(cfg)
	if err != nil {
		t.Fatal(err)
	}
	tr.Start(sw)
	sw.OnStop(func() { tr.Close() })
	t.Cleanup(func() { tr.Close() })
	return &testSwitch{Switch: sw, tr: tr}, logs
}

// dgramAt binds a datagram socket at a (a path: made by root, mode 0600)
// and returns it.
func dgramAt(t *testing.T, a unixsock.Addr) int {
	t.Helper()
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unixsock.Bind(fd, &a); err != nil {
		t.Fatal(err)
	}
	if !a.IsAbstract() {
		if err := os.Chmod(a.FilesystemPath(), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return fd
}

func pathAddr(t *testing.T, p string) unixsock.Addr {
	t.Helper()
	a, err := unixsock.FromPath(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// receivesNothing fails if a datagram reaches fd within a short while.
func receivesNothing(t *testing.T, fd int, what string) {
	t.Helper()
	buf := make([]byte, 2048)
	if n, err := pollfd.ReadTimeout(fd, buf, 200*time.Millisecond); err == nil {
		t.Fatalf("%s received a frame of %d bytes", what, n)
	}
}

// requestAs makes a control connection as uid (0: this process, root) and
// sends a version 3 request naming addr as the client's data socket.
func requestAs(t *testing.T, uid uint32, ctl string, addr *unixsock.Addr, port int) net.Conn {
	t.Helper()
	var c net.Conn
	var err error
	if uid == 0 {
		c, err = net.Dial("unix", ctl)
	} else {
		c, err = peertest.DialAs(t, uid, uid, nil, "unix", ctl)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if addr != nil {
		if _, err := c.Write(appendV3(nil, reqNewControl|uint32(port)<<8, addr, "")); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// expectReply waits for the switch's reply: the client got a port.
func expectReply(t *testing.T, c net.Conn) unixsock.Addr {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	var reply unixsock.Addr
	if n, err := c.Read(reply[:]); n != unixsock.AddrLen || err != nil {
		t.Fatalf("reply of %d bytes, %v: want the switch's data address", n, err)
	}
	return reply
}

// A client's data address is connected with the client's rights: nobody
// naming a root-only socket (another port's, another program's) is
// refused and nothing reaches that socket, while nobody's own socket and
// root naming the same root-only socket still work.
func TestDataAddressNeedsTheClientsRight(t *testing.T) {
	needRoot(t)
	dir, open := peertest.PublicDir(t, false), peertest.PublicDir(t, true)
	victimAddr := pathAddr(t, filepath.Join(dir, "victim"))
	victim := dgramAt(t, victimAddr)
	s, _ := startLogged(t, Config{Options: Options{Path: filepath.Join(dir, "ctl"), Access: unixsock.Access{Mode: 0o777}}})
	witness := dial(t, s.tr.Path(), false)
	s.WaitPorts(t, 1)

	t.Run("the connect is the client's", func(t *testing.T) {
		fd, err := dataSocket(&victimAddr, nobodyCred)
		if !errors.Is(err, unix.EACCES) {
			unix.Close(fd)
			t.Fatalf("nobody's data socket to a root 0600 socket: %v, want EACCES", err)
		}
		fd, err = dataSocket(&victimAddr, peercred.Self())
		if err != nil {
			t.Fatalf("root's data socket to a root socket: %v", err)
		}
		unix.Close(fd)
	})
	t.Run("nobody naming a root-only socket", func(t *testing.T) {
		expectClosed(t, requestAs(t, nobody, s.tr.Path(), &victimAddr, 0))
		witness.Send(ether(frame.Broadcast, mac(1), 60, 1))
		receivesNothing(t, victim, "the root-only socket")
		s.WaitPorts(t, 1)
	})
	t.Run("nobody naming its own socket", func(t *testing.T) {
		ownAddr := pathAddr(t, filepath.Join(open, "nobody"))
		own := boundAs(t, nobody, ownAddr)
		expectReply(t, requestAs(t, nobody, s.tr.Path(), &ownAddr, 0))
		s.WaitPorts(t, 2)
		witness.Send(ether(frame.Broadcast, mac(1), 60, 2))
		expectFrame(t, &Client{Fd: own}, 2)
	})
	t.Run("root naming the root-only socket", func(t *testing.T) {
		c := requestAs(t, 0, s.tr.Path(), &victimAddr, 0)
		expectReply(t, c)
		witness.Send(ether(frame.Broadcast, mac(1), 60, 3))
		expectFrame(t, &Client{Fd: victim}, 3)
		c.Close()
	})
}

// A client naming one of the switch's own datagram sockets (a dgram
// port's, the -compat-v0 data socket) is refused: its frames would come
// back into the switch.
func TestOwnSocketsAreNoDataAddress(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "uml.data")
	s, logs := startLogged(t, Config{Options: Options{CompatV0: true, DataPath: data}})
	witness := dial(t, s.tr.Path(), false)
	s.WaitPorts(t, 1)
	t.Run("the v0 data socket", func(t *testing.T) {
		a := pathAddr(t, data)
		expectClosed(t, requestAs(t, 0, s.tr.Path(), &a, 0))
		s.WaitPorts(t, 1)
		// The first rejection: not left out of the log as a repeat.
		if !strings.Contains(logs.String(), data+" is one of the switch's own sockets") {
			t.Fatalf("the v0 data socket was not refused as the switch's own:\n%s", logs)
		}
	})
	for _, a := range []unixsock.Addr{pathAddr(t, filepath.Join(dir, "dgram-port")), unixsock.UniqueAbstract("own-test", os.Getpid())} {
		t.Run(a.String(), func(t *testing.T) {
			fd := dgramAt(t, a)
			bound, err := unixsock.Getsockname(fd)
			if err != nil {
				t.Fatal(err)
			}
			unixsock.MarkOwn(bound)
			defer unixsock.ForgetOwn(bound)
			expectClosed(t, requestAs(t, 0, s.tr.Path(), &a, 0))
			witness.Send(ether(frame.Broadcast, mac(1), 60, 1))
			receivesNothing(t, fd, "the switch's own socket")
			s.WaitPorts(t, 1)
		})
	}
	if _, rejected := s.tr.Counts(); rejected != 3 {
		t.Fatalf("rejected %d clients, want 3", rejected)
	}
}

// A switch that is not root cannot connect as its client: it connects a
// filesystem data address only if the socket is the client's own, and
// never one of a client whose uid the kernel did not give.
func TestNotRootConnectsOnlyTheClientsOwnSocket(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "s")
	a := pathAddr(t, sock)
	dgramAt(t, a)
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	other := uint32(os.Geteuid()) + 1
	if err := connectOwned(fd, &a, other); err == nil || !strings.Contains(err.Error(), "belongs to uid") {
		t.Fatalf("another user's client reached the switch user's socket: %v", err)
	}
	plain := filepath.Join(dir, "plain")
	os.WriteFile(plain, nil, 0o600)
	if err := connectOwned(fd, &unixsock.Addr{}, 0); err == nil {
		t.Fatal("connected to an empty path")
	}
	if p := pathAddr(t, plain); connectOwned(fd, &p, uint32(os.Geteuid())) == nil {
		t.Fatal("connected to a file that is not a socket")
	}
	if err := connectAs(fd, &a, peercred.Unknown); err == nil {
		t.Fatal("a client without credentials got a filesystem data address")
	}
	// The client's own socket is connected, through the file that was checked.
	if err := connectOwned(fd, &a, uint32(os.Geteuid())); err != nil {
		t.Fatal(err)
	}
	if peer, err := unixsock.Getpeername(fd); err != nil || peer.FilesystemPath() != sock {
		t.Fatalf("connected to %q (%v), want %s", peer.String(), err, sock)
	}
	// Abstract names have no owner: any client may name one.
	ab := unixsock.UniqueAbstract("not-root-test", os.Getpid())
	dgramAt(t, ab)
	fd2, _ := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	defer unix.Close(fd2)
	if err := connectAs(fd2, &ab, peercred.Unknown); err != nil {
		t.Fatal(err)
	}
}

// A local user sending to the names the switch's data sockets will have,
// or have just been given, while clients attach, gets no frame into their
// ports: the names cannot be guessed, and a socket is connected (taking
// datagrams from its client only) before it has a name at all.
func TestNoInjectionDuringSetUp(t *testing.T) {
	s := startSwitch(t, fabric.Config{}, Config{})
	rx := dial(t, s.tr.Path(), false)
	s.WaitPorts(t, 1)
	attacker := frame.MAC{0xfe, 0xfd, 0xba, 0xd0, 0, 1}
	inject := ether(frame.Broadcast, attacker, 60, 66)
	stop := make(chan struct{})
	var sent, tries atomic.Uint64
	var wg sync.WaitGroup
	send := func(fd int, a *unixsock.Addr) {
		tries.Add(1)
		if _, err := unixsock.Sendto(fd, inject, 0, a); err == nil {
			sent.Add(1)
		}
	}
	// Guessing: the names were "umlswitch-PID-SEQ", SEQ shared with the
	// test's own clients; a fresh name shows where SEQ stands.
	wg.Add(1)
	go func() {
		defer wg.Done()
		fd, _ := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK, 0)
		defer unix.Close(fd)
		for {
			select {
			case <-stop:
				return
			default:
			}
			probe := unixsock.UniqueAbstract("x", 0)
			name := probe.String()
			seq, err := strconv.ParseUint(name[strings.LastIndexByte(name, '-')+1:], 10, 64)
			if err != nil {
				seq = 0 // not a sequence: nothing to guess from
			}
			for round := 0; round < 20; round++ {
				for k := uint64(1); k <= 4; k++ {
					a := unixsock.Abstract(fmt.Sprintf("umlswitch-%d-%d", os.Getpid(), seq+k))
					send(fd, &a)
				}
			}
		}
	}()
	// Watching: every name the switch has bound, as any user sees them in
	// /proc/net/unix.
	wg.Add(1)
	go func() {
		defer wg.Done()
		fd, _ := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK, 0)
		defer unix.Close(fd)
		for {
			select {
			case <-stop:
				return
			default:
			}
			for _, a := range switchNames(os.Getpid()) {
				send(fd, &a)
			}
		}
	}()
	// The clients bind their data sockets deep in directories, as a client
	// may: the switch's connect walks the path, which gave a stranger more
	// time to send to a data socket bound first. They attach until a send
	// gets through, or 2000 have, or for 3 seconds; each stays until the
	// next is attached, so that what was queued on its port is read.
	deep := t.TempDir()
	for len(deep) < unixsock.PathLen-20 {
		deep = filepath.Join(deep, "d")
	}
	if err := os.MkdirAll(deep, 0o755); err != nil {
		t.Fatal(err)
	}
	var last *Client
	deadline := time.Now().Add(3 * time.Second)
	for i := 0; i < 2000 && sent.Load() == 0 && time.Now().Before(deadline); i++ {
		c, err := Dial(ClientConfig{Ctl: s.tr.Path(), LocalPath: filepath.Join(deep, strconv.Itoa(i%2))})
		if err != nil {
			t.Fatal(err)
		}
		if last != nil {
			last.Close()
		}
		last = c
	}
	close(stop)
	wg.Wait()
	defer last.Close()
	buf := make([]byte, 2048)
	for {
		n, err := rx.Recv(buf, 200*time.Millisecond)
		if err != nil {
			break
		}
		if n >= 12 && frame.SrcMAC(buf[:n]) == attacker {
			t.Fatalf("a frame sent to a data socket in set-up reached another client (%d of %d sends went through)", sent.Load(), tries.Load())
		}
	}
	for _, e := range s.Table().Entries(time.Now().UnixNano()) {
		if e.MAC == attacker {
			t.Fatal("the switch learned the injecting address")
		}
	}
	if n := sent.Load(); n > 0 {
		t.Fatalf("a data socket took %d of %d datagrams from a stranger", n, tries.Load())
	}
	t.Logf("%d sends to set-up names, none went through", tries.Load())
}

// switchNames lists the abstract names of the data sockets of the switch
// with process id pid, read from /proc/net/unix (which shows NULs as '@').
func switchNames(pid int) []unixsock.Addr {
	b, err := os.ReadFile("/proc/net/unix")
	if err != nil {
		return nil
	}
	prefix := fmt.Sprintf("@umlswitch-%d-", pid)
	var out []unixsock.Addr
	for _, line := range strings.Split(string(b), "\n") {
		if i := strings.Index(line, prefix); i >= 0 {
			out = append(out, unixsock.Abstract(strings.TrimRight(line[i+1:], "@")))
		}
	}
	return out
}

// Config.Clients bounds each user's clients, those in handshake included:
// past the bound a connection is closed at once, with one log line a
// second however many there are, while other users and root still attach;
// a client that leaves (or is handed to the API) gives its slot back.
func TestClientsBoundPerUID(t *testing.T) {
	needRoot(t)
	dir := peertest.PublicDir(t, false)
	lim := limit.New("clients", 0, 3)
	handedOff := make(chan struct{}, 1)
	s, logs := startLogged(t, Config{Options: Options{Path: filepath.Join(dir, "ctl"), Access: unixsock.Access{Mode: 0o777}}, Clients: lim, Handoff: func(c net.Conn) { c.Close(); handedOff <- struct{}{} }})
	ctl := s.tr.Path()
	top := t // what the subtests open stays open until the test ends
	data := func() *unixsock.Addr {
		a := unixsock.UniqueAbstract("limit-test", os.Getpid())
		dgramAt(t, a)
		return &a
	}
	var held []net.Conn
	for i := 0; i < 3; i++ {
		c := requestAs(t, nobody, ctl, data(), 0)
		expectReply(t, c)
		held = append(held, c)
	}
	s.WaitPorts(t, 3)

	refused := func(t *testing.T) {
		t.Helper()
		start := time.Now()
		expectClosed(t, requestAs(top, nobody, ctl, nil, 0))
		if d := time.Since(start); d > time.Second {
			t.Fatalf("closed after %v: the handshake timed out, the bound did not refuse it", d)
		}
	}
	t.Run("the fourth is refused", refused)
	t.Run("another user and root still attach", func(t *testing.T) {
		expectReply(t, requestAs(top, 1000, ctl, data(), 0))
		dial(top, ctl, false)
		s.WaitPorts(t, 5)
	})
	t.Run("a client that leaves gives its slot back", func(t *testing.T) {
		held[0].Close()
		s.WaitPorts(t, 4)
		expectReply(t, requestAs(top, nobody, ctl, data(), 0))
		s.WaitPorts(t, 5)
	})
	t.Run("connections in handshake count", func(t *testing.T) {
		held[1].Close()
		s.WaitPorts(t, 4)
		requestAs(top, nobody, ctl, nil, 0) // connected, says nothing
		refused(t)
	})
	t.Run("refusals are logged once a second", func(t *testing.T) {
		time.Sleep(1100 * time.Millisecond) // a period without a refusal line
		before := logs.Count("client refused")
		for i := 0; i < 30; i++ {
			refused(t)
		}
		if n := logs.Count("client refused") - before; n < 1 || n > 2 {
			t.Fatalf("%d refusal lines for 30 refusals, want 1 or 2:\n%s", n, logs)
		}
		if !strings.Contains(logs.String(), "uid=65534") || !strings.Contains(logs.String(), "3 clients for uid 65534") {
			t.Fatalf("the refusal does not name the uid and the bound:\n%s", logs)
		}
	})
	t.Run("a connection handed to the API gives its slot back", func(t *testing.T) {
		c := requestAs(t, 1000, ctl, nil, 0)
		c.Write([]byte("GET /v1/ports HTTP/1.1\r\n\r\n"))
		<-handedOff
		// Held: nobody's three (one in handshake), uid 1000's and root's.
		porttest.Eventually(t, "the handed-off slot given back", func() bool { return lim.InUse() == 5 })
	})
	s.Stop()
	porttest.Eventually(t, "every slot given back", func() bool { return lim.InUse() == 0 })
}

// A VDE port number one user's client holds is refused to another user's
// with a message naming the holder's uid, so that an administrator sees
// who squats it; the number is free again once that client leaves.
func TestPortNumberHeldByAnotherUser(t *testing.T) {
	needRoot(t)
	dir := peertest.PublicDir(t, false)
	s, logs := startLogged(t, Config{Options: Options{Path: filepath.Join(dir, "ctl"), Access: unixsock.Access{Mode: 0o777}}})
	a := unixsock.UniqueAbstract("number-test", os.Getpid())
	dgramAt(t, a)
	squat := requestAs(t, nobody, s.tr.Path(), &a, 3)
	expectReply(t, squat)
	expectClosed(t, requestAs(t, 0, s.tr.Path(), &a, 3))
	if !strings.Contains(logs.String(), "port 3 is held by uid 65534") {
		t.Fatalf("the refusal does not name the holder:\n%s", logs)
	}
	squat.Close()
	s.WaitPorts(t, 0)
	expectReply(t, requestAs(t, 0, s.tr.Path(), &a, 3))
}

// allowed is the uid and gid allow_uid= names in the tests: no one else
// is let in but root.
const allowed = 4242

// boundAs binds a datagram socket at a as uid, for a client's data
// socket.
func boundAs(t *testing.T, uid uint32, a unixsock.Addr) int {
	t.Helper()
	var fd int
	err := peertest.Do(t, uid, uid, func() (err error) {
		fd, err = unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
		if err == nil {
			err = unixsock.Bind(fd, &a)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}

// With allow_uid=, a client of another uid is closed before its request
// is read, never becomes a port, is counted each time and logged once;
// the uid named and root attach.
func TestAllowUIDOnTheControlSocket(t *testing.T) {
	needRoot(t)
	dir := peertest.PublicDir(t, false)
	var notAllowed atomic.Uint64
	s, logs := startLogged(t, Config{Options: Options{Path: filepath.Join(dir, "ctl"),
		Access: unixsock.Access{Mode: 0o777, Allow: unixsock.Allow{UIDs: []uint32{allowed}}}}, NotAllowed: &notAllowed})
	for i := range 2 {
		a := unixsock.UniqueAbstract("nobody", i)
		boundAs(t, nobody, a)
		c, err := peertest.DialAs(t, nobody, nobody, nil, "unix", s.tr.Path())
		if err != nil {
			t.Fatal(err)
		}
		c.Write(appendV3(nil, reqNewControl, &a, "")) // may fail: the switch may have closed it already
		expectClosed(t, c)
		c.Close()
	}
	s.WaitPorts(t, 0)
	if n := notAllowed.Load(); n != 2 {
		t.Errorf("NotAllowed = %d after two refusals, want 2", n)
	}
	if n := strings.Count(logs.String(), "client not allowed"); n != 1 {
		t.Errorf("%d log lines for nobody's refusals, want 1:\n%s", n, logs)
	}

	a := unixsock.UniqueAbstract("allowed", 1)
	boundAs(t, allowed, a)
	expectReply(t, requestAs(t, allowed, s.tr.Path(), &a, 0))
	s.WaitPorts(t, 1)
	r := unixsock.UniqueAbstract("root", 1)
	boundAs(t, 0, r)
	expectReply(t, requestAs(t, 0, s.tr.Path(), &r, 0))
	s.WaitPorts(t, 2)
	if n := notAllowed.Load(); n != 2 {
		t.Errorf("NotAllowed = %d after the allowed clients, want 2", n)
	}
}
