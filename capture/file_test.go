package capture

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/umlswitch/umlswitch/fabric"
	"github.com/umlswitch/umlswitch/frame"
	"github.com/umlswitch/umlswitch/internal/peercred"
	"github.com/umlswitch/umlswitch/internal/peercred/peertest"
	"github.com/umlswitch/umlswitch/internal/unixsock"
)

const nobodyUID = 65534

// planted is a file the switch must never write through: a link to it is
// planted at a capture's name.
func planted(t *testing.T, dir string) (path string, intact func()) {
	t.Helper()
	path = filepath.Join(dir, "precious")
	if err := os.WriteFile(path, []byte("precious"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, func() {
		t.Helper()
		fi, err := os.Lstat(path)
		b, _ := os.ReadFile(path)
		if err != nil || fi.Mode() != 0o600 || string(b) != "precious" {
			t.Fatalf("%s: %v %q (%v), want -rw------- %q", path, fi.Mode(), b, err, "precious")
		}
	}
}

func fileMode(t *testing.T, path string) (os.FileMode, *syscall.Stat_t) {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode(), fi.Sys().(*syscall.Stat_t)
}

// A link at the capture path: refused, its target untouched.
func TestFileRefusesLink(t *testing.T) {
	dir := t.TempDir()
	target, intact := planted(t, dir)
	path := filepath.Join(dir, "cap.pcapng")
	os.Symlink(target, path)
	if _, err := New(Config{File: path}); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Fatalf("New through a link: %v", err)
	}
	intact()
	// A hard link (a second name of the target) likewise.
	os.Remove(path)
	if err := os.Link(target, path); err != nil {
		t.Fatal(err)
	}
	if _, err := New(Config{File: path}); err == nil || !strings.Contains(err.Error(), "2 links") {
		t.Fatalf("New over a hard link: %v", err)
	}
	intact()
}

// Files are the switch's only (0600), an earlier capture of its own is
// overwritten, and a link planted at a rotated name is skipped: the
// capture goes on in the next number.
func TestFileRotationSkipsLinks(t *testing.T) {
	dir := t.TempDir()
	target, intact := planted(t, dir)
	path := filepath.Join(dir, "cap.pcapng")
	os.WriteFile(path, []byte("an older capture, world-readable"), 0o644)
	os.Chmod(path, 0o644)
	os.Symlink(target, path+".1")
	m := mustNew(t, Config{File: path, Rotate: 4000})
	for i := range 40 {
		m.Frame(frame.PortID(i%2), []string{"a", "b"}[i%2], fabric.DirIn, ether(byte(i), 500))
		m.Drain(time.Second)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	intact()
	for _, p := range []string{path, path + ".2", path + ".3"} {
		mode, _ := fileMode(t, p)
		b, _ := os.ReadFile(p)
		if mode != 0o600 {
			t.Fatalf("%s is %v, want -rw-------", p, mode)
		}
		if _, pkts, _ := readNg(t, b); len(pkts) == 0 {
			t.Fatalf("%s holds no packets", p)
		}
	}
	if fi, err := os.Lstat(path + ".1"); err != nil || fi.Mode().Type() != os.ModeSymlink {
		t.Fatalf("the planted link: %v %v", fi, err)
	}
}

// A capture made for another user (Owner) is created with that user's
// rights, so not where they could not write, and every file, rotated ones
// too, is theirs.
func TestFileOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: acts as another user")
	}
	base := peertest.PublicDir(t, false)
	nobody := &peercred.Cred{UID: nobodyUID, GID: nobodyUID, Groups: []uint32{nobodyUID}}
	if _, err := New(Config{File: filepath.Join(base, "cap.pcapng"), Owner: nobody}); err == nil {
		t.Fatal("made a capture for nobody in a directory only root may write")
	}
	if es, _ := os.ReadDir(base); len(es) != 0 {
		t.Fatalf("made %v", es)
	}
	pub := filepath.Join(base, "tmp")
	os.Mkdir(pub, 0o777)
	os.Chmod(pub, 0o777|os.ModeSticky)
	path := filepath.Join(pub, "cap.pcapng")
	m := mustNew(t, Config{File: path, Rotate: 4000, Keep: 2, Owner: nobody})
	for i := range 40 {
		m.Frame(0, "a", fabric.DirIn, ether(byte(i), 500))
		m.Drain(time.Second)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(path + "*")
	if len(files) != 2 {
		t.Fatalf("files %v, want 2", files)
	}
	for _, f := range files {
		if mode, st := fileMode(t, f); mode != 0o600 || st.Uid != nobodyUID || st.Gid != nobodyUID {
			t.Fatalf("%s: %v %d:%d, want -rw------- nobody's", f, mode, st.Uid, st.Gid)
		}
	}
}

// A stream socket is the switch's only unless a mode is given.
func TestStreamDefaultMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "live.sock")
	m := mustNew(t, Config{Stream: path})
	if mode, _ := fileMode(t, path); mode.Perm() != DefaultStreamMode {
		t.Fatalf("stream socket is %v, want %04o", mode, DefaultStreamMode)
	}
	m.Close()
	m = mustNew(t, Config{Stream: path, Access: unixsockAccess(0o660)})
	if mode, _ := fileMode(t, path); mode.Perm() != 0o660 {
		t.Fatalf("stream socket with mode 0660 is %v", mode)
	}
	m.Close()
}

func unixsockAccess(mode os.FileMode) unixsock.Access {
	return unixsock.Access{Mode: mode, UID: -1, GID: -1}
}
