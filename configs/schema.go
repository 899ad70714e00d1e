package configs

import (
	"fmt"
	"slices"
	"strings"
)

// Options are a port kind's own settings: what its Kind.New returns and
// its keys' Set and Get take, a pointer to a struct of the kind's package.
type Options any

// Kind is one transport: its name in transport=, its keys and how they
// relate. The package of each kind declares it and transports registers
// them all, so a key is added in one place: its kind's Keys.
type Kind struct {
	Name    string
	Summary string // one line for -h
	Keys    []Key  // in the order String renders them
	New     func() Options
	// Check, if set, looks at the keys together once all are set: keys
	// that go in pairs, flags that need others. seen holds every key the
	// spec gave.
	Check func(o Options, seen map[string]bool) error
	// Privileged, if set, says why opening a port of this kind with these
	// options takes root's privilege (a raw socket, a host interface, a
	// port below 1024): the control API refuses such a port to a user it
	// lets in who is not root. Empty: anyone may open it, with the
	// caller's own credentials for what it creates on the file system.
	Privileged func(o Options) string
}

// UnprivilegedPorts is where ports an unprivileged process may bind start
// (net.ipv4.ip_unprivileged_port_start's default).
const UnprivilegedPorts = 1024

// Privileged says why opening p takes root's privilege, or "" when any
// user could open it (see Kind.Privileged).
func Privileged(p Port) string {
	k := kinds[p.Transport]
	if k == nil || k.Privileged == nil || p.Options == nil {
		return ""
	}
	return k.Privileged(p.Options)
}

// Key is one key=value option of a kind (or of every port).
type Key struct {
	Name     string
	Value    string // what the value is, for -h: PATH, N, ADDR; 1 for a flag
	Help     string
	Default  string // what leaving the key out means, for -h; empty: nothing to say
	Required bool
	// List says the value is a comma-separated list: in a -mirror spec a
	// field without "=" after the key continues its value (ports=a,b).
	List bool
	// Set parses v into o; Get renders o's value back and reports whether
	// it is set (a required key is rendered either way).
	Set func(o Options, v string) error
	Get func(o Options) (string, bool)
}

// Require marks k as a key every spec of its kind must give.
func (k Key) Require() Key { k.Required = true; return k }

// WithDefault says, for -h, what leaving k out means.
func (k Key) WithDefault(d string) Key { k.Default = d; return k }

// kinds are the registered transports by name; Register fills it from
// init functions, so it is only read afterwards.
var kinds = map[string]*Kind{}

// Register adds port kinds. It panics on a kind registered twice, on a
// key given twice or that every port already takes, and on a key without
// Set or Get: mistakes in the program, not in its input.
func Register(ks ...Kind) {
	for _, k := range ks {
		if k.Name == "" || k.New == nil || kinds[k.Name] != nil {
			panic(fmt.Sprintf("configs: kind %q: no name, no New, or registered twice", k.Name))
		}
		names := map[string]bool{"transport": true}
		for _, c := range commonKeys() {
			names[c.Name] = true
		}
		if policy != nil {
			for _, c := range policy.Keys {
				names[c.Name] = true
			}
		}
		for _, key := range k.Keys {
			if names[key.Name] || key.Set == nil || key.Get == nil {
				panic(fmt.Sprintf("configs: kind %s: key %q given twice, taken by every port, or without Set or Get", k.Name, key.Name))
			}
			names[key.Name] = true
		}
		kinds[k.Name] = &k
	}
}

// policy is the registered policy: keys every port kind takes, kept in
// Port.Policy, whose meaning belongs to the switch rather than the kind.
var policy *Kind

// RegisterPolicy adds the keys every port takes besides the common ones:
// what the switch does with a port's frames. It panics when a policy is
// already registered or a key clashes with a kind's or a common key.
func RegisterPolicy(k Kind) {
	if policy != nil || k.New == nil {
		panic("configs: a policy registered twice, or without New")
	}
	for _, key := range k.Keys {
		clash := commonKey(key.Name) != nil || key.Name == "transport" || key.Set == nil || key.Get == nil
		for _, kind := range kinds {
			clash = clash || kind.key(key.Name) != nil
		}
		if clash {
			panic(fmt.Sprintf("configs: policy key %q taken, or without Set or Get", key.Name))
		}
	}
	policy = &k
}

// Transports lists the registered transport names, sorted.
func Transports() []string {
	names := make([]string, 0, len(kinds))
	for n := range kinds {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// KeysOf lists the keys a transport accepts, those every port takes
// included, sorted; "transport" itself is left out. Nil for an unknown
// transport.
func KeysOf(transport string) []string {
	k := kinds[transport]
	if k == nil {
		return nil
	}
	var names []string
	keys := slices.Concat(k.Keys, commonKeys())
	if policy != nil {
		keys = append(keys, policy.Keys...)
	}
	for _, key := range keys {
		names = append(names, key.Name)
	}
	slices.Sort(names)
	return names
}

// accepted says which keys a transport takes, for an error: its own and
// the common ones, then the policy's, which every transport takes.
func accepted(transport string) string {
	var own, pol []string
	for _, n := range KeysOf(transport) {
		if policy != nil && policy.key(n) != nil {
			pol = append(pol, n)
		} else {
			own = append(own, n)
		}
	}
	s := "accepted: " + strings.Join(own, ", ")
	if len(pol) > 0 {
		s += "; and on every port: " + strings.Join(pol, ", ")
	}
	return s
}

// key returns k's key called name, or nil.
func (k *Kind) key(name string) *Key {
	for i := range k.Keys {
		if k.Keys[i].Name == name {
			return &k.Keys[i]
		}
	}
	return nil
}

// Help describes every port key for -h: first the keys every port takes,
// then each transport, sorted, with its summary and its keys, each with
// what it takes, what it does and its default.
func Help() string {
	var b strings.Builder
	var all []Key
	for _, k := range kinds {
		all = append(all, k.Keys...)
	}
	if policy != nil {
		all = append(all, policy.Keys...)
	}
	width := keyWidth(slices.Concat(all, commonKeys()))
	list := func(keys []Key) { listKeys(&b, keys, width) }
	b.WriteString("  every transport:\n")
	list(commonKeys())
	if policy != nil {
		fmt.Fprintf(&b, "  every transport, %s:\n", policy.Summary)
		list(policy.Keys)
	}
	for _, name := range Transports() {
		k := kinds[name]
		fmt.Fprintf(&b, "  %s: %s\n", k.Name, k.Summary)
		list(k.Keys)
	}
	return b.String()
}

// keyWidth is how wide the key=VALUE column of keys is in -h.
func keyWidth(keys []Key) int {
	width := 0
	for _, key := range keys {
		width = max(width, len(key.Name)+1+len(key.Value))
	}
	return width
}

// listKeys writes a line or more for each key: key=VALUE in a column
// width wide, then what it does and its default.
func listKeys(b *strings.Builder, keys []Key, width int) {
	for _, key := range keys {
		text := key.Help
		if key.Required {
			text = "(required) " + text
		}
		if key.Default != "" {
			text += " (default: " + key.Default + ")"
		}
		for i, line := range wrap(text, helpWidth-width) {
			name := ""
			if i == 0 {
				name = key.Name + "=" + key.Value
			}
			fmt.Fprintf(b, "    %-*s  %s\n", width, name, line)
		}
	}
}

// helpWidth is about where Help's lines end.
const helpWidth = 100

// wrap breaks text into lines of at most width bytes, at spaces (a longer
// word stays whole).
func wrap(text string, width int) []string {
	var lines []string
	line := ""
	for _, w := range strings.Fields(text) {
		if line != "" && len(line)+1+len(w) > width {
			lines = append(lines, line)
			line = ""
		}
		if line != "" {
			line += " "
		}
		line += w
	}
	return append(lines, line)
}
