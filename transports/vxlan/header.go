package vxlan

import (
	"encoding/binary"
	"errors"
)

// The VXLAN header (RFC 7348 section 5): a flags byte whose only defined
// bit, I, says the VNI is valid; 24 reserved bits; the 24-bit VNI; 8
// reserved bits. Like Linux's vxlan device, a receiver here accepts only
// the I bit and zero reserved fields.
const (
	// HeaderLen is the header's length; the inner frame follows it.
	HeaderLen = 8
	// FlagI is the flags byte every header carries.
	FlagI = 0x08
	// MaxVNI is the largest network identifier.
	MaxVNI = 1<<24 - 1
	// DefaultPort is IANA's VXLAN port, used when Config.DstPort is 0.
	// (Linux's vxlan device defaults to 8472 unless given dstport 4789.)
	DefaultPort = 4789
)

var (
	// ErrTruncated means the packet is shorter than the header.
	ErrTruncated = errors.New("vxlan: truncated header")
	// ErrFlags means the flags byte is not exactly FlagI.
	ErrFlags = errors.New("vxlan: flags other than the I bit")
	// ErrReserved means a reserved field is not zero.
	ErrReserved = errors.New("vxlan: reserved field not zero")
)

// Encode returns the header that carries vni. Bits above the 24 a VNI has
// are ignored; Open refuses such VNIs before they get here.
func Encode(vni uint32) [HeaderLen]byte {
	var h [HeaderLen]byte
	h[0] = FlagI
	binary.BigEndian.PutUint32(h[4:], (vni&MaxVNI)<<8)
	return h
}

// Decode checks the header at the start of b and returns its VNI.
func Decode(b []byte) (vni uint32, err error) {
	if len(b) < HeaderLen {
		return 0, ErrTruncated
	}
	if b[0] != FlagI {
		return 0, ErrFlags
	}
	if b[1]|b[2]|b[3]|b[7] != 0 {
		return 0, ErrReserved
	}
	return binary.BigEndian.Uint32(b[4:]) >> 8, nil
}
