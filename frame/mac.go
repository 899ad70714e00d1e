package frame

import (
	"fmt"
	"net"
)

// MAC is an Ethernet address held by value, so that it can be a map key and
// be taken from a frame without a heap allocation.
type MAC [6]byte

// Broadcast is ff:ff:ff:ff:ff:ff.
var Broadcast = MAC{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// DstMAC returns the destination address of an Ethernet frame of at least
// HeaderLen bytes.
func DstMAC(f []byte) MAC { return MAC(f[0:6]) }

// SrcMAC returns the source address of an Ethernet frame of at least
// HeaderLen bytes.
func SrcMAC(f []byte) MAC { return MAC(f[6:12]) }

// IsMulticast reports whether the group bit is set; broadcast is multicast.
func (m MAC) IsMulticast() bool { return m[0]&1 != 0 }

// IsBroadcast reports whether m is ff:ff:ff:ff:ff:ff.
func (m MAC) IsBroadcast() bool { return m == Broadcast }

// String formats m as six colon-separated hex bytes. For logs, not the hot path.
func (m MAC) String() string {
	return fmt.Sprintf("%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5])
}

// ParseMAC parses a 48-bit address in any form net.ParseMAC accepts.
func ParseMAC(s string) (MAC, error) {
	hw, err := net.ParseMAC(s)
	if err != nil {
		return MAC{}, err
	}
	if len(hw) != 6 {
		return MAC{}, fmt.Errorf("mac %q: not a 48-bit address", s)
	}
	return MAC(hw), nil
}
