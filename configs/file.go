package configs

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"net"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// File is a parsed configuration: settings of the whole daemon and the
// switches it runs. Zero fields mean "not set": flags and built-in
// defaults fill them.
type File struct {
	TxHold   time.Duration
	MTU      int
	Depth    int
	LogLevel string
	// APIUIDs and APIGIDs may use the control API's writes and live
	// capture on every control socket, besides root and the switch's own
	// user (a daemon port's api_uid= and api_gid= add to them for it).
	APIUIDs, APIGIDs []uint32
	// User is who the switch runs as once its ports are open (-user): a
	// user name or uid, looked up then; empty: it stays who it started as.
	User string
	// State is the run state file (-state): what the control API changed,
	// brought back after a restart. Empty: next to the default switch's
	// first daemon control socket (RunStatePath); "none": not kept.
	State string
	// BusyPoll is the CPU a busy-polling switch runs on (-busy-poll);
	// nil: the switch's readers sleep until the kernel wakes them.
	BusyPoll *int
	Web      Web
	Limits   Limits
	Switches []Switch // the default switch, if any, first
	EVPN     *EVPN    // nil: no evpn: block
}

// Web is where the page of the running lab is served (package web).
type Web struct {
	Addr  string // host:port; empty: no page
	RW    bool   // the page may set a port's link and impairment keys, with the token
	Token string // the token file; empty: next to the default switch's control socket
}

// Limits bound what local users may make the daemon hold; zero fields
// take the defaults (DefaultLimits). Root and the switch's own user are
// never refused.
type Limits struct {
	Clients       int // client ports of every listener (daemon, BESS, stream) together
	ClientsPerUID int // of one uid
	API           int // control API connections (event and capture streams included) and capture-socket readers
	APIPerUID     int // of one uid
}

// DefaultLimits are the bounds a configuration that sets none gets.
var DefaultLimits = Limits{Clients: 4096, ClientsPerUID: 1024, API: 256, APIPerUID: 32}

// WithDefaults is l with its zero fields set from DefaultLimits.
func (l Limits) WithDefaults() Limits {
	d := DefaultLimits
	for _, f := range []struct{ v, def *int }{{&l.Clients, &d.Clients}, {&l.ClientsPerUID, &d.ClientsPerUID},
		{&l.API, &d.API}, {&l.APIPerUID, &d.APIPerUID}} {
		if *f.v == 0 {
			*f.v = *f.def
		}
	}
	return l
}

// Switch is one switch (collision domain) of a configuration.
type Switch struct {
	Name         string
	Hub          bool
	MACAge       time.Duration
	MACTableSize int
	Ports        []Port
	Mirrors      []Mirror
	// A switch with a VNI is in the EVPN fabric (the file's evpn: block).
	VNI      uint32   // 0: not in the EVPN fabric (VNIs are 1..MaxVNI)
	RD       string   // "": derived by the speaker (router_id:index)
	ImportRT []string // empty: derived
	ExportRT []string // empty: derived
}

// DefaultSwitch names the switch the top-level keys, the uml_switch flags
// and -port describe.
const DefaultSwitch = "default"

// fileYAML is the document as written. Settings are scalars parsed by the
// same setters the flags go through (Merge); port and mirror entries are
// maps of the keys -port and -mirror take. The top level describes the
// default switch.
type fileYAML struct {
	switchYAML `yaml:",inline"`
	TxHold     *scalar      `yaml:"tx_hold"`
	MTU        *scalar      `yaml:"mtu"`
	Depth      *scalar      `yaml:"depth"`
	LogLevel   *scalar      `yaml:"log_level"`
	APIUID     *scalar      `yaml:"api_uid"`
	APIGID     *scalar      `yaml:"api_gid"`
	User       *scalar      `yaml:"user"`
	State      *scalar      `yaml:"state"`
	MaxClients *scalar      `yaml:"max_clients"`
	MaxClPerU  *scalar      `yaml:"max_clients_per_uid"`
	MaxAPI     *scalar      `yaml:"max_api"`
	MaxAPIPerU *scalar      `yaml:"max_api_per_uid"`
	Web        *scalar      `yaml:"web"`
	WebRW      *scalar      `yaml:"web_rw"`
	WebToken   *scalar      `yaml:"web_token"`
	BusyPoll   *scalar      `yaml:"busy_poll"`
	Switches   []switchYAML `yaml:"switches"`
	EVPN       *evpnYAML    `yaml:"evpn"`
}

type switchYAML struct {
	Name         *scalar             `yaml:"name"`
	Hub          *scalar             `yaml:"hub"`
	MACAge       *scalar             `yaml:"mac_age"`
	MACTableSize *scalar             `yaml:"mac_table_size"`
	Ports        []map[string]scalar `yaml:"ports"`
	Mirrors      []map[string]scalar `yaml:"mirrors"`
	VNI          *scalar             `yaml:"vni"`
	RD           *scalar             `yaml:"rd"`
	ImportRT     *scalars            `yaml:"import_rt"`
	ExportRT     *scalars            `yaml:"export_rt"`
}

// scalar accepts any YAML scalar (string, number, boolean) as its text, so
// that "depth: 32" and "depth: '32'" mean the same as depth=32 in a spec.
type scalar string

func (s *scalar) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: an option must be a single value", n.Line)
	}
	*s = scalar(n.Value)
	return nil
}

// Settings of the whole daemon and of one switch, by the key the YAML
// document uses; flags set them through the same functions (Merge).
var (
	globalKeys = map[string]func(f *File, v string) error{
		"tx_hold":   func(f *File, v string) (err error) { f.TxHold, err = parseDuration(v); return },
		"mtu":       func(f *File, v string) (err error) { f.MTU, err = ParseInt(v, MinMTU, MaxMTU); return },
		"depth":     func(f *File, v string) (err error) { f.Depth, err = ParseInt(v, 1, MaxDepth); return },
		"log_level": setLogLevel,
		"api_uid":   func(f *File, v string) (err error) { f.APIUIDs, err = ParseUsers(v); return },
		"api_gid":   func(f *File, v string) (err error) { f.APIGIDs, err = ParseGroups(v); return },
		"user":      func(f *File, v string) (err error) { f.User, err = checkUserName(v); return },
		"state":     func(f *File, v string) (err error) { f.State, err = checkStatePath(v); return },
		"web":       func(f *File, v string) (err error) { f.Web.Addr, err = checkHostPort(v); return },
		"web_rw":    func(f *File, v string) (err error) { f.Web.RW, err = ParseBool(v); return },
		"web_token": func(f *File, v string) (err error) { f.Web.Token, err = checkFilePath(v); return },
		"busy_poll": setBusyPoll,
		"max_clients": func(f *File, v string) (err error) {
			f.Limits.Clients, err = ParseInt(v, 1, 1<<20)
			return
		},
		"max_clients_per_uid": func(f *File, v string) (err error) {
			f.Limits.ClientsPerUID, err = ParseInt(v, 1, 1<<20)
			return
		},
		"max_api":         func(f *File, v string) (err error) { f.Limits.API, err = ParseInt(v, 1, 1<<16); return },
		"max_api_per_uid": func(f *File, v string) (err error) { f.Limits.APIPerUID, err = ParseInt(v, 1, 1<<16); return },
	}
	switchKeys = map[string]func(s *Switch, v string) error{
		"hub":            func(s *Switch, v string) (err error) { s.Hub, err = ParseBool(v); return },
		"mac_age":        func(s *Switch, v string) (err error) { s.MACAge, err = parseDuration(v); return },
		"mac_table_size": func(s *Switch, v string) (err error) { s.MACTableSize, err = ParseInt(v, 1, 1<<24); return },
	}
)

// NoState is the state key's value that keeps no run state.
const NoState = "none"

// checkHostPort accepts a TCP address to listen on: host:port.
func checkHostPort(v string) (string, error) {
	host, port, err := net.SplitHostPort(v)
	if err != nil || strings.ContainsAny(host, "/ ") {
		return "", fmt.Errorf("%q is not host:port like 127.0.0.1:8080", v)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return "", fmt.Errorf("%q: %q is not a port number", v, port)
	}
	return v, nil
}

func checkFilePath(v string) (string, error) {
	if v == "" || strings.ContainsRune(v, 0) || strings.HasSuffix(v, "/") {
		return "", fmt.Errorf("%q is not a file path", v)
	}
	return v, nil
}

func checkStatePath(v string) (string, error) {
	if v == "" || strings.ContainsRune(v, 0) || strings.HasSuffix(v, "/") {
		return "", fmt.Errorf("%q is not a file path (or %s)", v, NoState)
	}
	return v, nil
}

// userNameRE is what useradd accepts as a name (and any uid).
var userNameRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}\$?$`)

func checkUserName(v string) (string, error) {
	if !userNameRE.MatchString(v) {
		return "", fmt.Errorf("%q is not a user name or uid", v)
	}
	return v, nil
}

func setLogLevel(f *File, v string) error {
	switch v {
	case "debug", "info", "warn", "error":
		f.LogLevel = v
		return nil
	}
	return fmt.Errorf("%q is not one of debug, info, warn, error", v)
}

// setBusyPoll takes a CPU number, or -1 for none (the flag's default, so
// that -busy-poll -1 turns off a busy_poll of the file).
func setBusyPoll(f *File, v string) error {
	cpu, err := ParseInt(v, -1, MaxCPU)
	if err != nil {
		return err
	}
	f.BusyPoll = nil
	if cpu >= 0 {
		f.BusyPoll = &cpu
	}
	return nil
}

// MaxCPU is the highest CPU number a setting may name (the kernel's
// affinity masks as Go's unix.CPUSet holds them).
const MaxCPU = 1023

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$`)

// CheckName validates a switch or port name: it appears in URLs, metric
// labels and log lines.
func CheckName(n string) error {
	if !nameRE.MatchString(n) {
		return fmt.Errorf("name %q: use 1 to 64 letters, digits and _ . : - (starting with a letter or digit)", n)
	}
	return nil
}

//go:embed default.yaml
var defaultYAML []byte

// DefaultYAML is the embedded default configuration.
func DefaultYAML() []byte { return bytes.Clone(defaultYAML) }

// Default is the embedded default configuration, parsed.
func Default() *File {
	f, err := Parse(defaultYAML)
	if err != nil {
		panic("configs: embedded default.yaml: " + err.Error()) // a build-time bug, caught by tests
	}
	return f
}

// Parse reads a configuration document. Unknown keys are errors.
func Parse(data []byte) (*File, error) {
	var y fileYAML
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&y); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("config: %w", err)
	}
	f := &File{}
	for _, s := range []struct {
		key string
		v   *scalar
	}{{"tx_hold", y.TxHold}, {"mtu", y.MTU}, {"depth", y.Depth}, {"log_level", y.LogLevel},
		{"api_uid", y.APIUID}, {"api_gid", y.APIGID}, {"user", y.User}, {"state", y.State}, {"max_clients", y.MaxClients}, {"max_clients_per_uid", y.MaxClPerU},
		{"max_api", y.MaxAPI}, {"max_api_per_uid", y.MaxAPIPerU}, {"web", y.Web}, {"web_rw", y.WebRW}, {"web_token", y.WebToken},
		{"busy_poll", y.BusyPoll}} {
		if s.v != nil {
			if err := globalKeys[s.key](f, string(*s.v)); err != nil {
				return nil, fmt.Errorf("config: %s: %w", s.key, err)
			}
		}
	}
	if y.EVPN != nil {
		var err error
		if f.EVPN, err = y.EVPN.parse(); err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
	}
	vniOf := map[uint32]string{} // the switch that has each VNI
	add := func(sw Switch, where string) error {
		if sw.VNI != 0 {
			if other, ok := vniOf[sw.VNI]; ok {
				return fmt.Errorf("config: %svni: %d is already switch %q's VNI", where, sw.VNI, other)
			}
			vniOf[sw.VNI] = sw.Name
		}
		f.Switches = append(f.Switches, sw)
		return nil
	}
	// The top level is the default switch, unless the document lists its
	// switches and gives the top level no ports.
	top := y.switchYAML
	if top.Name != nil {
		return nil, errors.New("config: name: the top level is the default switch; name switches under switches:")
	}
	if len(y.Switches) == 0 || len(top.Ports) > 0 || len(top.Mirrors) > 0 {
		sw, err := top.parse(DefaultSwitch, "", f.EVPN != nil)
		if err != nil {
			return nil, err
		}
		if err := add(sw, ""); err != nil {
			return nil, err
		}
	} else if given := top.given(); len(given) > 0 {
		return nil, fmt.Errorf("config: %s: at the top level, keys describe the default switch, "+
			"which has no ports here: move them into an entry of switches:", strings.Join(given, ", "))
	}
	for i, sy := range y.Switches {
		if sy.Name == nil {
			return nil, fmt.Errorf("config: switches[%d]: no name", i)
		}
		where := fmt.Sprintf("switches[%d].", i)
		sw, err := sy.parse(string(*sy.Name), where, f.EVPN != nil)
		if err != nil {
			return nil, err
		}
		if f.Switch(sw.Name) != nil {
			return nil, fmt.Errorf("config: switches[%d]: switch %q given twice", i, sw.Name)
		}
		if err := add(sw, where); err != nil {
			return nil, err
		}
	}
	return f, nil
}

// settings are the switch's keys that take one value (switchKeys, then
// fabricKeys), in the order errors are looked for; lists are those that
// take one or a list (fabricKeys).
func (y *switchYAML) settings() []keyScalar {
	return []keyScalar{{"hub", y.Hub}, {"mac_age", y.MACAge}, {"mac_table_size", y.MACTableSize}, {"vni", y.VNI}, {"rd", y.RD}}
}

func (y *switchYAML) lists() []keyScalars {
	return []keyScalars{{"import_rt", y.ImportRT}, {"export_rt", y.ExportRT}}
}

// keyScalar and keyScalars are a key and its value as written, nil when
// the document does not give it.
type (
	keyScalar struct {
		key string
		v   *scalar
	}
	keyScalars struct {
		key string
		v   *scalars
	}
)

// given lists the settings and lists the document gives.
func (y *switchYAML) given() []string {
	var keys []string
	for _, s := range y.settings() {
		if s.v != nil {
			keys = append(keys, s.key)
		}
	}
	for _, l := range y.lists() {
		if l.v != nil {
			keys = append(keys, l.key)
		}
	}
	return keys
}

// parse builds the switch; evpn says whether the document has an evpn:
// block, which the fabric's keys need.
func (y *switchYAML) parse(name, where string, evpn bool) (Switch, error) {
	sw := Switch{Name: name}
	if err := CheckName(name); err != nil {
		return sw, fmt.Errorf("config: %sname: %w", where, err)
	}
	for _, key := range y.given() {
		switch {
		case fabricKeys[key] == nil:
		case !evpn:
			return sw, fmt.Errorf("config: %s%s: needs an evpn: block", where, key)
		case key != "vni" && y.VNI == nil:
			return sw, fmt.Errorf("config: %s%s: needs vni: (a switch without one is not in the EVPN fabric)", where, key)
		}
	}
	for _, s := range y.settings() {
		if s.v == nil {
			continue
		}
		set := switchKeys[s.key]
		if set == nil {
			set = fabricKeys[s.key]
		}
		if err := set(&sw, string(*s.v)); err != nil {
			return sw, fmt.Errorf("config: %s%s: %w", where, s.key, err)
		}
	}
	for _, l := range y.lists() {
		if l.v == nil {
			continue
		}
		for _, v := range *l.v {
			if err := fabricKeys[l.key](&sw, v); err != nil {
				return sw, fmt.Errorf("config: %s%s: %w", where, l.key, err)
			}
		}
	}
	for i, m := range y.Ports {
		p, err := NewPort(sortedOptions(m))
		if err != nil {
			return sw, fmt.Errorf("config: %sports[%d]: %w", where, i, err)
		}
		if p.Switch != "" && p.Switch != name {
			return sw, fmt.Errorf("config: %sports[%d]: switch=%s inside switch %s", where, i, p.Switch, name)
		}
		p.Switch = ""
		sw.Ports = append(sw.Ports, p)
	}
	for i, m := range y.Mirrors {
		mi, err := NewMirror(sortedOptions(m))
		if err != nil {
			return sw, fmt.Errorf("config: %smirrors[%d]: %w", where, i, err)
		}
		sw.Mirrors = append(sw.Mirrors, mi)
	}
	return sw, nil
}

// NewSwitch builds a switch from settings by their configuration keys
// (hub, mac_age, mac_table_size), as the control API's requests give them.
func NewSwitch(name string, settings [][2]string) (Switch, error) {
	sw := Switch{Name: name}
	if err := CheckName(name); err != nil {
		return sw, err
	}
	for _, kv := range settings {
		set, ok := switchKeys[kv[0]]
		if !ok {
			return sw, fmt.Errorf("unknown switch setting %q (accepted: hub, mac_age, mac_table_size)", kv[0])
		}
		if err := set(&sw, kv[1]); err != nil {
			return sw, fmt.Errorf("%s: %w", kv[0], err)
		}
	}
	return sw, nil
}

// Switch returns the switch named name, or nil.
func (f *File) Switch(name string) *Switch {
	for i := range f.Switches {
		if f.Switches[i].Name == name {
			return &f.Switches[i]
		}
	}
	return nil
}

// sortedOptions lists a map entry's keys and values in key order: map
// order is random, and errors should not be.
func sortedOptions(m map[string]scalar) [][2]string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	kv := make([][2]string, 0, len(m))
	for _, k := range keys {
		kv = append(kv, [2]string{k, string(m[k])})
	}
	return kv
}

func parseDuration(v string) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%q is not a positive duration like 300s or 5ms", v)
	}
	return d, nil
}
