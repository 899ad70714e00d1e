package configs

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
)

// Port is one port, from a -port spec or a config file entry. Fields that a
// transport does not use stay zero; zero Depth and MTU mean the switch-wide
// values.
type Port struct {
	Transport string

	Depth int // frames per batch (UML's depth)
	MTU   int // IP MTU; the largest frame is MTU + 18

	// daemon
	Path     string      // control socket, or a directory for VDE's DIR/ctl layout
	Mode     os.FileMode // permissions of the control socket, 0 to keep the default
	CompatV0 bool        // also serve version 0 clients
	DataPath string      // version 0 shared data socket

	// tap
	Ifname string
}

type setter func(p *Port, v string) error

type transportSchema struct {
	keys     map[string]setter
	required []string
}

// Limits of the common keys. depth is capped by UIO_MAXIOV, the most
// messages one sendmmsg takes; the MTU range keeps frames within 65535 bytes.
const (
	MaxDepth = 1024
	MinMTU   = 68
	MaxMTU   = 65535 - 18
)

var commonKeys = map[string]setter{
	"depth": func(p *Port, v string) (err error) { p.Depth, err = parseInt(v, 1, MaxDepth); return },
	"mtu":   func(p *Port, v string) (err error) { p.MTU, err = parseInt(v, MinMTU, MaxMTU); return },
}

var schemas = map[string]transportSchema{
	"daemon": {
		keys: map[string]setter{
			"path":      func(p *Port, v string) error { p.Path = v; return nil },
			"mode":      func(p *Port, v string) (err error) { p.Mode, err = parseMode(v); return },
			"compat_v0": func(p *Port, v string) (err error) { p.CompatV0, err = parseBool(v); return },
			"data":      func(p *Port, v string) error { p.DataPath = v; return nil },
		},
		required: []string{"path"},
	},
	"tap": {
		keys: map[string]setter{
			"ifname": func(p *Port, v string) error {
				if len(v) >= 16 {
					return fmt.Errorf("interface name %q is longer than 15 bytes", v)
				}
				p.Ifname = v
				return nil
			},
		},
		required: []string{"ifname"},
	},
}

// Transports lists the known transport names, sorted.
func Transports() []string {
	var names []string
	for n := range schemas {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// KeysOf lists the keys a transport accepts, sorted, "transport" excluded.
func KeysOf(transport string) []string {
	var keys []string
	for k := range schemas[transport].keys {
		keys = append(keys, k)
	}
	for k := range commonKeys {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// fromOptions builds a Port from key/value pairs in the order given.
func fromOptions(kv [][2]string) (Port, error) {
	var p Port
	seen := make(map[string]bool)
	for _, pair := range kv {
		if pair[0] == "transport" {
			if seen["transport"] {
				return p, fmt.Errorf(`key "transport" given twice`)
			}
			seen["transport"] = true
			p.Transport = pair[1]
		}
	}
	if p.Transport == "" {
		return p, fmt.Errorf("no transport= (known transports: %s)", strings.Join(Transports(), ", "))
	}
	schema, ok := schemas[p.Transport]
	if !ok {
		return p, fmt.Errorf("unknown transport %q (known transports: %s)", p.Transport, strings.Join(Transports(), ", "))
	}
	for _, pair := range kv {
		k, v := pair[0], pair[1]
		if k == "transport" {
			continue
		}
		set, ok := schema.keys[k]
		if !ok {
			set, ok = commonKeys[k]
		}
		if !ok {
			return p, fmt.Errorf("unknown key %q for transport %s (accepted: %s)", k, p.Transport, strings.Join(KeysOf(p.Transport), ", "))
		}
		if seen[k] {
			return p, fmt.Errorf("key %q given twice", k)
		}
		seen[k] = true
		if v == "" {
			return p, fmt.Errorf("key %q has an empty value", k)
		}
		if err := set(&p, v); err != nil {
			return p, fmt.Errorf("key %q: %w", k, err)
		}
	}
	for _, k := range schema.required {
		if !seen[k] {
			return p, fmt.Errorf("transport %s needs %s= (accepted: %s)", p.Transport, k, strings.Join(KeysOf(p.Transport), ", "))
		}
	}
	return p, nil
}

// parseInt accepts decimal and 0x hex (and leading-0 octal, as UML's base-0
// parser does) within [lo, hi].
func parseInt(v string, lo, hi int) (int, error) {
	n, err := strconv.ParseInt(v, 0, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a number", v)
	}
	if n < int64(lo) || n > int64(hi) {
		return 0, fmt.Errorf("%d is out of range %d..%d", n, lo, hi)
	}
	return int(n), nil
}

func parseBool(v string) (bool, error) {
	switch strings.ToLower(v) {
	case "1", "true", "yes", "on":
		return true, nil
	case "0", "false", "no", "off":
		return false, nil
	}
	return false, fmt.Errorf("%q is not a boolean (1/0, true/false, yes/no, on/off)", v)
}

func parseMode(v string) (os.FileMode, error) {
	m, err := strconv.ParseUint(v, 8, 32)
	if err != nil || m > 0o777 {
		return 0, fmt.Errorf("%q is not an octal permission like 0660", v)
	}
	return os.FileMode(m), nil
}
