package extcap

import (
	"errors"
	"fmt"
	"strings"
)

// Mode is what Wireshark asks an extcap for.
type Mode int

const (
	ModeInterfaces  Mode = iota + 1 // --extcap-interfaces: the interface list
	ModeDLTs                        // --extcap-dlts: an interface's link types
	ModeConfig                      // --extcap-config: an interface's options
	ModeCapture                     // --capture: write frames into --fifo
	ModeCheckFilter                 // --extcap-capture-filter alone: is the filter valid?
)

// Direction picks frames by the side of the switch they were seen on.
type Direction string

const (
	Both Direction = "both"
	In   Direction = "in"  // entering the switch through a port
	Out  Direction = "out" // leaving the switch through a port
)

// AllPorts is --port's value for every port: no port name starts with *.
const AllPorts = "*"

// Args is an extcap command line, as Wireshark writes it.
type Args struct {
	Mode      Mode
	Interface string // --extcap-interface
	Fifo      string // --fifo
	Filter    string // --extcap-capture-filter
	HasFilter bool
	Version   string // --extcap-version: Wireshark's
	// The options --extcap-config offers.
	Port      string    // --port: a port's frames only ("" or AllPorts: every port)
	Direction Direction // --direction ("": Both)
}

// valued are the options that take a value. Wireshark writes
// --extcap-version=X; the others as two arguments, and both forms are
// taken for every one.
var valued = map[string]bool{
	"--extcap-interface": true, "--fifo": true, "--extcap-capture-filter": true, "--extcap-version": true,
	"--extcap-control-in": true, "--extcap-control-out": true, "--extcap-reload-option": true,
	"--extcap-config-option-name": true, "--extcap-config-option-value": true,
	"--port": true, "--direction": true,
}

// IsExtcap reports whether a command line is Wireshark's: its first
// argument is one of the options Wireshark starts an extcap with.
// umlswitch's own flags never look so (-capture-socket is not --capture).
func IsExtcap(args []string) bool {
	if len(args) == 0 {
		return false
	}
	name, _, _ := strings.Cut(args[0], "=")
	return strings.HasPrefix(name, "--extcap-") || name == "--capture" || name == "--fifo"
}

// ParseArgs reads an extcap command line. Options it does not know are
// skipped (with the value that follows one, if it does not start with
// --), so that a newer Wireshark's additions do not break the interface
// list; the control pipes are not used.
func ParseArgs(args []string) (Args, error) {
	var a Args
	modes := 0
	setMode := func(m Mode) {
		a.Mode = m
		modes++
	}
	for i := 0; i < len(args); i++ {
		name, value, hasValue := strings.Cut(args[i], "=")
		if !strings.HasPrefix(name, "--") {
			return Args{}, fmt.Errorf("extcap: unexpected argument %q", args[i])
		}
		next := func() (string, error) {
			if hasValue {
				return value, nil
			}
			if i+1 >= len(args) {
				return "", fmt.Errorf("extcap: %s needs a value", name)
			}
			i++
			return args[i], nil
		}
		if valued[name] {
			v, err := next()
			if err != nil {
				return Args{}, err
			}
			switch name {
			case "--extcap-interface":
				a.Interface = v
			case "--fifo":
				a.Fifo = v
			case "--extcap-capture-filter":
				a.Filter, a.HasFilter = v, true
			case "--extcap-version":
				a.Version = v
			case "--port":
				a.Port = v
			case "--direction":
				d := Direction(v)
				if d != Both && d != In && d != Out {
					return Args{}, fmt.Errorf("extcap: --direction %q: want both, in or out", v)
				}
				a.Direction = d
			}
			continue
		}
		switch name {
		case "--extcap-interfaces":
			setMode(ModeInterfaces)
		case "--extcap-dlts":
			setMode(ModeDLTs)
		case "--extcap-config":
			setMode(ModeConfig)
		case "--capture":
			setMode(ModeCapture)
		default: // unknown: skip it and a value that follows
			if !hasValue && i+1 < len(args) && !strings.HasPrefix(args[i+1], "--") {
				i++
			}
		}
	}
	switch {
	case modes > 1:
		return Args{}, errors.New("extcap: more than one of --extcap-interfaces, --extcap-dlts, --extcap-config and --capture")
	case modes == 0 && a.HasFilter:
		a.Mode = ModeCheckFilter
	case modes == 0:
		return Args{}, errors.New("extcap: none of --extcap-interfaces, --extcap-dlts, --extcap-config, --capture and --extcap-capture-filter")
	}
	if a.Mode != ModeInterfaces && a.Interface == "" {
		return Args{}, errors.New("extcap: no --extcap-interface")
	}
	if a.Mode == ModeCapture && a.Fifo == "" {
		return Args{}, errors.New("extcap: --capture without --fifo")
	}
	if a.Direction == "" {
		a.Direction = Both
	}
	return a, nil
}
