package capture

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/gopacket/pcapgo"

	"github.com/umlswitch/umlswitch/fabric"
	"github.com/umlswitch/umlswitch/frame"
	"github.com/umlswitch/umlswitch/internal/peercred"
	"github.com/umlswitch/umlswitch/internal/peercred/peertest"
)

// warnings records the warnings a mirror logs.
type warnings struct {
	mu    sync.Mutex
	lines []string
}

func (w *warnings) Enabled(context.Context, slog.Level) bool { return true }
func (w *warnings) WithAttrs([]slog.Attr) slog.Handler       { return w }
func (w *warnings) WithGroup(string) slog.Handler            { return w }
func (w *warnings) Handle(_ context.Context, r slog.Record) error {
	if r.Level < slog.LevelWarn {
		return nil
	}
	line := r.Message
	r.Attrs(func(a slog.Attr) bool {
		line += " " + a.String()
		return true
	})
	w.mu.Lock()
	w.lines = append(w.lines, line)
	w.mu.Unlock()
	return nil
}

func (w *warnings) get() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.lines...)
}

// fullFile is a file on a disk with room for limit bytes: a write past it
// writes what fits and fails, as a full file system does.
type fullFile struct {
	*os.File
	mu    sync.Mutex
	limit int64 // < 0: no limit
}

func (f *fullFile) WriteAt(b []byte, off int64) (int, error) {
	f.mu.Lock()
	limit := f.limit
	f.mu.Unlock()
	if limit < 0 || off+int64(len(b)) <= limit {
		return f.File.WriteAt(b, off)
	}
	n := 0
	if off < limit {
		n, _ = f.File.WriteAt(b[:limit-off], off)
	}
	return n, &os.PathError{Op: "write", Path: f.Name(), Err: syscall.ENOSPC}
}

func (f *fullFile) setLimit(n int64) {
	f.mu.Lock()
	f.limit = n
	f.mu.Unlock()
}

// A full disk: the frames that do not get written are counted as dropped
// (per port too, in the statistics blocks), the trouble and its end are
// said once each, and once there is room the file goes on from its last
// whole block, with the port first seen meanwhile described before its
// packets.
func TestFileFullDiskDropsAndResumes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cap.pcapng")
	w := &warnings{}
	log := slog.New(w)
	out, err := newFileOutput(path, appendSHB(nil), 0, 0, nil, log)
	if err != nil {
		t.Fatal(err)
	}
	disk := &fullFile{File: out.f.(*os.File), limit: -1}
	out.f, out.wrap = disk, func(f *os.File) fileHandle { return &fullFile{File: f, limit: -1} }
	m, err := newMirror(Config{Logger: log}, out)
	if err != nil {
		t.Fatal(err)
	}
	send := func(port frame.PortID, name string, n int) {
		for i := range n {
			m.Frame(port, name, fabric.DirIn, ether(byte(port), 300+i))
			if !m.Drain(5 * time.Second) {
				t.Fatal("the writer is stuck")
			}
		}
	}
	send(1, "a", 5)
	disk.setLimit(out.size + 500) // one more frame fits, the next in part
	send(1, "a", 10)
	send(2, "b", 10) // b is described in a write that is lost
	st := m.Stats()
	if st.Captured != 6 || st.Dropped != 19 {
		t.Fatalf("while full: %+v, want 6 captured, 19 dropped", st)
	}
	b, _ := os.ReadFile(path)
	if _, pkts, _ := readNg(t, b); len(pkts) != 6 {
		t.Fatalf("while full the file holds %d whole packets, want 6", len(pkts))
	}
	disk.setLimit(-1)
	send(2, "b", 3)
	send(1, "a", 3)
	send(3, "c", 3)
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if st := m.Stats(); st.Captured != 15 || st.Dropped != 19 {
		t.Fatalf("after: %+v, want 15 captured, 19 dropped", st)
	}
	b, _ = os.ReadFile(path)
	ifaces, pkts, drops := readNg(t, b)
	if !equal(ifaces, []string{"a", "b", "c"}) || len(pkts) != 15 {
		t.Fatalf("file: ports %v, %d packets", ifaces, len(pkts))
	}
	for _, p := range pkts {
		if want := byte(p.iface + 1); p.data[11] != want {
			t.Fatalf("a packet of %s on interface %d", []string{"", "a", "b", "c"}[p.data[11]], p.iface)
		}
	}
	if drops[0] != 9 || drops[1] != 10 || drops[2] != 0 {
		t.Fatalf("statistics blocks drop %v, want a:9 b:10 c:0", drops)
	}
	ws := w.get()
	if len(ws) != 2 || !strings.Contains(ws[0], "no space") || !strings.Contains(ws[1], "lost=19") {
		t.Fatalf("warnings %q, want one when writing fails and one when it resumes with lost=19", ws)
	}
}

// tinyFS mounts a 64 KiB tmpfs, for root only.
func tinyFS(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: mounts a small tmpfs to fill")
	}
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=64k,mode=0755"); err != nil {
		t.Fatalf("mount tmpfs (as root): %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
	return dir
}

// A real file system running full, then freed: frames that did not fit
// are dropped, not counted as captured; two warnings; the capture goes on
// afterwards; the file reads whole (pcapgo, tshark) in both formats.
func TestFileSystemFull(t *testing.T) {
	for _, format := range []string{"pcapng", "pcap"} {
		t.Run(format, func(t *testing.T) {
			dir := tinyFS(t)
			ballast := filepath.Join(dir, "ballast")
			if err := os.WriteFile(ballast, make([]byte, 24<<10), 0o600); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, "cap")
			w := &warnings{}
			m := mustNew(t, Config{File: path, Format: format, Logger: slog.New(w)})
			sent := 0
			send := func() {
				m.Frame(0, "a", fabric.DirIn, ether(byte(sent), 200+sent%300))
				sent++
				if !m.Drain(5 * time.Second) {
					t.Fatal("the writer is stuck")
				}
			}
			for m.Stats().Dropped < 50 {
				if sent > 2000 {
					t.Fatalf("64k never filled up: %+v", m.Stats())
				}
				send()
			}
			full := m.Stats()
			checkCapture(t, path, format, int(full.Captured))
			os.Remove(ballast)
			for range 20 {
				send()
			}
			if err := m.Close(); err != nil {
				t.Fatal(err)
			}
			st := m.Stats()
			if st.Captured != full.Captured+20 || st.Captured+st.Dropped != uint64(sent) {
				t.Fatalf("sent %d; when full %+v, at the end %+v: want the 20 sent after freeing space captured", sent, full, st)
			}
			checkCapture(t, path, format, int(st.Captured))
			if ws := w.get(); len(ws) != 2 || !strings.Contains(ws[1], fmt.Sprintf("lost=%d", st.Dropped)) {
				t.Fatalf("warnings %q, want 2, the second with lost=%d", ws, st.Dropped)
			}
		})
	}
}

// checkCapture reads the file through: pcapgo, and tshark where there is
// one, find want whole packets and nothing cut short.
func checkCapture(t *testing.T, path, format string, want int) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	if format == "pcapng" {
		_, pkts, _ := readNg(t, b)
		n = len(pkts)
	} else {
		r, err := pcapgo.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		n = countPackets(t, r)
	}
	if n != want {
		t.Fatalf("%s holds %d packets, want %d", path, n, want)
	}
	if _, err := exec.LookPath("tshark"); err != nil {
		return
	}
	out, err := exec.Command("tshark", "-r", path, "-c", "100000").CombinedOutput()
	if err != nil || bytes.Contains(out, []byte("cut short")) {
		t.Fatalf("tshark -r %s: %v\n%s", path, err, out)
	}
}

// A capture file removed while it is written is made again at its path,
// with its own header, within a couple of seconds, and it is said once. A
// delegated capture's new file is its user's again.
func TestFileRemovedIsMadeAgain(t *testing.T) {
	t.Run("switch", func(t *testing.T) {
		testFileRemoved(t, t.TempDir(), nil)
	})
	t.Run("owner", func(t *testing.T) {
		if os.Geteuid() != 0 {
			t.Skip("needs root: acts as another user")
		}
		pub := filepath.Join(peertest.PublicDir(t, false), "tmp")
		os.Mkdir(pub, 0o777)
		os.Chmod(pub, 0o777|os.ModeSticky)
		testFileRemoved(t, pub, &peercred.Cred{UID: nobodyUID, GID: nobodyUID, Groups: []uint32{nobodyUID}})
	})
}

func testFileRemoved(t *testing.T, dir string, owner *peercred.Cred) {
	path := filepath.Join(dir, "cap.pcapng")
	w := &warnings{}
	m := mustNew(t, Config{File: path, Owner: owner, Logger: slog.New(w)})
	var once sync.Once
	var closeErr error
	closeMirror := func() error {
		once.Do(func() { closeErr = m.Close() })
		return closeErr
	}
	t.Cleanup(func() { closeMirror() })
	i := 0
	send := func() {
		m.Frame(0, "a", fabric.DirIn, ether(byte(i), 100))
		i++
		m.Drain(5 * time.Second)
		time.Sleep(10 * time.Millisecond)
	}
	for range 5 {
		send()
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	removed := i
	deadline := time.Now().Add(10 * time.Second)
	for {
		send()
		if b, err := os.ReadFile(path); err == nil && len(b) > 0 {
			if _, pkts, _ := readNg(t, b); len(pkts) >= 5 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no new file with packets at %s 10s after removing it", path)
		}
	}
	if err := closeMirror(); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	ifaces, pkts, _ := readNg(t, b)
	if !equal(ifaces, []string{"a"}) || len(pkts) == 0 || len(pkts) > i-removed {
		t.Fatalf("new file: ports %v, %d packets of the %d sent after the removal", ifaces, len(pkts), i-removed)
	}
	if mode, st := fileMode(t, path); mode != 0o600 || (owner != nil && st.Uid != owner.UID) {
		t.Fatalf("new file %v uid %d", mode, st.Uid)
	}
	if ws := w.get(); len(ws) != 1 || !strings.Contains(ws[0], "removed") {
		t.Fatalf("warnings %q, want one", ws)
	}
}
