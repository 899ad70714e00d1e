// Package offload undoes the work a host leaves to network hardware, for
// frames read with a virtio-net header (a tap with IFF_VNET_HDR, a packet
// socket with PACKET_VNET_HDR): it completes TCP and UDP checksums left
// partial, and cuts a TCP segmentation-offload frame of up to 64 KiB into
// the segments the wire would carry. Every other port of the switch then
// sees ordinary, valid frames. The other way, Coalesce merges consecutive
// segments of one TCP flow into one such frame, as GRO would, for a host
// that takes it whole.
//
// The header's hdr_len is not used: Linux fills it with the length of the
// buffer's linear part, which may hold payload. Header lengths come from
// the frame itself, starting at csum_start.
package offload

import (
	"encoding/binary"
	"errors"
	"math/bits"
)

// HdrLen is the size of struct virtio_net_hdr.
const HdrLen = 10

// Header flags and GSO types (linux/virtio_net.h).
const (
	FlagNeedsCsum = 1
	GSONone       = 0
	GSOTCPv4      = 1
	GSOTCPv6      = 4
	GSOECN        = 0x80
)

// Hdr is a virtio-net header. Its fields are in the host's byte order, as
// taps and packet sockets use them on little-endian machines and as legacy
// virtio does on every machine.
type Hdr struct {
	Flags, GSOType                         uint8
	HdrLen, GSOSize, CsumStart, CsumOffset uint16
}

// ParseHdr reads a header from the first HdrLen bytes of b.
func ParseHdr(b []byte) Hdr {
	_ = b[HdrLen-1]
	return Hdr{Flags: b[0], GSOType: b[1],
		HdrLen: binary.NativeEndian.Uint16(b[2:]), GSOSize: binary.NativeEndian.Uint16(b[4:]),
		CsumStart: binary.NativeEndian.Uint16(b[6:]), CsumOffset: binary.NativeEndian.Uint16(b[8:])}
}

// IsGSO says the frame is a segmentation-offload frame to be cut up.
func (h Hdr) IsGSO() bool { return h.GSOType&^GSOECN != GSONone }

// CompleteChecksum fills in the checksum at f[start+offset:] over f[start:],
// where the field holds the pseudo-header's sum, as a stack leaves it for
// offload. It does nothing when the header asks for no checksum or points
// outside f.
func CompleteChecksum(h Hdr, f []byte) {
	if h.Flags&FlagNeedsCsum == 0 {
		return
	}
	start, at := int(h.CsumStart), int(h.CsumStart)+int(h.CsumOffset)
	if at+2 > len(f) {
		return
	}
	c := fold(sum(f[start:], 0))
	if c == 0 && h.CsumOffset == 6 { // UDP writes a computed zero as all ones
		c = 0xffff
	}
	binary.BigEndian.PutUint16(f[at:], c)
}

// sum adds b as big-endian 16-bit words to s, in one's-complement
// arithmetic, and returns a sum below 2^33 that fold reduces. It reads 8
// bytes at a time: a 64-bit word is its four 16-bit words, and a carry out
// of 64 bits is one, modulo 0xffff.
func sum(b []byte, s uint64) uint64 {
	var c uint64
	for len(b) >= 32 {
		s, c = bits.Add64(s, binary.BigEndian.Uint64(b), c)
		s, c = bits.Add64(s, binary.BigEndian.Uint64(b[8:]), c)
		s, c = bits.Add64(s, binary.BigEndian.Uint64(b[16:]), c)
		s, c = bits.Add64(s, binary.BigEndian.Uint64(b[24:]), c)
		b = b[32:]
	}
	for len(b) >= 8 {
		s, c = bits.Add64(s, binary.BigEndian.Uint64(b), c)
		b = b[8:]
	}
	s, c = bits.Add64(s, c, 0)
	s = s>>32 + s&0xffffffff + c // below 2^33
	for len(b) >= 2 {
		s += uint64(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		s += uint64(b[0]) << 8
	}
	return s
}

// fold returns the one's complement of the one's-complement sum s.
func fold(s uint64) uint16 {
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return ^uint16(s)
}

// ErrMalformed is returned for a GSO frame whose headers do not describe a
// TCP segment the package can cut up.
var ErrMalformed = errors.New("offload: malformed segmentation-offload frame")

// Plan describes how one TCP segmentation-offload frame splits.
type Plan struct {
	Count   int // segments
	ipOff   int // network header
	l4      int // TCP header
	hdrs    int // all headers, copied into every segment
	mss     int
	v6      bool
	payload int
}

// NewPlan checks the headers of a GSO frame f (IPv4 or IPv6 TCP behind
// Ethernet and at most one VLAN tag) against h.
func NewPlan(h Hdr, f []byte) (Plan, error) {
	var p Plan
	switch h.GSOType &^ GSOECN {
	case GSOTCPv4:
	case GSOTCPv6:
		p.v6 = true
	default:
		return p, ErrMalformed
	}
	p.ipOff = 14
	if len(f) >= 14 {
		if et := binary.BigEndian.Uint16(f[12:]); et == 0x8100 || et == 0x88a8 {
			p.ipOff = 18
		}
	}
	p.l4, p.mss = int(h.CsumStart), int(h.GSOSize)
	if p.mss == 0 || h.Flags&FlagNeedsCsum == 0 || h.CsumOffset != 16 || p.l4+20 > len(f) {
		return p, ErrMalformed
	}
	if p.v6 {
		if p.l4 < p.ipOff+40 || f[p.ipOff]>>4 != 6 {
			return p, ErrMalformed
		}
	} else if f[p.ipOff]>>4 != 4 || p.ipOff+int(f[p.ipOff]&0xf)*4 != p.l4 || p.l4 < p.ipOff+20 {
		return p, ErrMalformed
	}
	p.hdrs = p.l4 + int(f[p.l4+12]>>4)*4
	if p.hdrs < p.l4+20 || p.hdrs >= len(f) {
		return p, ErrMalformed
	}
	p.payload = len(f) - p.hdrs
	p.Count = (p.payload + p.mss - 1) / p.mss
	return p, nil
}

// Size is the length of segment i.
func (p Plan) Size(i int) int { return p.hdrs + min(p.mss, p.payload-i*p.mss) }

// Segment writes segment i of f into out, which must hold Size(i) bytes:
// the headers with lengths, IPv4 id and checksum, sequence number, flags
// and TCP checksum made right for it.
func (p Plan) Segment(f []byte, i int, out []byte) {
	n := p.Size(i)
	out = out[:n]
	copy(out, f[:p.hdrs])
	copy(out[p.hdrs:], f[p.hdrs+i*p.mss:p.hdrs+i*p.mss+n-p.hdrs])
	ip, tcp := out[p.ipOff:], out[p.l4:]
	var pseudo uint64
	l4len := n - p.l4
	if p.v6 {
		binary.BigEndian.PutUint16(ip[4:], uint16(n-p.ipOff-40))
		pseudo = sum(ip[8:40], 0)
	} else {
		binary.BigEndian.PutUint16(ip[2:], uint16(n-p.ipOff))
		binary.BigEndian.PutUint16(ip[4:], binary.BigEndian.Uint16(ip[4:])+uint16(i))
		ip[10], ip[11] = 0, 0
		binary.BigEndian.PutUint16(ip[10:], fold(sum(ip[:p.l4-p.ipOff], 0)))
		pseudo = sum(ip[12:20], 0)
	}
	pseudo += 6 + uint64(l4len)
	binary.BigEndian.PutUint32(tcp[4:], binary.BigEndian.Uint32(tcp[4:])+uint32(i*p.mss))
	if i != p.Count-1 {
		tcp[13] &^= 0x01 | 0x08 // FIN and PSH go with the last segment only
	}
	if i != 0 {
		tcp[13] &^= 0x80 // CWR with the first only
	}
	tcp[16], tcp[17] = 0, 0
	binary.BigEndian.PutUint16(tcp[16:], fold(sum(tcp[:l4len], pseudo)))
}

// CompletePartial completes the TCP or UDP checksum of an Ethernet frame
// that came without a virtio-net header (AF_XDP hands none over) where a
// stack on this host left it for offload: the field then holds just the
// pseudo-header's sum, as a veth passes on what its peer's stack sent. It
// reports whether it wrote one. Any other value is the sender's own
// checksum, right or wrong, and stays; where a whole checksum happens to
// equal the pseudo-header's sum, completing it writes the same value back.
// IPv4 (unfragmented) and IPv6 (TCP or UDP as the first next header),
// behind Ethernet and at most two VLAN tags.
func CompletePartial(f []byte) bool {
	ip := 14
	for ip+4 <= len(f) {
		if et := binary.BigEndian.Uint16(f[ip-2:]); et != 0x8100 && et != 0x88a8 {
			break
		}
		ip += 4
	}
	if ip > 22 || ip+20 > len(f) {
		return false
	}
	var l4, l4len int
	var proto byte
	var pseudo uint64
	switch binary.BigEndian.Uint16(f[ip-2:]) {
	case 0x0800:
		ihl := int(f[ip]&0xf) * 4
		total := int(binary.BigEndian.Uint16(f[ip+2:]))
		if f[ip]>>4 != 4 || ihl < 20 || total < ihl || ip+total > len(f) || binary.BigEndian.Uint16(f[ip+6:])&0x3fff != 0 {
			return false // not IPv4, cut short, or a fragment
		}
		l4, l4len, proto = ip+ihl, total-ihl, f[ip+9]
		pseudo = sum(f[ip+12:ip+20], 0)
	case 0x86dd:
		if f[ip]>>4 != 6 || ip+40 > len(f) {
			return false
		}
		l4, l4len, proto = ip+40, int(binary.BigEndian.Uint16(f[ip+4:])), f[ip+6]
		if l4+l4len > len(f) {
			return false
		}
		pseudo = sum(f[ip+8:ip+40], 0)
	default:
		return false
	}
	at := l4 + 16 // TCP
	switch proto {
	case 6:
		if l4len < 20 {
			return false
		}
	case 17:
		at = l4 + 6
		if l4len < 8 {
			return false
		}
	default:
		return false
	}
	pseudo += uint64(proto) + uint64(l4len)
	field := binary.BigEndian.Uint16(f[at:])
	if field != ^fold(pseudo) || (proto == 17 && field == 0) {
		return false
	}
	c := fold(sum(f[l4:l4+l4len], 0))
	if c == 0 && proto == 17 { // UDP writes a computed zero as all ones
		c = 0xffff
	}
	binary.BigEndian.PutUint16(f[at:], c)
	return true
}
