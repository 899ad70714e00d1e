package configs

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A FIFO at the configuration's path is refused at once: opening it for
// reading would wait for a writer, and reading it would wait for data.
func TestReadFileRefusesFIFO(t *testing.T) {
	p := filepath.Join(t.TempDir(), "umlswitch.yaml")
	if err := syscall.Mkfifo(p, 0o600); err != nil {
		t.Fatal(err)
	}
	err := readWithin(t, p)
	if err == nil || !strings.Contains(err.Error(), "not a regular file (a FIFO)") {
		t.Fatalf("ReadFile(FIFO) = %v", err)
	}
}

func TestReadFileRefusesDirectoryAndDevice(t *testing.T) {
	for _, p := range []string{t.TempDir(), "/dev/zero"} {
		if err := readWithin(t, p); err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Errorf("ReadFile(%s) = %v", p, err)
		}
	}
}

func TestReadFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "umlswitch.yaml")
	os.WriteFile(p, []byte("mtu: 1500\n"), 0o644)
	data, err := ReadFile(p)
	if err != nil || string(data) != "mtu: 1500\n" {
		t.Fatalf("ReadFile = %q, %v", data, err)
	}
	if _, err := ReadFile(filepath.Join(t.TempDir(), "none")); !os.IsNotExist(err) {
		t.Fatalf("missing file: %v", err)
	}
}

// readWithin reads p, failing the test if that does not return soon.
func readWithin(t *testing.T, p string) error {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		_, err := ReadFile(p)
		done <- err
	}()
	select {
	case err := <-done:
		return err
	case <-time.After(10 * time.Second):
		t.Fatalf("ReadFile(%s) hangs", p)
		return nil
	}
}
