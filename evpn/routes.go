package evpn

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"

	"github.com/umlswitch/umlswitch/frame"
)

// Route is an EVPN route as this package reads it: an inclusive multicast
// route (type 3, MAC unset) or a MAC/IP route (type 2).
type Route struct {
	Type   uint8 // bgp.EVPN_INCLUSIVE_MULTICAST_ETHERNET_TAG or bgp.EVPN_ROUTE_TYPE_MAC_IP_ADVERTISEMENT
	RD     string
	VTEP   netip.Addr // the next hop: where its VXLAN packets go
	Label  uint32     // the VNI the route carries (PMSI label, or first label)
	MAC    frame.MAC
	IP     netip.Addr // type 2 only, when the route also carries an address
	Seq    uint32     // MAC mobility sequence number
	Sticky bool
	Peer   netip.Addr // the neighbour it came from

	rts []bgp.ExtendedCommunityInterface
}

// errors a route is ignored for, counted by name.
var (
	errRouteType = errors.New("route type not used (only types 2 and 3)")
	errETag      = errors.New("ethernet tag not 0 (VLAN-aware bundles are not supported)")
	errMartian   = errors.New("martian next hop")
	errNoPMSI    = errors.New("type-3 route without an ingress-replication PMSI tunnel")
	errEncap     = errors.New("encapsulation other than VXLAN")
)

// decode reads a received path. The error says why it is of no use here.
func decode(p *apiutil.Path) (Route, error) {
	r := Route{Peer: p.PeerAddress}
	n, ok := p.Nlri.(*bgp.EVPNNLRI)
	if !ok {
		return r, fmt.Errorf("not an EVPN route: %T", p.Nlri)
	}
	r.Type = n.RouteType
	var etag uint32
	switch d := n.RouteTypeData.(type) {
	case *bgp.EVPNMulticastEthernetTagRoute:
		etag = d.ETag
		r.RD = rdString(d.RD)
	case *bgp.EVPNMacIPAdvertisementRoute:
		etag = d.ETag
		r.RD = rdString(d.RD)
		if len(d.MacAddress) != 6 {
			return r, fmt.Errorf("MAC address of %d bytes", len(d.MacAddress))
		}
		r.MAC = frame.MAC(d.MacAddress)
		r.IP = d.IPAddress
		if len(d.Labels) > 0 {
			r.Label = d.Labels[0]
		}
		if r.MAC.IsMulticast() {
			return r, fmt.Errorf("group address %s in a MAC route", r.MAC)
		}
		if r.MAC == (frame.MAC{}) {
			return r, errors.New("MAC route for 00:00:00:00:00:00")
		}
	default:
		return r, errRouteType
	}
	if etag != 0 {
		return r, errETag
	}
	var pmsi *bgp.PathAttributePmsiTunnel
	for _, a := range p.Attrs {
		switch a := a.(type) {
		case *bgp.PathAttributeMpReachNLRI:
			r.VTEP = a.Nexthop.Unmap()
		case *bgp.PathAttributeNextHop:
			if !r.VTEP.IsValid() {
				r.VTEP = a.Value.Unmap()
			}
		case *bgp.PathAttributePmsiTunnel:
			pmsi = a
		case *bgp.PathAttributeExtendedCommunities:
			for _, ec := range a.Value {
				switch c := ec.(type) {
				case *bgp.MacMobilityExtended:
					r.Seq, r.Sticky = c.Sequence, c.IsSticky
				case *bgp.EncapExtended:
					if c.TunnelType != bgp.TUNNEL_TYPE_VXLAN {
						return r, errEncap
					}
				default:
					if _, ok := rtNumber(ec); ok {
						r.rts = append(r.rts, ec)
					}
				}
			}
		}
	}
	if r.Type == bgp.EVPN_INCLUSIVE_MULTICAST_ETHERNET_TAG {
		if pmsi == nil || pmsi.TunnelType != bgp.PMSI_TUNNEL_TYPE_INGRESS_REPL {
			return r, errNoPMSI
		}
		r.Label = pmsi.Label
	}
	if martian(r.VTEP) {
		return r, fmt.Errorf("%w %s", errMartian, r.VTEP)
	}
	return r, nil
}

// martian reports whether a is no address a VTEP can have.
func martian(a netip.Addr) bool {
	return !a.IsValid() || a.IsUnspecified() || a.IsMulticast() || a.IsLoopback() || a.IsLinkLocalUnicast() ||
		a.Is4() && a.As4()[0] == 0 || a == netip.IPv4Unspecified() || a.Is4() && a.As4() == [4]byte{255, 255, 255, 255}
}

func rdString(rd bgp.RouteDistinguisherInterface) string {
	if rd == nil {
		return ""
	}
	return rd.String()
}

// advertisement is what one switch announces: its distinguisher, targets
// and VNI, from this VTEP.
type advertisement struct {
	rd     bgp.RouteDistinguisherInterface
	export []bgp.ExtendedCommunityInterface
	vni    uint32
	vtep   netip.Addr
}

// common are the attributes of every route this VTEP announces: origin,
// an empty AS path (GoBGP prepends ours towards eBGP peers), the next hop
// in MP_REACH_NLRI, the route targets and the VXLAN encapsulation.
func (a *advertisement) common(n bgp.NLRI, more ...bgp.ExtendedCommunityInterface) ([]bgp.PathAttributeInterface, error) {
	reach, err := bgp.NewPathAttributeMpReachNLRI(bgp.RF_EVPN, []bgp.PathNLRI{{NLRI: n}}, a.vtep)
	if err != nil {
		return nil, err
	}
	ecs := append(append(append([]bgp.ExtendedCommunityInterface(nil), a.export...),
		bgp.NewEncapExtended(bgp.TUNNEL_TYPE_VXLAN)), more...)
	return []bgp.PathAttributeInterface{
		bgp.NewPathAttributeOrigin(bgp.BGP_ORIGIN_ATTR_TYPE_IGP),
		bgp.NewPathAttributeAsPath(nil),
		reach,
		bgp.NewPathAttributeExtendedCommunities(ecs),
	}, nil
}

// imet is the switch's inclusive multicast route (type 3): "send this
// VNI's broadcast and unknown unicast to my VTEP", with the PMSI tunnel
// attribute FRR needs to flood to it.
func (a *advertisement) imet() (*apiutil.Path, error) {
	n, err := bgp.NewEVPNMulticastEthernetTagRoute(a.rd, 0, a.vtep)
	if err != nil {
		return nil, fmt.Errorf("type-3 route: %w", err)
	}
	attrs, err := a.common(n)
	if err != nil {
		return nil, fmt.Errorf("type-3 route: %w", err)
	}
	id, err := bgp.NewIngressReplTunnelID(a.vtep)
	if err != nil {
		return nil, fmt.Errorf("type-3 route: %w", err)
	}
	attrs = append(attrs, bgp.NewPathAttributePmsiTunnel(bgp.PMSI_TUNNEL_TYPE_INGRESS_REPL, false, a.vni, id))
	return &apiutil.Path{Family: bgp.RF_EVPN, Nlri: n, Attrs: attrs}, nil
}

// mac is the MAC route (type 2) of an address behind this VTEP, with its
// mobility sequence number. The extended community goes even with 0 (FRR
// leaves it out): GoBGP's table takes a route without it for sequence
// number -1, below a peer's explicit 0, and would withdraw ours.
func (a *advertisement) mac(m frame.MAC, seq uint32) (*apiutil.Path, error) {
	return a.macRoute(m, bgp.NewMacMobilityExtended(seq, false))
}

// macWithdrawal names the MAC route of m, to withdraw it: without the
// mobility community, which GoBGP would check against the sequence
// numbers it holds for m and refuse (fixupApiPath).
func (a *advertisement) macWithdrawal(m frame.MAC) (*apiutil.Path, error) { return a.macRoute(m) }

func (a *advertisement) macRoute(m frame.MAC, more ...bgp.ExtendedCommunityInterface) (*apiutil.Path, error) {
	n, err := bgp.NewEVPNMacIPAdvertisementRoute(a.rd, bgp.EthernetSegmentIdentifier{}, 0, m.String(), netip.Addr{}, []uint32{a.vni})
	if err != nil {
		return nil, fmt.Errorf("type-2 route %s: %w", m, err)
	}
	attrs, err := a.common(n, more...)
	if err != nil {
		return nil, fmt.Errorf("type-2 route %s: %w", m, err)
	}
	return &apiutil.Path{Family: bgp.RF_EVPN, Nlri: n, Attrs: attrs}, nil
}
