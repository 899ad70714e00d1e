package daemon

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"github.com/umlswitch/umlswitch/internal/unixsock"
)

// Wire constants of the request a client writes on the control socket.
const (
	magic = 0xfeedface // host order; on the wire ce fa ed fe

	v3Fixed = 4 + 4 + 4 + unixsock.AddrLen // magic, version, type, sockaddr_un (packed)
	v1Fixed = 4 + 4 + 6 + unixsock.AddrLen // magic, type, mac, sockaddr_un
	v0Fixed = 4 + 6 + unixsock.AddrLen     // type, mac, sockaddr_un

	// MaxRequest is how much of a request is read: VDE clients send the
	// fixed part plus a description of up to 128 bytes.
	MaxRequest = 256

	maxDescription = 128

	reqNewControl = 0 // an ordinary port
	reqNewPort0   = 1 // VDE's management port 0; served as an ordinary port
)

// ErrShortRequest means more bytes are needed to decode the request.
var ErrShortRequest = errors.New("request: incomplete")

// Request is a decoded client request.
type Request struct {
	Version     int           // 0, 1 or 3
	Kind        uint8         // reqNewControl or reqNewPort0
	WantPort    int           // port number a VDE client asked for (ignored), 0 for any
	Addr        unixsock.Addr // the client's data socket, verbatim
	Description string        // VDE's trailing description, printable ASCII only

	head []byte // bytes of a connection handed off instead (transport.go)
}

// requestLen reports how many bytes the fixed part of the request that b
// starts needs: a header that is too short for that decision asks for more.
func requestLen(b []byte, allowV0 bool) (int, error) {
	if len(b) < 4 {
		return 4, nil
	}
	if binary.LittleEndian.Uint32(b) != magic {
		if !allowV0 {
			return 0, fmt.Errorf("request: bad magic %#08x (version 0 clients need -compat-v0)", binary.LittleEndian.Uint32(b))
		}
		return v0Fixed, nil
	}
	if len(b) < 8 {
		return 8, nil
	}
	switch v := binary.LittleEndian.Uint32(b[4:]); v {
	case 3:
		return v3Fixed, nil
	case 0, 1: // version 1 has its type where version 3 has its version
		return v1Fixed, nil
	default:
		return 0, fmt.Errorf("request: unsupported version %d", v)
	}
}

// ParseRequest decodes a request. It returns ErrShortRequest while b holds
// less than the fixed part; bytes after the fixed part are the description.
func ParseRequest(b []byte, allowV0 bool) (Request, error) {
	need, err := requestLen(b, allowV0)
	if err != nil {
		return Request{}, err
	}
	if len(b) < need {
		return Request{}, ErrShortRequest
	}
	var (
		r       Request
		typ     uint32
		addrOff int
	)
	switch need {
	case v3Fixed:
		r.Version, typ, addrOff = 3, binary.LittleEndian.Uint32(b[8:]), 12
	case v1Fixed:
		r.Version, typ, addrOff = 1, binary.LittleEndian.Uint32(b[4:]), 14
	default:
		r.Version, typ, addrOff = 0, binary.LittleEndian.Uint32(b[0:]), 10
	}
	r.Kind, r.WantPort = uint8(typ), int(typ>>8)
	if r.Kind != reqNewControl && r.Kind != reqNewPort0 {
		return Request{}, fmt.Errorf("request: unknown request type %d", r.Kind)
	}
	if r.Version != 3 && r.WantPort != 0 {
		return Request{}, fmt.Errorf("request: version %d cannot ask for port %d", r.Version, r.WantPort)
	}
	if r.Addr, err = unixsock.FromBytes(b[addrOff : addrOff+unixsock.AddrLen]); err != nil {
		return Request{}, fmt.Errorf("request: %w", err)
	}
	r.Description = cleanDescription(b[need:])
	return r, nil
}

// cleanDescription keeps the printable text before the first NUL (UML's v3
// request ends in two uninitialised padding bytes, usually zero).
func cleanDescription(b []byte) string {
	var s strings.Builder
	for _, c := range b {
		if c == 0 || s.Len() == maxDescription {
			break
		}
		if c >= 0x20 && c < 0x7f {
			s.WriteByte(c)
		}
	}
	return strings.TrimSpace(s.String())
}

// appendV3 encodes a version 3 request as UML writes it (124 bytes, with
// the trailing padding) or, with a description, as libvdeplug writes it.
// Tests and the benchmark client use it.
func appendV3(b []byte, typ uint32, addr *unixsock.Addr, description string) []byte {
	b = binary.LittleEndian.AppendUint32(b, magic)
	b = binary.LittleEndian.AppendUint32(b, 3)
	b = binary.LittleEndian.AppendUint32(b, typ)
	b = append(b, addr[:]...)
	if description == "" {
		return append(b, 0, 0)
	}
	return append(b, description...)
}
