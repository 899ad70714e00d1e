package dgram

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/umlswitch/umlswitch/internal/unixsock"
	"github.com/umlswitch/umlswitch/transports/portkind"
	"github.com/umlswitch/umlswitch/transports/porttest"
)

// A dgram port's socket is the switch's own (a daemon client may not name
// it as its data socket) until the port closes; it gets its mode, and is
// removed then.
func TestSocketIsOwn(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sw")
	p, err := Open(Config{Options: Options{Path: path, Peer: filepath.Join(dir, "qemu"), Access: unixsock.Access{Mode: 0o660, UID: -1, GID: -1}}, Common: portkind.Common{Logger: porttest.Quiet()}})
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(path); err != nil || fi.Mode().Perm() != 0o660 {
		t.Fatalf("socket: %v, %v", fi, err)
	}
	fd, _ := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	defer unix.Close(fd)
	a, _ := unixsock.FromPath(path)
	if err := unixsock.Connect(fd, &a); err != nil {
		t.Fatal(err)
	}
	peer, _ := unixsock.Getpeername(fd)
	if !unixsock.IsOwn(peer) {
		t.Fatal("the port's socket is not registered as the switch's own")
	}
	p.Close()
	if unixsock.IsOwn(peer) {
		t.Fatal("still registered after Close")
	}
	if _, err := os.Lstat(path); !os.IsNotExist(err) {
		t.Fatalf("socket left after Close: %v", err)
	}
}
