package configs

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// EVPN is the BGP EVPN control plane (RFC 7432, RFC 8365) that joins the
// switches that have a VNI to other VTEPs. Parse fills in the defaults of
// the keys left out, so every field holds what runs.
type EVPN struct {
	ASN        uint32
	RouterID   netip.Addr // IPv4: the BGP identifier
	VTEP       netip.Addr // the local VXLAN source address, unmapped
	VXLANPort  uint16     // DefaultVXLANPort unless vxlan_port:
	ListenPort int        // DefaultBGPPort unless listen_port:; 0: do not listen
	HoldTime   time.Duration
	// RestartTime is the graceful restart time announced (RFC 4724):
	// how long peers keep this VTEP's routes while it restarts or is
	// upgraded. 0: graceful restart off.
	RestartTime time.Duration
	Neighbors   []Neighbor // no address twice
}

// Neighbor is a BGP peer of the EVPN speaker.
type Neighbor struct {
	Address netip.Addr // unmapped
	ASN     uint32
	Port    uint16 // 0: DefaultBGPPort
	Passive bool   // wait for the neighbour to connect
}

// Defaults and limits of the evpn: block.
const (
	DefaultVXLANPort = 4789 // IANA's VXLAN port, the kernel's and FRR's
	DefaultBGPPort   = 179
	DefaultHoldTime  = 90 * time.Second // BGP's suggested hold time (RFC 4271)
	// A BGP hold time is 0 (no keepalives, which is refused here: a dead
	// neighbour would keep its routes) or 3 to 65535 whole seconds.
	MinHoldTime = 3 * time.Second
	MaxHoldTime = 65535 * time.Second
	// DefaultRestartTime is what peers give a restarting switch by
	// default; BGP carries 12 bits of seconds.
	DefaultRestartTime = 60 * time.Second
	MaxRestartTime     = 4095 * time.Second
	MaxVNI             = 1<<24 - 1 // VNI 0 is not used: a switch without vni: is not in the fabric
)

// Equal says whether e and o configure the same speaker: nil only equals
// nil, and the neighbours are the same set in any order (a port of 0 is
// DefaultBGPPort).
func (e *EVPN) Equal(o *EVPN) bool {
	if e == nil || o == nil {
		return e == o
	}
	if e.ASN != o.ASN || e.RouterID != o.RouterID || e.VTEP != o.VTEP || e.VXLANPort != o.VXLANPort ||
		e.ListenPort != o.ListenPort || e.HoldTime != o.HoldTime || e.RestartTime != o.RestartTime ||
		len(e.Neighbors) != len(o.Neighbors) {
		return false
	}
	for _, n := range e.Neighbors {
		if m := o.Neighbor(n.Address); m == nil || !n.Equal(*m) {
			return false
		}
	}
	return true
}

// Neighbor returns the neighbour at addr, or nil.
func (e *EVPN) Neighbor(addr netip.Addr) *Neighbor {
	for i := range e.Neighbors {
		if e.Neighbors[i].Address == addr {
			return &e.Neighbors[i]
		}
	}
	return nil
}

// Equal says whether n and o are the same session's settings.
func (n Neighbor) Equal(o Neighbor) bool {
	return n.Address == o.Address && n.ASN == o.ASN && n.port() == o.port() && n.Passive == o.Passive
}

func (n Neighbor) port() uint16 {
	if n.Port == 0 {
		return DefaultBGPPort
	}
	return n.Port
}

// clone is a copy of e that shares no slice with it.
func (e *EVPN) clone() *EVPN {
	if e == nil {
		return nil
	}
	c := *e
	c.Neighbors = append([]Neighbor(nil), e.Neighbors...)
	return &c
}

// evpnYAML is the evpn: block as written; its keys are set through
// evpnKeys and neighborKeys, each entry's required keys checked after.
type evpnYAML struct {
	ASN        *scalar        `yaml:"asn"`
	RouterID   *scalar        `yaml:"router_id"`
	VTEP       *scalar        `yaml:"vtep"`
	VXLANPort  *scalar        `yaml:"vxlan_port"`
	ListenPort *scalar        `yaml:"listen_port"`
	HoldTime   *scalar        `yaml:"hold_time"`
	Restart    *scalar        `yaml:"graceful_restart"`
	Neighbors  []neighborYAML `yaml:"neighbors"`
}

type neighborYAML struct {
	Address *scalar `yaml:"address"`
	ASN     *scalar `yaml:"asn"`
	Port    *scalar `yaml:"port"`
	Passive *scalar `yaml:"passive"`
}

// The keys of the evpn: block and of its neighbours, and of a switch in
// the fabric. The switch's keys are the file's alone: neither a flag nor
// the control API's switch add takes them, since a VNI needs the file's
// evpn: block.
var (
	evpnKeys = map[string]func(e *EVPN, v string) error{
		"asn":       func(e *EVPN, v string) (err error) { e.ASN, err = parseASN(v); return },
		"router_id": func(e *EVPN, v string) (err error) { e.RouterID, err = parseRouterID(v); return },
		"vtep":      func(e *EVPN, v string) (err error) { e.VTEP, err = parseUnicast(v); return },
		"vxlan_port": func(e *EVPN, v string) (err error) {
			e.VXLANPort, err = Range[uint16](1, 65535)(v)
			return
		},
		"listen_port": func(e *EVPN, v string) (err error) { e.ListenPort, err = ParseInt(v, 0, 65535); return },
		"hold_time":   func(e *EVPN, v string) (err error) { e.HoldTime, err = parseHoldTime(v); return },
		"graceful_restart": func(e *EVPN, v string) (err error) {
			e.RestartTime, err = parseRestartTime(v)
			return
		},
	}
	neighborKeys = map[string]func(n *Neighbor, v string) error{
		"address": func(n *Neighbor, v string) (err error) { n.Address, err = parseUnicast(v); return },
		"asn":     func(n *Neighbor, v string) (err error) { n.ASN, err = parseASN(v); return },
		"port":    func(n *Neighbor, v string) (err error) { n.Port, err = Range[uint16](1, 65535)(v); return },
		"passive": func(n *Neighbor, v string) (err error) { n.Passive, err = ParseBool(v); return },
	}
	// fabricKeys take one value each; a list key's setter is called once
	// per element.
	fabricKeys = map[string]func(s *Switch, v string) error{
		"vni": func(s *Switch, v string) (err error) { s.VNI, err = Range[uint32](1, MaxVNI)(v); return },
		"rd": func(s *Switch, v string) error {
			s.RD = strings.TrimSpace(v)
			return ParseRD(s.RD)
		},
		"import_rt": func(s *Switch, v string) error { return addRT(&s.ImportRT, v, true) },
		"export_rt": func(s *Switch, v string) error { return addRT(&s.ExportRT, v, false) },
	}
)

// parse checks the block and fills in the defaults. Errors name the key
// from evpn. on: "evpn.asn: required".
func (y *evpnYAML) parse() (*EVPN, error) {
	e := &EVPN{VXLANPort: DefaultVXLANPort, ListenPort: DefaultBGPPort, HoldTime: DefaultHoldTime,
		RestartTime: DefaultRestartTime}
	for _, s := range []struct {
		key      string
		v        *scalar
		required bool
	}{{"asn", y.ASN, true}, {"router_id", y.RouterID, true}, {"vtep", y.VTEP, true},
		{"vxlan_port", y.VXLANPort, false}, {"listen_port", y.ListenPort, false}, {"hold_time", y.HoldTime, false},
		{"graceful_restart", y.Restart, false}} {
		if err := setKey(s.key, s.v, s.required, func(v string) error { return evpnKeys[s.key](e, v) }); err != nil {
			return nil, fmt.Errorf("evpn.%w", err)
		}
	}
	for i, ny := range y.Neighbors {
		var n Neighbor
		for _, s := range []struct {
			key      string
			v        *scalar
			required bool
		}{{"address", ny.Address, true}, {"asn", ny.ASN, true}, {"port", ny.Port, false}, {"passive", ny.Passive, false}} {
			if err := setKey(s.key, s.v, s.required, func(v string) error { return neighborKeys[s.key](&n, v) }); err != nil {
				return nil, fmt.Errorf("evpn.neighbors[%d].%w", i, err)
			}
		}
		for j, m := range e.Neighbors {
			if m.Address == n.Address {
				return nil, fmt.Errorf("evpn.neighbors[%d].address: %s is already evpn.neighbors[%d]", i, n.Address, j)
			}
		}
		e.Neighbors = append(e.Neighbors, n)
	}
	return e, nil
}

// setKey calls set with a key's value, if it was given, and says which
// key an error is about: "asn: required".
func setKey(key string, v *scalar, required bool, set func(string) error) error {
	if v == nil {
		if required {
			return fmt.Errorf("%s: required", key)
		}
		return nil
	}
	if err := set(string(*v)); err != nil {
		return fmt.Errorf("%s: %w", key, err)
	}
	return nil
}

func parseASN(v string) (uint32, error) {
	n, err := ParseInt(v, 1, 1<<32-1)
	return uint32(n), err
}

func parseRouterID(v string) (netip.Addr, error) {
	a, err := ParseAddr(v)
	if err != nil {
		return a, err
	}
	if !a.Is4() || a.IsUnspecified() {
		return netip.Addr{}, fmt.Errorf("%q is not a BGP identifier: give a non-zero IPv4 address", v)
	}
	return a, nil
}

// parseUnicast takes the address of a host: a VTEP or a BGP neighbour.
func parseUnicast(v string) (netip.Addr, error) {
	a, err := ParseAddr(v)
	if err != nil {
		return a, err
	}
	if a.IsUnspecified() || a.IsMulticast() || a == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
		return netip.Addr{}, fmt.Errorf("%q is not a unicast address", v)
	}
	return a, nil
}

func parseHoldTime(v string) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration like 90s", v)
	}
	if d%time.Second != 0 {
		return 0, fmt.Errorf("%s is not a whole number of seconds, which BGP's hold time is", d)
	}
	if d < MinHoldTime || d > MaxHoldTime {
		return 0, fmt.Errorf("%s is out of range %ds..%ds (0, which sends no keepalives, is refused: "+
			"a dead neighbour would keep its routes)", d, MinHoldTime/time.Second, MaxHoldTime/time.Second)
	}
	return d, nil
}

func parseRestartTime(v string) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration like 60s (0: off)", v)
	}
	if d%time.Second != 0 || d < 0 || d > MaxRestartTime {
		return 0, fmt.Errorf("%s is not whole seconds in 0s..%ds (0: off)", d, MaxRestartTime/time.Second)
	}
	return d, nil
}

// addRT appends the route target v to list, normalized; a target given
// twice is refused.
func addRT(list *[]string, v string, wildcard bool) error {
	v = strings.TrimSpace(v)
	if err := ParseRT(v, wildcard); err != nil {
		return err
	}
	for _, rt := range *list {
		if rt == v {
			return fmt.Errorf("%s given twice", v)
		}
	}
	*list = append(*list, v)
	return nil
}

// ParseRD checks a route distinguisher as FRR writes it: ASN:N (an AS
// number up to 65535 and N up to 4294967295, or a larger one and N up to
// 65535) or IPV4:N (N up to 65535). Numbers are decimal, with no sign and
// no leading zero, so that each has one spelling.
func ParseRD(s string) error {
	if err := parseAdminNumber(s, false); err != nil {
		return fmt.Errorf("%q is not a route distinguisher (ASN:N or IPV4:N): %w", s, err)
	}
	return nil
}

// ParseRT checks a route target: the syntax of ParseRD, and with wildcard
// (import_rt) also *:N, N up to 4294967295, which matches any AS's target
// with that number (FRR's route-target import *:N).
func ParseRT(s string, wildcard bool) error {
	if err := parseAdminNumber(s, wildcard); err != nil {
		if wildcard {
			return fmt.Errorf("%q is not a route target (ASN:N, IPV4:N or *:N): %w", s, err)
		}
		return fmt.Errorf("%q is not a route target (ASN:N or IPV4:N): %w", s, err)
	}
	return nil
}

// parseAdminNumber checks A:N, the shape RDs and RTs share (RFC 4360's
// two-octet AS, IPv4 and four-octet AS forms).
func parseAdminNumber(s string, wildcard bool) error {
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		return fmt.Errorf("no ':'")
	}
	admin, num := s[:i], s[i+1:]
	var max uint64
	switch a, err := netip.ParseAddr(admin); {
	case err == nil && a.Is4():
		max = 1<<16 - 1
	case admin == "*" && wildcard:
		max = 1<<32 - 1
	default:
		as, err := parseDecimal(admin, 1<<32-1)
		if err != nil {
			return fmt.Errorf("%q is not an AS number or an IPv4 address", admin)
		}
		max = 1<<32 - 1
		if as > 1<<16-1 {
			max = 1<<16 - 1
		}
	}
	if _, err := parseDecimal(num, max); err != nil {
		return fmt.Errorf("%q is not a number from 0 to %d", num, max)
	}
	return nil
}

// parseDecimal takes 0..max written in decimal digits, without a leading
// zero.
func parseDecimal(s string, max uint64) (uint64, error) {
	if s == "" || s[0] < '0' || s[0] > '9' || (len(s) > 1 && s[0] == '0') {
		return 0, strconv.ErrSyntax
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || n > max {
		return 0, strconv.ErrRange
	}
	return n, nil
}

// scalars is a key that takes one value or a list of them.
type scalars []string

func (s *scalars) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		*s = scalars{n.Value}
		return nil
	case yaml.SequenceNode:
		list := make(scalars, 0, len(n.Content))
		for _, c := range n.Content {
			if c.Kind != yaml.ScalarNode {
				return fmt.Errorf("line %d: a list of single values", c.Line)
			}
			list = append(list, c.Value)
		}
		*s = list
		return nil
	}
	return fmt.Errorf("line %d: a single value or a list of them", n.Line)
}
