// Package capture is the switch's mirror: it copies frames that cross the
// switch into a bounded ring, and one writer goroutine turns them into
// pcapng (or pcap) for a file, rotated by size, or for live readers on a
// unix socket. Forwarding never waits for it: a frame that does not fit the
// ring is dropped from the capture and counted, per port, and the counts go
// into the pcapng statistics blocks.
package capture

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/umlswitch/umlswitch/fabric"
	"github.com/umlswitch/umlswitch/frame"
	"github.com/umlswitch/umlswitch/internal/peercred"
	"github.com/umlswitch/umlswitch/internal/unixsock"
)

// Config describes one mirror. Exactly one of File and Stream is set.
type Config struct {
	File   string          // write here; rotated files get .1, .2, ... after the name
	Stream string          // unix stream socket that live readers connect to
	Access unixsock.Access // Stream's permissions (0: DefaultStreamMode) and owner (-1, or 0 in both: the switch's)
	// Listener, instead of File or Stream, hands over live readers'
	// connections (the control API's capture requests).
	Listener net.Listener
	// Admit, if set, decides whether a reader that connected to Stream may
	// read (its credentials, the limits); release is called once it has
	// gone. A refused reader is disconnected at once.
	Admit   func(c net.Conn) (release func(), err error)
	Format  string   // "pcapng" (default) or "pcap"
	Snaplen int      // bytes kept of each frame; 0 keeps whole frames
	Ports   []string // capture only ports whose names contain one of these; none: every port
	// ExactPorts: Ports are whole names (a live capture's port=), not parts.
	ExactPorts bool
	Dir        string // "in", "out" or "both" (default)
	Rotate     int64  // start a new file past this many bytes; 0: never
	Keep       int    // rotated files kept, newest first; 0: all
	Ring       int    // bytes of frames buffered between the switch and the writer
	// Owner, if set, is the user File is made for (an API caller who is
	// not root): the file, and its directory, are opened with that
	// user's file system identity (peercred.Do), so only where the user
	// could write it; rotated files are made by the switch in that same
	// directory, by descriptor, and given to the user.
	Owner *peercred.Cred
	// Sink, instead of File or Stream, takes the frames themselves: a SPAN
	// port. Its direction defaults to in, so each frame goes there once.
	Sink   FrameSink
	Logger *slog.Logger
}

// DefaultStreamMode is a stream socket's mode when none is given: a live
// capture is every guest's traffic, so only the switch's user may read it.
const DefaultStreamMode = 0o600

// DefaultFileMode is a capture file's mode, for the same reason.
const DefaultFileMode = 0o600

// FrameSink takes mirrored frames as they are, from the writer goroutine;
// it must not keep them after it returns.
type FrameSink interface {
	WriteFrames(frames [][]byte)
	Name() string
}

// DefaultRing is the buffer between forwarding and the writer.
const DefaultRing = 8 << 20

// maxRecords bounds the frames the ring holds, whatever their size.
const maxRecords = 1 << 16

// Stats counts a mirror's frames.
type Stats struct {
	Captured uint64 // written (or handed to every reader)
	Dropped  uint64 // refused because the ring was full, or lost by a file that could not be written
}

// Mirror is a fabric.Mirror writing to a file or to live readers.
type Mirror struct {
	cfg     Config
	snaplen int
	dirs    uint8 // bit 0: in, bit 1: out
	pcapng  bool
	log     *slog.Logger

	// active is false while a stream mirror has no reader: frames are then
	// not even copied.
	active atomic.Bool

	mu sync.Mutex // producers: the ring's free space and the port table
	// ring and recs are allocated while the mirror copies: from New for a
	// file or a sink, and for live readers only while one is there
	// (readers), so that an idle stream mirror holds no buffer (8 MB by
	// default, and twice that against the garbage collector's heap goal).
	ring         []byte
	ringSize     int
	readers      int    // live readers joining or served
	head, tail   uint64 // byte positions, absolute
	recs         []record
	rhead, rtail uint64
	ports        map[frame.PortID]*portState
	all          []*portState // every port seen, for the statistics blocks
	stats        Stats
	counted      uint64 // records up to here are counted captured or dropped

	wake chan struct{}
	done chan struct{}
	wg   sync.WaitGroup
	out  output

	// The writer's own: the header every new file or reader starts with
	// (and, for pcapng, the ports described so far), the classic pcap
	// encoder, and the frames of one pass for a sink.
	hdr    []byte
	ifaces int
	pcap   pcapEncoder
	frames [][]byte
	sent   []*portState // each frame's port, in a pass: to count them if the output lost them

	// free holds chunks given back, for the writer's next passes.
	free chan *chunk
}

// record is one captured frame in the ring. It holds no pointer (its port
// is an index in Mirror.all): the collector has no need to scan the
// records, nor forwarding to pay a write barrier for each.
type record struct {
	pos     uint64 // absolute position of its bytes in the ring
	ts      int64
	n, orig uint32
	port    uint32 // in Mirror.all
	dir     fabric.Direction
}

// portState is what the mirror knows of one port: whether it is selected,
// and its counts for the statistics block.
type portState struct {
	id       frame.PortID
	idx      uint32 // in Mirror.all
	name     string
	selected bool
	seen     uint64 // frames offered while selected
	dropped  uint64
	iface    int // pcapng interface number, -1 before the writer has described it
}

// output is what the writer goroutine hands encoded bytes to. hdr is what
// a new file or a new reader must get first. c (nil when there is nothing
// new) is the writer's until write returns: an output that keeps it for
// later holds it. write fails only when the chunk's frames are lost, and
// the output has said why itself (once, not per chunk).
type output interface {
	write(c *chunk, frames int, hdr []byte) error
	close(trailer []byte) error
}

// chunk is the encoded frames of one writer pass. Live readers queue it
// and write it later, each with a hold on it; the last to let go gives it
// back to its mirror for a later pass. (A new chunk each pass, at full
// rate a hundred megabytes a second, made the collector run so often that
// its scans of the program's globals alone took 3 % of the switch's core.)
type chunk struct {
	b    []byte
	refs atomic.Int32
	m    *Mirror // nil: never reused (a header or a trailer)
}

// bytesChunk wraps b, which is not reused.
func bytesChunk(b []byte) *chunk { return &chunk{b: b} }

func (c *chunk) hold() {
	if c.m != nil {
		c.refs.Add(1)
	}
}

func (c *chunk) release() {
	if c.m != nil && c.refs.Add(-1) == 0 {
		c.m.putChunk(c)
	}
}

// Chunks kept for reuse: a few, of a bounded size each, and none while a
// stream mirror has no reader.
const (
	freeChunks    = 8
	keptChunkSize = 1 << 20
)

// getChunk returns an empty chunk of at least n bytes' room, held once
// (by the writer).
func (m *Mirror) getChunk(n int) *chunk {
	var c *chunk
	select {
	case c = <-m.free:
	default:
		c = &chunk{m: m}
	}
	if cap(c.b) < n {
		c.b = make([]byte, 0, max(n, 2*cap(c.b), 64<<10))
	}
	c.b = c.b[:0]
	c.refs.Store(1)
	return c
}

func (m *Mirror) putChunk(c *chunk) {
	if cap(c.b) > keptChunkSize || !m.active.Load() {
		return
	}
	select {
	case m.free <- c:
	default:
	}
}

// dropChunks lets the kept chunks go.
func (m *Mirror) dropChunks() {
	for {
		select {
		case <-m.free:
		default:
			return
		}
	}
}

// New opens the mirror's file or socket and starts its writer.
func New(cfg Config) (*Mirror, error) { return newMirror(cfg, nil) }

// newMirror is New with the output given (tests give slow ones).
func newMirror(cfg Config, out output) (*Mirror, error) {
	m := &Mirror{cfg: cfg, snaplen: cfg.Snaplen, log: cfg.Logger, wake: make(chan struct{}, 1),
		done: make(chan struct{}), ports: make(map[frame.PortID]*portState), free: make(chan *chunk, freeChunks)}
	if m.log == nil {
		m.log = slog.Default()
	}
	if m.snaplen <= 0 || m.snaplen > frame.MaxFrameLimit {
		m.snaplen = frame.MaxFrameLimit
	}
	if cfg.Sink != nil && cfg.Dir == "" {
		cfg.Dir = "in"
	}
	switch cfg.Dir {
	case "", "both":
		m.dirs = 3
	case "in":
		m.dirs = 1
	case "out":
		m.dirs = 2
	default:
		return nil, fmt.Errorf("mirror: dir=%q: want in, out or both", cfg.Dir)
	}
	switch cfg.Format {
	case "", "pcapng":
		m.pcapng = true
	case "pcap":
	default:
		return nil, fmt.Errorf("mirror: format=%q: want pcapng or pcap", cfg.Format)
	}
	size := cfg.Ring
	if size <= 0 {
		size = DefaultRing
	}
	m.ringSize = max(size, 2*m.snaplen)
	if m.pcapng {
		m.hdr = appendSHB(nil)
	} else {
		m.hdr = m.pcap.fileHeader(m.snaplen)
	}
	var err error
	switch {
	case out != nil:
		m.out = out
		m.active.Store(true)
	case cfg.Sink != nil && cfg.File == "" && cfg.Stream == "":
		m.out = discard{}
		m.active.Store(true)
	case cfg.File != "" && cfg.Stream == "":
		m.out, err = newFileOutput(cfg.File, m.hdr, cfg.Rotate, cfg.Keep, cfg.Owner, m.log)
		m.active.Store(true)
	case cfg.Stream != "" && cfg.File == "":
		m.out, err = newStreamOutput(cfg.Stream, cfg.Access, m)
	case cfg.Listener != nil && cfg.File == "":
		m.out = listenStream(cfg.Listener, m)
	default:
		err = errors.New("give one of file=, stream= and port=")
	}
	if err != nil {
		return nil, fmt.Errorf("mirror: %w", err)
	}
	if m.active.Load() { // a file or a sink: it copies from the start
		m.allocRing()
	}
	m.wg.Add(1)
	go m.writer()
	return m, nil
}

// Name describes the mirror in logs.
func (m *Mirror) Name() string {
	switch {
	case m.cfg.File != "":
		return "file " + m.cfg.File
	case m.cfg.Sink != nil:
		return "port " + m.cfg.Sink.Name()
	case m.cfg.Listener != nil:
		return "live " + m.cfg.Listener.Addr().String()
	}
	return "stream " + m.cfg.Stream
}

// discard is the output of a mirror whose frames go to a sink.
type discard struct{}

func (discard) write(*chunk, int, []byte) error { return nil }
func (discard) close([]byte) error              { return nil }

// Active reports whether the mirror copies frames now: a stream mirror
// with no reader does not.
func (m *Mirror) Active() bool { return m.active.Load() }

// allocRing gives the mirror its ring, unless it has one. The caller holds
// m.mu (or is New).
func (m *Mirror) allocRing() {
	if m.ring == nil {
		m.ring = make([]byte, m.ringSize)
		m.recs = make([]record, maxRecords)
	}
}

// releaseRing drops the ring and the frames in it, which no reader is
// left to take. The caller holds m.mu and is the writer goroutine, the
// only reader of the ring outside the lock.
func (m *Mirror) releaseRing() {
	m.ring, m.recs = nil, nil
	m.tail, m.rtail = m.head, m.rhead
	m.dropChunks()
}

// RingBytes is the size of the ring the mirror holds now: 0 while a
// stream mirror has no reader.
func (m *Mirror) RingBytes() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.ring)
}

// Frames implements fabric.Mirror: it copies frames into the ring, or
// counts those that do not fit as dropped. It never blocks on the writer.
// A run of frames shares one timestamp: they came in one read, or go out
// in one write, and the kernel gives no finer time.
func (m *Mirror) Frames(id frame.PortID, name string, dir fabric.Direction, frames [][]byte) {
	if !m.active.Load() || m.dirs&uint8(dir) == 0 || len(frames) == 0 {
		return
	}
	ts := time.Now().UnixNano()
	m.mu.Lock()
	if m.ring == nil { // the last reader has just left
		m.mu.Unlock()
		return
	}
	ps := m.port(id, name)
	if !ps.selected {
		m.mu.Unlock()
		return
	}
	ring := m.ring
	size := uint64(len(ring))
	for _, f := range frames {
		n := min(len(f), m.snaplen)
		ps.seen++
		pos, ok := m.reserve(n)
		if !ok {
			ps.dropped++
			m.stats.Dropped++
			continue
		}
		copy(ring[pos%size:], f[:n])
		m.recs[m.rhead%maxRecords] = record{pos: pos, ts: ts, n: uint32(n), orig: uint32(len(f)), port: ps.idx, dir: dir}
		m.rhead++
	}
	m.mu.Unlock()
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// port returns the state of port id, named name; a new name on a reused id
// is a new port. The caller holds m.mu.
func (m *Mirror) port(id frame.PortID, name string) *portState {
	ps := m.ports[id]
	if ps != nil && ps.name == name {
		return ps
	}
	ps = &portState{id: id, idx: uint32(len(m.all)), name: name, selected: m.selects(name), iface: -1}
	m.ports[id] = ps
	m.all = append(m.all, ps)
	return ps
}

func (m *Mirror) selects(name string) bool {
	if len(m.cfg.Ports) == 0 {
		return true
	}
	for _, p := range m.cfg.Ports {
		if name == p || (!m.cfg.ExactPorts && strings.Contains(name, p)) {
			return true
		}
	}
	return false
}

// reserve finds n contiguous bytes in the ring and a free record. The
// caller holds m.mu.
func (m *Mirror) reserve(n int) (uint64, bool) {
	size := uint64(len(m.ring))
	if m.rhead-m.rtail >= maxRecords {
		return 0, false
	}
	pos := m.head
	if off := pos % size; off+uint64(n) > size {
		pos += size - off // skip the end of the ring: a frame is never split
	}
	if pos+uint64(n)-m.tail > size {
		return 0, false
	}
	m.head = pos + uint64(n)
	return pos, true
}

// Stats returns the mirror's counts.
func (m *Mirror) Stats() Stats {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.stats
}

// Close stops the writer after it wrote everything in the ring, writes the
// statistics and closes the file or the socket and its readers.
func (m *Mirror) Close() error {
	close(m.done)
	m.wg.Wait()
	m.mu.Lock()
	var trailer []byte
	if m.pcapng {
		now := time.Now().UnixNano()
		for _, ps := range m.all {
			if ps.iface >= 0 {
				trailer = appendISB(trailer, uint32(ps.iface), m.started(), now, ps.seen, ps.dropped)
			}
		}
	}
	st := m.stats
	m.mu.Unlock()
	err := m.out.close(trailer)
	m.log.Info("mirror closed", "mirror", m.Name(), "captured", st.Captured, "dropped", st.Dropped)
	return err
}

var startTime = time.Now().UnixNano()

func (m *Mirror) started() int64 { return startTime }

// Drain waits until the writer has handed over every frame captured so far
// (for tests and for a clean stop).
func (m *Mirror) Drain(timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		m.mu.Lock()
		empty := m.counted == m.rhead
		m.mu.Unlock()
		if empty {
			return true
		}
		time.Sleep(5 * time.Millisecond)
	}
	return false
}

// writer drains the ring into the output, in order.
func (m *Mirror) writer() {
	defer m.wg.Done()
	for {
		stop := false
		select {
		case <-m.wake:
		case <-m.done:
			stop = true
		}
		m.drain()
		if stop {
			return
		}
	}
}

// drain encodes what the ring holds and hands it to the output. The ring
// bytes between tail and head belong to the writer until it moves tail.
func (m *Mirror) drain() {
	m.mu.Lock()
	from, to := m.rtail, m.rhead
	all := m.all // ports of records up to to; entries are never changed
	m.mu.Unlock()
	if from == to {
		m.out.write(nil, 0, m.hdr) // readers may have joined
		return
	}
	var c *chunk
	if m.cfg.Sink == nil {
		// Room for the frames, and a block's header, padding and options
		// (under 64 bytes) each.
		var bytes int
		for i := from; i < to; i++ {
			bytes += int(m.recs[i%maxRecords].n) + 64
		}
		c = m.getChunk(bytes)
	}
	end := uint64(0)
	m.frames, m.sent = m.frames[:0], m.sent[:0]
	for i := from; i < to; i++ {
		r := &m.recs[i%maxRecords]
		start := r.pos % uint64(len(m.ring))
		data := m.ring[start : start+uint64(r.n)]
		ps := all[r.port]
		if m.cfg.Sink != nil {
			m.frames = append(m.frames, data)
		} else {
			c.b = m.encode(c.b, r, ps, data)
		}
		m.sent = append(m.sent, ps)
		end = r.pos + uint64(r.n)
	}
	if m.cfg.Sink != nil {
		m.cfg.Sink.WriteFrames(m.frames) // before the ring space is given back
	}
	m.mu.Lock()
	m.tail, m.rtail = end, to
	m.mu.Unlock()
	// An output that could not take the frames (a full disk) has said so
	// once for the episode; here they are counted as dropped, per port too.
	err := m.out.write(c, int(to-from), m.hdr)
	if c != nil {
		c.release()
	}
	m.mu.Lock()
	if err != nil {
		m.stats.Dropped += to - from
		for _, ps := range m.sent {
			ps.dropped++
		}
	} else {
		m.stats.Captured += to - from
	}
	m.counted = to
	m.mu.Unlock()
}

// encode appends one frame, and first the description of its port when the
// output has not seen that port yet.
func (m *Mirror) encode(b []byte, r *record, ps *portState, data []byte) []byte {
	if !m.pcapng {
		return m.pcap.record(b, r.ts, data, int(r.orig))
	}
	if ps.iface < 0 { // only the writer touches iface (Close reads it after the writer stopped)
		ps.iface = m.ifaces
		m.ifaces++
		start := len(b)
		b = appendIDB(b, ps.name, m.snaplen)
		m.hdr = append(m.hdr, b[start:]...)
	}
	dir := uint32(1)
	if r.dir == fabric.DirOut {
		dir = 2
	}
	return appendEPB(b, uint32(ps.iface), r.ts, data, int(r.orig), dir)
}
