package unixsock

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/umlswitch/umlswitch/internal/peercred"
	"github.com/umlswitch/umlswitch/internal/peercred/peertest"
)

const nobodyUID = 65534

var nobody = peercred.Cred{UID: nobodyUID, GID: nobodyUID, Groups: []uint32{nobodyUID}}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: acts as another user and chowns")
	}
}

// mkdir makes dir with exactly mode and owner uid.
func mkdir(t *testing.T, dir string, mode os.FileMode, uid int) string {
	t.Helper()
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, uid, uid); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, mode); err != nil {
		t.Fatal(err)
	}
	return dir
}

func stat(t *testing.T, path string) (os.FileMode, *syscall.Stat_t) {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode(), fi.Sys().(*syscall.Stat_t)
}

// victim is a root-only file (0600, in a root-only directory) that an
// attacker wants chmodded, chowned or overwritten.
type victim struct{ dir, path string }

func newVictim(t *testing.T) victim {
	t.Helper()
	dir := mkdir(t, filepath.Join(peertest.PublicDir(t, false), "victim"), 0o755, 0)
	path := filepath.Join(dir, "secret")
	if err := os.WriteFile(path, []byte("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	return victim{dir, path}
}

// intact fails the test if the victim's file or directory changed.
func (v victim) intact(t *testing.T) {
	t.Helper()
	mode, st := stat(t, v.path)
	if mode != 0o600 || st.Uid != 0 || st.Gid != 0 {
		t.Errorf("victim %s is now %v %d:%d, was -rw------- 0:0", v.path, mode, st.Uid, st.Gid)
	}
	if b, _ := os.ReadFile(v.path); string(b) != "secret" {
		t.Errorf("victim %s now holds %q", v.path, b)
	}
	if es, _ := os.ReadDir(v.dir); len(es) != 1 {
		t.Errorf("victim directory %s holds %d entries, want 1", v.dir, len(es))
	}
}

func TestOpenDirTrust(t *testing.T) {
	requireRoot(t)
	base := peertest.PublicDir(t, false)
	for _, c := range []struct {
		name  string
		mode  os.FileMode
		uid   int
		owner int // the socket's owner=
		want  string
	}{
		{"root-0755", 0o755, 0, -1, ""},
		{"root-sticky-1777", 0o777 | os.ModeSticky, 0, -1, ""},
		{"root-sticky-1770", 0o770 | os.ModeSticky, 0, -1, ""},
		{"root-0777", 0o777, 0, -1, "is writable by others and not sticky"},
		{"root-0775", 0o775, 0, -1, "is writable by its group (gid 0) and not sticky"},
		{"nobody-0755", 0o755, nobodyUID, -1, "is owned by uid 65534"},
		{"nobody-sticky-1777", 0o777 | os.ModeSticky, nobodyUID, -1, "is owned by uid 65534"},
		{"nobody-0755-owner-nobody", 0o755, nobodyUID, nobodyUID, ""},
		{"nobody-0777-owner-nobody", 0o777, nobodyUID, nobodyUID, "is writable by others and not sticky"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := mkdir(t, filepath.Join(base, c.name), c.mode, c.uid)
			d, err := OpenDir(dir, c.owner)
			if c.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				d.Close()
				ln, err := Listen(filepath.Join(dir, "s"), Access{UID: c.owner, GID: -1})
				if err != nil {
					t.Fatal(err)
				}
				ln.Close()
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), dir) {
				t.Fatalf("OpenDir = %v, want an error naming %s: %q", err, dir, c.want)
			}
			// Every way to make something there is refused the same way,
			// and makes nothing.
			if _, err := Listen(filepath.Join(dir, "s"), Access{UID: c.owner, GID: -1}); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Listen = %v, want %q", err, c.want)
			}
			if es, _ := os.ReadDir(dir); len(es) != 0 {
				t.Fatalf("%d entries made in a refused directory", len(es))
			}
		})
	}
	if _, err := OpenDir(filepath.Join(base, "missing"), -1); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing directory: %v", err)
	}
}

func TestListenAccess(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "s")
	a := Access{Mode: 0o640, UID: -1, GID: -1}
	if os.Geteuid() == 0 {
		a.UID = 4321
	}
	ln, err := Listen(p, a)
	if err != nil {
		t.Fatal(err)
	}
	if ln.Addr().String() != p || ln.Path() != p {
		t.Fatalf("Addr %v, Path %s: want %s", ln.Addr(), ln.Path(), p)
	}
	mode, st := stat(t, p)
	if mode.Type() != os.ModeSocket || mode.Perm() != 0o640 {
		t.Fatalf("socket is %v", mode)
	}
	if a.UID >= 0 && (st.Uid != uint32(a.UID) || st.Gid != uint32(os.Getgid())) {
		t.Fatalf("socket owned by %d:%d", st.Uid, st.Gid)
	}
	// Nothing else was made; the socket serves.
	if es, _ := os.ReadDir(dir); len(es) != 1 {
		t.Fatalf("%d entries beside the socket: %v", len(es)-1, es)
	}
	go func() {
		if c, err := ln.Accept(); err == nil {
			c.Write([]byte("hi"))
			c.Close()
		}
	}()
	c, err := net.Dial("unix", p)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 2)
	if _, err := c.Read(b); err != nil || string(b) != "hi" {
		t.Fatalf("read %q, %v", b, err)
	}
	c.Close()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("socket left after Close: %v", err)
	}
}

// A live socket is refused, a stale one replaced, and anything else at the
// path (a file, a link) refused and left as it was.
func TestListenStale(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "s")
	ln, err := Listen(p, NoOwner)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(p, NoOwner); err == nil || !strings.Contains(err.Error(), "already running") {
		t.Fatalf("second listener: %v", err)
	}
	ln.Close()

	stale, err := net.Listen("unix", p)
	if err != nil {
		t.Fatal(err)
	}
	stale.(*net.UnixListener).SetUnlinkOnClose(false)
	stale.Close()
	ln, err = Listen(p, NoOwner)
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	ln.Close()

	if err := os.WriteFile(p, []byte("data"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(p, NoOwner); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Fatalf("regular file: %v", err)
	}
	os.Remove(p)

	target := filepath.Join(dir, "target")
	os.WriteFile(target, []byte("data"), 0o600)
	os.Symlink(target, p)
	if _, err := Listen(p, Access{Mode: 0o777, UID: -1, GID: -1}); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Fatalf("symlink: %v", err)
	}
	if mode, _ := stat(t, target); mode != 0o600 {
		t.Fatalf("target through the link is now %v", mode)
	}
}

// Close removes the socket it made, not what took its place.
func TestRemoveLeavesReplacement(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "s")
	ln, err := Listen(p, NoOwner)
	if err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(dir, "other")
	os.WriteFile(other, []byte("other"), 0o600)
	if err := os.Rename(other, p); err != nil {
		t.Fatal(err)
	}
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(p); err != nil || string(b) != "other" {
		t.Fatalf("what replaced the socket: %q, %v", b, err)
	}
}

func TestBindPathDatagram(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "d")
	fd := dgram(t)
	s, err := BindPath(fd, p, Access{Mode: 0o600, UID: -1, GID: -1}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if mode, _ := stat(t, p); mode.Type() != os.ModeSocket || mode.Perm() != 0o600 {
		t.Fatalf("socket is %v", mode)
	}
	// Registered under the address a client's connection reports.
	c := dgram(t)
	a, _ := FromPath(p)
	if err := Connect(c, &a); err != nil {
		t.Fatal(err)
	}
	peer, err := Getpeername(c)
	if err != nil {
		t.Fatal(err)
	}
	if !IsOwn(peer) {
		t.Fatalf("%s (bound at %s) is not registered as the switch's own", p, peer.String())
	}
	if _, err := unix.Write(c, []byte("x")); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 4)
	if n, _, err := unix.Recvfrom(fd, b, unix.MSG_DONTWAIT); err != nil || string(b[:n]) != "x" {
		t.Fatalf("received %q, %v", b[:n], err)
	}
	// A live datagram socket is refused.
	if _, err := BindPath(dgram(t), p, NoOwner, 0); err == nil {
		t.Fatal("second bind succeeded")
	}
	if err := s.Remove(); err != nil {
		t.Fatal(err)
	}
	if IsOwn(peer) {
		t.Fatal("still registered after Remove")
	}
	if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("socket left after Remove: %v", err)
	}
}

// The longest path sun_path holds binds, and getsockname gives it back:
// the socket's address is its real path (ss, /proc/net/unix and Netkit's
// vclean find the switch by it).
func TestBindPathLongest(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, strings.Repeat("y", PathLen-2-len(dir)))
	fd := dgram(t)
	s, err := BindPath(fd, p, NoOwner, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Remove()
	a, err := Getsockname(fd)
	if err != nil || a.FilesystemPath() != p {
		t.Fatalf("bound at %q (%v), want %q", a.FilesystemPath(), err, p)
	}
}

// The symlink swap: a user who owns the socket's directory (it is given
// to them: owner=) swaps the new socket for a link to a root-only file as
// fast as it can, while sockets with mode 0777 and owner nobody are bound
// there. The root file must not change: no chmod or chown may go through
// a link. (Binding, then chmodding and chowning by path, as the switch did
// before, makes the file nobody's and 0777 within a second.)
func TestBindPathSymlinkRace(t *testing.T) {
	requireRoot(t)
	v := newVictim(t)
	dir := mkdir(t, filepath.Join(peertest.PublicDir(t, false), "nobody"), 0o755, nobodyUID)
	p := filepath.Join(dir, "s")
	a := Access{Mode: 0o777, UID: nobodyUID, GID: nobodyUID}

	var stop atomic.Bool
	var swaps atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		err := peercred.Do(nobody, func() error {
			for !stop.Load() {
				// The socket: away, and a link to the victim in its place.
				if os.Rename(p, p+".moved") == nil {
					swaps.Add(1)
					os.Symlink(v.path, p)
				}
				os.ReadDir(dir) // a moment for the switch to chmod
				os.Remove(p)
				os.Remove(p + ".moved")
			}
			return nil
		})
		if err != nil {
			t.Error(err)
		}
	}()
	bound, refused := 0, 0
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) {
		ln, err := Listen(p, a)
		if err != nil {
			refused++
		} else {
			bound++
			ln.Close()
		}
		fd, _ := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if s, err := BindPath(fd, p, a, 0); err == nil {
			bound++
			unix.Close(fd)
			s.Remove()
		} else {
			refused++
			unix.Close(fd)
		}
	}
	stop.Store(true)
	wg.Wait()
	t.Logf("%d bound, %d refused, %d swaps", bound, refused, swaps.Load())
	if bound == 0 || swaps.Load() == 0 {
		t.Fatalf("the race did not happen: %d bound, %d swaps", bound, swaps.Load())
	}
	v.intact(t)
}

// A sticky, world-writable directory (/tmp) is trusted: another user can
// plant a link at the name first, which makes the bind fail and changes
// nothing, but cannot touch the root-owned socket once it is there.
func TestBindPathSticky(t *testing.T) {
	requireRoot(t)
	v := newVictim(t)
	dir := mkdir(t, filepath.Join(peertest.PublicDir(t, false), "tmp"), 0o777|os.ModeSticky, 0)
	p := filepath.Join(dir, "s")
	if err := peercred.Do(nobody, func() error { return os.Symlink(v.path, p) }); err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(p, Access{Mode: 0o777, UID: nobodyUID, GID: -1}); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Fatalf("Listen over a planted link: %v", err)
	}
	v.intact(t)
	os.Remove(p)
	ln, err := Listen(p, Access{Mode: 0o666, UID: -1, GID: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	err = peercred.Do(nobody, func() error { return os.Rename(p, p+".x") })
	if !errors.Is(err, os.ErrPermission) {
		t.Fatalf("nobody renamed root's socket in a sticky directory: %v", err)
	}
}

// Acting as a user (peercred.Do, as the API does for a caller who is not
// root): the socket is made with that user's rights, so only where they
// may write, and is theirs.
func TestListenAsUser(t *testing.T) {
	requireRoot(t)
	base := peertest.PublicDir(t, false)
	rootOnly := mkdir(t, filepath.Join(base, "root"), 0o755, 0)
	tmp := mkdir(t, filepath.Join(base, "tmp"), 0o777|os.ModeSticky, 0)
	err := peercred.Do(nobody, func() error {
		if _, err := Listen(filepath.Join(rootOnly, "s"), NoOwner); !errors.Is(err, os.ErrPermission) {
			t.Errorf("nobody listened in a root directory: %v", err)
		}
		ln, err := Listen(filepath.Join(tmp, "s"), Access{Mode: 0o600, UID: -1, GID: -1})
		if err != nil {
			return err
		}
		_, st := stat(t, filepath.Join(tmp, "s"))
		if st.Uid != nobodyUID {
			t.Errorf("socket owned by %d", st.Uid)
		}
		return ln.Close()
	})
	if err != nil {
		t.Fatal(err)
	}
	if es, _ := os.ReadDir(tmp); len(es) != 0 {
		t.Fatalf("left %v", es)
	}
}
