package daemon

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/umlswitch/umlswitch/internal/unixsock"
)

// The control socket and the v0 data socket go only where no other user
// could swap them for links: -unix DIR/ in a directory another user owns,
// or in one everyone may write that is not sticky, is refused, and nothing
// is made there.
func TestListenRefusesUntrustedDirectory(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: makes a directory another user owns")
	}
	base := t.TempDir()
	theirs := filepath.Join(base, "theirs")
	os.Mkdir(theirs, 0o755)
	os.Chown(theirs, 65534, 65534)
	open := filepath.Join(base, "open")
	os.Mkdir(open, 0o777)
	os.Chmod(open, 0o777)
	for _, c := range []struct {
		cfg  Config
		dir  string
		want string
	}{
		{Config{Options: Options{Path: theirs + "/"}}, theirs, "is owned by uid 65534"},
		{Config{Options: Options{Path: filepath.Join(theirs, "ctl")}}, theirs, "is owned by uid 65534"},
		{Config{Options: Options{Path: open + "/"}}, open, "writable by others and not sticky"},
		{Config{Options: Options{Path: filepath.Join(base, "ctl"), CompatV0: true, DataPath: filepath.Join(open, "uml.data")}}, open, "writable by others and not sticky"},
	} {
		c.cfg.Logger = quiet()
		tr, err := Listen(c.cfg)
		if err == nil {
			tr.Close()
			t.Fatalf("%+v: listened", c.cfg)
		}
		if !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), c.dir) {
			t.Fatalf("%s: %v, want %q", c.cfg.Path, err, c.want)
		}
		if es, _ := os.ReadDir(c.dir); len(es) != 0 {
			t.Fatalf("%s: made %v", c.dir, es)
		}
	}
	if _, err := os.Stat(filepath.Join(base, "ctl")); !os.IsNotExist(err) {
		t.Fatalf("the control socket of a failed Listen was left: %v", err)
	}
	// The socket's own owner may own the directory.
	tr := listen(t, Config{Options: Options{Path: theirs + "/", Access: unixsock.Access{UID: 65534, GID: -1}}})
	tr.Close()
}

// The v0 data socket is the switch's own (clients may not name it as
// theirs) until it is closed, and it is removed then.
func TestCompatV0DataSocketIsOwn(t *testing.T) {
	data := filepath.Join(t.TempDir(), "uml.data")
	tr := listen(t, Config{Options: Options{CompatV0: true, DataPath: data}})
	a, _ := unixsock.FromPath(data)
	c := connectTo(t, a)
	peer, err := unixsock.Getpeername(c)
	if err != nil {
		t.Fatal(err)
	}
	if !unixsock.IsOwn(peer) {
		t.Fatalf("%s is not registered as the switch's own", data)
	}
	tr.Close()
	if unixsock.IsOwn(peer) {
		t.Fatal("still registered after Close")
	}
	if _, err := os.Lstat(data); !os.IsNotExist(err) {
		t.Fatalf("data socket left after Close: %v", err)
	}
}

// connectTo is a datagram socket connected to a.
func connectTo(t *testing.T, a unixsock.Addr) int {
	t.Helper()
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unixsock.Connect(fd, &a); err != nil {
		t.Fatal(err)
	}
	return fd
}
