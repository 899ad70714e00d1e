package configs

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Port is one port, from a -port spec or a config file entry: the keys
// every port takes, and the options of its kind. Zero Depth and MTU mean
// the switch-wide values.
type Port struct {
	Transport string
	Name      string // how the API, metrics and logs call it; empty: given one when it opens
	Switch    string // -port only: the switch it joins (in a file, the entry it is listed under)

	Depth int // frames per batch (UML's depth)
	MTU   int // IP MTU; the largest frame is MTU + 22 (Ethernet header, two VLAN tags)

	// Options are the kind's own keys: what its Kind.New made, filled in
	// by its keys' setters. Nil only in a Port that was not parsed.
	Options Options

	// Policy is what the switch does with the port's frames (split horizon,
	// flooding, limits): the registered policy's options, which every kind
	// takes. Nil when no policy is registered.
	Policy Options
}

// Limits of the keys every port takes. depth is capped by UIO_MAXIOV, the
// most messages one sendmmsg takes; the MTU range keeps frames within
// 65535 bytes.
const (
	MaxDepth = 1024
	MinMTU   = 68
	MaxMTU   = 65535 - 22
)

// The keys every port takes, besides transport: who it is, rendered before
// its kind's keys, and how it batches, after them.
var (
	leadKeys = []Key{
		Text("name", "NAME", "how the API, metrics and logs call the port", func(p *Port) *string { return &p.Name }, CheckName).
			WithDefault("the kind and a number, tap0"),
		Text("switch", "NAME", "the switch the port joins; in a file, the one it is listed under", func(p *Port) *string { return &p.Switch }, CheckName).
			WithDefault(DefaultSwitch),
	}
	trailKeys = []Key{
		Value("depth", "N", fmt.Sprintf("frames per batch, UML's depth=, 1..%d", MaxDepth), func(p *Port) *int { return &p.Depth },
			Range(1, MaxDepth), Decimal[int]).WithDefault("-depth"),
		Value("mtu", "BYTES", fmt.Sprintf("IP MTU, %d..%d: the largest frame is MTU+22", MinMTU, MaxMTU), func(p *Port) *int { return &p.MTU },
			Range(MinMTU, MaxMTU), Decimal[int]).WithDefault("-mtu"),
	}
)

func commonKeys() []Key { return slices.Concat(leadKeys, trailKeys) }

// ParsePort parses a -port spec: comma-separated key=value pairs, one of
// them transport=NAME, with the option names UML uses for its vector
// transports. Values cannot contain commas (nor can UML's).
func ParsePort(spec string) (Port, error) {
	kv, err := splitOptions(spec, nil)
	if err == nil {
		var p Port
		if p, err = NewPort(kv); err == nil {
			return p, nil
		}
	}
	return Port{}, fmt.Errorf("port %q: %w", spec, err)
}

// NewPort builds a port from key/value pairs, one of them transport, set
// in the order given.
func NewPort(kv [][2]string) (Port, error) {
	var p Port
	seen := make(map[string]bool)
	for _, pair := range kv {
		if pair[0] == "transport" {
			if seen["transport"] {
				return Port{}, errors.New(`key "transport" given twice`)
			}
			seen["transport"] = true
			p.Transport = pair[1]
		}
	}
	if p.Transport == "" {
		return Port{}, fmt.Errorf("no transport= (known transports: %s)", strings.Join(Transports(), ", "))
	}
	kind := kinds[p.Transport]
	if kind == nil {
		return Port{}, fmt.Errorf("unknown transport %q (known transports: %s)", p.Transport, strings.Join(Transports(), ", "))
	}
	p.Options = kind.New()
	if policy != nil {
		p.Policy = policy.New()
	}
	find := func(name string) (*Key, Options) {
		if key := kind.key(name); key != nil {
			return key, p.Options
		}
		if key := commonKey(name); key != nil {
			return key, &p
		}
		if policy != nil {
			return policy.key(name), p.Policy
		}
		return nil, nil
	}
	unknown := func(name string) error {
		return fmt.Errorf("unknown key %q for transport %s (%s)", name, p.Transport, accepted(p.Transport))
	}
	rest := slices.DeleteFunc(slices.Clone(kv), func(pair [2]string) bool { return pair[0] == "transport" })
	if err := setKeys(rest, seen, find, unknown); err != nil {
		return Port{}, err
	}
	for _, key := range kind.Keys {
		if key.Required && !seen[key.Name] {
			return Port{}, fmt.Errorf("transport %s needs %s= (%s)", p.Transport, key.Name, accepted(p.Transport))
		}
	}
	if kind.Check != nil {
		if err := kind.Check(p.Options, seen); err != nil {
			return Port{}, err
		}
	}
	if policy != nil && policy.Check != nil {
		if err := policy.Check(p.Policy, seen); err != nil {
			return Port{}, err
		}
	}
	return p, nil
}

func commonKey(name string) *Key {
	for _, keys := range [][]Key{leadKeys, trailKeys} {
		for i := range keys {
			if keys[i].Name == name {
				return &keys[i]
			}
		}
	}
	return nil
}

// setKeys sets each pair of kv through the key find returns for its name
// (and the options that key sets), and records the name in seen. A key
// find does not know gets unknown's error; one given twice, or with an
// empty value, is refused too.
func setKeys(kv [][2]string, seen map[string]bool, find func(name string) (*Key, Options), unknown func(name string) error) error {
	for _, pair := range kv {
		name, v := pair[0], pair[1]
		key, o := find(name)
		switch {
		case key == nil:
			return unknown(name)
		case seen[name]:
			return fmt.Errorf("key %q given twice", name)
		case v == "":
			return fmt.Errorf("key %q has an empty value", name)
		}
		seen[name] = true
		if err := key.Set(o, v); err != nil {
			return fmt.Errorf("key %q: %w", name, err)
		}
	}
	return nil
}

// splitOptions splits "k=v,k=v" into pairs. A field without "=" is an
// error, except after a key isList says is a list, whose value it extends
// (ports=a,b).
func splitOptions(spec string, isList func(key string) bool) ([][2]string, error) {
	var kv [][2]string
	for _, field := range strings.Split(spec, ",") {
		field = strings.TrimSpace(field)
		if field == "" {
			continue
		}
		k, v, ok := strings.Cut(field, "=")
		if !ok {
			if isList == nil || len(kv) == 0 || !isList(kv[len(kv)-1][0]) {
				return nil, fmt.Errorf("%q is not key=value", field)
			}
			kv[len(kv)-1][1] += "," + field
			continue
		}
		kv = append(kv, [2]string{strings.TrimSpace(k), strings.TrimSpace(v)})
	}
	return kv, nil
}

// String renders p as a -port spec that parses back to p.
func (p Port) String() string {
	var b specBuilder
	for _, kv := range p.pairs() {
		b.add(kv[0], kv[1], true)
	}
	return b.String()
}

// Get returns key name's value as a spec gives it, and whether p sets it.
func (p Port) Get(name string) (string, bool) {
	for _, kv := range p.pairs() {
		if kv[0] == name {
			return kv[1], true
		}
	}
	return "", false
}

// With returns a copy of p with the keys kv set in place of p's own; a
// key with an empty value is unset (back to its default). It is built
// again from its spec and kv, so its kind checks the result (and a raw
// port reads its bpffile again); p is not changed.
func (p Port) With(kv ...[2]string) (Port, error) {
	pairs := slices.DeleteFunc(p.pairs(), func(x [2]string) bool {
		return slices.ContainsFunc(kv, func(y [2]string) bool { return x[0] == y[0] })
	})
	set := slices.DeleteFunc(slices.Clone(kv), func(y [2]string) bool { return y[1] == "" })
	q, err := NewPort(append(pairs, set...))
	if err != nil {
		return Port{}, fmt.Errorf("port %s: %w", p, err)
	}
	return q, nil
}

// pairs lists what p sets in the order String renders it: transport, name
// and switch, the kind's keys in the kind's order, the policy's, depth and
// mtu.
func (p Port) pairs() [][2]string {
	kv := [][2]string{{"transport", p.Transport}}
	add := func(keys []Key, o Options) {
		for _, k := range keys {
			if v, ok := k.Get(o); ok || k.Required {
				kv = append(kv, [2]string{k.Name, v})
			}
		}
	}
	add(leadKeys, &p)
	if kind := kinds[p.Transport]; kind != nil && p.Options != nil {
		add(kind.Keys, p.Options)
	}
	if policy != nil && p.Policy != nil {
		add(policy.Keys, p.Policy)
	}
	add(trailKeys, &p)
	return kv
}

// specBuilder writes key=value pairs the way specs are parsed.
type specBuilder struct{ parts []string }

func (b *specBuilder) add(k string, v any, set bool) {
	if set {
		b.parts = append(b.parts, fmt.Sprintf("%s=%v", k, v))
	}
}

func (b *specBuilder) String() string { return strings.Join(b.parts, ",") }
