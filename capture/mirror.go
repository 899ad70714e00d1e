// Package capture is the switch's mirror: it encodes frames that cross the
// switch as pcapng (or pcap) blocks into a bounded buffer, and one writer
// goroutine hands what was encoded to a file, rotated by size, or to live
// readers on a unix socket. Forwarding never waits for it: a frame that
// does not fit the buffer is dropped from the capture and counted, per
// port, and the counts go into the pcapng statistics blocks.
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
	Ring       int    // bytes of encoded frames buffered between the switch and the writer
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

// Stats counts a mirror's frames.
type Stats struct {
	Captured uint64 // written (or handed to every reader)
	Dropped  uint64 // refused because the buffer was full, or lost by a file that could not be written
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

	mu sync.Mutex // producers: the buffer, the port table, the header
	// cur is where frames are encoded, block after block; once full it
	// joins ready, and a new chunk takes its place. The writer takes the
	// ready chunks and cur on each pass. cur is nil while a stream mirror
	// has no reader, so that an idle stream mirror holds no buffer.
	cur   *chunk
	ready []*chunk
	// queued is the bytes encoded and not yet handed over: in cur, in
	// ready and in the chunks the writer is handing to the output. It is
	// at most ringSize; a frame that would pass it is dropped.
	queued   int
	ringSize int
	readers  int // live readers joining or served
	ports    map[frame.PortID]*portState
	all      []*portState // every port seen, for the statistics blocks
	stats    Stats
	// accepted frames were encoded; counted ones were counted captured
	// or dropped by the writer (or let go with the buffer).
	accepted, counted uint64
	// hdr is the header every new file or reader starts with: for
	// pcapng, the section header and the description of every port
	// seen so far. Only appended to, so a copy of the slice taken under
	// mu stays valid.
	hdr    []byte
	ifaces int // pcapng interfaces numbered
	shown  int // of them, those described in what the writer has handed over
	pcap   pcapEncoder

	wake chan struct{}
	done chan struct{}
	wg   sync.WaitGroup
	out  output

	// The writer's: the chunks that filled up and the views of one pass,
	// and the frames of one view for a sink.
	pass   []*chunk
	views  []view
	frames [][]byte
	// free holds chunks given back, for cur, of freeBytes in all.
	free      chan *chunk
	freeBytes atomic.Int64
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
	iface    int // pcapng interface number, -1 before the port is described
}

// output is what the writer goroutine hands encoded bytes to. hdr is what
// a new file or a new reader must get first, as of the end of v; a reader
// that joins and is sent v needs only hdr[:v.hdrBefore]. v (nil when
// there is nothing new) is the writer's until write returns: an output
// that keeps its bytes for later holds them. write fails only when the
// frames are lost, and the output has said why itself (once, not per
// chunk).
type output interface {
	write(v *view, frames int, hdr []byte) error
	close(trailer []byte) error
}

// chunk is frames encoded as they came, up to chunkSize bytes. Each
// writer pass hands what was added since the last one to the output, as
// a view of the chunk, until the chunk is full and the next one starts.
// Live readers queue views and write them later, each with a hold on the
// chunk; the last to let go gives it back to its mirror for reuse. (A new
// buffer each pass, at full rate a hundred megabytes a second, made the
// collector run so often that its scans of the program's globals alone
// took 3 % of the switch's core.)
type chunk struct {
	b     []byte
	ports []uint32 // each frame's port, in Mirror.all: to count them if the output loses them
	sizes []uint32 // for a sink, each frame's length: b holds the frames as they are
	// handed bytes of b, and frames, went to the writer; the mirror's
	// header was hdrCut long then, and is hdrEnd long as of the end of b
	// (a port described in the chunk adds to both).
	handed, handedFrames int
	hdrCut, hdrEnd       int
	refs                 atomic.Int32
	m                    *Mirror
}

// view is the part of a chunk one writer pass hands over, or bytes of no
// chunk (a header, a trailer). Its frames describe the ports the mirror's
// header gained from hdrBefore to hdrAfter.
type view struct {
	c                   *chunk // nil: b is not part of a chunk
	b                   []byte
	ports, sizes        []uint32
	hdrBefore, hdrAfter int
}

func (v *view) hold() {
	if v.c != nil {
		v.c.hold()
	}
}

func (v *view) release() {
	if v.c != nil {
		v.c.release()
	}
}

func (c *chunk) hold() { c.refs.Add(1) }

func (c *chunk) release() {
	if c.refs.Add(-1) == 0 {
		c.m.putChunk(c)
	}
}

// A chunk's room: frames are never copied again to grow one (a block
// that does not fit starts the next chunk). Chunks are kept for reuse up
// to the buffer's size in all, and none while a stream mirror has no
// reader.
const (
	chunkSize      = 256 << 10
	freeChunks     = readerQueue
	chunkFramesCap = 2048
)

// getChunk returns an empty chunk, held once (by the mirror, as cur). The
// caller holds m.mu (or is New).
func (m *Mirror) getChunk() *chunk {
	var c *chunk
	select {
	case c = <-m.free:
		m.freeBytes.Add(-int64(cap(c.b)))
	default:
		c = &chunk{m: m, b: make([]byte, 0, min(chunkSize, m.ringSize)), ports: make([]uint32, 0, chunkFramesCap)}
	}
	c.b, c.ports, c.sizes = c.b[:0], c.ports[:0], c.sizes[:0]
	c.handed, c.handedFrames = 0, 0
	c.hdrCut, c.hdrEnd = len(m.hdr), len(m.hdr)
	c.refs.Store(1)
	return c
}

func (m *Mirror) putChunk(c *chunk) {
	n := int64(cap(c.b))
	if !m.active.Load() || m.freeBytes.Add(n) > int64(m.ringSize) {
		m.freeBytes.Add(-n)
		return
	}
	select {
	case m.free <- c:
	default:
		m.freeBytes.Add(-n)
	}
}

// dropChunks lets the kept chunks go.
func (m *Mirror) dropChunks() {
	for {
		select {
		case c := <-m.free:
			m.freeBytes.Add(-int64(cap(c.b)))
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
	m.ringSize = max(size, 2*(m.snaplen+maxBlockOverhead))
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
		m.startBuffer()
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

func (discard) write(*view, int, []byte) error { return nil }
func (discard) close([]byte) error             { return nil }

// Active reports whether the mirror copies frames now: a stream mirror
// with no reader does not.
func (m *Mirror) Active() bool { return m.active.Load() }

// startBuffer gives the mirror a chunk to encode into, unless it has one.
// The caller holds m.mu (or is New).
func (m *Mirror) startBuffer() {
	if m.cur == nil {
		m.cur = m.getChunk()
	}
}

// nextChunk puts cur, full, with those the writer is yet to finish, and
// starts a new one. The caller holds m.mu.
func (m *Mirror) nextChunk() *chunk {
	m.ready = append(m.ready, m.cur)
	m.cur = m.getChunk() // from those kept, once the mirror has run a while
	return m.cur
}

// dropBuffer lets go of the frames encoded and not handed over, which no
// reader is left to take, and of the kept chunks. The caller holds m.mu.
func (m *Mirror) dropBuffer() {
	if m.cur != nil {
		m.ready = append(m.ready, m.cur)
		m.cur = nil
	}
	for _, c := range m.ready {
		m.queued -= len(c.b) - c.handed
		m.counted += uint64(len(c.ports) - c.handedFrames)
		c.release()
	}
	clear(m.ready)
	m.ready = m.ready[:0]
	m.dropChunks()
}

// RingBytes is the most the mirror buffers between forwarding and the
// writer now: 0 while a stream mirror has no reader.
func (m *Mirror) RingBytes() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cur == nil {
		return 0
	}
	return m.ringSize
}

// Frames implements fabric.Mirror: it encodes frames into the buffer, or
// counts those that do not fit as dropped. It never blocks on the writer.
// A run of frames shares one timestamp: they came in one read, or go out
// in one write, and the kernel gives no finer time.
func (m *Mirror) Frames(id frame.PortID, name string, dir fabric.Direction, frames [][]byte) {
	if !m.active.Load() || m.dirs&uint8(dir) == 0 || len(frames) == 0 {
		return
	}
	ts := time.Now().UnixNano()
	m.mu.Lock()
	c := m.cur
	if c == nil { // the last reader has just left
		m.mu.Unlock()
		return
	}
	ps := m.port(id, name)
	if !ps.selected {
		m.mu.Unlock()
		return
	}
	sink := m.cfg.Sink != nil
	if m.pcapng && !sink && ps.iface < 0 {
		m.describe(c, ps)
	}
	for _, f := range frames {
		n := min(len(f), m.snaplen)
		ps.seen++
		if m.queued+n+maxBlockOverhead > m.ringSize {
			ps.dropped++
			m.stats.Dropped++
			continue
		}
		if len(c.b)+n+maxBlockOverhead > cap(c.b) && len(c.b) > 0 {
			c = m.nextChunk()
		}
		before := len(c.b)
		switch {
		case sink: // the frames as they are
			c.b = append(c.b, f[:n]...)
			c.sizes = append(c.sizes, uint32(n))
		case m.pcapng:
			c.b = appendEPB(c.b, uint32(ps.iface), ts, f[:n], len(f), uint32(dir))
		default:
			c.b = m.pcap.record(c.b, ts, f[:n], len(f))
		}
		m.queued += len(c.b) - before
		c.ports = append(c.ports, ps.idx)
		m.accepted++
	}
	m.mu.Unlock()
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// describe numbers ps as the next pcapng interface and appends its
// description to the header and to c, before its first frame. The caller
// holds m.mu.
func (m *Mirror) describe(c *chunk, ps *portState) {
	ps.iface = m.ifaces
	m.ifaces++
	start := len(m.hdr)
	m.hdr = appendIDB(m.hdr, ps.name, m.snaplen)
	c.b = append(c.b, m.hdr[start:]...)
	c.hdrEnd = len(m.hdr)
	m.queued += len(m.hdr) - start
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

// Stats returns the mirror's counts.
func (m *Mirror) Stats() Stats {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.stats
}

// Close stops the writer after it wrote everything buffered, writes the
// statistics and closes the file or the socket and its readers.
func (m *Mirror) Close() error {
	close(m.done)
	m.wg.Wait()
	m.mu.Lock()
	var trailer []byte
	if m.pcapng {
		now := time.Now().UnixNano()
		for _, ps := range m.all {
			if ps.iface >= 0 && ps.iface < m.shown { // not one described after the writer's last pass
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
		empty := m.counted == m.accepted
		m.mu.Unlock()
		if empty {
			return true
		}
		time.Sleep(5 * time.Millisecond)
	}
	return false
}

// writer hands what is encoded to the output, in order.
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

// drain hands what was encoded since its last pass to the output: the
// rest of each chunk that filled up, and what cur gained.
func (m *Mirror) drain() {
	m.mu.Lock()
	m.views = m.views[:0]
	for _, c := range m.ready {
		if len(c.b) > c.handed {
			m.views = append(m.views, m.cut(c))
		}
	}
	m.pass, m.ready = m.ready, m.pass[:0] // full: the mirror's holds on them go once they are handed
	if c := m.cur; c != nil && len(c.b) > c.handed {
		m.views = append(m.views, m.cut(c))
	}
	hdr, all := m.hdr, m.all // all: the ports of the views' frames, never changed
	m.shown = m.ifaces
	m.mu.Unlock()
	if len(m.views) == 0 {
		m.out.write(nil, 0, hdr) // readers may have joined
	}
	for i := range m.views {
		m.hand(&m.views[i], hdr, all)
	}
	clear(m.views)
	for _, c := range m.pass {
		c.release()
	}
	clear(m.pass)
}

// cut returns, held, the view of what c gained since the last pass. The
// caller holds m.mu.
func (m *Mirror) cut(c *chunk) view {
	v := view{c: c, b: c.b[c.handed:len(c.b):len(c.b)], ports: c.ports[c.handedFrames:len(c.ports):len(c.ports)],
		hdrBefore: c.hdrCut, hdrAfter: c.hdrEnd}
	if m.cfg.Sink != nil {
		v.sizes = c.sizes[c.handedFrames:len(c.sizes):len(c.sizes)]
	}
	c.handed, c.handedFrames, c.hdrCut = len(c.b), len(c.ports), c.hdrEnd
	c.hold()
	return v
}

// hand gives v to the output, counts its frames and lets go of it.
func (m *Mirror) hand(v *view, hdr []byte, all []*portState) {
	frames := len(v.ports)
	if m.cfg.Sink != nil {
		m.frames = m.frames[:0]
		b := v.b
		for _, n := range v.sizes {
			m.frames = append(m.frames, b[:n:n])
			b = b[n:]
		}
		m.cfg.Sink.WriteFrames(m.frames)
		clear(m.frames)
	}
	// An output that could not take the frames (a full disk) has said so
	// once for the episode; here they are counted as dropped, per port too.
	err := m.out.write(v, frames, hdr)
	m.mu.Lock()
	m.queued -= len(v.b)
	if err != nil {
		m.stats.Dropped += uint64(frames)
		for _, i := range v.ports {
			all[i].dropped++
		}
	} else {
		m.stats.Captured += uint64(frames)
	}
	m.counted += uint64(frames)
	m.mu.Unlock()
	v.release()
}
