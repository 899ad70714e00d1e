package unixsock

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func TestAccessApply(t *testing.T) {
	p := filepath.Join(t.TempDir(), "s")
	ln, err := Listen(p)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if err := NoOwner.Apply(p); err != nil {
		t.Fatal(err)
	}
	if err := (Access{Mode: 0o640, UID: 4321, GID: -1}).Apply(p); err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(p)
	st := fi.Sys().(*syscall.Stat_t)
	if fi.Mode().Perm() != 0o640 || st.Uid != 4321 || st.Gid != uint32(os.Getgid()) {
		t.Fatalf("%v %d:%d", fi.Mode(), st.Uid, st.Gid)
	}
	if err := (Access{UID: -1, GID: 99}).Apply(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Fatal("chown of a missing file succeeded")
	}
}
