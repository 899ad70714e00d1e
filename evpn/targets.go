package evpn

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
)

// target is a route target to import: an exact one, or any AS part with
// this number ("*:N", FRR's route-target import *:N).
type target struct {
	anyAS bool
	ec    bgp.ExtendedCommunityInterface // exact
	n     uint32                         // anyAS
}

// parseImport reads an import_rt entry; the configuration checked its
// syntax already.
func parseImport(s string) (target, error) {
	if num, ok := strings.CutPrefix(s, "*:"); ok {
		n, err := strconv.ParseUint(num, 10, 32)
		if err != nil {
			return target{}, fmt.Errorf("route target %q: %w", s, err)
		}
		return target{anyAS: true, n: uint32(n)}, nil
	}
	ec, err := bgp.ParseRouteTarget(s)
	if err != nil {
		return target{}, fmt.Errorf("route target %q: %w", s, err)
	}
	return target{ec: ec}, nil
}

// rtNumber is a route target's assigned number (the part after the colon),
// and whether ec is a route target at all.
func rtNumber(ec bgp.ExtendedCommunityInterface) (uint32, bool) {
	switch c := ec.(type) {
	case *bgp.TwoOctetAsSpecificExtended:
		return c.LocalAdmin, c.SubType == bgp.EC_SUBTYPE_ROUTE_TARGET
	case *bgp.FourOctetAsSpecificExtended:
		return uint32(c.LocalAdmin), c.SubType == bgp.EC_SUBTYPE_ROUTE_TARGET
	case *bgp.IPv4AddressSpecificExtended:
		return uint32(c.LocalAdmin), c.SubType == bgp.EC_SUBTYPE_ROUTE_TARGET
	}
	return 0, false
}

// matches reports whether a route carrying the route targets rts is for
// this target.
func (t target) matches(rts []bgp.ExtendedCommunityInterface) bool {
	for _, rt := range rts {
		n, ok := rtNumber(rt)
		if !ok {
			continue
		}
		if t.anyAS && n == t.n || !t.anyAS && rt.String() == t.ec.String() {
			return true
		}
	}
	return false
}

// autoRT is FRR's derived route target of a VNI: the two low octets of the
// ASN and the VNI.
func autoRT(asn, vni uint32) bgp.ExtendedCommunityInterface {
	return bgp.NewTwoOctetAsSpecificExtended(bgp.EC_SUBTYPE_ROUTE_TARGET, uint16(asn&0xffff), vni, true)
}

// autoRD is the derived route distinguisher: the router id and a small
// per-switch number (a type-1 distinguisher has 16 bits for it, so the VNI
// does not fit).
func autoRD(routerID netip.Addr, n uint16) (bgp.RouteDistinguisherInterface, error) {
	return bgp.NewRouteDistinguisherIPAddressAS(routerID, n)
}
