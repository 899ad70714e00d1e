package configs

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
)

// Mirror is one capture, from a -mirror spec or a config file entry.
type Mirror struct {
	Name    string   // how the API calls it; empty: given one when it opens
	File    string   // write to this file
	Stream  string   // or serve live readers on this unix socket
	Format  string   // pcapng (default) or pcap
	Snaplen int      // 0: whole frames
	Ports   []string // ports whose names contain one of these; none: all
	Dir     string   // in, out or both (default)
	Rotate  int64    // bytes per file before the next; 0: one file
	Keep    int      // rotated files kept; 0: all
	Port    *Port    // or send the frames themselves to this port (SPAN)
	// stream: who may connect, as for a daemon port's socket
	Mode               os.FileMode
	HasOwner, HasGroup bool
	Owner, Group       uint32
}

// mirrorKeys declare every key of a mirror, once: ParseMirror, a file's
// mirror entries, String and -h (MirrorHelp) all come from it, so a key is
// added here alone. They are in the order String renders them; port= is
// last, since it takes the rest of a spec. A key that serves some
// destinations only says which (only), and a spec that gives it with
// another destination is refused.
var mirrorKeys = []mirrorKey{
	{Key: Text("name", "NAME", "how the API calls the mirror", func(m *Mirror) *string { return &m.Name }, CheckName).
		WithDefault("mirror and a number, mirror0")},
	{Key: Text("file", "PATH", "write the frames to this file (tshark and Wireshark read it)",
		func(m *Mirror) *string { return &m.File }, nil)},
	{Key: Text("stream", "PATH", "or serve them live on this unix socket (umlswitch capture -socket PATH reads it)",
		func(m *Mirror) *string { return &m.Stream }, nil)},
	{Key: Text("format", "pcapng|pcap", "pcapng has an interface per port and a direction on every packet",
		func(m *Mirror) *string { return &m.Format }, oneOf("pcapng", "pcap")).WithDefault("pcapng"), only: toCapture},
	{Key: Value("snaplen", "N", "keep the first N bytes of each frame, 14..65535", func(m *Mirror) *int { return &m.Snaplen },
		Range(14, 65535), Decimal[int]).WithDefault("whole frames"), only: toCapture},
	{Key: List("ports", "NAME,NAME", "the ports whose names contain one of these words",
		func(m *Mirror) *[]string { return &m.Ports }).WithDefault("every port")},
	{Key: Text("dir", "in|out|both", "frames entering the switch, leaving it, or both",
		func(m *Mirror) *string { return &m.Dir }, oneOf("in", "out", "both")).WithDefault("both; in with port=")},
	{Key: Value("rotate", "SIZE", "start FILE.1, FILE.2, ... every SIZE bytes (512k, 10M, 1G)", func(m *Mirror) *int64 { return &m.Rotate },
		parseSize, Decimal[int64]).WithDefault("one file"), only: toFile},
	{Key: Value("keep", "N", "with rotate=: keep the newest N files", func(m *Mirror) *int { return &m.Keep },
		Range(1, 1<<20), Decimal[int]).WithDefault("all"), only: toFile},
	{Key: Mode("permissions of the socket file (-mode never sets them)", func(m *Mirror) *os.FileMode { return &m.Mode }).
		WithDefault("0600"), only: toStream},
	{Key: Present(Value("owner", "USER", "owner of the socket file, who may also read it", func(m *Mirror) *uint32 { return &m.Owner },
		ParseOwner, Decimal[uint32]), func(m *Mirror) *bool { return &m.HasOwner }), only: toStream},
	{Key: Present(Value("group", "GROUP", "group of the socket file, whose members may also read it", func(m *Mirror) *uint32 { return &m.Group },
		ParseGroup, Decimal[uint32]), func(m *Mirror) *bool { return &m.HasGroup }), only: toStream},
	{Key: Value("port", "SPEC", "or send the frames themselves to a port of any kind (SPAN): a -port spec, last, "+
		"which takes the rest of the mirror's spec", func(m *Mirror) **Port { return &m.Port }, parseSpan, formatSpan)},
}

// mirrorKey is one key of a mirror and the destinations it serves.
type mirrorKey struct {
	Key
	only *scope // nil: every mirror
}

// scope is the destinations some mirror keys serve.
type scope struct {
	dests []string // their keys
	why   string   // said after the rule when it is broken; may be empty
}

// keys writes s's destinations as keys: file=, stream=.
func (s *scope) keys() []string {
	var keys []string
	for _, d := range s.dests {
		keys = append(keys, d+"=")
	}
	return keys
}

// A mirror's frames go to one destination, named by one of its keys.
var (
	mirrorDests = []string{"file", "stream", "port"}
	toFile      = &scope{dests: []string{"file"}}
	toStream    = &scope{dests: []string{"stream"}}
	toCapture   = &scope{dests: []string{"file", "stream"}, why: "a port gets whole frames"}
)

// findMirrorKey returns the mirror key called name, or nil.
func findMirrorKey(name string) *mirrorKey {
	for i := range mirrorKeys {
		if mirrorKeys[i].Name == name {
			return &mirrorKeys[i]
		}
	}
	return nil
}

// MirrorKeys lists the keys -mirror takes, sorted.
func MirrorKeys() []string {
	var names []string
	for _, k := range mirrorKeys {
		names = append(names, k.Name)
	}
	slices.Sort(names)
	return names
}

// ParseMirror parses a -mirror spec: key=value pairs separated by commas;
// a field without "=" continues a list key's value, so ports=a,b names two
// ports. port=SPEC comes last and takes the rest, a -port spec with commas
// of its own.
func ParseMirror(spec string) (Mirror, error) {
	rest, portSpec, hasPort := strings.Cut(spec, "port=transport=")
	if hasPort && rest != "" && !strings.HasSuffix(rest, ",") {
		rest, portSpec, hasPort = spec, "", false // "...ports=transport=": not the port key
	}
	kv, err := splitOptions(strings.TrimSuffix(rest, ","), func(name string) bool {
		k := findMirrorKey(name)
		return k != nil && k.List
	})
	if err == nil {
		if hasPort {
			kv = append(kv, [2]string{"port", "transport=" + portSpec})
		}
		var m Mirror
		if m, err = NewMirror(kv); err == nil {
			return m, nil
		}
	}
	return Mirror{}, fmt.Errorf("mirror %q: %w", spec, err)
}

// NewMirror builds a mirror from key/value pairs, set in the order given.
func NewMirror(kv [][2]string) (Mirror, error) {
	var m Mirror
	find := func(name string) (*Key, Options) {
		if k := findMirrorKey(name); k != nil {
			return &k.Key, &m
		}
		return nil, nil
	}
	err := setKeys(kv, map[string]bool{}, find, func(name string) error {
		return fmt.Errorf("unknown key %q (accepted: %s)", name, strings.Join(MirrorKeys(), ", "))
	})
	if err == nil {
		err = m.check()
	}
	if err != nil {
		return Mirror{}, err
	}
	return m, nil
}

// check looks at m's keys together once all are set: m has one
// destination, and its keys serve that destination.
func (m *Mirror) check() error {
	set := func(name string) bool {
		_, ok := findMirrorKey(name).Get(m)
		return ok
	}
	var dest []string
	for _, d := range mirrorDests {
		if set(d) {
			dest = append(dest, d)
		}
	}
	if len(dest) != 1 {
		return errors.New("give one of file=PATH, stream=PATH and port=SPEC (last, a -port spec)")
	}
	for _, k := range mirrorKeys {
		if k.only == nil || !set(k.Name) || slices.Contains(k.only.dests, dest[0]) {
			continue
		}
		var names []string
		for _, other := range mirrorKeys {
			if other.only == k.only {
				names = append(names, other.Name+"=")
			}
		}
		verb := " apply to "
		if len(names) == 1 {
			verb = " applies to "
		}
		err := joinList(names, "and") + verb + joinList(k.only.keys(), "and")
		if k.only.why != "" {
			err += ": " + k.only.why
		}
		return errors.New(err)
	}
	if m.Keep != 0 && m.Rotate == 0 {
		return errors.New("keep= needs rotate=")
	}
	return nil
}

// joinList writes a, b and c (conj "and") or a, b or c.
func joinList(s []string, conj string) string {
	if len(s) < 2 {
		return strings.Join(s, "")
	}
	return strings.Join(s[:len(s)-1], ", ") + " " + conj + " " + s[len(s)-1]
}

// String renders m as a -mirror spec that parses back to m.
func (m Mirror) String() string {
	var b specBuilder
	for _, k := range mirrorKeys {
		if v, ok := k.Get(&m); ok {
			b.add(k.Name, v, true)
		}
	}
	return b.String()
}

// MirrorHelp describes every mirror key for -h, as Help does port keys:
// first those of every mirror, then those that serve some destinations,
// under the destinations they serve.
func MirrorHelp() string {
	var b strings.Builder
	var all []Key
	for _, k := range mirrorKeys {
		all = append(all, k.Key)
	}
	width := keyWidth(all)
	var scopes []*scope
	for _, k := range mirrorKeys {
		if k.only != nil && !slices.Contains(scopes, k.only) {
			scopes = append(scopes, k.only)
		}
	}
	for _, s := range slices.Insert(scopes, 0, nil) {
		var keys []Key
		for _, k := range mirrorKeys {
			if k.only == s {
				keys = append(keys, k.Key)
			}
		}
		if s == nil {
			b.WriteString("  every mirror:\n")
		} else {
			fmt.Fprintf(&b, "  with %s:\n", joinList(s.keys(), "and"))
		}
		listKeys(&b, keys, width)
	}
	return b.String()
}

func oneOf(values ...string) func(string) error {
	return func(v string) error {
		if !slices.Contains(values, v) {
			return fmt.Errorf("%q: want %s", v, joinList(values, "or"))
		}
		return nil
	}
}

// parseSpan reads port='s -port spec.
func parseSpan(v string) (*Port, error) {
	p, err := ParsePort(v)
	if err != nil {
		return nil, err
	}
	return &p, nil
}

// formatSpan renders port=, which Get also asks of a mirror without one.
func formatSpan(p *Port) string {
	if p == nil {
		return ""
	}
	return p.String()
}

// parseSize reads a byte count with an optional k, M or G suffix (powers
// of 1024).
func parseSize(v string) (int64, error) {
	mult := int64(1)
	switch strings.ToLower(v[len(v)-1:]) {
	case "k":
		mult = 1 << 10
	case "m":
		mult = 1 << 20
	case "g":
		mult = 1 << 30
	}
	num := v
	if mult != 1 {
		num = v[:len(v)-1]
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 1 || n > (1<<40)/mult {
		return 0, fmt.Errorf("%q is not a size like 10M, 512k or 1000000", v)
	}
	return n * mult, nil
}
