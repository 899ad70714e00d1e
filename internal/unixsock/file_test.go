package unixsock

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestCreateFile(t *testing.T) {
	dir := t.TempDir()
	d, err := OpenDir(dir, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	write := func(name string) error {
		f, err := d.CreateFile(name, 0o600, -1, -1)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = f.WriteString("new")
		return err
	}
	check := func(name string, want string) {
		t.Helper()
		p := filepath.Join(dir, name)
		mode, _ := stat(t, p)
		b, _ := os.ReadFile(p)
		if mode != 0o600 || string(b) != want {
			t.Fatalf("%s: %v %q, want -rw------- %q", name, mode, b, want)
		}
	}

	// New, then the switch's own again: truncated, and its mode fixed
	// (earlier versions made captures 0644).
	if err := write("a"); err != nil {
		t.Fatal(err)
	}
	check("a", "new")
	os.WriteFile(filepath.Join(dir, "a"), []byte("older and longer"), 0o644)
	os.Chmod(filepath.Join(dir, "a"), 0o644)
	if err := write("a"); err != nil {
		t.Fatal(err)
	}
	check("a", "new")

	// A link at the name, to a file of the switch's: refused, target intact.
	target := filepath.Join(dir, "target")
	os.WriteFile(target, []byte("target"), 0o600)
	os.Symlink(target, filepath.Join(dir, "link"))
	if err := write("link"); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Fatalf("through a symlink: %v", err)
	}
	os.Symlink(filepath.Join(dir, "nowhere"), filepath.Join(dir, "dangling"))
	if err := write("dangling"); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Fatalf("through a dangling symlink: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(dir, "nowhere")); err == nil {
		t.Fatal("created the dangling link's target")
	}
	// A second name of the target: refused.
	os.Link(target, filepath.Join(dir, "hard"))
	if err := write("hard"); err == nil || !strings.Contains(err.Error(), "2 links") {
		t.Fatalf("a hard link: %v", err)
	}
	check("target", "target")
	// Not a regular file.
	syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o600)
	if err := write("fifo"); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Fatalf("a fifo: %v", err)
	}
	if err := write("../x"); err == nil {
		t.Fatal("a name with a slash was taken")
	}

	// RemoveFile removes the switch's files, not links or what others own.
	if err := d.RemoveFile("a", -1); err != nil {
		t.Fatal(err)
	}
	if err := d.RemoveFile("link", -1); err == nil {
		t.Fatal("removed a symlink")
	}
	if err := d.RemoveFile("gone", -1); err != nil {
		t.Fatal(err)
	}
	check("target", "target")
}

// Another user's file is not overwritten; one owned by the uid the capture
// is for is; and uid and gid become the owner of what is created.
func TestCreateFileOwners(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	d, err := OpenDir(dir, nobodyUID)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	theirs := filepath.Join(dir, "theirs")
	os.WriteFile(theirs, []byte("theirs"), 0o666)
	os.Chown(theirs, 4321, 4321)
	if _, err := d.CreateFile("theirs", 0o600, nobodyUID, nobodyUID); err == nil || !strings.Contains(err.Error(), "belongs to uid 4321") {
		t.Fatalf("another user's file: %v", err)
	}
	if err := d.RemoveFile("theirs", nobodyUID); err == nil {
		t.Fatal("removed another user's file")
	}
	if b, _ := os.ReadFile(theirs); string(b) != "theirs" {
		t.Fatalf("another user's file now holds %q", b)
	}
	for _, name := range []string{"new", "nobodys"} {
		if name == "nobodys" {
			os.WriteFile(filepath.Join(dir, name), []byte("old"), 0o644)
			os.Chown(filepath.Join(dir, name), nobodyUID, nobodyUID)
		}
		f, err := d.CreateFile(name, 0o600, nobodyUID, nobodyUID)
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
		mode, st := stat(t, filepath.Join(dir, name))
		if mode != 0o600 || st.Uid != nobodyUID || st.Gid != nobodyUID || st.Size != 0 {
			t.Fatalf("%s: %v %d:%d size %d", name, mode, st.Uid, st.Gid, st.Size)
		}
	}
	if err := d.RemoveFile("nobodys", nobodyUID); err != nil {
		t.Fatal(err)
	}
}

// CreatePath refuses a link planted where a command was told to write, and
// a directory others may write without the sticky bit.
func TestCreatePath(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	os.WriteFile(target, []byte("keep"), 0o600)
	os.Symlink(target, filepath.Join(dir, "out.pcapng"))
	if _, err := CreatePath(filepath.Join(dir, "out.pcapng"), 0o600); err == nil {
		t.Fatal("wrote through a planted link")
	}
	if b, _ := os.ReadFile(target); string(b) != "keep" {
		t.Fatalf("target now holds %q", b)
	}
	f, err := CreatePath(filepath.Join(dir, "new.pcapng"), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if fi, _ := os.Stat(filepath.Join(dir, "new.pcapng")); fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", fi.Mode())
	}
	open := filepath.Join(dir, "open")
	os.Mkdir(open, 0o700)
	os.Chmod(open, 0o777)
	if _, err := CreatePath(filepath.Join(open, "x"), 0o600); err == nil || !strings.Contains(err.Error(), "not sticky") {
		t.Fatalf("a directory others may write: %v", err)
	}
}
