package configs

import (
	"fmt"
	"os"
	"slices"
)

// Overrides are what the command line adds to a configuration.
type Overrides struct {
	// Settings are flags that were given, by their configuration key:
	// tx_hold, mtu, depth and log_level for the daemon; hub, mac_age and
	// mac_table_size for the default switch.
	Settings [][2]string
	// Ports are -unix, -tap and -port, in order; they join the switch their
	// switch= names, else the default switch.
	Ports []Port
	// ReplacePorts drops the configuration's own ports first: the built-in
	// configuration's socket gives way to -unix or -port.
	ReplacePorts bool
	Mirrors      []Mirror // joined to the default switch
	// Mode (-mode), CompatV0 (-compat-v0) and DataPath (its shared data
	// socket) set the keys mode=, compat_v0= and data= of the default
	// switch's ports whose kinds take them (the sockets guests attach to).
	// Mode never opens a capture socket: a 0777 guest socket must not make
	// the lab's traffic readable by every user (those keep their own mode=,
	// 0600 by default).
	Mode     os.FileMode
	CompatV0 bool
	DataPath string
}

// Merge applies the command line to a configuration and returns the
// result, which f is not changed into and shares no slice with. It is the
// one place where flags and configuration meet. The evpn: block and the
// switches' VNI, RD and route targets come from the file alone (no flag
// sets them) and are carried over as they are.
func Merge(f *File, o Overrides) (*File, error) {
	out := *f
	out.EVPN = f.EVPN.clone()
	out.Switches = make([]Switch, len(f.Switches))
	for i, s := range f.Switches {
		s.Ports = append([]Port(nil), s.Ports...)
		s.Mirrors = append([]Mirror(nil), s.Mirrors...)
		s.ImportRT = append([]string(nil), s.ImportRT...)
		s.ExportRT = append([]string(nil), s.ExportRT...)
		if o.ReplacePorts {
			s.Ports = nil
		}
		out.Switches[i] = s
	}
	def := func() *Switch {
		if s := out.Switch(DefaultSwitch); s != nil {
			return s
		}
		out.Switches = append([]Switch{{Name: DefaultSwitch}}, out.Switches...)
		return &out.Switches[0]
	}
	for _, kv := range o.Settings {
		if set, ok := globalKeys[kv[0]]; ok {
			if err := set(&out, kv[1]); err != nil {
				return nil, fmt.Errorf("-%s: %w", flagName(kv[0]), err)
			}
			continue
		}
		set, ok := switchKeys[kv[0]]
		if !ok {
			return nil, fmt.Errorf("no setting %q", kv[0])
		}
		if err := set(def(), kv[1]); err != nil {
			return nil, fmt.Errorf("-%s: %w", flagName(kv[0]), err)
		}
	}
	if s := out.Switch(DefaultSwitch); s != nil {
		for i, p := range s.Ports {
			var err error
			if s.Ports[i], err = adjustSockets(p, o, true); err != nil {
				return nil, err
			}
		}
	}
	for _, p := range o.Ports {
		name := p.Switch
		p.Switch = ""
		var s *Switch
		if name == "" || name == DefaultSwitch {
			s = def()
			var err error
			if p, err = adjustSockets(p, o, false); err != nil {
				return nil, err
			}
		} else if s = out.Switch(name); s == nil {
			return nil, fmt.Errorf("port %s: switch=%s: no such switch in the configuration", p, name)
		}
		s.Ports = append(s.Ports, p)
	}
	if len(o.Mirrors) > 0 {
		s := def()
		s.Mirrors = append(s.Mirrors, o.Mirrors...)
	}
	if o.DataPath != "" && !o.CompatV0 {
		return nil, fmt.Errorf("a data socket path is only taken with -compat-v0")
	}
	n := 0
	for _, s := range out.Switches {
		n += len(s.Ports)
	}
	if n == 0 {
		return nil, fmt.Errorf("no ports configured")
	}
	return &out, nil
}

// adjustSockets applies -mode, -compat-v0 and the data socket to a port
// of the default switch whose kind takes mode=, compat_v0= or data= (a
// -port spec's own mode= wins over -mode, a file's does not).
func adjustSockets(p Port, o Overrides, fromFile bool) (Port, error) {
	takes := KeysOf(p.Transport)
	var kv [][2]string
	if _, own := p.Get("mode"); o.Mode != 0 && slices.Contains(takes, "mode") && (fromFile || !own) {
		kv = append(kv, [2]string{"mode", formatMode(o.Mode)})
	}
	if o.CompatV0 && slices.Contains(takes, "compat_v0") {
		kv = append(kv, [2]string{"compat_v0", "1"})
	}
	if _, own := p.Get("data"); o.DataPath != "" && slices.Contains(takes, "data") && !own {
		kv = append(kv, [2]string{"data", o.DataPath})
	}
	if len(kv) == 0 {
		return p, nil
	}
	return p.With(kv...)
}

// flagName is the command-line flag for a configuration key.
func flagName(key string) string {
	b := []byte(key)
	for i, c := range b {
		if c == '_' {
			b[i] = '-'
		}
	}
	return string(b)
}
