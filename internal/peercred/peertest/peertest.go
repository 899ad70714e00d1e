// Package peertest makes connections whose peer credentials
// (SO_PEERCRED, SO_PEERGROUPS) are another user's, for tests of what the
// switch lets that user do, without a child process: the connection is
// made by a locked thread whose uid and gid are changed and that is thrown
// away afterwards. It needs root.
package peertest

import (
	"fmt"
	"net"
	"os"
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
)

// Nobody is the unprivileged user tests act as.
const Nobody = 65534

// DialAs connects to the unix socket at path as uid and gid (with no
// supplementary groups besides groups); the test fails if it cannot be
// made, and is skipped when not root.
func DialAs(t testing.TB, uid, gid uint32, groups []uint32, network, path string) (net.Conn, error) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("connecting as another user needs root")
	}
	type result struct {
		c   net.Conn
		err error
	}
	res := make(chan result, 1)
	go func() {
		// Never unlocked: the thread ends with this goroutine, and the
		// other user's identity with it.
		runtime.LockOSThread()
		if err := become(uid, gid, groups); err != nil {
			res <- result{nil, err}
			return
		}
		c, err := net.Dial(network, path)
		res <- result{c, err}
	}()
	r := <-res
	return r.c, r.err
}

// Do runs fn on a thread whose real, effective and file system ids are
// uid's and gid's: every system call it makes is that user's.
func Do(t testing.TB, uid, gid uint32, fn func() error) error {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("acting as another user needs root")
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked, as in DialAs
		if err := become(uid, gid, nil); err != nil {
			errc <- err
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// become changes the calling thread's ids only: the raw system calls act
// on one thread (glibc and Go's syscall.Setuid change every thread).
func become(uid, gid uint32, groups []uint32) error {
	gs := make([]int, len(groups))
	for i, g := range groups {
		gs[i] = int(g)
	}
	if err := unix.Setgroups(gs); err != nil {
		return fmt.Errorf("setgroups: %w", err)
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETRESGID, uintptr(gid), uintptr(gid), uintptr(gid)); e != 0 {
		return fmt.Errorf("setresgid: %w", e)
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETRESUID, uintptr(uid), uintptr(uid), uintptr(uid)); e != 0 {
		return fmt.Errorf("setresuid: %w", e)
	}
	return nil
}

// PublicDir is a scratch directory, removed at cleanup, that every user
// may enter (t.TempDir's parent is private: another user could not even
// look in), and with sticky create files in, as in /tmp.
func PublicDir(t testing.TB, sticky bool) string {
	t.Helper()
	d, err := os.MkdirTemp("", "public")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	mode := os.FileMode(0o755)
	if sticky {
		mode = 0o777 | os.ModeSticky
	}
	if err := os.Chmod(d, mode); err != nil {
		t.Fatal(err)
	}
	return d
}
