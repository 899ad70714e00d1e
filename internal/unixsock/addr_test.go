package unixsock

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

func dgram(t *testing.T) int {
	t.Helper()
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}

// An abstract name with NULs inside it, like UML's, must survive a round
// trip through bind, getsockname, connect and sendto unchanged.
func TestAbstractWithInnerNULs(t *testing.T) {
	var a Addr
	a[0] = 1
	copy(a[6:], []byte{0x12, 0x34, 0, 0, 0x56, 0, 0x78}) // pid and usec with NULs, as UML has
	a[66] = 0x9a                                         // uninitialised tail byte
	srv := dgram(t)
	if err := Bind(srv, &a); err != nil {
		t.Fatal(err)
	}
	got, err := Getsockname(srv)
	if err != nil || got != a {
		t.Fatalf("getsockname = %v, %v", got, err)
	}
	cli := dgram(t)
	if _, err := Sendto(cli, []byte("hello"), 0, &a); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 16)
	n, err := unix.Read(srv, buf)
	if err != nil || string(buf[:n]) != "hello" {
		t.Fatalf("read %q, %v", buf[:n], err)
	}
	// The same bytes cut short are a different address.
	var short Addr = a
	short[66] = 0
	if _, err := Sendto(cli, []byte("x"), 0, &short); err == nil {
		t.Fatal("sendto a different abstract name reached the socket")
	}
}

func TestFilesystemAddr(t *testing.T) {
	p := filepath.Join(t.TempDir(), "s")
	a, err := FromPath(p)
	if err != nil {
		t.Fatal(err)
	}
	fd := dgram(t)
	if err := Bind(fd, &a); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatal(err)
	}
	if a.String() != p || a.IsAbstract() {
		t.Fatalf("String %q abstract %v", a.String(), a.IsAbstract())
	}
	if _, err := FromPath(string(bytes.Repeat([]byte("a"), 108))); err == nil {
		t.Fatal("accepted a path without room for its NUL")
	}
	u := UniqueAbstract("umlswitch", 42)
	if !u.IsAbstract() || u.String()[:13] != "@umlswitch-42" {
		t.Fatalf("unique %q", u.String())
	}
}

func TestFromBytes(t *testing.T) {
	if _, err := FromBytes(make([]byte, 109)); err == nil {
		t.Error("accepted 109 bytes")
	}
	b := make([]byte, 110)
	if _, err := FromBytes(b); err == nil {
		t.Error("accepted family 0")
	}
	b[0] = 1
	if _, err := FromBytes(b); err != nil {
		t.Error(err)
	}
}
