package configs

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/user"
	"sort"
	"strconv"
	"strings"

	"github.com/umlswitch/umlswitch/bpf"
)

// Port is one port, from a -port spec or a config file entry. Fields that a
// transport does not use stay zero; zero Depth and MTU mean the switch-wide
// values. For the tunnel transports, options are UML's own names seen from
// the switch's side: Src is the switch's address, Dst the peer's, and the
// rx_ values are what the switch expects to receive.
type Port struct {
	Transport string
	Name      string // how the API, metrics and logs call it; empty: given one when it opens
	Switch    string // -port only: the switch it joins (in a file, the entry it is listed under)

	Depth int // frames per batch (UML's depth)
	MTU   int // IP MTU; the largest frame is MTU + 18

	// daemon and bess
	Path     string      // control socket (daemon: or a directory for VDE's DIR/ctl layout)
	Mode     os.FileMode // permissions of the socket, 0 to keep the default
	CompatV0 bool        // daemon: also serve version 0 clients
	DataPath string      // daemon: version 0 shared data socket
	API      string      // daemon: what the control API on this socket allows: rw (default), ro or off

	// tap and raw
	Ifname string

	// tap, daemon and bess
	HasOwner, HasGroup bool
	Owner              uint32 // tap: uid allowed to use a created tap; daemon, bess: the socket's owner
	Group              uint32 // daemon, bess: the socket's group

	// tap
	Create, Persist bool // create the tap if absent; keep it after exit
	Up              bool // bring the interface up
	Queues          int  // multi-queue tap with this many queues
	VnetHdr         bool // virtio-net header: checksum and TCP segmentation offload from the host

	// raw
	BPFFile string // UML's binary format, or tcpdump -ddd text if it ends in .txt
	BPF     string // tcpdump -ddd text, kept with ';' between lines
	Promisc bool

	// gre, l2tpv3 and vxlan
	Src, Dst netip.Addr
	V6       bool

	// vxlan (DstPort too)
	VNI uint32

	// gre
	HasKey           bool
	RxKey, TxKey     uint32
	Sequence, PinSeq bool

	// l2tpv3
	UDP                  bool
	SrcPort, DstPort     uint16
	RxSession, TxSession uint32
	HasCookie, Cookie64  bool
	RxCookie, TxCookie   uint64
	Counter, PinCounter  bool
}

type setter func(p *Port, v string) error

type transportSchema struct {
	keys     map[string]setter
	required []string
	check    func(p *Port, seen map[string]bool) error // relations between keys
}

// Limits of the common keys. depth is capped by UIO_MAXIOV, the most
// messages one sendmmsg takes; the MTU range keeps frames within 65535 bytes.
const (
	MaxQueues = 64 // tap queues=
	MaxVNI    = 1<<24 - 1
	MaxDepth  = 1024
	MinMTU    = 68
	MaxMTU    = 65535 - 18
)

var commonKeys = map[string]setter{
	"name":   func(p *Port, v string) error { p.Name = v; return CheckName(v) },
	"switch": func(p *Port, v string) error { p.Switch = v; return CheckName(v) },
	"depth":  func(p *Port, v string) (err error) { p.Depth, err = parseInt(v, 1, MaxDepth); return },
	"mtu":    func(p *Port, v string) (err error) { p.MTU, err = parseInt(v, MinMTU, MaxMTU); return },
}

func setPath(p *Port, v string) error { p.Path = v; return nil }
func setIfname(p *Port, v string) error {
	if len(v) >= 16 {
		return fmt.Errorf("interface name %q is longer than 15 bytes", v)
	}
	p.Ifname = v
	return nil
}

// setBPF checks the program now, so a bad one fails before the switch
// starts, and keeps it in one canonical line.
func setBPF(p *Port, v string) error {
	raw, err := bpf.ParseText(v)
	if err == nil {
		_, err = bpf.New(raw)
	}
	if err != nil {
		return err
	}
	p.BPF = strings.ReplaceAll(strings.TrimSpace(bpf.Text(raw)), "\n", ";")
	return nil
}
func setMode(p *Port, v string) (err error) { p.Mode, err = parseMode(v); return }

// setOwner and setGroup take a number or a name from the system's user
// and group databases.
func setOwner(p *Port, v string) (err error) {
	p.Owner, err = parseID(v, "user", func(n string) (string, error) {
		u, err := user.Lookup(n)
		if err != nil {
			return "", err
		}
		return u.Uid, nil
	})
	p.HasOwner = true
	return err
}

func setGroup(p *Port, v string) (err error) {
	p.Group, err = parseID(v, "group", func(n string) (string, error) {
		g, err := user.LookupGroup(n)
		if err != nil {
			return "", err
		}
		return g.Gid, nil
	})
	p.HasGroup = true
	return err
}

func parseID(v, what string, lookup func(string) (string, error)) (uint32, error) {
	if v[0] >= '0' && v[0] <= '9' {
		n, err := parseInt(v, 0, 1<<31-2)
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
func setAddr(dst *netip.Addr) setter {
	return func(_ *Port, v string) (err error) { *dst, err = parseAddr(v); return }
}
func setBool(dst *bool) setter {
	return func(_ *Port, v string) (err error) { *dst, err = parseBool(v); return }
}
func setU32(dst *uint32) setter {
	return func(_ *Port, v string) (err error) { *dst, err = parseU32(v); return }
}

// The setters write through pointers into a Port owned by fromOptions; bind
// builds a schema's keys for a given Port.
var schemas = map[string]func(p *Port) transportSchema{
	"daemon": func(p *Port) transportSchema {
		return transportSchema{keys: map[string]setter{
			"path":      setPath,
			"mode":      setMode,
			"compat_v0": setBool(&p.CompatV0),
			"data":      func(p *Port, v string) error { p.DataPath = v; return nil },
			"owner":     setOwner,
			"group":     setGroup,
			"api": func(p *Port, v string) error {
				switch v {
				case "rw", "ro", "off":
					p.API = v
					return nil
				}
				return fmt.Errorf("%q is not rw, ro or off", v)
			},
		}, required: []string{"path"}}
	},
	"tap": func(p *Port) transportSchema {
		return transportSchema{keys: map[string]setter{
			"ifname": setIfname, "create": setBool(&p.Create), "persist": setBool(&p.Persist),
			"owner":    setOwner,
			"up":       setBool(&p.Up),
			"queues":   func(p *Port, v string) (err error) { p.Queues, err = parseInt(v, 1, MaxQueues); return },
			"vnet_hdr": setBool(&p.VnetHdr),
		}, required: []string{"ifname"}, check: func(p *Port, _ map[string]bool) error {
			if (p.Persist || p.HasOwner) && !p.Create {
				return errors.New("persist= and owner= apply to a tap the switch creates: add create=1")
			}
			return nil
		}}
	},
	"raw": func(p *Port) transportSchema {
		return transportSchema{keys: map[string]setter{
			"ifname": setIfname, "bpffile": func(p *Port, v string) error { p.BPFFile = v; return nil },
			"bpf": setBPF, "promisc": setBool(&p.Promisc),
		}, required: []string{"ifname"}, check: func(p *Port, _ map[string]bool) error {
			if p.BPF != "" && p.BPFFile != "" {
				return errors.New("give bpf= or bpffile=, not both")
			}
			return nil
		}}
	},
	"vxlan": func(p *Port) transportSchema {
		return transportSchema{keys: map[string]setter{
			"src": setAddr(&p.Src), "dst": setAddr(&p.Dst), "v6": setBool(&p.V6),
			"vni":     func(p *Port, v string) (err error) { n, err := parseInt(v, 0, MaxVNI); p.VNI = uint32(n); return err },
			"dstport": func(p *Port, v string) (err error) { p.DstPort, err = parsePortNumber(v); return },
		}, required: []string{"src", "dst", "vni"}, check: func(p *Port, _ map[string]bool) error { return checkFamily(p) }}
	},
	"bess": func(p *Port) transportSchema {
		return transportSchema{keys: map[string]setter{"path": setPath, "mode": setMode, "owner": setOwner, "group": setGroup},
			required: []string{"path"},
			check: func(p *Port, _ map[string]bool) error {
				if len(p.Path) > 107 {
					return fmt.Errorf("path is %d bytes: a unix socket path holds 107 (and UML copies dst with strlen)", len(p.Path))
				}
				return nil
			}}
	},
	"gre": func(p *Port) transportSchema {
		return transportSchema{keys: map[string]setter{
			"src": setAddr(&p.Src), "dst": setAddr(&p.Dst), "v6": setBool(&p.V6),
			"rx_key": setU32(&p.RxKey), "tx_key": setU32(&p.TxKey),
			"sequence": setBool(&p.Sequence), "pin_sequence": setBool(&p.PinSeq),
		}, required: []string{"src", "dst"}, check: checkGRE}
	},
	"l2tpv3": func(p *Port) transportSchema {
		return transportSchema{keys: map[string]setter{
			"src": setAddr(&p.Src), "dst": setAddr(&p.Dst), "v6": setBool(&p.V6), "udp": setBool(&p.UDP),
			"srcport":    func(p *Port, v string) (err error) { p.SrcPort, err = parsePortNumber(v); return },
			"dstport":    func(p *Port, v string) (err error) { p.DstPort, err = parsePortNumber(v); return },
			"rx_session": setU32(&p.RxSession), "tx_session": setU32(&p.TxSession),
			"rx_cookie": func(p *Port, v string) (err error) { p.RxCookie, err = parseU64(v); return },
			"tx_cookie": func(p *Port, v string) (err error) { p.TxCookie, err = parseU64(v); return },
			"cookie64":  setBool(&p.Cookie64),
			"counter":   setBool(&p.Counter), "pin_counter": setBool(&p.PinCounter),
		}, required: []string{"src", "dst", "rx_session", "tx_session"}, check: checkL2TPv3}
	},
}

func checkFamily(p *Port) error {
	for _, a := range []struct {
		key  string
		addr netip.Addr
	}{{"src", p.Src}, {"dst", p.Dst}} {
		if p.V6 && !a.addr.Is6() {
			return fmt.Errorf("%s=%s: v6=1 needs IPv6 addresses", a.key, a.addr)
		}
		if !p.V6 && !a.addr.Is4() {
			return fmt.Errorf("%s=%s: an IPv6 address needs v6=1 (as UML, which otherwise opens an IPv4 socket)", a.key, a.addr)
		}
	}
	return nil
}

func checkGRE(p *Port, seen map[string]bool) error {
	if seen["rx_key"] != seen["tx_key"] {
		return errors.New("rx_key and tx_key go together: keys are on in both directions or in neither")
	}
	p.HasKey = seen["rx_key"]
	if p.PinSeq && !p.Sequence {
		return errors.New("pin_sequence=1 needs sequence=1")
	}
	return checkFamily(p)
}

func checkL2TPv3(p *Port, seen map[string]bool) error {
	if p.UDP != (seen["srcport"] && seen["dstport"]) || (!p.UDP && (seen["srcport"] || seen["dstport"])) {
		if p.UDP {
			return errors.New("udp=1 needs srcport= and dstport=")
		}
		return errors.New("srcport= and dstport= need udp=1 (without it L2TPv3 runs over IP, protocol 115)")
	}
	if p.RxSession == 0 || p.TxSession == 0 {
		return errors.New("session 0 is reserved (RFC 3931): give rx_session and tx_session non-zero values")
	}
	if seen["rx_cookie"] != seen["tx_cookie"] {
		return errors.New("rx_cookie and tx_cookie go together")
	}
	p.HasCookie = seen["rx_cookie"]
	if p.Cookie64 && !p.HasCookie {
		return errors.New("cookie64=1 needs rx_cookie and tx_cookie")
	}
	if p.HasCookie && !p.Cookie64 && (p.RxCookie > 0xffffffff || p.TxCookie > 0xffffffff) {
		return errors.New("a cookie over 32 bits needs cookie64=1")
	}
	if p.PinCounter && !p.Counter {
		return errors.New("pin_counter=1 needs counter=1")
	}
	return checkFamily(p)
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
	mk, ok := schemas[transport]
	if !ok {
		return nil
	}
	for k := range mk(&Port{}).keys {
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
	mk, ok := schemas[p.Transport]
	if !ok {
		return p, fmt.Errorf("unknown transport %q (known transports: %s)", p.Transport, strings.Join(Transports(), ", "))
	}
	schema := mk(&p)
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
	if schema.check != nil {
		if err := schema.check(&p, seen); err != nil {
			return p, err
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

// parseU32 accepts 0..0xffffffff in decimal or hex, and also -2147483648..-1
// as the two's complement UML needs for values of 2^31 and more (it parses
// its options as signed 32-bit integers: -1 is 0xffffffff).
func parseU32(v string) (uint32, error) {
	n, err := strconv.ParseInt(v, 0, 64)
	if err != nil || n < -1<<31 || n > 1<<32-1 {
		return 0, fmt.Errorf("%q is not a 32-bit number (decimal, 0x hex, or negative as UML writes large values)", v)
	}
	return uint32(n), nil
}

// parseU64 accepts a 64-bit unsigned number in decimal or hex.
func parseU64(v string) (uint64, error) {
	n, err := strconv.ParseUint(v, 0, 64)
	if err != nil {
		if m, err2 := parseU32(v); err2 == nil && strings.HasPrefix(v, "-") {
			return uint64(m), nil // a 32-bit cookie written as UML needs it
		}
		return 0, fmt.Errorf("%q is not a number (decimal or 0x hex)", v)
	}
	return n, nil
}

func parsePortNumber(v string) (uint16, error) {
	n, err := parseInt(v, 1, 65535)
	return uint16(n), err
}

func parseAddr(v string) (netip.Addr, error) {
	a, err := netip.ParseAddr(v)
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, fmt.Errorf("%q is not an IP address", v)
	}
	return a.Unmap(), nil
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
