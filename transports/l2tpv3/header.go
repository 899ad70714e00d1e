package l2tpv3

import (
	"encoding/binary"
	"errors"
)

const (
	// dataWord starts every L2TPv3 data message over UDP: T=0 (data),
	// version 3, reserved zero (RFC 3931 section 4.1.2.1).
	dataWord = 0x00030000
	// IPProto is L2TPv3's IP protocol number.
	IPProto = 115
)

// Layout is the header shape a pair of peers agree on: L2TPv3 carries no
// lengths or flags that would let a receiver find the cookie or counter.
type Layout struct {
	UDP     bool // a 4-byte data word comes first
	Cookie  int  // 0, 4 or 8 bytes
	Counter bool // a 4-byte counter after the cookie (UML's, not RFC 4719's sublayer)
}

// Len is the header's length.
func (l Layout) Len() int {
	n := 4 + l.Cookie
	if l.UDP {
		n += 4
	}
	if l.Counter {
		n += 4
	}
	return n
}

// SessionAt is where the session id sits.
func (l Layout) SessionAt() int {
	if l.UDP {
		return 4
	}
	return 0
}

// Header is a decoded L2TPv3 data header.
type Header struct {
	Word    uint32 // the UDP data word, when UDP
	Session uint32
	Cookie  uint64
	Counter uint32
}

// ErrTruncated means the packet ended inside the header.
var ErrTruncated = errors.New("l2tpv3: truncated header")

// Parse decodes a header of layout l at the start of b.
func Parse(b []byte, l Layout) (Header, error) {
	if len(b) < l.Len() {
		return Header{}, ErrTruncated
	}
	var h Header
	off := 0
	if l.UDP {
		h.Word = binary.BigEndian.Uint32(b)
		off = 4
	}
	h.Session = binary.BigEndian.Uint32(b[off:])
	off += 4
	switch l.Cookie {
	case 4:
		h.Cookie = uint64(binary.BigEndian.Uint32(b[off:]))
	case 8:
		h.Cookie = binary.BigEndian.Uint64(b[off:])
	}
	off += l.Cookie
	if l.Counter {
		h.Counter = binary.BigEndian.Uint32(b[off:])
	}
	return h, nil
}

// Encode returns the header a port of layout l sends, and the offset of its
// counter (filled per frame unless pinned), or -1.
func Encode(l Layout, txSession uint32, txCookie uint64) (hdr []byte, counterAt int) {
	if l.UDP {
		hdr = binary.BigEndian.AppendUint32(hdr, dataWord)
	}
	hdr = binary.BigEndian.AppendUint32(hdr, txSession)
	switch l.Cookie {
	case 4:
		hdr = binary.BigEndian.AppendUint32(hdr, uint32(txCookie))
	case 8:
		hdr = binary.BigEndian.AppendUint64(hdr, txCookie)
	}
	counterAt = -1
	if l.Counter {
		counterAt = len(hdr)
		hdr = binary.BigEndian.AppendUint32(hdr, 0)
	}
	return hdr, counterAt
}
