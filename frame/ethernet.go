package frame

const (
	// HeaderLen is the Ethernet header: destination, source, ethertype.
	HeaderLen = 14
	// VLANTagLen is one 802.1Q tag.
	VLANTagLen = 4
	// DefaultMTU is the IP MTU a port has unless configured otherwise.
	DefaultMTU = 1500
	// MaxFrameLimit is the largest frame any port accepts (IP packet limit).
	MaxFrameLimit = 65535
)

// MaxFrameForMTU is the largest frame a port with IP MTU mtu carries: the
// Ethernet header and two VLAN tags on top of the MTU (1522 for 1500, no
// FCS), so that a full-sized frame of a customer VLAN carried in a service
// VLAN (QinQ) is not oversize.
func MaxFrameForMTU(mtu int) int { return mtu + HeaderLen + 2*VLANTagLen }

// EtherType returns the type field of a frame of at least HeaderLen bytes.
func EtherType(f []byte) uint16 { return uint16(f[12])<<8 | uint16(f[13]) }
