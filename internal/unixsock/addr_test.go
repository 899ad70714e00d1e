package unixsock

import (
	"bytes"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
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

// Data socket names must not be guessable: a user who sends to the next
// name in a loop must not reach a socket before it is connected. Names
// made one after the other share nothing past the prefix and pid.
func TestUniqueAbstractUnpredictable(t *testing.T) {
	const prefix = "@umlswitch-42-"
	seen := make(map[string]bool)
	var prev []byte
	for i := 0; i < 100; i++ {
		a := UniqueAbstract("umlswitch", 42)
		s := a.String()
		if !strings.HasPrefix(s, prefix) {
			t.Fatalf("name %q lacks the readable prefix %q", s, prefix)
		}
		if a[len(a)-1] != 0 || bytes.IndexByte(a[3:], 0) != len(s)-1 {
			t.Fatalf("name %q is not padded with NULs to 108 bytes", s)
		}
		rnd, err := hex.DecodeString(s[len(prefix):])
		if err != nil || len(rnd) < 16 {
			t.Fatalf("name %q: want 128 random bits after the pid (%v)", s, err)
		}
		if seen[s] {
			t.Fatalf("name %q made twice", s)
		}
		seen[s] = true
		if prev != nil {
			same := 0
			for j := range rnd {
				if rnd[j] == prev[j] {
					same++
				}
			}
			if same > 8 { // 16 random bytes agree in about 1/16 of a byte on average
				t.Fatalf("consecutive names share %d of 16 bytes: %x, %x", same, prev, rnd)
			}
		}
		prev = rnd
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
