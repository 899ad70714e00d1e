package sdnotify

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// listen is a unix datagram socket standing in for systemd's.
func listen(t *testing.T, name string) *net.UnixConn {
	t.Helper()
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func recv(t *testing.T, c *net.UnixConn) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b := make([]byte, 256)
	n, err := c.Read(b)
	if err != nil {
		t.Fatal(err)
	}
	return string(b[:n])
}

func TestNotifyPath(t *testing.T) {
	path := filepath.Join(t.TempDir(), "notify")
	c := listen(t, path)
	t.Setenv("NOTIFY_SOCKET", path)
	if err := Ready(); err != nil {
		t.Fatal(err)
	}
	if got := recv(t, c); got != "READY=1" {
		t.Errorf("got %q, want READY=1", got)
	}
	if err := Stopping(); err != nil {
		t.Fatal(err)
	}
	if got := recv(t, c); got != "STOPPING=1" {
		t.Errorf("got %q, want STOPPING=1", got)
	}
}

func TestNotifyAbstract(t *testing.T) {
	name := fmt.Sprintf("umlswitch-sdnotify-test-%d-%d", os.Getpid(), time.Now().UnixNano())
	c := listen(t, "\x00"+name)
	t.Setenv("NOTIFY_SOCKET", "@"+name)
	if err := Ready(); err != nil {
		t.Fatal(err)
	}
	if got := recv(t, c); got != "READY=1" {
		t.Errorf("got %q, want READY=1", got)
	}
}

func TestNotifyUnsetIsANoOp(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	if err := Ready(); err != nil {
		t.Errorf("Ready without NOTIFY_SOCKET = %v", err)
	}
}

func TestNotifyNobodyListening(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", filepath.Join(t.TempDir(), "gone"))
	if err := Ready(); err == nil || !strings.HasPrefix(err.Error(), "sdnotify: ") {
		t.Errorf("Ready to a missing socket = %v", err)
	}
}

// passed puts n unix stream listeners at consecutive fds from a high,
// free one (fds 3 and up belong to the test process), as systemd would
// from 3, and returns the first fd and the addresses.
func passed(t *testing.T, n int) (int, []string) {
	t.Helper()
	start := 200
	for fd := start; fd < start+n; fd++ {
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err == nil {
			t.Fatalf("fd %d is in use", fd)
		}
	}
	var paths []string
	for i := range n {
		path := filepath.Join(t.TempDir(), "s"+strconv.Itoa(i))
		ln, err := net.Listen("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		ul := ln.(*net.UnixListener)
		ul.SetUnlinkOnClose(false) // the dup at start+i keeps serving the path
		f, err := ul.File()
		ul.Close()
		if err != nil {
			t.Fatal(err)
		}
		if err := unix.Dup2(int(f.Fd()), start+i); err != nil {
			t.Fatal(err)
		}
		f.Close()
		paths = append(paths, path)
	}
	t.Cleanup(func() {
		for fd := start; fd < start+n; fd++ {
			unix.Close(fd)
		}
	})
	return start, paths
}

func setListenEnv(t *testing.T, pid, fds, names string) {
	t.Helper()
	t.Setenv("LISTEN_PID", pid)
	t.Setenv("LISTEN_FDS", fds)
	t.Setenv("LISTEN_FDNAMES", names)
}

func unset(t *testing.T) {
	t.Helper()
	for _, v := range []string{"LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"} {
		if val, ok := os.LookupEnv(v); ok {
			t.Errorf("%s=%q is still set", v, val)
		}
	}
}

func TestListeners(t *testing.T) {
	start, paths := passed(t, 2)
	setListenEnv(t, strconv.Itoa(os.Getpid()), "2", "ctl:data")
	files, err := listeners(start)
	if err != nil {
		t.Fatal(err)
	}
	unset(t)
	if len(files) != 2 || files[0].Name() != "ctl" || files[1].Name() != "data" {
		t.Fatalf("files %v", files)
	}
	for i, f := range files {
		if int(f.Fd()) != start+i {
			t.Errorf("file %d is fd %d, want %d", i, f.Fd(), start+i)
		}
		if flags, err := unix.FcntlInt(f.Fd(), unix.F_GETFD, 0); err != nil || flags&unix.FD_CLOEXEC == 0 {
			t.Errorf("fd %d not close-on-exec: %#x %v", f.Fd(), flags, err)
		}
		// It is the socket bound at paths[i]: a client reaches it.
		ln, err := net.FileListener(f)
		if err != nil {
			t.Fatal(err)
		}
		c, err := net.Dial("unix", paths[i])
		if err != nil {
			t.Fatalf("dial %s: %v", paths[i], err)
		}
		c.Close()
		ln.Close()
	}
}

func TestListenersDefaultNames(t *testing.T) {
	start, _ := passed(t, 1)
	t.Setenv("LISTEN_PID", strconv.Itoa(os.Getpid()))
	t.Setenv("LISTEN_FDS", "1")
	t.Setenv("LISTEN_FDNAMES", "")
	os.Unsetenv("LISTEN_FDNAMES") // unset, not empty
	files, err := listeners(start)
	if err != nil || len(files) != 1 || files[0].Name() != "LISTEN_FD_"+strconv.Itoa(start) {
		t.Fatalf("listeners = %v, %v", files, err)
	}
}

func TestListenersForAnotherProcess(t *testing.T) {
	setListenEnv(t, strconv.Itoa(os.Getpid()+1), "2", "ctl:data")
	files, err := listeners(200)
	if err != nil || files != nil {
		t.Fatalf("listeners = %v, %v; want none", files, err)
	}
	unset(t)
}

func TestListenersNone(t *testing.T) {
	t.Setenv("LISTEN_PID", "")
	os.Unsetenv("LISTEN_PID")
	if files, err := Listeners(); err != nil || files != nil {
		t.Fatalf("Listeners without LISTEN_PID = %v, %v", files, err)
	}
}

func TestListenersBadEnv(t *testing.T) {
	me := strconv.Itoa(os.Getpid())
	for _, c := range []struct{ pid, fds, names, want string }{
		{"x", "1", "a", "LISTEN_PID"},
		{me, "", "", "LISTEN_FDS"},
		{me, "-1", "", "LISTEN_FDS"},
		{me, "2", "a", "LISTEN_FDNAMES"},
		{me, "1", "a", "fd 250"}, // nothing open there
	} {
		setListenEnv(t, c.pid, c.fds, c.names)
		if _, err := listeners(250); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("LISTEN_PID=%s LISTEN_FDS=%s LISTEN_FDNAMES=%s: err %v, want it to name %s", c.pid, c.fds, c.names, err, c.want)
		}
		unset(t)
	}
}
