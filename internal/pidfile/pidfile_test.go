package pidfile

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

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

// Another process holding a lock on the pid file's directory (anyone who
// can read /run or /tmp can) does not keep Write waiting.
func TestDirectoryLockDoesNotBlock(t *testing.T) {
	dir := t.TempDir()
	holder := exec.Command("flock", "-s", dir, "sleep", "30")
	if err := holder.Start(); err != nil {
		t.Skipf("flock(1): %v", err)
	}
	t.Cleanup(func() { holder.Process.Kill(); holder.Wait() })
	waitLocked(t, dir)
	done := make(chan error, 1)
	go func() { _, err := Write(filepath.Join(dir, "sw.pid")); done <- err }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Write waited for a lock on the directory")
	}
}

// waitLocked waits until some process holds a flock on path.
func waitLocked(t *testing.T, path string) {
	t.Helper()
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	for i := 0; i < 200; i++ {
		if unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB) == unix.EWOULDBLOCK {
			return
		}
		unix.Flock(fd, unix.LOCK_UN)
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("nothing locked %s", path)
}

// The lock file is gone once Write returns, and is not the pid file kept
// open.
func TestLockFileRemoved(t *testing.T) {
	dir := t.TempDir()
	if _, err := Write(filepath.Join(dir, "sw.pid")); err != nil {
		t.Fatal(err)
	}
	names, _ := os.ReadDir(dir)
	if len(names) != 1 || names[0].Name() != "sw.pid" {
		t.Fatalf("directory holds %v, want sw.pid alone", names)
	}
}

// A lock held for longer than a write takes is waited for a few seconds at
// most, and the error names the holder.
func TestLockHeldTooLong(t *testing.T) {
	defer func(d time.Duration) { lockWait = d }(lockWait)
	lockWait = 300 * time.Millisecond
	path := filepath.Join(t.TempDir(), "sw.pid")
	os.WriteFile(path+".lock", nil, 0o600)
	holder := exec.Command("flock", "-x", path+".lock", "sleep", "30")
	if err := holder.Start(); err != nil {
		t.Skipf("flock(1): %v", err)
	}
	t.Cleanup(func() { holder.Process.Kill(); holder.Wait() })
	waitLocked(t, path+".lock")
	start := time.Now()
	_, err := Write(path)
	if err == nil || !strings.Contains(err.Error(), "locked by pid "+strconv.Itoa(holder.Process.Pid)) {
		t.Fatalf("Write under a held lock = %v, want an error naming pid %d", err, holder.Process.Pid)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Write took %v", d)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("the pid file was written without the lock: %v", err)
	}
}

// Writers of one pid file take turns: of many at once, exactly one wins
// (the others see its live pid), and no lock file is left.
func TestConcurrentWriters(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sw.pid")
	const n = 8
	cmds := make([]*exec.Cmd, n)
	outs := make([]*strings.Builder, n)
	for i := range cmds {
		outs[i] = new(strings.Builder)
		cmds[i] = exec.Command(os.Args[0], "-test.run=^TestHelperWriter$")
		cmds[i].Env = append(os.Environ(), "PIDFILE_HELPER="+path)
		cmds[i].Stdout, cmds[i].Stderr = outs[i], outs[i]
		if err := cmds[i].Start(); err != nil {
			t.Fatal(err)
		}
	}
	won := 0
	for i, c := range cmds {
		c.Wait()
		if strings.Contains(outs[i].String(), "WROTE") {
			won++
		} else if !strings.Contains(outs[i].String(), "still running") {
			t.Errorf("writer %d: %s", i, outs[i])
		}
	}
	if won != 1 {
		t.Errorf("%d writers won, want 1", won)
	}
	names, _ := os.ReadDir(dir)
	for _, e := range names {
		if e.Name() != "sw.pid" {
			t.Errorf("left behind: %s", e.Name())
		}
	}
}

// TestHelperWriter is one of TestConcurrentWriters' writers: it writes the
// pid file and stays alive a while, so that the others see a live pid.
func TestHelperWriter(t *testing.T) {
	path := os.Getenv("PIDFILE_HELPER")
	if path == "" {
		t.Skip("helper of TestConcurrentWriters")
	}
	if _, err := Write(path); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("WROTE")
	time.Sleep(time.Second)
}

// A lock file planted by another user (a symbolic link, someone else's
// file, a FIFO) is refused at once, never followed or waited on.
func TestPlantedLockFileRefused(t *testing.T) {
	cases := []struct {
		name  string
		plant func(t *testing.T, lock string)
		want  string
	}{
		{"symlink", func(t *testing.T, lock string) {
			target := filepath.Join(filepath.Dir(lock), "target")
			os.WriteFile(target, []byte("precious\n"), 0o644)
			if err := os.Symlink(target, lock); err != nil {
				t.Fatal(err)
			}
		}, "symbolic link"},
		{"fifo", func(t *testing.T, lock string) {
			if err := unix.Mkfifo(lock, 0o600); err != nil {
				t.Fatal(err)
			}
		}, "not a plain file"},
		{"another uid", func(t *testing.T, lock string) {
			if os.Geteuid() != 0 {
				t.Skip("chown needs root")
			}
			os.WriteFile(lock, nil, 0o666)
			if err := os.Chown(lock, 65534, 65534); err != nil {
				t.Fatal(err)
			}
		}, "belongs to uid 65534"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "sw.pid")
			c.plant(t, path+".lock")
			start := time.Now()
			_, err := Write(path)
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "pidfile: ") {
				t.Fatalf("Write with a planted lock file = %v, want %q", err, c.want)
			}
			if d := time.Since(start); d > time.Second {
				t.Errorf("refusing took %v", d)
			}
			if _, err := os.Lstat(path); !os.IsNotExist(err) {
				t.Errorf("pid file written anyway: %v", err)
			}
			if b, err := os.ReadFile(filepath.Join(dir, "target")); err == nil && string(b) != "precious\n" {
				t.Errorf("the link's target now holds %q", b)
			}
		})
	}
}

// A planted lock file owned by another user in a sticky world-writable
// directory, as in /tmp, where the kernel may refuse even to open it
// (protected_regular), is refused with the same clear error.
func TestPlantedLockFileInStickyDirectory(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("chown needs root")
	}
	dir := t.TempDir()
	os.Chmod(dir, 0o777|os.ModeSticky)
	path := filepath.Join(dir, "sw.pid")
	os.WriteFile(path+".lock", nil, 0o666)
	if err := os.Chown(path+".lock", 65534, 65534); err != nil {
		t.Fatal(err)
	}
	if _, err := Write(path); err == nil || !strings.Contains(err.Error(), "belongs to uid 65534") {
		t.Fatalf("Write = %v", err)
	}
}

// A symbolic link planted at the pid file is not read through: its
// target is not named in errors, and Remove leaves it alone.
func TestPidFileSymlinkNotFollowed(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	os.WriteFile(target, []byte(strconv.Itoa(livePid(t))+"\n"), 0o644)
	path := filepath.Join(dir, "sw.pid")
	os.Symlink(target, path)
	if _, err := Write(path); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Fatalf("Write over a symbolic link = %v", err)
	}
}

// The old switch of a failed upgrade reclaims the file the new one took
// over and died with, and one that is gone; a live process's it leaves.
func TestReclaim(t *testing.T) {
	path := filepath.Join(t.TempDir(), "uml.ctl.pid")
	if err := os.WriteFile(path, []byte(strconv.Itoa(deadPid(t))+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Reclaim(path); err != nil || contents(t, path) != mine() {
		t.Fatalf("a dead pid's file: %v, %q", err, contents(t, path))
	}
	os.Remove(path)
	if err := Reclaim(path); err != nil || contents(t, path) != mine() {
		t.Fatalf("no file: %v, %q", err, contents(t, path))
	}
	live := strconv.Itoa(livePid(t)) + "\n"
	os.WriteFile(path, []byte(live), 0o644)
	if err := Reclaim(path); err != nil || contents(t, path) != live {
		t.Fatalf("a live pid's file: %v, %q", err, contents(t, path))
	}
}
