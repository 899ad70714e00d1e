package peertest

import (
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/umlswitch/umlswitch/internal/peercred"
)

func TestDialAsGivesOtherCredentials(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	dir := PublicDir(t, false)
	path := filepath.Join(dir, "s")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	os.Chmod(path, 0o777)
	got := make(chan peercred.Cred, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		cred, _ := peercred.FromConn(c.(*net.UnixConn))
		got <- cred
	}()
	c, err := DialAs(t, Nobody, Nobody, []uint32{4242}, "unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cred := <-got
	if cred.UID != Nobody || cred.GID != Nobody || !cred.InGroup(4242) || cred.InGroup(0) {
		t.Fatalf("peer %v groups %v, want nobody in 4242", cred, cred.Groups)
	}
	// The rest of the process is still root.
	if os.Geteuid() != 0 {
		t.Fatal("the process changed identity")
	}
	// A socket only root may write refuses the other user.
	os.Chmod(path, 0o700)
	if _, err := DialAs(t, Nobody, Nobody, nil, "unix", path); err == nil {
		t.Fatal("nobody connected to a 0700 root socket")
	}
}
