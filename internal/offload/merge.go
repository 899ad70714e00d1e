package offload

import (
	"bytes"
	"encoding/binary"
)

// Merging is segmentation run backwards, as GRO does it: consecutive
// segments of one TCP flow become one segmentation-offload frame that a
// tap or packet socket with virtio-net headers takes whole. The rules are
// the kernel's (tcp_gro_receive, inet_gro_receive, ipv6_gro_receive), kept
// so strict that NewPlan and Segment give back exactly the frames merged.

// MaxHeaders bounds the headers of a frame Coalesce merges: Ethernet with
// one VLAN tag, IPv6, and TCP with 40 bytes of options.
const MaxHeaders = 18 + 40 + 60

// maxSuper bounds a super-frame's IP length (IPv4 total length, IPv6
// payload length).
const maxSuper = 65535

// Run says how the leading frames of a batch merge.
type Run struct {
	// Count is how many leading frames merge into one super-frame; 1 means
	// the first frame goes alone (and Hdr and Hdrs mean nothing).
	Count int
	// Hdr is the super-frame's virtio-net header.
	Hdr Hdr
	// Hdrs is the length of every merged frame's headers: the super-frame
	// is head[:Hdrs] and then frames[i][Hdrs:] for i < Count.
	Hdrs int
}

// Put lays h out in b (at least HdrLen bytes) as ParseHdr reads it.
func (h Hdr) Put(b []byte) {
	_ = b[HdrLen-1]
	b[0], b[1] = h.Flags, h.GSOType
	binary.NativeEndian.PutUint16(b[2:], h.HdrLen)
	binary.NativeEndian.PutUint16(b[4:], h.GSOSize)
	binary.NativeEndian.PutUint16(b[6:], h.CsumStart)
	binary.NativeEndian.PutUint16(b[8:], h.CsumOffset)
}

// segment is where the headers of a candidate TCP segment lie.
type segment struct {
	ipOff, l4, hdrs int
	v6              bool
}

// TCP flags a merged segment may carry.
const (
	tcpACK = 0x10
	tcpPSH = 0x08
)

// parse finds the headers of f if it is a TCP segment with payload that
// a super-frame could hold: Ethernet with at most one VLAN tag, IPv4
// without options or fragmentation or IPv6 without extension headers,
// lengths that match the frame exactly (no padding), and a valid IPv4
// header checksum. The TCP checksum is checked apart (tcpSumOK): it costs
// a pass over the payload.
func parse(f []byte) (s segment, ok bool) {
	if len(f) < 14 {
		return s, false
	}
	s.ipOff = 14
	et := binary.BigEndian.Uint16(f[12:])
	if et == 0x8100 || et == 0x88a8 {
		if len(f) < 18 {
			return s, false
		}
		s.ipOff = 18
		et = binary.BigEndian.Uint16(f[16:])
	}
	ip := f[s.ipOff:]
	switch et {
	case 0x0800:
		if len(ip) < 20 || ip[0] != 0x45 || ip[9] != 6 || int(binary.BigEndian.Uint16(ip[2:])) != len(ip) ||
			binary.BigEndian.Uint16(ip[6:])&0x3fff != 0 || !sumOK(ip[:20], 0, ip[10:]) {
			return s, false
		}
		s.l4 = s.ipOff + 20
	case 0x86dd:
		if len(ip) < 40 || ip[0]>>4 != 6 || ip[6] != 6 || int(binary.BigEndian.Uint16(ip[4:])) != len(ip)-40 {
			return s, false
		}
		s.l4, s.v6 = s.ipOff+40, true
	default:
		return s, false
	}
	if s.l4+20 > len(f) {
		return s, false
	}
	s.hdrs = s.l4 + int(f[s.l4+12]>>4)*4
	return s, s.hdrs >= s.l4+20 && s.hdrs < len(f)
}

// sumOK says that the checksum over b (with pseudo added) verifies and
// that field, the checksum in b, is the one a sender computes: a field of
// 0xffff verifies where 0 is due, and cutting the super-frame up again
// would then not give back the same bytes.
func sumOK(b []byte, pseudo uint64, field []byte) bool {
	return fold(sum(b, pseudo)) == 0 && binary.BigEndian.Uint16(field) != 0xffff
}

// pseudo is the sum of s's pseudo-header but for the TCP length.
func (s segment) pseudo(f []byte) uint64 {
	if s.v6 {
		return sum(f[s.ipOff+8:s.ipOff+40], 6)
	}
	return sum(f[s.ipOff+12:s.ipOff+20], 6)
}

// tcpSumOK checks the TCP checksum of f, parsed as s.
func (s segment) tcpSumOK(f []byte) bool {
	return sumOK(f[s.l4:], s.pseudo(f)+uint64(len(f)-s.l4), f[s.l4+16:])
}

// sameFlow says that f, parsed as s, has the headers of first, parsed as
// fs, in every byte that must not change from segment to segment: all but
// the IP lengths, IPv4 id and checksum, TCP sequence number, flags and
// checksum.
func sameFlow(fs segment, first []byte, s segment, f []byte) bool {
	if s != fs || !bytes.Equal(f[:s.ipOff], first[:s.ipOff]) {
		return false
	}
	ip, ip0 := f[s.ipOff:s.l4], first[s.ipOff:s.l4]
	if s.v6 {
		// Version, class and flow label; next header, hop limit, addresses.
		if !bytes.Equal(ip[:4], ip0[:4]) || !bytes.Equal(ip[6:], ip0[6:]) {
			return false
		}
	} else if !bytes.Equal(ip[:2], ip0[:2]) || !bytes.Equal(ip[6:10], ip0[6:10]) || !bytes.Equal(ip[12:], ip0[12:]) {
		return false // version, TOS; DF, TTL, protocol; addresses
	}
	tcp, tcp0 := f[s.l4:s.hdrs], first[s.l4:s.hdrs]
	// Ports; acknowledgment, data offset; window; urgent pointer, options.
	return bytes.Equal(tcp[:4], tcp0[:4]) && bytes.Equal(tcp[8:13], tcp0[8:13]) &&
		bytes.Equal(tcp[14:16], tcp0[14:16]) && bytes.Equal(tcp[18:], tcp0[18:])
}

// Coalesce finds how many leading frames, at most limit, merge into one
// segmentation-offload super-frame, and when more than one, writes its
// headers into head. Frames merge when they are consecutive segments of
// one TCP connection, as GRO would merge them: the same Ethernet and IP
// headers but for lengths and (IPv4) an id one more each time, the same
// TCP header but for a sequence number that follows on, valid checksums,
// flags ACK alone (PSH too on the last), and payloads all the size of the
// first but for a shorter last one, the whole within 64 KiB. A frame that
// breaks a rule ends the run before it; one with PSH or a short payload
// ends it after itself. The frames are only read.
func Coalesce(frames [][]byte, limit int, head *[MaxHeaders]byte) Run {
	one := Run{Count: 1}
	if len(frames) < 2 || limit < 2 {
		return one
	}
	f0 := frames[0]
	s, ok := parse(f0)
	if !ok || f0[s.l4+13] != tcpACK {
		return one
	}
	mss := len(f0) - s.hdrs
	total := len(f0) // of the super-frame
	room := s.ipOff + maxSuper
	if s.v6 {
		room += 40
	}
	seq := binary.BigEndian.Uint32(f0[s.l4+4:])
	id := binary.BigEndian.Uint16(f0[s.ipOff+4:])
	n, psh := 1, byte(0)
	for n < len(frames) && n < limit {
		f := frames[n]
		fs, ok := parse(f)
		if !ok {
			break
		}
		size, flags := len(f)-fs.hdrs, f[fs.l4+13]
		seq += uint32(mss)
		id++
		if size > mss || total+size > room || flags&^tcpPSH != tcpACK || !sameFlow(s, f0, fs, f) ||
			binary.BigEndian.Uint32(f[s.l4+4:]) != seq || (!s.v6 && binary.BigEndian.Uint16(f[s.ipOff+4:]) != id) {
			break
		}
		// The checksums come last: they read the payload. The first frame's
		// is worth reading only once there is a second to merge it with.
		if !fs.tcpSumOK(f) || (n == 1 && !s.tcpSumOK(f0)) {
			break
		}
		n++
		total += size
		if psh = flags & tcpPSH; psh != 0 || size < mss {
			break
		}
	}
	if n < 2 {
		return one
	}
	h := head[:s.hdrs]
	copy(h, f0[:s.hdrs])
	ip, tcp := h[s.ipOff:], h[s.l4:]
	if s.v6 {
		binary.BigEndian.PutUint16(ip[4:], uint16(total-s.ipOff-40))
	} else {
		binary.BigEndian.PutUint16(ip[2:], uint16(total-s.ipOff))
		ip[10], ip[11] = 0, 0
		binary.BigEndian.PutUint16(ip[10:], fold(sum(ip[:20], 0)))
	}
	tcp[13] = tcpACK | psh
	// The checksum is left for offload: the pseudo-header's sum, which
	// the receiving kernel and Segment complete per segment.
	binary.BigEndian.PutUint16(tcp[16:], ^fold(s.pseudo(h)+uint64(total-s.l4)))
	gso := uint8(GSOTCPv4)
	if s.v6 {
		gso = GSOTCPv6
	}
	return Run{Count: n, Hdrs: s.hdrs, Hdr: Hdr{Flags: FlagNeedsCsum, GSOType: gso, HdrLen: uint16(s.hdrs),
		GSOSize: uint16(mss), CsumStart: uint16(s.l4), CsumOffset: 16}}
}

// Append appends the super-frame r describes to dst: head's headers, then
// the payload of each merged frame.
func (r Run) Append(dst []byte, head *[MaxHeaders]byte, frames [][]byte) []byte {
	dst = append(dst, head[:r.Hdrs]...)
	for _, f := range frames[:r.Count] {
		dst = append(dst, f[r.Hdrs:]...)
	}
	return dst
}
