package daemon

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/umlswitch/umlswitch/frame"
	"github.com/umlswitch/umlswitch/internal/unixsock"
)

// v0Over is a -compat-v0 shared data socket bound to a fresh abstract
// name, as listenV0 makes one (without its socket file).
func v0Over(t *testing.T) (*v0Socket, unixsock.Addr) {
	t.Helper()
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	addr := unixsock.UniqueAbstract("v0fuzz", os.Getpid())
	if err := unixsock.Bind(fd, &addr); err != nil {
		unix.Close(fd)
		t.Fatal(err)
	}
	s := &v0Socket{file: os.NewFile(uintptr(fd), "v0"), byAddr: make(map[unixsock.Addr]frame.PortID)}
	if s.raw, err = s.file.SyscallConn(); err != nil {
		t.Fatal(err)
	}
	s.readFn, s.recvFn = s.read, s.recv
	t.Cleanup(func() { s.file.Close() })
	return s, addr
}

// bind binds fd to sa, a sockaddr_un laid out as the kernel reports it:
// an abstract name exactly as long, a path up to its NUL.
func bind(fd int, sa []byte) error {
	if len(sa) == unixsock.AddrLen {
		return unixsock.Bind(fd, (*unixsock.Addr)(sa))
	}
	p := sa[2:]
	if len(p) > 0 && p[0] != 0 {
		p, _, _ = bytes.Cut(p, []byte{0})
	}
	return unix.Bind(fd, &unix.SockaddrUnix{Name: string(p)})
}

// sender is a datagram socket bound to sa (nil: not bound), connected to
// the shared socket at to.
func sender(t *testing.T, sa []byte, to unixsock.Addr) (int, error) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if sa != nil {
		if err := bind(fd, sa); err != nil {
			return -1, err
		}
	}
	if err := unixsock.Connect(fd, &to); err != nil {
		t.Fatal(err)
	}
	return fd, nil
}

// FuzzV0Receive sends datagrams to a -compat-v0 shared data socket, where a
// frame's port is known only by its sender's address, from a client whose
// address is made of the fuzzer's bytes (an abstract name of UML's full
// length, or a path, announced with whatever follows its NUL) and from
// strangers: one unbound, one bound to the client's abstract name cut
// shorter (another socket to the kernel, the same bytes up to its length).
// The client's frames reach its port whole; nobody else's reach any port,
// and each is counted. canonical gives one address one form, whatever
// length it is read with past its end.
func FuzzV0Receive(f *testing.F) {
	f.Add([]byte("\x00umlswitch-7-0001"), uint8(20), []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 1, 8, 0}, false, []byte("junk"))
	f.Add([]byte("c.sock"), uint8(0), make([]byte, 60), true, []byte("\x00garbage"))
	f.Add([]byte{0, 1, 2, 3}, uint8(200), []byte{}, false, []byte{})
	f.Add(bytes.Repeat([]byte{0xaa}, 200), uint8(106), make([]byte, 1600), false, []byte{})
	f.Fuzz(func(t *testing.T, name []byte, cut uint8, data []byte, usePath bool, after []byte) {
		if len(data) > 1600 {
			data = data[:1600]
		}
		s, shared := v0Over(t)
		// The client's address as the kernel knows it (bound) and as its
		// request announces it.
		var bound []byte
		var announced unixsock.Addr
		if usePath {
			p := bytes.Map(func(r rune) rune {
				if r == 0 || r == '/' || r == 0xfffd {
					return -1
				}
				return r
			}, name)
			if len(p) == 0 || string(p) == "." || string(p) == ".." {
				p = []byte("c")
			}
			path := filepath.Join(t.TempDir(), string(p[:min(len(p), 40)]))
			a, err := unixsock.FromPath(path)
			if err != nil {
				t.Skip(err)
			}
			bound = append(a[:2+len(path)], 0) // what bind(2) gets from a client that binds a path
			announced = a
			copy(announced[3+len(path):], after) // bytes after the NUL mean nothing
		} else {
			announced = unixsock.Abstract("")
			copy(announced[3:], name)
			bound = announced[:] // UML binds its full sockaddr_un
		}
		client, err := sender(t, bound, shared)
		if err != nil {
			t.Skipf("bind %q: %v", bound, err) // taken by another run
		}
		s.add(&announced, 7)
		strangers := [][]byte{nil}
		if !usePath {
			strangers = append(strangers, announced[:3+int(cut)%(unixsock.AddrLen-3)])
		}
		var sent []int
		if _, err := unix.Write(client, data); err != nil {
			t.Fatal(err)
		}
		sent = append(sent, 7)
		for _, sa := range strangers {
			fd, err := sender(t, sa, shared)
			if err != nil {
				continue
			}
			if _, err := unix.Write(fd, data); err != nil {
				t.Fatal(err)
			}
			sent = append(sent, int(frame.NoPort))
		}
		v := frame.NewVector(1, 1518) // one per receive: every slot is reset each time
		for i, want := range sent {
			n, err := s.receive(v)
			if err != nil || n != 1 {
				t.Fatalf("datagram %d: receive %d, %v", i, n, err)
			}
			if int(v.Ports[0]) != want {
				t.Fatalf("datagram %d (client at %q, stranger %q): port %d, want %d", i, bound, strangers[max(i-1, 0)], v.Ports[0], want)
			}
			if v.Sizes[0] != len(data) || (want == 7 && len(data) <= v.MaxFrame && !bytes.Equal(v.Frame(0), data)) {
				t.Fatalf("datagram %d: %d bytes, want %d", i, v.Sizes[0], len(data))
			}
		}
		if got := s.strangers.Load(); got != uint64(len(sent)-1) {
			t.Fatalf("%d strangers counted, want %d", got, len(sent)-1)
		}

		// canonical: one form per address, however long the buffer it was
		// read into, and stable.
		var raw unixsock.Addr
		copy(raw[:], bound)
		c := canonical(&raw, len(bound))
		if c2 := canonical(&c, unixsock.AddrLen); c2 != c {
			t.Fatalf("canonical is not stable: %x, then %x", c, c2)
		}
		if canonical(&raw, unixsock.AddrLen+int(cut)) != canonical(&raw, unixsock.AddrLen) {
			t.Fatal("a length past the address changed its form")
		}
		if c != canonical(&announced, unixsock.AddrLen) {
			t.Fatalf("the client's address as bound (%x) and as announced (%x) differ", c, canonical(&announced, unixsock.AddrLen))
		}
	})
}

// A stranger that binds a client's abstract name cut short (another
// socket to the kernel; names are listed in /proc/net/unix) does not pass
// for the client on the shared socket.
func TestV0ShortAbstractNameIsAStranger(t *testing.T) {
	s, shared := v0Over(t)
	client := unixsock.Abstract("uml-client-1")
	if _, err := sender(t, client[:], shared); err != nil {
		t.Fatal(err)
	}
	s.add(&client, 7)
	fd, err := sender(t, client[:3+len("uml-client-1")], shared)
	if err != nil {
		t.Fatal(err)
	}
	unix.Write(fd, make([]byte, 60))
	v := frame.NewVector(1, 1518)
	if n, err := s.receive(v); err != nil || n != 1 || v.Ports[0] != frame.NoPort || s.strangers.Load() != 1 {
		t.Fatalf("receive %d, %v: port %d, %d strangers", n, err, v.Ports[0], s.strangers.Load())
	}
}
