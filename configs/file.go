package configs

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"sort"
	"time"

	"go.yaml.in/yaml/v3"
)

// File is a parsed configuration file. Zero fields mean "not set": flags
// and built-in defaults fill them.
type File struct {
	Hub          bool
	MACAge       time.Duration
	MACTableSize int
	TxHold       time.Duration
	MTU          int
	Depth        int
	LogLevel     string
	Ports        []Port
	Mirrors      []Mirror
}

// fileYAML is the document as written; durations are strings like "300s",
// and port entries are maps of the same keys -port takes.
type fileYAML struct {
	Hub          bool                `yaml:"hub"`
	MACAge       string              `yaml:"mac_age"`
	MACTableSize int                 `yaml:"mac_table_size"`
	TxHold       string              `yaml:"tx_hold"`
	MTU          int                 `yaml:"mtu"`
	Depth        int                 `yaml:"depth"`
	LogLevel     string              `yaml:"log_level"`
	Ports        []map[string]scalar `yaml:"ports"`
	Mirrors      []map[string]scalar `yaml:"mirrors"`
}

// scalar accepts any YAML scalar (string, number, boolean) as its text, so
// that "depth: 32" and "depth: '32'" mean the same as depth=32 in a spec.
type scalar string

func (s *scalar) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: port option must be a single value", n.Line)
	}
	*s = scalar(n.Value)
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
	f := &File{Hub: y.Hub, MACTableSize: y.MACTableSize, MTU: y.MTU, Depth: y.Depth, LogLevel: y.LogLevel}
	var err error
	if f.MACAge, err = parseDuration("mac_age", y.MACAge); err != nil {
		return nil, err
	}
	if f.TxHold, err = parseDuration("tx_hold", y.TxHold); err != nil {
		return nil, err
	}
	if f.MACTableSize < 0 {
		return nil, fmt.Errorf("config: mac_table_size %d is negative", f.MACTableSize)
	}
	if f.MTU != 0 && (f.MTU < MinMTU || f.MTU > MaxMTU) {
		return nil, fmt.Errorf("config: mtu %d is out of range %d..%d", f.MTU, MinMTU, MaxMTU)
	}
	if f.Depth < 0 || f.Depth > MaxDepth {
		return nil, fmt.Errorf("config: depth %d is out of range 1..%d", f.Depth, MaxDepth)
	}
	switch f.LogLevel {
	case "", "debug", "info", "warn", "error":
	default:
		return nil, fmt.Errorf("config: log_level %q is not one of debug, info, warn, error", f.LogLevel)
	}
	for i, m := range y.Ports {
		p, err := fromOptions(sortedOptions(m))
		if err != nil {
			return nil, fmt.Errorf("config: ports[%d]: %w", i, err)
		}
		f.Ports = append(f.Ports, p)
	}
	for i, m := range y.Mirrors {
		mi, err := mirrorFromOptions(sortedOptions(m))
		if err != nil {
			return nil, fmt.Errorf("config: mirrors[%d]: %w", i, err)
		}
		f.Mirrors = append(f.Mirrors, mi)
	}
	return f, nil
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

func parseDuration(key, v string) (time.Duration, error) {
	if v == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("config: %s %q is not a positive duration like 300s or 5ms", key, v)
	}
	return d, nil
}
