package background

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The test binary is its own child: Start re-executes it, and TestMain
// plays the switch's part, chosen by childMode, instead of running tests.
const (
	childMode = "BACKGROUND_TEST_CHILD"
	childDir  = "BACKGROUND_TEST_DIR"
)

const failText = "listen /nowhere/uml.ctl: permission denied"

// readyDelay is how long the ready child works before Ready: Start must not
// return sooner.
const readyDelay = 300 * time.Millisecond

func TestMain(m *testing.M) {
	if mode := os.Getenv(childMode); mode != "" {
		os.Exit(child(mode, os.Getenv(childDir)))
	}
	os.Exit(m.Run())
}

func child(mode, dir string) int {
	os.WriteFile(filepath.Join(dir, "pid"), []byte(strconv.Itoa(os.Getpid())), 0o644)
	switch mode {
	case "ready":
		if err := checkChild(); err != nil {
			Fail(err)
			return 1
		}
		time.Sleep(readyDelay)
		os.WriteFile(filepath.Join(dir, "before-ready"), nil, 0o644)
		if err := Ready(); err != nil {
			return 1
		}
		time.Sleep(time.Minute) // serving, until the test kills it
	case "fail":
		Fail(errors.New(failText))
		return 1
	case "exit":
		return 3
	case "hang":
		time.Sleep(time.Minute)
	}
	return 0
}

// checkChild checks what Start promises the child.
func checkChild() error {
	if !IsChild() {
		return errors.New("IsChild is false in the child")
	}
	if v, ok := os.LookupEnv(envVar); ok {
		return fmt.Errorf("%s=%q is still set in the child", envVar, v)
	}
	if sid, err := unix.Getsid(0); err != nil || sid != os.Getpid() {
		return fmt.Errorf("not a session leader: sid %d, pid %d, %v", sid, os.Getpid(), err)
	}
	if flags, err := unix.FcntlInt(statusFd, unix.F_GETFD, 0); err != nil || flags&unix.FD_CLOEXEC == 0 {
		return fmt.Errorf("fd 3 would be inherited: flags %#x, %v", flags, err)
	}
	var null unix.Stat_t
	if err := unix.Stat(os.DevNull, &null); err != nil {
		return err
	}
	for fd := 0; fd <= 2; fd++ {
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil || st.Rdev != null.Rdev || st.Mode&unix.S_IFMT != unix.S_IFCHR {
			return fmt.Errorf("fd %d is not /dev/null (%v)", fd, err)
		}
	}
	return nil
}

// startChild runs Start with the child playing mode, and returns how long
// Start took, the child's pid (0 if it wrote none) and Start's error.
func startChild(t *testing.T, mode string, timeout time.Duration) (time.Duration, int, error) {
	t.Helper()
	dir := t.TempDir()
	t.Setenv(childMode, mode)
	t.Setenv(childDir, dir)
	begin := time.Now()
	err := Start(timeout)
	took := time.Since(begin)
	pid := 0
	if b, rerr := os.ReadFile(filepath.Join(dir, "pid")); rerr == nil {
		pid, _ = strconv.Atoi(string(b))
	}
	if pid > 0 {
		t.Cleanup(func() { unix.Kill(pid, unix.SIGKILL) })
	}
	return took, pid, err
}

// gone waits for pid to be reaped (Start's goroutine waits for it).
func gone(pid int, within time.Duration) bool {
	for end := time.Now().Add(within); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		if errors.Is(unix.Kill(pid, 0), unix.ESRCH) {
			return true
		}
	}
	return false
}

func TestReadyReturnsNilOnlyAfterReady(t *testing.T) {
	took, pid, err := startChild(t, "ready", 30*time.Second)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	if _, err := os.Stat(filepath.Join(os.Getenv(childDir), "before-ready")); err != nil {
		t.Errorf("Start returned before the child called Ready: %v", err)
	}
	if took < readyDelay {
		t.Errorf("Start returned after %v, before the child's %v of work", took, readyDelay)
	}
	if pid == 0 || unix.Kill(pid, 0) != nil {
		t.Fatalf("the ready child (pid %d) is not running", pid)
	}
	unix.Kill(pid, unix.SIGKILL)
	if !gone(pid, 10*time.Second) {
		t.Errorf("pid %d still there after SIGKILL", pid)
	}
}

func TestFailCarriesTheChildsError(t *testing.T) {
	_, _, err := startChild(t, "fail", 30*time.Second)
	if err == nil || err.Error() != failText {
		t.Fatalf("Start = %v, want %q", err, failText)
	}
}

func TestExitWithoutReady(t *testing.T) {
	_, _, err := startChild(t, "exit", 30*time.Second)
	if err == nil || !strings.Contains(err.Error(), "exited before it was ready") || !strings.Contains(err.Error(), "exit status 3") {
		t.Fatalf("Start = %v, want the child's exit status 3", err)
	}
}

func TestTimeoutKillsTheChild(t *testing.T) {
	const timeout = 2 * time.Second
	took, pid, err := startChild(t, "hang", timeout)
	if err == nil || !strings.Contains(err.Error(), "not ready within") {
		t.Fatalf("Start = %v, want a timeout", err)
	}
	if took < timeout {
		t.Errorf("Start gave up after %v, before its %v", took, timeout)
	}
	if pid == 0 {
		t.Fatal("the child never wrote its pid")
	}
	// Start waited for the killed child: it is gone, not a zombie.
	if err := unix.Kill(pid, 0); !errors.Is(err, unix.ESRCH) {
		t.Errorf("kill(%d, 0) = %v after the timeout, want ESRCH", pid, err)
	}
}

func TestNoOpsOutsideTheChild(t *testing.T) {
	if IsChild() {
		t.Fatal("IsChild in the test process")
	}
	if err := Ready(); err != nil {
		t.Errorf("Ready outside the child = %v", err)
	}
	Fail(errors.New("ignored"))
}
