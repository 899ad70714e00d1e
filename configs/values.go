package configs

import (
	"fmt"
	"net/netip"
	"os"
	"os/user"
	"strconv"
	"strings"
)

// The value parsers every kind's keys share, so that a number, a flag or
// an address reads the same in every spec.

// integer is what Range parses into.
type integer interface {
	~int | ~int64 | ~uint16 | ~uint32
}

// ParseInt accepts decimal and 0x hex (and leading-0 octal, as UML's base-0
// parser does) within [lo, hi].
func ParseInt(v string, lo, hi int) (int, error) {
	n, err := strconv.ParseInt(v, 0, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a number", v)
	}
	if n < int64(lo) || n > int64(hi) {
		return 0, fmt.Errorf("%d is out of range %d..%d", n, lo, hi)
	}
	return int(n), nil
}

// Range is ParseInt for a key's field of type T: whole numbers in [lo, hi].
func Range[T integer](lo, hi T) func(string) (T, error) {
	return func(v string) (T, error) {
		n, err := ParseInt(v, int(lo), int(hi))
		return T(n), err
	}
}

// ParseU32 accepts 0..0xffffffff in decimal or hex, and also
// -2147483648..-1 as the two's complement UML needs for values of 2^31 and
// more (it parses its options as signed 32-bit integers: -1 is 0xffffffff).
func ParseU32(v string) (uint32, error) {
	n, err := strconv.ParseInt(v, 0, 64)
	if err != nil || n < -1<<31 || n > 1<<32-1 {
		return 0, fmt.Errorf("%q is not a 32-bit number (decimal, 0x hex, or negative as UML writes large values)", v)
	}
	return uint32(n), nil
}

// ParseU64 accepts a 64-bit unsigned number in decimal or hex, or a
// negative 32-bit one as UML writes it.
func ParseU64(v string) (uint64, error) {
	n, err := strconv.ParseUint(v, 0, 64)
	if err != nil {
		if m, err2 := ParseU32(v); err2 == nil && strings.HasPrefix(v, "-") {
			return uint64(m), nil
		}
		return 0, fmt.Errorf("%q is not a number (decimal or 0x hex)", v)
	}
	return n, nil
}

// ParseBool accepts 1/0, true/false, yes/no and on/off.
func ParseBool(v string) (bool, error) {
	switch strings.ToLower(v) {
	case "1", "true", "yes", "on":
		return true, nil
	case "0", "false", "no", "off":
		return false, nil
	}
	return false, fmt.Errorf("%q is not a boolean (1/0, true/false, yes/no, on/off)", v)
}

// ParseAddr accepts an IPv4 or IPv6 address without a zone; an IPv4-mapped
// IPv6 address is the IPv4 one.
func ParseAddr(v string) (netip.Addr, error) {
	a, err := netip.ParseAddr(v)
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, fmt.Errorf("%q is not an IP address", v)
	}
	return a.Unmap(), nil
}

// ParseMode parses an octal permission like 0660.
func ParseMode(v string) (os.FileMode, error) {
	m, err := strconv.ParseUint(v, 8, 32)
	if err != nil || m > 0o777 {
		return 0, fmt.Errorf("%q is not an octal permission like 0660", v)
	}
	return os.FileMode(m), nil
}

// ParseOwner takes a uid, or a name from the system's user database.
func ParseOwner(v string) (uint32, error) {
	return parseID(v, "user", func(n string) (string, error) {
		u, err := user.Lookup(n)
		if err != nil {
			return "", err
		}
		return u.Uid, nil
	})
}

// ParseGroup takes a gid, or a name from the system's group database.
func ParseGroup(v string) (uint32, error) {
	return parseID(v, "group", func(n string) (string, error) {
		g, err := user.LookupGroup(n)
		if err != nil {
			return "", err
		}
		return g.Gid, nil
	})
}

// ParseUsers takes a list of users (uids or names) separated by ';' or
// spaces: api_uid='0;alice'.
func ParseUsers(v string) ([]uint32, error) { return parseIDs(v, ParseOwner) }

// ParseGroups takes a list of groups (gids or names): api_gid='uml-net'.
func ParseGroups(v string) ([]uint32, error) { return parseIDs(v, ParseGroup) }

func parseIDs(v string, parse func(string) (uint32, error)) ([]uint32, error) {
	var ids []uint32
	for _, f := range strings.FieldsFunc(v, func(r rune) bool { return r == ';' || r == ' ' }) {
		id, err := parse(f)
		if err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	if len(ids) == 0 {
		return nil, fmt.Errorf("%q names no one: give ids or names separated by ';'", v)
	}
	return ids, nil
}

func parseID(v, what string, lookup func(string) (string, error)) (uint32, error) {
	if v != "" && v[0] >= '0' && v[0] <= '9' {
		n, err := ParseInt(v, 0, 1<<31-2)
		return uint32(n), err
	}
	id, err := lookup(v)
	if err != nil {
		return 0, fmt.Errorf("no %s %q", what, v)
	}
	n, err := strconv.ParseUint(id, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("%s %q has id %q", what, v, id)
	}
	return uint32(n), nil
}

// CheckIfname accepts a network interface name the kernel can hold
// (IFNAMSIZ, 16 bytes with the NUL).
func CheckIfname(v string) error {
	if len(v) >= 16 {
		return fmt.Errorf("interface name %q is longer than 15 bytes", v)
	}
	return nil
}

// Decimal and Hex render numbers for specs; Hex is for keys, sessions and
// cookies, which people compare with packet dumps.
func Decimal[T integer](n T) string { return strconv.FormatUint(uint64(n), 10) }

// Hex renders n as 0x hex.
func Hex[T uint32 | uint64](n T) string { return fmt.Sprintf("%#x", n) }

func formatMode(m os.FileMode) string { return fmt.Sprintf("%#o", uint32(m)) }
