package packetsock

import (
	"encoding/binary"
	"testing"

	"golang.org/x/sys/unix"
)

func TestAllProtocolsIsNetworkOrder(t *testing.T) {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], unix.ETH_P_ALL)
	if got := binary.NativeEndian.Uint16(b[:]); got != AllProtocols {
		t.Fatalf("AllProtocols = %#04x, want %#04x", AllProtocols, got)
	}
}
