package configs_test

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/umlswitch/umlswitch/configs"
)

const evpnFile = `vni_base: 1000
evpn:
  asn: 65000
  router_id: 10.99.0.1
  vtep: 10.99.0.1
  hold_time: 3s
  neighbors:
    - {address: 10.99.0.2, asn: 65000}
`

// umlswitch lab -evpn's document: the configuration file's evpn: block,
// with its defaults, and vni_base.
func TestParseEVPNFile(t *testing.T) {
	e, base, err := configs.ParseEVPNFile([]byte(evpnFile))
	if err != nil {
		t.Fatal(err)
	}
	want := &configs.EVPN{ASN: 65000, RouterID: netip.MustParseAddr("10.99.0.1"), VTEP: netip.MustParseAddr("10.99.0.1"),
		VXLANPort: configs.DefaultVXLANPort, ListenPort: configs.DefaultBGPPort, HoldTime: 3 * time.Second, RestartTime: configs.DefaultRestartTime,
		Neighbors: []configs.Neighbor{{Address: netip.MustParseAddr("10.99.0.2"), ASN: 65000}}}
	if base != 1000 || !e.Equal(want) {
		t.Errorf("vni_base %d, evpn %+v\nwant 1000, %+v", base, e, want)
	}
	// The configuration file's parser reads the same block alike.
	f, err := configs.Parse([]byte(strings.Replace(evpnFile, "vni_base: 1000", "vni: 1000", 1)))
	if err != nil || !f.EVPN.Equal(e) {
		t.Errorf("config file: %+v %v", f, err)
	}
	for _, c := range []struct {
		doc  string
		base uint32
	}{{"vni_base: 0x10", 16}, {"vni_base: '16777215'", configs.MaxVNI}} {
		if _, base, err := configs.ParseEVPNFile([]byte(strings.Replace(evpnFile, "vni_base: 1000", c.doc, 1))); err != nil || base != c.base {
			t.Errorf("%s: %d %v", c.doc, base, err)
		}
	}
}

// Refused documents: each error names the key at fault.
func TestParseEVPNFileErrors(t *testing.T) {
	for _, c := range []struct{ doc, want string }{
		{"", "vni_base: required"},
		{"evpn: {asn: 1, router_id: 1.1.1.1, vtep: 1.1.1.1}", "vni_base: required"},
		{"vni_base: 1", "evpn: required"},
		{"vni_base: 1\nevpn:", "evpn: required"},
		{strings.Replace(evpnFile, "1000", "0", 1), `vni_base: 0 is out of range 1..16777215`},
		{strings.Replace(evpnFile, "1000", "16777216", 1), `vni_base: 16777216 is out of range`},
		{strings.Replace(evpnFile, "1000", "many", 1), `vni_base: "many" is not a number`},
		{strings.Replace(evpnFile, "vni_base: 1000", "vni_base: [1, 2]", 1), "an option must be a single value"},
		{strings.Replace(evpnFile, "  asn: 65000\n", "", 1), "evpn.asn: required"},
		{strings.Replace(evpnFile, "10.99.0.1\n  hold", "0.0.0.0\n  hold", 1), "evpn.vtep:"},
		{strings.Replace(evpnFile, "3s", "1s", 1), "evpn.hold_time: 1s is out of range"},
		{strings.Replace(evpnFile, "asn: 65000}", "asn: 0}", 1), "evpn.neighbors[0].asn:"},
		{evpnFile + "    - {address: 10.99.0.2, asn: 65001}\n", "evpn.neighbors[1].address: 10.99.0.2 is already evpn.neighbors[0]"},
		// Unknown keys, at the top, in the block and in a neighbour.
		{evpnFile + "vni: 7\n", "field vni not found"},
		{strings.Replace(evpnFile, "vni_base", "vni_bsae", 1), "field vni_bsae not found"},
		{strings.Replace(evpnFile, "  hold_time", "  holdtime", 1), "field holdtime not found"},
		{strings.Replace(evpnFile, "asn: 65000}", "asn: 65000, pasive: true}", 1), "field pasive not found"},
		{"- 1\n- 2\n", "cannot unmarshal"},
	} {
		_, _, err := configs.ParseEVPNFile([]byte(c.doc))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want %q", c.doc, err, c.want)
		}
	}
}

// FuzzParseEVPNFile: no document makes ParseEVPNFile panic; what it
// accepts has a VNI base in range and an evpn: block that the
// configuration file's parser takes alike.
func FuzzParseEVPNFile(f *testing.F) {
	f.Add([]byte(evpnFile))
	f.Add([]byte("vni_base: 0xffffff\nevpn: {asn: 4200000000, router_id: 10.0.0.1, vtep: 'fd00::1', listen_port: 0, " +
		"neighbors: [{address: 'fd00::2', asn: 1, port: 1179, passive: true}]}"))
	f.Add([]byte("vni_base: 1\nevpn:\n  asn: 1\n  router_id: 1.2.3.4\n  vtep: 1.2.3.4\n  vxlan_port: 4790\n  hold_time: 65535s\n"))
	f.Add([]byte("vni_base: -1\nevpn: {}\n"))
	f.Add([]byte("evpn: {asn: 1, router_id: 1.1.1.1, vtep: 1.1.1.1, x: 1}\n"))
	f.Fuzz(func(t *testing.T, doc []byte) {
		e, base, err := configs.ParseEVPNFile(doc)
		if err != nil {
			if e != nil || base != 0 {
				t.Fatalf("error %v with %+v and %d", err, e, base)
			}
			return
		}
		if e == nil || base < 1 || base > configs.MaxVNI {
			t.Fatalf("accepted evpn %+v, vni_base %d", e, base)
		}
		if !e.Equal(e) || e.ASN == 0 || !e.RouterID.Is4() || !e.VTEP.IsValid() || e.HoldTime < configs.MinHoldTime {
			t.Fatalf("accepted evpn %+v", e)
		}
	})
}
