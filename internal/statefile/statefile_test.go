package statefile

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// Nothing is written before Start; changes close together are written
// once; Stop(true) writes the last state, Stop(false) nothing; a nil
// render removes the file.
func TestSaver(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.state")
	var renders atomic.Int32
	content := []byte("one\n")
	s, err := Open(path, -1, 20*time.Millisecond, slog.New(slog.NewTextHandler(io.Discard, nil)), "lost",
		func() []byte { renders.Add(1); return content })
	if err != nil {
		t.Fatal(err)
	}
	s.Soon()
	time.Sleep(50 * time.Millisecond)
	if _, err := os.Stat(path); !os.IsNotExist(err) || renders.Load() != 0 {
		t.Fatalf("written before Start: %v, %d renders", err, renders.Load())
	}
	s.Start()
	for range 100 {
		s.Soon()
	}
	deadline := time.Now().Add(5 * time.Second)
	for renders.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	if n := renders.Load(); n != 1 {
		t.Fatalf("100 changes at once written %d times, want 1", n)
	}
	if b, err := s.Read(100); err != nil || string(b) != "one\n" {
		t.Fatalf("read back %q, %v", b, err)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", st.Mode())
	}
	content = nil
	s.Now()
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("a nil state left the file: %v", err)
	}
	content = []byte("two\n")
	s.Stop(false)
	s.Soon()
	s.Now()
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("written after Stop: %v", err)
	}
}
