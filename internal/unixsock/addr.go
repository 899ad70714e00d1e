package unixsock

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strings"
)

// AddrLen is sizeof(struct sockaddr_un) on Linux: a 2-byte family and 108
// bytes of path.
const AddrLen = 110

// PathLen is the size of sun_path.
const PathLen = AddrLen - 2

// familyUnix is AF_UNIX as the first two bytes in host (little-endian) order.
const familyUnix = 1

// Addr is a raw sockaddr_un. The whole path is significant for abstract names.
type Addr [AddrLen]byte

// Family returns sun_family.
func (a *Addr) Family() uint16 { return binary.LittleEndian.Uint16(a[0:2]) }

// Path returns sun_path.
func (a *Addr) Path() []byte { return a[2:] }

// IsAbstract reports whether the address names the abstract namespace.
func (a *Addr) IsAbstract() bool { return a[2] == 0 }

// FilesystemPath returns the path of a filesystem address, up to its NUL.
func (a *Addr) FilesystemPath() string {
	p := a.Path()
	if i := bytes.IndexByte(p, 0); i >= 0 {
		p = p[:i]
	}
	return string(p)
}

// String is for logs: a filesystem path, or "@" and the printable part of an
// abstract name.
func (a *Addr) String() string {
	if !a.IsAbstract() {
		return a.FilesystemPath()
	}
	var b strings.Builder
	b.WriteByte('@')
	for _, c := range bytes.TrimRight(a[3:], "\x00") {
		if c >= 0x20 && c < 0x7f {
			b.WriteByte(c)
		} else {
			b.WriteByte('.')
		}
	}
	return b.String()
}

// FromPath builds a filesystem address. The path must fit sun_path with its NUL.
func FromPath(path string) (Addr, error) {
	var a Addr
	if path == "" || len(path) >= PathLen {
		return a, fmt.Errorf("unix socket path %q: length %d not in 1..%d", path, len(path), PathLen-1)
	}
	if strings.IndexByte(path, 0) >= 0 {
		return a, fmt.Errorf("unix socket path %q: contains a NUL byte", path)
	}
	binary.LittleEndian.PutUint16(a[0:2], familyUnix)
	copy(a[2:], path)
	return a, nil
}

// Abstract builds an abstract address named name, padded with NULs to the
// full 108 bytes: UML sends to a 110-byte address, so a shorter binding would
// never receive its frames.
func Abstract(name string) Addr {
	var a Addr
	binary.LittleEndian.PutUint16(a[0:2], familyUnix)
	copy(a[3:], name)
	return a
}

// UniqueAbstract returns a fresh abstract address for this process:
// "@<prefix>-<pid>-<32 random hex digits>" padded to 108 bytes. The
// random part (128 bits from crypto/rand) makes the name unguessable: a
// switch's data sockets had sequential names, and a local user sending to
// the next ones in a loop got frames into other clients' ports. The prefix
// and pid keep it readable in logs and ss output.
func UniqueAbstract(prefix string, pid int) Addr {
	var r [16]byte
	rand.Read(r[:]) // never fails on Linux (getrandom), and panics rather than return weak bytes
	return Abstract(fmt.Sprintf("%s-%d-%s", prefix, pid, hex.EncodeToString(r[:])))
}

// FromBytes copies a 110-byte sockaddr_un out of b and checks its family.
func FromBytes(b []byte) (Addr, error) {
	var a Addr
	if len(b) < AddrLen {
		return a, fmt.Errorf("unix address: %d bytes, want %d", len(b), AddrLen)
	}
	copy(a[:], b)
	if a.Family() != familyUnix {
		return a, fmt.Errorf("unix address: family %d, want AF_UNIX (1)", a.Family())
	}
	return a, nil
}

// CheckPath refuses a socket path that does not fit sun_path with its NUL
// (107 bytes), for the kinds' path= keys, so a spec fails when it is
// parsed rather than when the socket is bound.
func CheckPath(path string) error {
	if len(path) >= PathLen {
		return fmt.Errorf("path is %d bytes: a unix socket path holds %d", len(path), PathLen-1)
	}
	return nil
}
