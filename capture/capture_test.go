package capture

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"

	"github.com/umlswitch/umlswitch/fabric"
	"github.com/umlswitch/umlswitch/frame"
)

func ether(tag byte, size int) []byte {
	f := make([]byte, size)
	copy(f, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, tag, 0x88, 0xb5})
	for i := 14; i < size; i++ {
		f[i] = tag
	}
	return f
}

// packet is one EPB as read back: interface, direction flag, lengths.
type packet struct {
	iface, flags uint32
	capLen, orig int
	data         []byte
}

// readNg walks a pcapng file's blocks: interface names in order, packets
// with their epb_flags, and the ISB drop counts per interface. pcapgo's
// reader checks the file as a whole first.
func readNg(t *testing.T, b []byte) (ifaces []string, pkts []packet, drops map[uint32]uint64) {
	t.Helper()
	r, err := pcapgo.NewNgReader(bytes.NewReader(b), pcapgo.DefaultNgReaderOptions)
	if err != nil {
		t.Fatalf("pcapgo: %v", err)
	}
	n := countPackets(t, r)
	drops = map[uint32]uint64{}
	for len(b) >= 12 {
		typ, length := binary.LittleEndian.Uint32(b), binary.LittleEndian.Uint32(b[4:])
		body := b[8 : length-4]
		switch typ {
		case blockIDB:
			ifaces = append(ifaces, string(findOpt(body[8:], optIfName)))
		case blockEPB:
			capLen := int(binary.LittleEndian.Uint32(body[12:]))
			p := packet{iface: binary.LittleEndian.Uint32(body), capLen: capLen,
				orig: int(binary.LittleEndian.Uint32(body[16:])), data: body[20 : 20+capLen]}
			if v := findOpt(body[20+(capLen+3)&^3:], optEPBFlags); len(v) == 4 {
				p.flags = binary.LittleEndian.Uint32(v)
			}
			pkts = append(pkts, p)
		case blockISB:
			if v := findOpt(body[12:], optISBDrop); len(v) == 8 {
				drops[binary.LittleEndian.Uint32(body)] = binary.LittleEndian.Uint64(v)
			}
		}
		b = b[length:]
	}
	if n != len(pkts) {
		t.Fatalf("pcapgo read %d packets, the walk %d", n, len(pkts))
	}
	return ifaces, pkts, drops
}

// countPackets reads every packet, failing on any that is not whole.
func countPackets(t *testing.T, r interface {
	ReadPacketData() ([]byte, gopacket.CaptureInfo, error)
}) int {
	t.Helper()
	n := 0
	for {
		_, _, err := r.ReadPacketData()
		if err == io.EOF {
			return n
		}
		if err != nil {
			t.Fatalf("pcapgo: packet %d: %v", n, err)
		}
		n++
	}
}

func findOpt(b []byte, code uint16) []byte {
	for len(b) >= 4 {
		c, l := binary.LittleEndian.Uint16(b), int(binary.LittleEndian.Uint16(b[2:]))
		if c == optEnd {
			return nil
		}
		if c == code {
			return b[4 : 4+l]
		}
		b = b[4+(l+3)&^3:]
	}
	return nil
}

func mustNew(t *testing.T, cfg Config) *Mirror {
	t.Helper()
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestPcapngPortsDirectionsAndStats(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cap.pcapng")
	m := mustNew(t, Config{File: path})
	m.Frame(0, "daemon#1", fabric.DirIn, ether(1, 60))
	m.Frame(1, "tap lab0", fabric.DirOut, ether(1, 60))
	m.Frame(1, "tap lab0", fabric.DirIn, ether(2, 1514))
	m.Frame(0, "daemon#1", fabric.DirOut, ether(2, 1514))
	m.Frame(0, "daemon#2", fabric.DirIn, ether(3, 100)) // id 0 reused by a new port
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	ifaces, pkts, drops := readNg(t, b)
	if want := []string{"daemon#1", "tap lab0", "daemon#2"}; !equal(ifaces, want) {
		t.Fatalf("interfaces %q, want %q", ifaces, want)
	}
	want := []struct {
		iface, flags uint32
		tag          byte
		size         int
	}{{0, 1, 1, 60}, {1, 2, 1, 60}, {1, 1, 2, 1514}, {0, 2, 2, 1514}, {2, 1, 3, 100}}
	if len(pkts) != len(want) {
		t.Fatalf("%d packets", len(pkts))
	}
	for i, w := range want {
		p := pkts[i]
		if p.iface != w.iface || p.flags != w.flags || p.capLen != w.size || p.orig != w.size || !bytes.Equal(p.data, ether(w.tag, w.size)) {
			t.Errorf("packet %d: iface %d flags %d len %d/%d", i, p.iface, p.flags, p.capLen, p.orig)
		}
	}
	if len(drops) != 3 || drops[0] != 0 {
		t.Fatalf("statistics blocks: %v", drops)
	}
	if st := m.Stats(); st.Captured != 5 || st.Dropped != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestSelectionSnaplenAndPcap(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cap.pcap")
	m := mustNew(t, Config{File: path, Format: "pcap", Snaplen: 20, Ports: []string{"tap", "gre 127"}, Dir: "in"})
	m.Frame(0, "daemon#1", fabric.DirIn, ether(1, 60))      // not a selected port
	m.Frame(1, "tap lab0", fabric.DirOut, ether(2, 60))     // not the selected direction
	m.Frame(1, "tap lab0", fabric.DirIn, ether(3, 1000))    // kept, cut to 20
	m.Frame(2, "gre 127.0.0.2", fabric.DirIn, ether(4, 60)) // kept
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	f, _ := os.Open(path)
	defer f.Close()
	r, err := pcapgo.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	if r.LinkType() != layers.LinkTypeEthernet || r.Snaplen() != 20 {
		t.Fatalf("link type %v snaplen %d", r.LinkType(), r.Snaplen())
	}
	var tags []byte
	for {
		data, ci, err := r.ReadPacketData()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(data) != 20 || ci.CaptureLength != 20 {
			t.Fatalf("captured %d bytes, want the snaplen", len(data))
		}
		tags = append(tags, data[11])
		if data[11] == 3 && ci.Length != 1000 {
			t.Fatalf("original length %d", ci.Length)
		}
	}
	if !bytes.Equal(tags, []byte{3, 4}) {
		t.Fatalf("captured frames %v, want 3 and 4", tags)
	}
}

func TestRotationKeepsTheNewest(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cap.pcapng")
	m := mustNew(t, Config{File: path, Rotate: 4000, Keep: 2})
	for i := range 40 {
		m.Frame(frame.PortID(i%2), []string{"a", "b"}[i%2], fabric.DirIn, ether(byte(i), 500))
		m.Drain(time.Second) // one frame per write, so files fill predictably
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(path + "*")
	if len(files) != 2 {
		t.Fatalf("files %v, want the newest 2", files)
	}
	total := 0
	for _, f := range files {
		b, _ := os.ReadFile(f)
		if len(b) > 4000+600 {
			t.Fatalf("%s is %d bytes", f, len(b))
		}
		ifaces, pkts, _ := readNg(t, b) // every file stands alone: header and interfaces
		if len(ifaces) != 2 || len(pkts) == 0 {
			t.Fatalf("%s: interfaces %q, %d packets", f, ifaces, len(pkts))
		}
		total += len(pkts)
	}
	if _, err := os.Stat(path); err == nil {
		t.Fatal("the oldest file was kept")
	}
	if total >= 40 {
		t.Fatalf("%d packets in the kept files", total)
	}
}

// slowOutput stands for a disk that takes a long time per write.
type slowOutput struct{ writes atomic.Int64 }

func (o *slowOutput) write(v *view, _ int, _ []byte) error {
	if v != nil && len(v.b) > 0 {
		o.writes.Add(1)
		time.Sleep(50 * time.Millisecond)
	}
	return nil
}
func (o *slowOutput) close([]byte) error { return nil }

// A slow output never makes Frame wait: the ring fills, frames are dropped
// and counted, and what was captured is written in order.
func TestSlowOutputDropsInsteadOfBlocking(t *testing.T) {
	m, err := newMirror(Config{Ring: 64 << 10}, &slowOutput{})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for i := range 20000 {
		m.Frame(0, "p", fabric.DirIn, ether(byte(i), 1000))
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("20000 frames took %v: Frame waited for the output", d)
	}
	m.Close()
	st := m.Stats()
	if st.Dropped == 0 || st.Captured == 0 || st.Captured+st.Dropped != 20000 {
		t.Fatalf("stats %+v", st)
	}
}

// Live readers: each gets a whole stream from when it joined; one that
// goes away mid-stream does not disturb the others; with none, nothing is
// copied.
func TestStreamReaders(t *testing.T) {
	path := filepath.Join(t.TempDir(), "live.sock")
	m := mustNew(t, Config{Stream: path})
	m.Frame(0, "p", fabric.DirIn, ether(1, 60))
	if m.Active() || m.Stats().Captured != 0 {
		t.Fatal("copied frames with no reader")
	}
	dial := func() *net.UnixConn {
		c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: path, Net: "unix"})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	a, b := dial(), dial()
	deadline := time.Now().Add(2 * time.Second)
	for !m.Active() && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // let the writer take both readers in
	for i := range 10 {
		m.Frame(frame.PortID(i%3), []string{"x", "y", "z"}[i%3], fabric.DirIn, ether(byte(i), 60))
	}
	m.Drain(time.Second)
	b.Close() // leaves mid-stream
	for i := range 10 {
		m.Frame(0, "x", fabric.DirOut, ether(byte(10+i), 60))
	}
	m.Drain(time.Second)
	m.Close()
	if _, err := os.Stat(path); err == nil {
		t.Fatal("socket file left behind")
	}
	all, err := io.ReadAll(a)
	if err != nil {
		t.Fatal(err)
	}
	ifaces, pkts, _ := readNg(t, all)
	if len(ifaces) != 3 || len(pkts) != 20 {
		t.Fatalf("reader got %d interfaces, %d packets", len(ifaces), len(pkts))
	}
}

// Frame mirrors one frame: Frames with a run of one, as the tests show
// frames.
func (m *Mirror) Frame(id frame.PortID, name string, dir fabric.Direction, f []byte) {
	m.Frames(id, name, dir, [][]byte{f})
}

// A run of frames larger than the buffer keeps its first frames, in order,
// and counts the rest as dropped, in the mirror's counts and in the port's
// statistics block.
func TestRunLargerThanTheRing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cap.pcapng")
	m := mustNew(t, Config{File: path, Snaplen: 100, Ring: 1000})
	run := make([][]byte, 15)
	for i := range run {
		run[i] = ether(byte(i), 100)
	}
	m.Frames(3, "a", fabric.DirIn, run)
	if !m.Drain(5 * time.Second) {
		t.Fatal("not drained")
	}
	st := m.Stats()
	// A 100-byte frame takes 144 bytes as a block: 6 fit, with the port's
	// description.
	if st.Captured != 6 || st.Dropped != 9 {
		t.Fatalf("stats %+v, want 6 captured and 9 dropped", st)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	ifaces, pkts, drops := readNg(t, b)
	if len(ifaces) != 1 || len(pkts) != 6 || drops[0] != 9 {
		t.Fatalf("interfaces %q, %d packets, drops %v", ifaces, len(pkts), drops)
	}
	for i, p := range pkts {
		if p.data[11] != byte(i) || p.flags != 1 {
			t.Fatalf("packet %d: tag %d, flags %d", i, p.data[11], p.flags)
		}
	}
}

// A pass larger than a chunk is handed over in several, and ports first
// seen in any of them are described before their frames, in every file
// when the capture rotates between chunks: each frame's interface is the
// port it crossed, and no file describes a port twice.
func TestPassOfManyChunks(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cap.pcapng")
	m := mustNew(t, Config{File: path, Rotate: chunkSize + chunkSize/2})
	const perPort = 700 // 1000-byte frames: about three chunks per port
	for p := range 4 {
		run := make([][]byte, perPort)
		for i := range run {
			run[i] = ether(byte(p), 1000)
		}
		m.Frames(frame.PortID(p), fmt.Sprintf("port%d", p), fabric.DirIn, run)
	}
	if !m.Drain(5 * time.Second) {
		t.Fatal("not drained")
	}
	if st := m.Stats(); st.Captured != 4*perPort || st.Dropped != 0 {
		t.Fatalf("stats %+v", st)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(path + "*")
	if len(files) < 4 {
		t.Fatalf("files %v, want the capture rotated", files)
	}
	total := 0
	for _, f := range files {
		b, _ := os.ReadFile(f)
		ifaces, pkts, _ := readNg(t, b)
		if len(slices.Compact(slices.Clone(ifaces))) != len(ifaces) {
			t.Fatalf("%s describes a port twice: %q", f, ifaces)
		}
		for _, p := range pkts {
			if int(p.iface) >= len(ifaces) || ifaces[p.iface] != fmt.Sprintf("port%d", p.data[11]) {
				t.Fatalf("%s: a frame of port%d on interface %d of %q", f, p.data[11], p.iface, ifaces)
			}
		}
		total += len(pkts)
	}
	if total != 4*perPort {
		t.Fatalf("%d frames in the files, want %d", total, 4*perPort)
	}
}
