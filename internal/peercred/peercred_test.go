package peercred

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/umlswitch/umlswitch/internal/peercred/peertest"
)

func TestFromConnIsSelf(t *testing.T) {
	a, b := pair(t)
	defer a.Close()
	defer b.Close()
	c, err := FromConn(b)
	if err != nil {
		t.Fatal(err)
	}
	if c.UID != uint32(os.Geteuid()) || c.GID != uint32(os.Getegid()) || c.PID != int32(os.Getpid()) {
		t.Fatalf("got %v, want this process", c)
	}
	if !c.InGroup(uint32(os.Getegid())) || c.InGroup(NoUID) {
		t.Fatalf("InGroup wrong for %v", c)
	}
	if Unknown.Known() || Unknown.InGroup(NoUID) {
		t.Fatal("Unknown is known")
	}
}

func pair(t *testing.T) (*net.UnixConn, *net.UnixConn) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	conn := func(fd int) *net.UnixConn {
		f := os.NewFile(uintptr(fd), "pair")
		defer f.Close()
		c, err := net.FileConn(f)
		if err != nil {
			t.Fatal(err)
		}
		return c.(*net.UnixConn)
	}
	return conn(fds[0]), conn(fds[1])
}

// Do as another user: a file created is that user's, a directory only root
// may write refuses it, and the process keeps its own identity.
func TestDoActsAsUser(t *testing.T) {
	if os.Geteuid() != 0 {
		if err := Do(Cred{UID: uint32(os.Geteuid()) + 1, GID: 1}, func() error { return nil }); !errors.Is(err, ErrCannotAct) {
			t.Fatalf("not root: Do = %v, want ErrCannotAct", err)
		}
		t.Skip("acting as another user needs root")
	}
	base := peertest.PublicDir(t, false)
	dir := filepath.Join(base, "root")
	os.Mkdir(dir, 0o755)
	open := filepath.Join(base, "open")
	os.Mkdir(open, 0o777)
	os.Chmod(open, 0o1777)
	nobody := Cred{UID: 65534, GID: 65534, Groups: []uint32{65534}}
	err := Do(nobody, func() error {
		return os.WriteFile(filepath.Join(dir, "x"), nil, 0o600)
	})
	if !errors.Is(err, os.ErrPermission) {
		t.Fatalf("nobody wrote into a root directory: %v", err)
	}
	if err := Do(nobody, func() error { return os.WriteFile(filepath.Join(open, "x"), nil, 0o600) }); err != nil {
		t.Fatal(err)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join(open, "x"), &st); err != nil || st.Uid != 65534 || st.Gid != 65534 {
		t.Fatalf("file owned by %d:%d (%v), want 65534:65534", st.Uid, st.Gid, err)
	}
	// chown to someone else needs CAP_CHOWN, which the thread lost.
	if err := Do(nobody, func() error { return os.Chown(filepath.Join(open, "x"), 0, 0) }); !errors.Is(err, os.ErrPermission) {
		t.Fatalf("nobody chowned to root: %v", err)
	}
	// A supplementary group counts.
	grp := filepath.Join(base, "grp")
	os.Mkdir(grp, 0o700)
	os.Chmod(grp, 0o770)
	os.Chown(grp, 0, 4242)
	member := Cred{UID: 65534, GID: 65534, Groups: []uint32{4242}}
	if err := Do(member, func() error { return os.WriteFile(filepath.Join(grp, "y"), nil, 0o600) }); err != nil {
		t.Fatalf("a member of the directory's group: %v", err)
	}
	// This goroutine was never the other user.
	if err := os.WriteFile(filepath.Join(dir, "root"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if u, _ := unix.SetfsuidRetUid(-1); u != 0 {
		t.Fatalf("fsuid of this thread is %d", u)
	}
	if err := Do(Unknown, func() error { return nil }); err == nil {
		t.Fatal("acted as an unknown peer")
	}
}
