package capture

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/umlswitch/umlswitch/fabric"
	"github.com/umlswitch/umlswitch/frame"
)

// syncBuffer is a log that tests read while the mirror writes to it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// liveMirror is a mirror serving live readers on a socket in a scratch
// directory, logging into the returned buffer, and a dialer for readers
// that waits until the writer has taken the reader in.
func liveMirror(t *testing.T) (*Mirror, *syncBuffer, func() *net.UnixConn) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "live.sock")
	log := &syncBuffer{}
	m := mustNew(t, Config{Stream: path, Ring: 2 << 20, Logger: slog.New(slog.NewTextHandler(log, nil))})
	joined := 0
	dial := func() *net.UnixConn {
		c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: path, Net: "unix"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		joined++
		deadline := time.Now().Add(2 * time.Second)
		for strings.Count(log.String(), "mirror reader joined") < joined {
			if time.Now().After(deadline) {
				t.Fatal("the reader was not taken in")
			}
			m.Frame(0, "p", fabric.DirIn, ether(0, 60)) // wakes the writer
			m.Drain(time.Second)
			time.Sleep(time.Millisecond)
		}
		return c
	}
	return m, log, dial
}

// bareMirror is a mirror for tests that are its writer goroutine: nothing
// runs but what they call, and it logs into the returned buffer.
func bareMirror(t *testing.T) (net.Listener, *Mirror, *syncBuffer) {
	t.Helper()
	ln, err := net.Listen("unix", filepath.Join(t.TempDir(), "live.sock"))
	if err != nil {
		t.Fatal(err)
	}
	log := &syncBuffer{}
	return ln, &Mirror{cfg: Config{Listener: ln}, log: slog.New(slog.NewTextHandler(log, nil)), wake: make(chan struct{}, 1)}, log
}

// joinReaders connects n readers to addr and runs the writer until o has
// taken them in; it returns the header they were sent.
func joinReaders(t *testing.T, o *streamOutput, addr string, n int) []byte {
	t.Helper()
	for range n {
		c, err := net.Dial("unix", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
	}
	hdr := appendSHB(nil)
	for deadline := time.Now().Add(2 * time.Second); len(o.live) < n; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d readers joined", len(o.live), n)
		}
		o.write(nil, 0, hdr)
	}
	return hdr
}

// push hands the mirror mb megabytes of 1500-byte frames.
func push(m *Mirror, mb int) {
	f := ether(7, 1500)
	for range mb {
		for range 700 {
			m.Frame(1, "q", fabric.DirIn, f)
		}
		m.Drain(5 * time.Second)
	}
}

func heap() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// Readers that never read keep a few megabytes queued at most, not every
// chunk the writer made since they joined (a megabyte each here, as a
// busy switch makes): their frames are dropped and counted. The test is
// the writer goroutine.
func TestReaderThatNeverReadsKeepsMemoryBounded(t *testing.T) {
	ln, m, log := bareMirror(t)
	o := listenStream(ln, m)
	const readers = 4
	hdr := joinReaders(t, o, ln.Addr().String(), readers)
	before := heap()
	const chunk = 1 << 20
	for range 300 {
		o.write(&view{b: make([]byte, chunk), hdrBefore: len(hdr)}, 100, hdr)
	}
	grown := int64(heap()) - int64(before)
	for i, r := range o.live {
		if q := r.queued.Load(); q > readerBytes+chunk {
			t.Errorf("reader %d has %d MB queued", i, q>>20)
		}
		if r.dropped == 0 {
			t.Errorf("reader %d lost nothing", i)
		}
	}
	// The readers share the chunks: together they hold about one
	// reader's bound.
	if limit := int64(readerBytes + 4*chunk); grown > limit {
		t.Errorf("heap grew by %d MB with %d readers that never read, want under %d MB", grown>>20, readers, limit>>20)
	}
	o.close(nil)
	if n := strings.Count(log.String(), "mirror reader left"); n != readers {
		t.Errorf("%d readers left, want %d:\n%s", n, readers, log)
	}
}

// A reader that takes nothing for readerStall is disconnected, with a log
// line; one that reads slowly but keeps taking bytes is not.
func TestStalledReaderIsDisconnected(t *testing.T) {
	defer func(d time.Duration) { readerStall = d }(readerStall)
	readerStall = time.Second
	m, log, dial := liveMirror(t)
	stalled, slow := dial(), dial()
	stop := make(chan struct{})
	slowGot := make(chan int64)
	go func() {
		var got int64
		b := make([]byte, 1<<20) // all the socket holds: a writer waiting for room gets it
		for {
			select {
			case <-stop:
				slowGot <- got
				return
			case <-time.After(100 * time.Millisecond):
			}
			slow.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
			n, _ := slow.Read(b)
			got += int64(n)
		}
	}()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(log.String(), "mirror reader stalled") {
		if time.Now().After(deadline) {
			t.Fatalf("the stalled reader was never disconnected:\n%s", log)
		}
		push(m, 1)
		time.Sleep(20 * time.Millisecond)
	}
	// Now closed on the switch's side: what the socket holds, then EOF.
	stalled.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.Copy(io.Discard, stalled); err != nil {
		t.Fatalf("the stalled reader's connection did not end: %v", err)
	}
	close(stop)
	got := <-slowGot
	if n := strings.Count(log.String(), "mirror reader stalled"); n != 1 {
		t.Fatalf("%d readers disconnected, want only the stalled one:\n%s", n, log)
	}
	if got == 0 {
		t.Fatal("the slow reader got nothing")
	}
	m.Close()
}

// failOnce is a listener whose first Accept fails as one does when the
// process is out of descriptors.
type failOnce struct {
	net.Listener
	failed bool
}

func (l *failOnce) Accept() (net.Conn, error) {
	if !l.failed {
		l.failed = true
		return nil, &net.OpError{Op: "accept", Net: "unix", Err: syscall.EMFILE}
	}
	return l.Listener.Accept()
}

// A failed accept is logged and the live capture goes on taking readers;
// closing it ends its accept loop.
func TestAcceptErrorKeepsServing(t *testing.T) {
	ln, m, log := bareMirror(t)
	o := listenStream(&failOnce{Listener: ln}, m)
	joinReaders(t, o, ln.Addr().String(), 1)
	if !strings.Contains(log.String(), "mirror accept") || !strings.Contains(log.String(), "too many open files") {
		t.Errorf("the failed accept was not logged:\n%s", log)
	}
	closed := make(chan struct{})
	go func() { o.close(nil); close(closed) }()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("close did not end the accept loop")
	}
}

// A stream mirror holds no ring until a reader comes, and gives it back
// once the last reader has gone (noticed on the next frames it would have
// been sent); a new reader gets a new one. Frames offered meanwhile are
// neither copied nor counted.
func TestRingOnlyWhileReadersWatch(t *testing.T) {
	m, _, dial := liveMirror(t)
	for range 10 {
		m.Frame(0, "p", fabric.DirIn, ether(0, 60))
	}
	if n := m.RingBytes(); n != 0 {
		t.Fatalf("ring of %d bytes before any reader", n)
	}
	if st := m.Stats(); st.Captured != 0 || st.Dropped != 0 {
		t.Errorf("frames counted with no reader: %+v", st)
	}
	for round := range 2 {
		a, b := dial(), dial()
		if n := m.RingBytes(); n != 2<<20 {
			t.Fatalf("round %d: ring of %d bytes with readers, want %d", round, n, 2<<20)
		}
		a.Close()
		gone := func() bool {
			m.Frame(0, "p", fabric.DirIn, ether(0, 60))
			m.Drain(time.Second)
			return m.RingBytes() == 0
		}
		for range 50 { // b still reads: the ring stays
			if gone() {
				t.Fatalf("round %d: ring released with a reader left", round)
			}
		}
		b.Close()
		deadline := time.Now().Add(5 * time.Second)
		for !gone() {
			if time.Now().After(deadline) {
				t.Fatalf("round %d: ring of %d bytes kept after the last reader left", round, m.RingBytes())
			}
			time.Sleep(time.Millisecond)
		}
	}
}

// Chunks are reused, and never while a reader still has one queued: a
// fast reader and a slow one (with what it is owed queued, up to its
// bound) both read every frame intact and in order, over many passes
// (each frame's number is in its bytes).
func TestReusedChunksReachEveryReaderIntact(t *testing.T) {
	m, _, dial := liveMirror(t)
	fast, slow := dial(), dial()
	const frames = 3000
	numbered := func(i int) []byte {
		f := ether(byte(i), 200)
		binary.BigEndian.PutUint32(f[14:], uint32(i))
		return f
	}
	last := numbered(frames - 1)
	// read reads c to its end; it says on all once it has the last frame.
	read := func(c *net.UnixConn, pause time.Duration, all chan<- struct{}) chan []byte {
		out := make(chan []byte, 1)
		go func() {
			var b bytes.Buffer
			buf := make([]byte, 4096)
			for {
				c.SetReadDeadline(time.Now().Add(20 * time.Second))
				n, err := c.Read(buf)
				b.Write(buf[:n])
				if all != nil && bytes.Contains(b.Bytes(), last) {
					all <- struct{}{}
					all = nil
				}
				if err != nil {
					break
				}
				time.Sleep(pause)
			}
			out <- b.Bytes()
		}()
		return out
	}
	all := make(chan struct{}, 2)
	// The slow reader takes about 200 kB/s: most of what it is owed
	// waits in its queue.
	fastGot, slowGot := read(fast, 0, all), read(slow, 20*time.Millisecond, all)
	for i := range frames {
		m.Frame(1, "q", fabric.DirIn, numbered(i))
		if i%20 == 19 {
			m.Drain(5 * time.Second) // a pass every 20 frames: fewer than a reader's queue holds
		}
	}
	if !m.Drain(5 * time.Second) {
		t.Fatal("not drained")
	}
	for range 2 {
		select {
		case <-all:
		case <-time.After(20 * time.Second):
			t.Fatal("a reader did not get the last frame")
		}
	}
	if len(m.free) == 0 {
		t.Error("no chunk was given back for reuse")
	}
	m.Close()
	for name, ch := range map[string]chan []byte{"fast": fastGot, "slow": slowGot} {
		_, got, _ := readNg(t, <-ch)
		next, ours := uint32(0), 0
		for _, p := range got {
			if len(p.data) == 60 { // woke the writer while the readers joined
				continue
			}
			if ours++; len(p.data) != 200 {
				t.Fatalf("%s reader: a frame of %d bytes", name, len(p.data))
			}
			n := binary.BigEndian.Uint32(p.data[14:])
			if n != next || p.data[199] != byte(n) {
				t.Fatalf("%s reader: frame %d where %d was due, or damaged", name, n, next)
			}
			next = n + 1
		}
		if ours != frames {
			t.Errorf("the %s reader got %d of %d frames", name, ours, frames)
		}
	}
}

// Through the mirror, readers that never read pin only what they are
// owed: the chunks their queued views are in, shared by all of them, not
// a chunk for each pass.
func TestMirrorReadersThatNeverReadPinLittle(t *testing.T) {
	m, _, dial := liveMirror(t)
	for range 4 {
		dial()
	}
	before := heap()
	f := ether(7, 1500)
	for range 500 { // 500 passes of 40 frames, 30 MB, well within readerStall
		for range 40 {
			m.Frame(1, "q", fabric.DirIn, f)
		}
		m.Drain(5 * time.Second)
	}
	grown := int64(heap()) - int64(before)
	if limit := int64(readerBytes + 4<<20); grown > limit {
		t.Errorf("heap grew by %d MB with 4 readers that never read, want under %d MB", grown>>20, limit>>20)
	}
	if st := m.Stats(); st.Captured < 20000 || st.Dropped != 0 { // and those that woke the writer as readers joined
		t.Errorf("stats %+v", st)
	}
	m.Close()
}

// Producers on four ports at once, a reader there from the start and one
// that joins midway: each reader's stream is valid pcapng in which every
// port's frames come in order, once each, on that port's interface, and
// the mirror's counts add up to what was offered.
func TestConcurrentPortsAndReaders(t *testing.T) {
	m, _, dial := liveMirror(t)
	first := dial()
	got := func(c *net.UnixConn) chan []byte {
		out := make(chan []byte, 1)
		go func() {
			c.SetReadDeadline(time.Now().Add(30 * time.Second))
			b, _ := io.ReadAll(c)
			out <- b
		}()
		return out
	}
	firstGot := got(first)
	const ports, perPort = 4, 3000
	var wg, halfway sync.WaitGroup
	secondIn := make(chan struct{}) // producers send their second half once the second reader is in
	for p := range ports {
		wg.Add(1)
		halfway.Add(1)
		go func() {
			defer wg.Done()
			run := make([][]byte, 0, 7)
			waited := false
			for i := 0; i < perPort; {
				if i >= perPort/2 && !waited {
					halfway.Done()
					<-secondIn
					waited = true
				}
				run = run[:0]
				for n := 1 + i%7; n > 0 && i < perPort; n-- {
					f := ether(byte(p), 100+i%400)
					binary.BigEndian.PutUint32(f[14:], uint32(i))
					run = append(run, f)
					i++
				}
				m.Frames(frame.PortID(p+1), fmt.Sprint("port", p), fabric.DirIn, run)
			}
		}()
	}
	halfway.Wait()
	secondGot := got(dial())
	close(secondIn)
	wg.Wait()
	if !m.Drain(10 * time.Second) {
		t.Fatal("not drained")
	}
	st := m.Stats()
	m.Close()
	if st.Captured+st.Dropped < ports*perPort {
		t.Errorf("stats %+v for %d frames offered", st, ports*perPort)
	}
	for name, ch := range map[string]chan []byte{"first": firstGot, "second": secondGot} {
		ifaces, pkts, _ := readNg(t, <-ch)
		next := map[byte]int{}
		for _, p := range pkts {
			if len(p.data) < 100 { // woke the writer as a reader joined
				continue
			}
			port := p.data[11]
			if ifaces[p.iface] != fmt.Sprint("port", port) {
				t.Fatalf("%s reader: a frame of port%d on %q", name, port, ifaces[p.iface])
			}
			n := int(binary.BigEndian.Uint32(p.data[14:]))
			if n < next[port] || len(p.data) != 100+n%400 {
				t.Fatalf("%s reader: port%d frame %d after %d, or damaged", name, port, n, next[port]-1)
			}
			next[port] = n + 1
		}
		if len(next) == 0 {
			t.Errorf("the %s reader got none of the ports' frames", name)
		}
	}
}

// Readers that come and go while frames flow: the buffer is dropped and
// made again many times, with views still queued to readers that are
// leaving; every reader that stays gets valid pcapng, and nothing panics
// or races.
func TestReadersChurningWhileFramesFlow(t *testing.T) {
	m, _, dial := liveMirror(t)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		run := [][]byte{ether(1, 300), ether(2, 300), ether(3, 300)}
		for {
			select {
			case <-stop:
				return
			default:
			}
			m.Frames(1, "p", fabric.DirIn, run)
			time.Sleep(50 * time.Microsecond)
		}
	}()
	for range 30 {
		c := dial()
		buf := make([]byte, 1000)
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadFull(c, buf); err != nil {
			t.Fatalf("a reader got nothing: %v", err)
		}
		c.Close()
	}
	stayed := dial()
	got := make(chan []byte, 1)
	go func() {
		stayed.SetReadDeadline(time.Now().Add(20 * time.Second))
		b, _ := io.ReadAll(stayed)
		got <- b
	}()
	time.Sleep(100 * time.Millisecond)
	close(stop)
	<-done
	m.Drain(5 * time.Second)
	m.Close()
	if _, pkts, _ := readNg(t, <-got); len(pkts) == 0 {
		t.Fatal("the reader that stayed got no frames")
	}
}
