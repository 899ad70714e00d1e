package evpn

import (
	"log/slog"
	"net/netip"
	"testing"

	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"

	"github.com/umlswitch/umlswitch/configs"
)

// FuzzDecodeRoute: a BGP UPDATE from a peer, parsed by GoBGP, becomes the
// paths GoBGP's best path callback hands over, each with every attribute
// of the message. decode never panics; a route it and check accept has a
// type this package uses, a VTEP that can be one, and a unicast MAC; and
// a speaker that learns every route, then forgets each, holds nothing
// and has asked nothing odd of its data plane.
func FuzzDecodeRoute(f *testing.F) {
	ip6 := netip.MustParseAddr("2001:db8::9")
	for _, rs := range [][]rt{
		{{typ: 3, vni: 100, vtep: vtepR}},
		{{typ: 2, vni: 100, vtep: vtepR, mac: macR}},
		{{typ: 2, vni: 100, vtep: vtepR, mac: macR, ip: netip.MustParseAddr("198.51.100.7"), seq: 3, sticky: true}},
		{{typ: 2, vni: 100, vtep: vtepR, mac: macR, labels: []uint32{100, 5000}}},
		{{typ: 3, vni: 100, vtep: vtepR, noPMSI: true}},
		{{typ: 3, vni: 100, vtep: vtepR, etag: 7}},
		{{typ: 3, vni: 100, vtep: vtepR, noEncap: true, asn: 65001}},
		{{typ: 3, vni: 200, vtep: vtepQ, pmsiType: bgp.PMSI_TUNNEL_TYPE_PIM_SM_TREE}},
		{{typ: 1, vni: 100, vtep: vtepR}}, {{typ: 4, vni: 100, vtep: vtepR}}, {{typ: 5, vni: 100, vtep: vtepR}},
		{{typ: 3, vni: 100, vtep: ip6}},
		{{typ: 2, vni: 100, vtep: vtepA, mac: macR}},
	} {
		for _, x := range rs {
			p := x.path(f)
			b, err := bgp.NewBGPUpdateMessage(nil, p.Attrs, nil).Serialize()
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
	}
	peer := netip.MustParseAddr("127.0.0.2")
	f.Fuzz(func(t *testing.T, b []byte) {
		msg, err := bgp.ParseBGPMessage(b)
		if err != nil {
			return
		}
		u, ok := msg.Body.(*bgp.BGPUpdate)
		if !ok {
			return
		}
		dp := newFakeDP()
		s := bareSpeaker(t, dp)
		keys := make(map[string]bool)
		for _, a := range u.PathAttributes {
			switch a := a.(type) {
			case *bgp.PathAttributeMpReachNLRI:
				for _, n := range a.Value {
					p := &apiutil.Path{Family: bgp.NewFamily(a.AFI, a.SAFI), Nlri: n.NLRI, Attrs: u.PathAttributes,
						PeerAddress: peer}
					key := n.NLRI.String()
					r, err := decode(p)
					if err == nil {
						err = s.check(&r)
					}
					if err != nil {
						s.ignore(key, p, err)
						continue
					}
					switch {
					case r.Type != bgp.EVPN_INCLUSIVE_MULTICAST_ETHERNET_TAG && r.Type != bgp.EVPN_ROUTE_TYPE_MAC_IP_ADVERTISEMENT:
						t.Fatalf("route of type %d accepted", r.Type)
					case martian(r.VTEP) || r.VTEP == vtepA || !r.VTEP.Is4():
						t.Fatalf("VTEP %v accepted", r.VTEP)
					case r.MAC.IsMulticast():
						t.Fatalf("MAC %v accepted", r.MAC)
					}
					_ = routeInfo(&r)
					s.learn(key, r)
					keys[key] = true
				}
			case *bgp.PathAttributeMpUnreachNLRI:
				for _, n := range a.Value {
					s.forget(n.NLRI.String())
				}
			}
		}
		dp.mu.Lock()
		for tn := range dp.tunnels {
			if martian(tn.Remote) || tn.Remote == vtepA {
				t.Errorf("tunnel %+v", tn)
			}
		}
		for sw, ms := range dp.remote {
			for m := range ms {
				if m.IsMulticast() {
					t.Errorf("remote entry %s in %s", m, sw)
				}
			}
		}
		dp.mu.Unlock()
		for key := range keys {
			s.forget(key)
		}
		if ts, rm := dp.tunnelSet(), dp.remoteSet(); len(ts)+len(rm)+len(s.routes) > 0 || len(dp.odd) > 0 {
			t.Fatalf("all forgotten, left: tunnels %v, remote %v, routes %d, odd calls %v", ts, rm, len(s.routes), dp.odd)
		}
		for _, v := range s.vnis {
			if len(v.vteps)+len(v.remote)+len(v.installed) > 0 {
				t.Fatalf("vni %d keeps VTEPs %v, routes %v, installed %v", v.id, v.vteps, v.remote, v.installed)
			}
		}
	})
}

// bareSpeaker is a speaker's route handling without BGP: VNI 100 imports
// any target numbered 100, VNI 200 imports 65000:100 and 65000:200 (so a
// route can go into both).
func bareSpeaker(t testing.TB, dp *fakeDP) *Speaker {
	s := &Speaker{log: slog.New(slog.DiscardHandler), dp: dp, onEvent: func(Event) {},
		cfg:  &configs.EVPN{ASN: rawASN, VTEP: vtepA, VXLANPort: 4789},
		vnis: make(map[uint32]*vni), routes: make(map[string]*received), ignored: make(map[string]uint64)}
	s.vnis[100] = newVNI("a", 100)
	v := newVNI("b", 200)
	for _, rt := range []string{"65000:100", "65000:200"} {
		tg, err := parseImport(rt)
		if err != nil {
			t.Fatal(err)
		}
		v.imports = append(v.imports, tg)
	}
	s.vnis[200] = v
	return s
}
