package handover

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestMain makes the test binary the new switch when it is started as one.
func TestMain(m *testing.M) {
	if Upgrading() {
		os.Exit(newSwitch())
	}
	os.Exit(m.Run())
}

// newSwitch takes the listener over, answers one client on it, and says
// ready, or fails as told.
func newSwitch() int {
	if _, err := Adopt(); err != nil {
		return 2
	}
	if os.Getenv("HANDOVER_TEST_FAIL") != "" {
		Failed(errors.New("the test says no"))
		return 1
	}
	it, ok := Take(Listener, "test")
	if !ok {
		Failed(errors.New("no listener handed over"))
		return 1
	}
	ln, err := net.FileListener(it.File)
	if err != nil {
		Failed(err)
		return 1
	}
	Ready()
	c, err := ln.Accept()
	if err != nil {
		return 1
	}
	c.Write([]byte("new\n"))
	c.Close()
	return 0
}

// A listener handed over keeps its address, and its queue: the new process
// answers on it, and the old one's copy still works until it lets go. A
// new process that says no leaves the old one as it was.
func TestHandOverAListener(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false) // the new process serves it after the old closes its copy
	defer ln.Close()
	start := func() (int, error) {
		f, err := Dup(ln, "test listener")
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		return Start(os.Args[0], []string{"-test.run=^$"}, []Item{{Kind: Listener, Key: "test", File: f}}, 10*time.Second, os.Stderr)
	}
	t.Setenv("HANDOVER_TEST_FAIL", "1")
	if _, err := start(); err == nil || !strings.Contains(err.Error(), "the test says no") {
		t.Fatalf("a new switch that fails: %v", err)
	}
	// The old listener is still non-blocking and served: an accept with a
	// deadline returns.
	ln.SetDeadline(time.Now().Add(50 * time.Millisecond))
	if _, err := ln.Accept(); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("the old listener after a failed hand-over: %v", err)
	}
	ln.SetDeadline(time.Time{})

	t.Setenv("HANDOVER_TEST_FAIL", "")
	os.Unsetenv("HANDOVER_TEST_FAIL")
	pid, err := start()
	if err != nil || pid <= 0 {
		t.Fatalf("hand-over: pid %d, %v", pid, err)
	}
	ln.Close() // the old switch lets go; the new one has the socket
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 16)
	n, _ := c.Read(buf)
	if string(buf[:n]) != "new\n" {
		t.Fatalf("answered %q, want the new process's", buf[:n])
	}
}

// A new binary that exits without reading the list is reported as ended,
// with its exit status, however far the old switch got in writing: the
// list here is larger than a socket buffer, so the write meets a closed
// peer.
func TestNewSwitchThatExitsAtOnce(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "broken")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\nexit 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	big := []byte(`"` + strings.Repeat("x", 4<<20) + `"`)
	for i := 0; i < 3; i++ {
		_, err := Start(bin, nil, []Item{{Kind: "test", Key: "big", Meta: big}}, 10*time.Second, os.Stderr)
		if err == nil || !strings.Contains(err.Error(), "ended before it served: exit status 3") {
			t.Fatalf("a new switch that exits at once: %v", err)
		}
	}
}
