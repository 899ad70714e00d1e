package xsk

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf/asm"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/umlswitch/umlswitch/internal/nstest"
	"github.com/umlswitch/umlswitch/internal/packetsock"
	"github.com/umlswitch/umlswitch/internal/pollfd"
)

// env is a namespace with a veth pair: "port", where the socket and the
// program go, and "peer", whose packet socket plays the wire.
type env struct {
	ns      *nstest.NS
	ifindex int // of "port"
	peer    int // packet socket on "peer"
}

// newEnv makes the pair with the given MTU (0: 1500) and queue count
// (0: 1) on both ends.
func newEnv(t testing.TB, mtu, queues int) *env {
	t.Helper()
	if mtu == 0 {
		mtu = 1500
	}
	if queues == 0 {
		queues = 1
	}
	ns := nstest.New(t)
	q := []string{"numtxqueues", itoa(queues), "numrxqueues", itoa(queues)}
	args := append([]string{"link", "add", "port", "mtu", itoa(mtu)}, q...)
	args = append(args, "type", "veth", "peer", "name", "peer", "mtu", itoa(mtu))
	ns.MustRun(t, "ip", append(args, q...)...)
	for _, dev := range []string{"port", "peer"} {
		ns.MustRun(t, "sysctl", "-qw", "net.ipv6.conf."+dev+".disable_ipv6=1")
		ns.MustRun(t, "ip", "link", "set", dev, "up")
	}
	ns.WaitUp(t, "port", "peer")
	e := &env{ns: ns}
	err := ns.Do(func() error {
		ifi, err := net.InterfaceByName("port")
		if err != nil {
			return err
		}
		e.ifindex = ifi.Index
		e.peer, err = packetsock.Open("peer")
		if err != nil {
			return err
		}
		// Room for every frame a test sends before it reads them.
		return unix.SetsockoptInt(e.peer, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 64<<20)
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(e.peer) })
	return e
}

func itoa(n int) string { return strconv.Itoa(n) }

func (e *env) attach(t testing.TB, filter asm.Instructions) *Program {
	t.Helper()
	var p *Program
	if err := e.ns.Do(func() (err error) { p, err = Attach(e.ifindex, filter); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func (e *env) open(t testing.TB, cfg Config) *Socket {
	t.Helper()
	cfg.Ifindex = e.ifindex
	var s *Socket
	if err := e.ns.Do(func() (err error) { s, err = Open(cfg); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// socket attaches a program without a filter and registers one socket
// for queue 0.
func (e *env) socket(t testing.TB, cfg Config) (*Program, *Socket) {
	t.Helper()
	p := e.attach(t, nil)
	s := e.open(t, cfg)
	if err := p.Register(cfg.Queue, s); err != nil {
		t.Fatal(err)
	}
	return p, s
}

// testFrame is a broadcast frame of size bytes, EtherType etype, whose
// payload is derived from id (its first four bytes), so a cut or a mix-up
// shows.
func testFrame(id uint32, etype uint16, size int) []byte {
	f := make([]byte, size)
	copy(f, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe, 0xfd, 0, 0, 0, 1})
	binary.BigEndian.PutUint16(f[12:], etype)
	binary.BigEndian.PutUint32(f[14:], id)
	for i := 18; i < size; i++ {
		f[i] = byte(id) + byte(i)
	}
	return f
}

func (e *env) send(t testing.TB, f []byte) {
	t.Helper()
	for {
		_, err := unix.Write(e.peer, f)
		if err == unix.EAGAIN || err == unix.ENOBUFS {
			time.Sleep(time.Millisecond)
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		return
	}
}

// receive reads frames until want arrived or a quiet timeout passed.
func receive(t testing.TB, s *Socket, want int, timeout time.Duration) [][]byte {
	t.Helper()
	bufs := make([][]byte, 16)
	for i := range bufs {
		bufs[i] = make([]byte, 4096)
	}
	sizes := make([]int, len(bufs))
	var got [][]byte
	for len(got) < want {
		if n := s.Receive(bufs, 0, sizes); n > 0 {
			for i := 0; i < n; i++ {
				got = append(got, bytes.Clone(bufs[i][:sizes[i]]))
			}
			continue
		}
		if err := s.Wait(timeout); err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				break
			}
			t.Fatal(err)
		}
	}
	return got
}

// xdpAttached reports the program id on "port", 0 for none.
func (e *env) xdpAttached(t testing.TB) uint32 {
	t.Helper()
	var id uint32
	if err := e.ns.Do(func() error {
		l, err := netlink.LinkByName("port")
		if err == nil && l.Attrs().Xdp != nil && l.Attrs().Xdp.Attached {
			id = l.Attrs().Xdp.ProgId
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return id
}

// inModes runs test with the program attached in driver mode, then in
// generic mode.
func inModes(t *testing.T, test func(t *testing.T)) {
	saved := attachModes
	defer func() { attachModes = saved }()
	for _, m := range saved {
		attachModes = saved[:0:0]
		attachModes = append(attachModes, m)
		t.Run(m.name, test)
	}
}

// Frames sent by the peer arrive whole and in order, the shortest and the
// longest the MTU allows (tagged too: XDP sees the tag in the frame), into
// buffers at an offset.
func TestReceiveWhole(t *testing.T) { inModes(t, testReceiveWhole) }

func testReceiveWhole(t *testing.T) {
	e := newEnv(t, 0, 0)
	p, s := e.socket(t, Config{})
	if p.Mode() != attachModes[0].name {
		t.Fatalf("attached in %s mode, not %s", p.Mode(), attachModes[0].name)
	}
	var want [][]byte
	for i, size := range []int{60, 61, 64, 100, 1000, 1513, 1514, 60, 1514} {
		want = append(want, testFrame(uint32(i), 0x88b5, size))
	}
	tagged := testFrame(99, unix.ETH_P_8021Q, 1518) // 1500 bytes behind a tag
	binary.BigEndian.PutUint16(tagged[14:], 10)
	binary.BigEndian.PutUint16(tagged[16:], 0x88b5)
	want = append(want, tagged)
	for _, f := range want {
		e.send(t, f)
	}
	const off = 10
	bufs := [][]byte{make([]byte, off+1600), make([]byte, off+1600), make([]byte, off+1600)}
	sizes := make([]int, len(bufs))
	var got [][]byte
	for len(got) < len(want) {
		n := s.Receive(bufs, off, sizes)
		for i := 0; i < n; i++ {
			got = append(got, bytes.Clone(bufs[i][off:off+sizes[i]]))
		}
		if n == 0 {
			if err := s.Wait(5 * time.Second); err != nil {
				t.Fatalf("%d of %d frames: %v", len(got), len(want), err)
			}
		}
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("frame %d: got %d bytes % x..., want %d bytes % x...", i, len(got[i]), got[i][:min(20, len(got[i]))], len(want[i]), want[i][:20])
		}
	}
	if more := receive(t, s, 1, 100*time.Millisecond); len(more) != 0 {
		t.Fatalf("%d frames more than sent", len(more))
	}
	// A buffer shorter than the frame gets its start and the real size.
	e.send(t, testFrame(7, 0x88b5, 200))
	if err := s.Wait(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	short := [][]byte{make([]byte, 50)}
	if n := s.Receive(short, 0, sizes); n != 1 || sizes[0] != 200 || !bytes.Equal(short[0], testFrame(7, 0x88b5, 200)[:50]) {
		t.Fatalf("short buffer: n=%d size=%d", n, sizes[0])
	}
}

// startPeerReader reads the peer's socket until stop, collecting frames.
func (e *env) startPeerReader(t testing.TB) (stop func() [][]byte) {
	done := make(chan struct{})
	out := make(chan [][]byte, 1)
	go func() {
		var got [][]byte
		buf := make([]byte, 4096)
		for {
			n, err := pollfd.ReadTimeout(e.peer, buf, 20*time.Millisecond)
			if err == nil {
				got = append(got, bytes.Clone(buf[:n]))
				continue
			}
			select {
			case <-done:
				out <- got
				return
			default:
			}
		}
	}()
	return func() [][]byte { close(done); return <-out }
}

// transmitAll gives every frame to Transmit, waiting for room when it
// takes fewer.
func transmitAll(t testing.TB, s *Socket, frames [][]byte) {
	t.Helper()
	for sent := 0; sent < len(frames); {
		n, err := s.Transmit(frames[sent:min(len(frames), sent+64)])
		if err != nil {
			t.Fatal(err)
		}
		sent += n
		if n == 0 && !s.WaitWritable(5*time.Second) {
			t.Fatalf("no room to transmit for 5s after %d frames", sent)
		}
	}
}

// Many times more frames than the UMEM holds go out whole and in order,
// and every transmit frame comes back through the completion ring.
func TestTransmitReclaimsEveryFrame(t *testing.T) {
	for _, frames := range []int{4, 64} {
		e := newEnv(t, 0, 0)
		s := e.open(t, Config{Frames: frames})
		var want [][]byte
		for i := 0; i < 3000; i++ {
			want = append(want, testFrame(uint32(i), 0x88b5, 60+i%1455))
		}
		stop := e.startPeerReader(t)
		transmitAll(t, s, want)
		waitFor(t, "every transmit frame back", func() bool { return s.freeTx() == frames/2 })
		got := stop()
		if len(got) != len(want) {
			t.Fatalf("%d frames: the peer got %d of %d", frames, len(got), len(want))
		}
		for i := range want {
			if !bytes.Equal(got[i], want[i]) {
				t.Fatalf("%d frames: frame %d differs: %d bytes, want %d", frames, i, len(got[i]), len(want[i]))
			}
		}
		if st, err := s.Stats(); err != nil || st.Tx_invalid_descs != 0 || s.bad.Load() != 0 {
			t.Fatalf("stats %+v, %v; %d bad descriptors", st, err, s.bad.Load())
		}
	}
}

// Until a socket is registered for its queue, a frame goes on to the
// kernel's stack (a packet socket on "port" sees it); after, the socket
// takes it and the stack sees nothing.
func TestUnregisteredQueueGoesToTheStack(t *testing.T) {
	e := newEnv(t, 0, 0)
	p := e.attach(t, nil)
	s := e.open(t, Config{Frames: 8})
	var host int
	if err := e.ns.Do(func() (err error) { host, err = packetsock.Open("port"); return err }); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(host)
	buf := make([]byte, 2048)
	e.send(t, testFrame(1, 0x88b5, 60))
	if n, err := pollfd.ReadTimeout(host, buf, 5*time.Second); err != nil || binary.BigEndian.Uint32(buf[14:n]) != 1 {
		t.Fatalf("the stack did not get the frame: %v", err)
	}
	if err := p.Register(0, s); err != nil {
		t.Fatal(err)
	}
	e.send(t, testFrame(2, 0x88b5, 60))
	if got := receive(t, s, 1, 5*time.Second); len(got) != 1 || binary.BigEndian.Uint32(got[0][14:]) != 2 {
		t.Fatalf("the socket got %d frames", len(got))
	}
	if _, err := pollfd.ReadTimeout(host, buf, 50*time.Millisecond); err == nil {
		t.Fatal("the stack got a frame the socket took")
	}
	// Closing the socket takes it out of the map: frames go to the stack again.
	s.Close()
	e.send(t, testFrame(3, 0x88b5, 60))
	if n, err := pollfd.ReadTimeout(host, buf, 5*time.Second); err != nil || binary.BigEndian.Uint32(buf[14:n]) != 3 {
		t.Fatalf("the stack did not get the frame after Close: %v", err)
	}
}

// An interface without native XDP gets the program in generic mode.
func TestGenericModeWhereNoDriverMode(t *testing.T) {
	e := newEnv(t, 0, 0)
	e.ns.MustRun(t, "ip", "link", "add", "br0", "type", "bridge")
	err := e.ns.Do(func() error {
		ifi, err := net.InterfaceByName("br0")
		if err != nil {
			return err
		}
		p, err := Attach(ifi.Index, nil)
		if err != nil {
			return err
		}
		defer p.Close()
		if p.Mode() != "generic" {
			t.Errorf("a bridge took the program in %s mode", p.Mode())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// With rings of two entries, a thousand frames each way wrap them five
// hundred times.
func TestTinyRings(t *testing.T) {
	e := newEnv(t, 0, 0)
	_, s := e.socket(t, Config{Frames: 4})
	stop := e.startPeerReader(t)
	for i := 0; i < 1000; i++ {
		e.send(t, testFrame(uint32(i), 0x88b5, 60))
		got := receive(t, s, 1, 5*time.Second)
		if len(got) != 1 || binary.BigEndian.Uint32(got[0][14:]) != uint32(i) {
			t.Fatalf("frame %d: got %d frames", i, len(got))
		}
		transmitAll(t, s, [][]byte{got[0]})
	}
	waitFor(t, "both transmit frames back", func() bool { return s.freeTx() == 2 })
	if got := stop(); len(got) != 1000 {
		t.Fatalf("the peer got %d of 1000 frames back", len(got))
	}
}

func TestTransmitRefusesWhatDoesNotFit(t *testing.T) {
	e := newEnv(t, 0, 0)
	s := e.open(t, Config{Frames: 8})
	ok := testFrame(1, 0x88b5, 60)
	for _, bad := range [][]byte{make([]byte, 2049), make([]byte, 13), nil} {
		n, err := s.Transmit([][]byte{ok, bad, ok})
		if n != 1 || !errors.Is(err, ErrFrameSize) {
			t.Fatalf("%d-byte frame: Transmit = %d, %v", len(bad), n, err)
		}
	}
	waitFor(t, "no frame leaked", func() bool { return s.freeTx() == 4 })
}

// freeTx takes completed frames back and counts the free transmit frames.
func (s *Socket) freeTx() int {
	s.Transmit(nil)
	s.txMu.Lock()
	defer s.txMu.Unlock()
	return len(s.txFree)
}

// waitFor polls cond for up to 10 seconds: kernel work that is not
// synchronous with the call that caused it (completions, link release).
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited 10s for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestCloseWakesWaitAndEndsUse(t *testing.T) {
	e := newEnv(t, 0, 0)
	s := e.open(t, Config{Frames: 8})
	errc := make(chan error, 1)
	go func() { errc <- s.Wait(0) }()
	time.Sleep(20 * time.Millisecond) // let it park (the test passes either way)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Wait after Close: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not wake Wait")
	}
	if err := s.Wait(time.Second); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Wait on a closed socket: %v", err)
	}
	if n := s.Receive([][]byte{make([]byte, 100)}, 0, []int{0}); n != 0 {
		t.Fatal("Receive after Close")
	}
	if _, err := s.Transmit([][]byte{testFrame(1, 0x88b5, 60)}); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Transmit after Close: %v", err)
	}
	if !s.WaitWritable(time.Second) {
		t.Fatal("WaitWritable after Close says no room: the next Transmit would say closed")
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// Transmitters, a reader and Close at once: every user ends with
// net.ErrClosed and none touches the unmapped rings (which would crash).
func TestConcurrentUseAndClose(t *testing.T) {
	t.Run("sleeping", testConcurrentUseAndClose)
	t.Run("busy-polling", func(t *testing.T) {
		pollfd.SetBusyPoll(true)
		defer pollfd.SetBusyPoll(false)
		testConcurrentUseAndClose(t)
	})
}

func testConcurrentUseAndClose(t *testing.T) {
	e := newEnv(t, 0, 0)
	_, s := e.socket(t, Config{Frames: 16})
	done := make(chan error, 5)
	frames := [][]byte{testFrame(1, 0x88b5, 60), testFrame(2, 0x88b5, 1514)}
	for range 4 {
		go func() {
			for {
				n, err := s.Transmit(frames)
				if err != nil {
					done <- err
					return
				}
				if n == 0 {
					s.WaitWritable(time.Second)
				}
			}
		}()
	}
	go func() {
		bufs, sizes := [][]byte{make([]byte, 2048)}, []int{0}
		for {
			s.Receive(bufs, 0, sizes)
			if err := s.Wait(0); err != nil {
				done <- err
				return
			}
		}
	}()
	sending := make(chan struct{})
	go func() {
		defer close(sending)
		for range 200 {
			unix.Write(e.peer, frames[0])
		}
	}()
	time.Sleep(100 * time.Millisecond)
	s.Close()
	<-sending
	for range 5 {
		select {
		case err := <-done:
			if !errors.Is(err, net.ErrClosed) {
				t.Fatalf("a user ended with %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("a user did not end after Close")
		}
	}
}

func TestWaitTimesOut(t *testing.T) {
	e := newEnv(t, 0, 0)
	_, s := e.socket(t, Config{Frames: 8})
	if err := s.Wait(20 * time.Millisecond); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Wait with nothing arriving: %v", err)
	}
}

func TestCloseDetachesTheProgram(t *testing.T) {
	e := newEnv(t, 0, 0)
	p := e.attach(t, nil)
	if e.xdpAttached(t) == 0 {
		t.Fatal("no XDP program on the interface after Attach")
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if id := e.xdpAttached(t); id != 0 {
		t.Fatalf("program %d still attached after Close", id)
	}
}

// A process killed outright leaves no program behind: the kernel closes
// its link.
func TestKilledProcessLeavesNoProgram(t *testing.T) {
	e := newEnv(t, 0, 0)
	cmd := e.ns.Cmd(os.Args[0], "-test.run=^TestHelperAttachAndHang$", "-test.v")
	cmd.Env = append(os.Environ(), "XSK_HELPER_IFINDEX="+itoa(e.ifindex))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	var seen bytes.Buffer
	buf := make([]byte, 512)
	for !strings.Contains(seen.String(), "ATTACHED") {
		n, err := out.Read(buf)
		seen.Write(buf[:n])
		if err != nil {
			t.Fatalf("the helper ended before attaching: %v: %s", err, seen.String())
		}
	}
	if e.xdpAttached(t) == 0 {
		t.Fatal("the helper says attached, the interface has no program")
	}
	if err := cmd.Process.Signal(unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	// At once, a new socket takes the queue the killed one held (the
	// kernel frees it a moment after the process is gone: Open waits).
	e.open(t, Config{})
	waitFor(t, "the killed process's program to go", func() bool { return e.xdpAttached(t) == 0 })
}

// TestHelperAttachAndHang is TestKilledProcessLeavesNoProgram's child.
func TestHelperAttachAndHang(t *testing.T) {
	env := os.Getenv("XSK_HELPER_IFINDEX")
	if env == "" {
		t.Skip("helper of TestKilledProcessLeavesNoProgram")
	}
	ifindex, err := strconv.Atoi(env)
	if err != nil {
		t.Fatal(err)
	}
	p, err := Attach(ifindex, nil)
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(Config{Ifindex: ifindex, Frames: 8})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Register(0, s); err != nil {
		t.Fatal(err)
	}
	os.Stdout.WriteString("ATTACHED\n")
	time.Sleep(time.Minute)
}

func TestSecondAttachIsRefused(t *testing.T) {
	e := newEnv(t, 0, 0)
	first := e.attach(t, nil)
	id := e.xdpAttached(t)
	err := e.ns.Do(func() error {
		p, err := Attach(e.ifindex, nil)
		if err == nil {
			p.Close()
		}
		return err
	})
	if err == nil || !strings.Contains(err.Error(), "port already has an XDP program") || !errors.Is(err, ErrInUse) {
		t.Fatalf("second Attach: %v", err)
	}
	if err := e.ns.Do(func() error { return Unclaimed(e.ifindex) }); !errors.Is(err, ErrInUse) {
		t.Fatalf("Unclaimed with a program on: %v", err)
	}
	// Should one be attached between Attach's look and its attach, the
	// kernel refuses the link, in either mode.
	err = e.ns.Do(func() error {
		p := &Program{ifname: "port"}
		defer p.Close()
		if err := p.load(1, nil); err != nil {
			return err
		}
		return p.attach(e.ifindex)
	})
	if err == nil || !strings.Contains(err.Error(), "port already has an XDP program") || !errors.Is(err, ErrInUse) {
		t.Fatalf("attaching past the check: %v", err)
	}
	if got := e.xdpAttached(t); got != id {
		t.Fatalf("program %d replaced by %d", id, got)
	}
	first.Close()
	if err := e.ns.Do(func() error { return Unclaimed(e.ifindex) }); err != nil {
		t.Fatalf("Unclaimed once the program is gone: %v", err)
	}
}

// An MTU whose frames do not fit a UMEM frame is refused with a message
// that says what to do.
func TestJumboMTUIsRefused(t *testing.T) {
	e := newEnv(t, 9000, 0)
	err := e.ns.Do(func() error { _, err := Attach(e.ifindex, nil); return err })
	if err == nil || !strings.Contains(err.Error(), "MTU 9000") || !strings.Contains(err.Error(), "xdp=0") {
		t.Fatalf("Attach: %v", err)
	}
	err = e.ns.Do(func() error { _, err := Open(Config{Ifindex: e.ifindex, FrameSize: 4096}); return err })
	if err == nil || !strings.Contains(err.Error(), "MTU 9000") || !strings.Contains(err.Error(), "xdp=0") {
		t.Fatalf("Open: %v", err)
	}
	if e.xdpAttached(t) != 0 {
		t.Fatal("a refused Attach left a program")
	}
	// The largest MTU a 2048-byte frame takes is accepted, one more is not.
	e2 := newEnv(t, MaxMTU(2048), 0)
	e2.open(t, Config{Frames: 8})
	e2.ns.MustRun(t, "ip", "link", "set", "port", "mtu", itoa(MaxMTU(2048)+1))
	err = e2.ns.Do(func() error { _, err := Open(Config{Ifindex: e2.ifindex}); return err })
	if err == nil || !strings.Contains(err.Error(), "MTU 1775") {
		t.Fatalf("Open with MTU %d: %v", MaxMTU(2048)+1, err)
	}
}

// acceptEtherType is a filter block written by hand to the convention:
// it reads the frame through R6/R7, clobbers R0-R5, R9 and the scratch
// stack, and ends in a jump to one of the labels.
func acceptEtherType(etype uint16) asm.Instructions {
	return asm.Instructions{
		asm.Mov.Imm(asm.R9, 0),
		asm.StoreMem(asm.RFP, -64, asm.R9, asm.DWord),
		asm.Mov.Reg(asm.R2, RegData),
		asm.Add.Imm(asm.R2, 14),
		asm.JGT.Reg(asm.R2, RegDataEnd, RefuseLabel),
		asm.LoadMem(asm.R0, RegData, 12, asm.Half),
		asm.JEq.Imm(asm.R0, int32(etype>>8|etype<<8&0xff00), AcceptLabel),
		asm.Ja.Label(RefuseLabel),
	}
}

func TestFilterDropsAndCounts(t *testing.T) { inModes(t, testFilterDropsAndCounts) }

func testFilterDropsAndCounts(t *testing.T) {
	e := newEnv(t, 0, 0)
	p := e.attach(t, acceptEtherType(0x88b5))
	s := e.open(t, Config{Frames: 64})
	if err := p.Register(0, s); err != nil {
		t.Fatal(err)
	}
	var want [][]byte
	for i := 0; i < 20; i++ {
		f := testFrame(uint32(i), 0x88b6, 60+i)
		if i%4 == 0 {
			f = testFrame(uint32(i), 0x88b5, 60+i)
			want = append(want, f)
		}
		e.send(t, f)
	}
	got := receive(t, s, len(want)+1, 200*time.Millisecond) // more than will come: nothing else may
	if len(got) != len(want) {
		t.Fatalf("received %d frames, want the %d accepted", len(got), len(want))
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("frame %d differs", i)
		}
	}
	waitFor(t, "15 filtered", func() bool { n, err := p.Filtered(); return err == nil && n == 15 })
}

// A filter that breaks the convention is refused by the verifier, with
// its log, and leaves nothing attached.
func TestBadFilterIsAnError(t *testing.T) {
	e := newEnv(t, 0, 0)
	bad := asm.Instructions{asm.LoadMem(asm.R0, RegData, 0, asm.Word), asm.Ja.Label(AcceptLabel)} // reads without a bounds check
	err := e.ns.Do(func() error { _, err := Attach(e.ifindex, bad); return err })
	if err == nil || !strings.Contains(err.Error(), "load the XDP program") {
		t.Fatalf("Attach: %v", err)
	}
	if e.xdpAttached(t) != 0 {
		t.Fatal("a refused program is attached")
	}
}

func TestZeroCopyOnVethIsAClearError(t *testing.T) {
	e := newEnv(t, 0, 0)
	err := e.ns.Do(func() error {
		s, err := Open(Config{Ifindex: e.ifindex, Frames: 8, ZeroCopy: true})
		if err == nil {
			s.Close()
		}
		return err
	})
	if err == nil {
		t.Skip("this kernel's veth does zero-copy AF_XDP")
	}
	if !strings.Contains(err.Error(), "zero-copy") || !strings.Contains(err.Error(), "port") {
		t.Fatalf("Open with ZeroCopy: %v", err)
	}
}

func TestRegisterChecksTheQueue(t *testing.T) {
	e := newEnv(t, 0, 0)
	p := e.attach(t, nil)
	s := e.open(t, Config{Frames: 8})
	if err := p.Register(1, s); err == nil || !strings.Contains(err.Error(), "not 1") {
		t.Fatalf("Register(1) on one queue: %v", err)
	}
	err := e.ns.Do(func() error { _, err := Open(Config{Ifindex: e.ifindex, Queue: 3, Frames: 8}); return err })
	if err == nil || !strings.Contains(err.Error(), "queue 3") {
		t.Fatalf("Open on queue 3 of 1: %v", err)
	}
	s.Close()
	if err := p.Register(0, s); err == nil {
		t.Fatal("registered a closed socket")
	}
}

// Each queue of a veth with two gets its own socket; the peer spreads its
// frames over them by flow hash.
func TestTwoQueues(t *testing.T) {
	e := newEnv(t, 0, 2)
	p := e.attach(t, nil)
	socks := []*Socket{e.open(t, Config{Queue: 0, Frames: 256}), e.open(t, Config{Queue: 1, Frames: 256})}
	for q, s := range socks {
		if err := p.Register(q, s); err != nil {
			t.Fatal(err)
		}
	}
	const n = 64
	for i := 0; i < n; i++ {
		e.send(t, udpFrame(uint16(1000+i)))
	}
	var counts [2]int
	for q, s := range socks {
		counts[q] = len(receive(t, s, n, 200*time.Millisecond))
	}
	t.Logf("queue 0 got %d frames, queue 1 %d", counts[0], counts[1])
	if counts[0]+counts[1] != n {
		t.Fatalf("%d+%d frames of %d arrived", counts[0], counts[1], n)
	}
	if counts[0] == 0 || counts[1] == 0 {
		t.Fatalf("one queue got every frame: %v", counts)
	}
}

// udpFrame is an IPv4 UDP frame from source port sport, for the peer's
// flow hash to choose a queue by.
func udpFrame(sport uint16) []byte {
	f := testFrame(0, unix.ETH_P_IP, 60)
	ip := f[14:]
	copy(ip, []byte{0x45, 0, 0, 46, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2})
	binary.BigEndian.PutUint16(ip[20:], sport)
	binary.BigEndian.PutUint16(ip[22:], 9)
	binary.BigEndian.PutUint16(ip[24:], 26)
	binary.BigEndian.PutUint16(ip[26:], 0)
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(ip[i:]))
	}
	sum = sum>>16 + sum&0xffff
	binary.BigEndian.PutUint16(ip[10:], ^uint16(sum+sum>>16))
	return f
}

// On a busy-polling switch the socket is bound without need-wakeup and
// polls its queue (SO_BUSY_POLL): frames still arrive in order round after
// round, many times what the fill ring holds, and go out whole, in driver
// and generic mode.
func TestBusyPolling(t *testing.T) {
	pollfd.SetBusyPoll(true)
	defer pollfd.SetBusyPoll(false)
	inModes(t, func(t *testing.T) {
		e := newEnv(t, 0, 0)
		_, s := e.socket(t, Config{Frames: 64})
		if v, err := unix.GetsockoptInt(s.Fd(), unix.SOL_SOCKET, unix.SO_BUSY_POLL); err != nil || v != busyPollMicros {
			t.Fatalf("SO_BUSY_POLL %d, %v", v, err)
		}
		bufs, sizes := [][]byte{make([]byte, 2048), make([]byte, 2048)}, make([]int, 2)
		next := uint32(0)
		for round := range 20 {
			for i := range 20 {
				e.send(t, testFrame(uint32(round*20+i), 0x88b5, 60+i))
			}
			for deadline := time.Now().Add(5 * time.Second); next < uint32(round*20+20); {
				if time.Now().After(deadline) {
					t.Fatalf("round %d: frame %d did not arrive", round, next)
				}
				n := s.Receive(bufs, 0, sizes)
				for i := range n {
					if want := testFrame(next, 0x88b5, 60+int(next%20)); !bytes.Equal(bufs[i][:sizes[i]], want) {
						t.Fatalf("frame %d: got %d bytes, want %d", next, sizes[i], len(want))
					}
					next++
				}
				if n == 0 {
					if err := s.Wait(time.Second); err != nil {
						t.Fatal(err)
					}
				}
			}
		}
		var want [][]byte
		for i := range 500 {
			want = append(want, testFrame(uint32(i), 0x88b5, 60+i))
		}
		stop := e.startPeerReader(t)
		transmitAll(t, s, want)
		waitFor(t, "every transmit frame back", func() bool { return s.freeTx() == 32 })
		if got := stop(); len(got) != len(want) {
			t.Fatalf("the peer got %d of %d frames", len(got), len(want))
		}
	})
}

// A queue another socket holds is refused as in use (after the wait for
// a socket just closed to let go), so that a new switch of an upgrade
// knows to wait for the old one.
func TestQueueHeldIsInUse(t *testing.T) {
	e := newEnv(t, 0, 0)
	e.open(t, Config{})
	err := e.ns.Do(func() error {
		s, err := Open(Config{Ifindex: e.ifindex})
		if err == nil {
			s.Close()
		}
		return err
	})
	if !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), "another AF_XDP socket has the queue") {
		t.Fatalf("a second socket on the queue: %v", err)
	}
}
