package gre

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// GRE header fields as UML's vector transport uses them (RFC 2784 with the
// RFC 2890 key and sequence extensions). UML never sets the checksum bit
// and requires a peer's first word to equal its own.
const (
	flagChecksum = 0x8000
	flagRouting  = 0x4000
	flagKey      = 0x2000
	flagSequence = 0x1000
	versionMask  = 0x0007
	// ProtoTEB is Transparent Ethernet Bridging: the payload is a frame.
	ProtoTEB = 0x6558
	// IPProto is GRE's IP protocol number.
	IPProto = 47
)

// Header is what a GRE header carries, decoded.
type Header struct {
	Checksum bool // C: a checksum and a reserved word follow the first word
	HasKey   bool
	Key      uint32
	HasSeq   bool
	Seq      uint32
	Version  uint8
	Proto    uint16
	Len      int // bytes the header occupies
}

// ErrTruncated means the packet ended inside the header.
var ErrTruncated = errors.New("gre: truncated header")

// Parse decodes the GRE header at the start of b. It accepts any version
// and protocol (the caller decides), but not the obsolete routing field.
func Parse(b []byte) (Header, error) {
	if len(b) < 4 {
		return Header{}, ErrTruncated
	}
	flags := binary.BigEndian.Uint16(b)
	h := Header{Checksum: flags&flagChecksum != 0, HasKey: flags&flagKey != 0, HasSeq: flags&flagSequence != 0,
		Version: uint8(flags & versionMask), Proto: binary.BigEndian.Uint16(b[2:]), Len: 4}
	if flags&flagRouting != 0 {
		return Header{}, fmt.Errorf("gre: routing present (RFC 1701), not supported")
	}
	if h.Checksum {
		h.Len += 4
	}
	if h.HasKey {
		if len(b) < h.Len+4 {
			return Header{}, ErrTruncated
		}
		h.Key = binary.BigEndian.Uint32(b[h.Len:])
		h.Len += 4
	}
	if h.HasSeq {
		if len(b) < h.Len+4 {
			return Header{}, ErrTruncated
		}
		h.Seq = binary.BigEndian.Uint32(b[h.Len:])
		h.Len += 4
	}
	if len(b) < h.Len {
		return Header{}, ErrTruncated
	}
	return h, nil
}

// firstWord is the flags, version and protocol word UML sends and expects
// for a configuration.
func firstWord(hasKey, seq bool) uint32 {
	var flags uint32
	if hasKey {
		flags |= flagKey
	}
	if seq {
		flags |= flagSequence
	}
	return flags<<16 | ProtoTEB
}

// Encode appends the header a port with this configuration sends: the key
// if keys are on, and a sequence slot (0, filled per frame unless pinned).
// It returns the header and the offset of the sequence number, or -1.
func Encode(hasKey bool, txKey uint32, seq bool) (hdr []byte, seqAt int) {
	hdr = binary.BigEndian.AppendUint32(nil, firstWord(hasKey, seq))
	if hasKey {
		hdr = binary.BigEndian.AppendUint32(hdr, txKey)
	}
	seqAt = -1
	if seq {
		seqAt = len(hdr)
		hdr = binary.BigEndian.AppendUint32(hdr, 0)
	}
	return hdr, seqAt
}
