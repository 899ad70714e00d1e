package tunnel

import (
	"fmt"
	"net/netip"

	"github.com/umlswitch/umlswitch/configs"
)

// Addrs are the keys every tunnel kind takes, in UML's names seen from the
// switch's side: src is the switch's address, dst the peer's.
type Addrs struct {
	Src, Dst netip.Addr
	V6       bool
}

// AddrKeys are src=, dst= and v6= over the Addrs in a kind's options.
func AddrKeys[O any](addrs func(*O) *Addrs) []configs.Key {
	return []configs.Key{
		configs.Value("src", "ADDR", "the switch's address (the peer's dst=)", func(o *O) *netip.Addr { return &addrs(o).Src },
			configs.ParseAddr, netip.Addr.String).Require(),
		configs.Value("dst", "ADDR", "the peer's address (its src=)", func(o *O) *netip.Addr { return &addrs(o).Dst },
			configs.ParseAddr, netip.Addr.String).Require(),
		configs.Flag("v6", "IPv6 addresses", func(o *O) *bool { return &addrs(o).V6 }),
	}
}

// Check refuses addresses of the family v6= does not name: UML opens an
// IPv4 socket unless told v6=1.
func (a Addrs) Check() error {
	for _, x := range []struct {
		key  string
		addr netip.Addr
	}{{"src", a.Src}, {"dst", a.Dst}} {
		if a.V6 && !x.addr.Is6() {
			return fmt.Errorf("%s=%s: v6=1 needs IPv6 addresses", x.key, x.addr)
		}
		if !a.V6 && !x.addr.Is4() {
			return fmt.Errorf("%s=%s: an IPv6 address needs v6=1 (as UML, which otherwise opens an IPv4 socket)", x.key, x.addr)
		}
	}
	return nil
}
