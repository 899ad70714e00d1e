package nat

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Forward is one hostfwd= rule: a host socket whose connections (TCP) or
// datagrams (UDP) go to a guest's port.
type Forward struct {
	UDP       bool
	Host      netip.AddrPort // IPv4; port 0: any free port
	Guest     netip.Addr     // zero: the first lease (.15)
	GuestPort uint16
}

func (f Forward) proto() string {
	if f.UDP {
		return "udp"
	}
	return "tcp"
}

// String renders f in QEMU's syntax, every field written out but a
// guest address left to its default.
func (f Forward) String() string {
	g := ""
	if f.Guest.IsValid() {
		g = f.Guest.String()
	}
	return fmt.Sprintf("%s:%s:%d-%s:%d", f.proto(), f.Host.Addr(), f.Host.Port(), g, f.GuestPort)
}

// defaultHost is where a forward listens without a host address: the host
// itself only, unlike QEMU (every address), so that a lab's guests are not
// on the host's network unless asked.
var defaultHost = netip.AddrFrom4([4]byte{127, 0, 0, 1})

// forwardSyntax is what an error shows.
const forwardSyntax = "[tcp|udp]:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT"

// ParseForwards parses hostfwd='s value: rules in QEMU's syntax separated
// by ';' (a ',' ends the key in a spec).
func ParseForwards(v string) ([]Forward, error) {
	var fs []Forward
	for _, s := range strings.Split(v, ";") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		if len(fs) == MaxForwards {
			return nil, fmt.Errorf("more than %d forwards", MaxForwards)
		}
		f, err := ParseForward(s)
		if err != nil {
			return nil, err
		}
		fs = append(fs, f)
	}
	if len(fs) == 0 {
		return nil, fmt.Errorf("%q has no forward: want %s", v, forwardSyntax)
	}
	return fs, nil
}

// FormatForwards renders forwards as ParseForwards takes them.
func FormatForwards(fs []Forward) string {
	s := make([]string, len(fs))
	for i, f := range fs {
		s[i] = f.String()
	}
	return strings.Join(s, ";")
}

// ParseForward parses one rule, QEMU's hostfwd syntax:
// [tcp|udp]:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT. An empty protocol is
// tcp, as in QEMU, and so is one left out with its colon (HOSTADDR:HOSTPORT-...).
func ParseForward(s string) (Forward, error) {
	fail := func(why string) (Forward, error) {
		return Forward{}, fmt.Errorf("hostfwd %q: %s (want %s)", s, why, forwardSyntax)
	}
	host, guest, ok := strings.Cut(s, "-")
	if !ok {
		return fail("no '-' between the host's side and the guest's")
	}
	var f Forward
	var proto, haddr, hport string
	switch parts := strings.Split(host, ":"); len(parts) {
	case 3:
		proto, haddr, hport = parts[0], parts[1], parts[2]
	case 2:
		haddr, hport = parts[0], parts[1]
	default:
		return fail("the host's side is not [tcp|udp]:[HOSTADDR]:HOSTPORT")
	}
	switch proto {
	case "", "tcp":
	case "udp":
		f.UDP = true
	default:
		return fail(fmt.Sprintf("protocol %q is not tcp or udp", proto))
	}
	ha := defaultHost
	if haddr != "" {
		var err error
		if ha, err = parseIPv4(haddr); err != nil {
			return fail("host address: " + err.Error())
		}
	}
	hp, err := parsePort(hport, true)
	if err != nil {
		return fail("host port: " + err.Error())
	}
	f.Host = netip.AddrPortFrom(ha, hp)
	gaddr, gport, ok := strings.Cut(guest, ":")
	if !ok || strings.Contains(gport, ":") {
		return fail("the guest's side is not [GUESTADDR]:GUESTPORT")
	}
	if gaddr != "" {
		if f.Guest, err = parseIPv4(gaddr); err != nil {
			return fail("guest address: " + err.Error())
		}
	}
	if f.GuestPort, err = parsePort(gport, false); err != nil {
		return fail("guest port: " + err.Error())
	}
	return f, nil
}

// parseIPv4 takes a dotted IPv4 address: the router speaks IPv4 only, and
// its forwards listen on IPv4 sockets.
func parseIPv4(v string) (netip.Addr, error) {
	a, err := netip.ParseAddr(v)
	if err != nil || !a.Is4() {
		return netip.Addr{}, fmt.Errorf("%q is not an IPv4 address", v)
	}
	return a, nil
}

// parsePort takes a decimal port, 1..65535, or 0 too when zero is true.
func parsePort(v string, zero bool) (uint16, error) {
	if v == "" {
		return 0, errors.New("missing")
	}
	n, err := strconv.ParseUint(v, 10, 16)
	if err != nil || (n == 0 && !zero) {
		return 0, fmt.Errorf("%q is not a port number (1..65535)", v)
	}
	return uint16(n), nil
}
