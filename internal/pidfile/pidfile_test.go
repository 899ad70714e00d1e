package pidfile

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func mine() string { return strconv.Itoa(os.Getpid()) + "\n" }

func contents(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// deadPid is the pid of a process that has exited and been reaped.
func deadPid(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	return cmd.Process.Pid
}

// livePid is the pid of a process that runs until the test ends.
func livePid(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd.Process.Pid
}

func TestWriteNew(t *testing.T) {
	defer unix.Umask(unix.Umask(0o022))
	path := filepath.Join(t.TempDir(), "uml.ctl.pid")
	f, err := Write(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := contents(t, path); got != mine() {
		t.Errorf("file holds %q, want %q", got, mine())
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o644 {
		t.Errorf("mode %v", fi.Mode())
	}
	// Not kept open: no fd of ours points at it.
	fds, _ := os.ReadDir("/proc/self/fd")
	for _, fd := range fds {
		if target, _ := os.Readlink(filepath.Join("/proc/self/fd", fd.Name())); strings.Contains(target, path) {
			t.Errorf("fd %s still open on %s", fd.Name(), target)
		}
	}
	if f.Path() != path {
		t.Errorf("Path() = %q", f.Path())
	}
}

func TestReplacesStale(t *testing.T) {
	for name, old := range map[string]string{
		"dead pid": strconv.Itoa(deadPid(t)) + "\n",
		"empty":    "",
		"our pid":  mine(), // ours cannot be another switch's
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "sw.pid")
			os.WriteFile(path, []byte(old), 0o644)
			if _, err := Write(path); err != nil {
				t.Fatalf("Write over %q: %v", old, err)
			}
			if got := contents(t, path); got != mine() {
				t.Errorf("file holds %q, want %q", got, mine())
			}
		})
	}
}

func TestRefusesLive(t *testing.T) {
	pid := livePid(t)
	path := filepath.Join(t.TempDir(), "sw.pid")
	old := strconv.Itoa(pid) + "\n"
	os.WriteFile(path, []byte(old), 0o644)
	_, err := Write(path)
	if err == nil || !strings.Contains(err.Error(), "pid "+strconv.Itoa(pid)+",") || !strings.Contains(err.Error(), "running") {
		t.Fatalf("Write over a live pid = %v, want an error naming pid %d", err, pid)
	}
	if got := contents(t, path); got != old {
		t.Errorf("the live switch's file now holds %q", got)
	}
}

func TestRefusesNotAPidFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "precious")
	os.WriteFile(path, []byte("root:x:0:0\n"), 0o644)
	if _, err := Write(path); err == nil || !strings.Contains(err.Error(), "does not hold a pid") {
		t.Fatalf("Write over another file = %v", err)
	}
	if got := contents(t, path); got != "root:x:0:0\n" {
		t.Errorf("file now holds %q", got)
	}
}

func TestWriteInAMissingDirectory(t *testing.T) {
	if _, err := Write(filepath.Join(t.TempDir(), "no", "such", "sw.pid")); err == nil || !strings.HasPrefix(err.Error(), "pidfile: ") {
		t.Fatalf("Write in a missing directory = %v", err)
	}
}

func TestRemove(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sw.pid")
	f, err := Write(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Remove(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("file still there after Remove: %v", err)
	}
	if err := f.Remove(); err != nil {
		t.Errorf("second Remove = %v", err)
	}
	var none *File
	if err := none.Remove(); err != nil {
		t.Errorf("nil Remove = %v", err)
	}
}

// A file another switch has taken over (ours was removed and it wrote its
// own) is not ours to remove.
func TestRemoveLeavesAnothersFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sw.pid")
	f, err := Write(path)
	if err != nil {
		t.Fatal(err)
	}
	other := strconv.Itoa(livePid(t)) + "\n"
	os.WriteFile(path, []byte(other), 0o644)
	if err := f.Remove(); err != nil {
		t.Fatal(err)
	}
	if got := contents(t, path); got != other {
		t.Errorf("Remove touched another's file: it holds %q", got)
	}
}
