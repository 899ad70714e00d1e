package tunnel

import (
	"encoding/binary"
	"net/netip"

	"golang.org/x/sys/unix"
)

// sockaddrLen is enough for sockaddr_in6 (28 bytes), the larger of the two.
const sockaddrLen = unix.SizeofSockaddrInet6

// rawSockaddr is a sockaddr_in or sockaddr_in6 as the kernel lays it out,
// built once per peer and handed to sendmmsg as bytes.
type rawSockaddr struct {
	b [sockaddrLen]byte
	n int
}

func encodeSockaddr(a netip.AddrPort) rawSockaddr {
	var s rawSockaddr
	ip := a.Addr()
	if ip.Is4() {
		binary.LittleEndian.PutUint16(s.b[0:], unix.AF_INET)
		binary.BigEndian.PutUint16(s.b[2:], a.Port())
		v4 := ip.As4()
		copy(s.b[4:8], v4[:])
		s.n = unix.SizeofSockaddrInet4
		return s
	}
	binary.LittleEndian.PutUint16(s.b[0:], unix.AF_INET6)
	binary.BigEndian.PutUint16(s.b[2:], a.Port())
	v6 := ip.As16()
	copy(s.b[8:24], v6[:])
	s.n = unix.SizeofSockaddrInet6
	return s
}

// decodeSockaddr reads the sender address recvmmsg stored, without
// allocating. A malformed one gives the zero AddrPort. The zone of an IPv6
// address is left out: peers are configured without one.
func decodeSockaddr(b []byte) netip.AddrPort {
	if len(b) < unix.SizeofSockaddrInet4 {
		return netip.AddrPort{}
	}
	port := binary.BigEndian.Uint16(b[2:])
	switch binary.LittleEndian.Uint16(b) {
	case unix.AF_INET:
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[4:8])), port)
	case unix.AF_INET6:
		if len(b) < unix.SizeofSockaddrInet6 {
			return netip.AddrPort{}
		}
		return netip.AddrPortFrom(netip.AddrFrom16([16]byte(b[8:24])).Unmap(), port)
	}
	return netip.AddrPort{}
}

// ipv4HeaderLen validates the IPv4 header a raw IPv4 socket delivers in
// front of every packet and returns its length.
func ipv4HeaderLen(pkt []byte) (int, bool) {
	if len(pkt) < 20 || pkt[0]>>4 != 4 {
		return 0, false
	}
	n := int(pkt[0]&0x0f) * 4
	if n < 20 || n > len(pkt) {
		return 0, false
	}
	return n, true
}
