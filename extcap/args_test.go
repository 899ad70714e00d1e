package extcap

import (
	"reflect"
	"strings"
	"testing"
)

func TestIsExtcap(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want bool
	}{
		{[]string{"--extcap-interfaces"}, true},
		{[]string{"--extcap-interfaces", "--extcap-version=4.0"}, true},
		{[]string{"--extcap-version=4.0", "--extcap-interfaces"}, true},
		{[]string{"--capture", "--extcap-interface", "x"}, true},
		{[]string{"--fifo=/tmp/f", "--capture"}, true},
		{[]string{"--extcap-capture-filter", "icmp"}, true},
		{nil, false},
		{[]string{"-capture-socket", "/tmp/c"}, false},
		{[]string{"--capture-socket", "/tmp/c"}, false},
		{[]string{"capture", "-s", "x"}, false},
		{[]string{"-unix", "/tmp/uml.ctl"}, false},
		{[]string{"--unix", "--extcap-interfaces"}, false},
	} {
		if got := IsExtcap(tt.args); got != tt.want {
			t.Errorf("IsExtcap(%q) = %v, want %v", tt.args, got, tt.want)
		}
	}
}

func TestParseArgs(t *testing.T) {
	const ifname = "umlswitch:A@/tmp/lab/A.ctl"
	for _, tt := range []struct {
		args []string
		want Args
	}{
		{[]string{"--extcap-interfaces", "--extcap-version=4.0"}, Args{Mode: ModeInterfaces, Version: "4.0", Direction: Both}},
		{[]string{"--extcap-interfaces"}, Args{Mode: ModeInterfaces, Direction: Both}},
		{[]string{"--extcap-dlts", "--extcap-interface", ifname}, Args{Mode: ModeDLTs, Interface: ifname, Direction: Both}},
		{[]string{"--extcap-config", "--extcap-interface=" + ifname}, Args{Mode: ModeConfig, Interface: ifname, Direction: Both}},
		// What Wireshark 4.0 runs to capture, control pipes and options included.
		{[]string{"--capture", "--extcap-interface", ifname, "--extcap-capture-filter", "icmp or arp", "--fifo", "/tmp/wireshark_extcap_x",
			"--extcap-control-out", "/tmp/c1", "--extcap-control-in", "/tmp/c2", "--port", "A.3", "--direction", "in"},
			Args{Mode: ModeCapture, Interface: ifname, Fifo: "/tmp/wireshark_extcap_x", Filter: "icmp or arp", HasFilter: true,
				Port: "A.3", Direction: In}},
		// A filter may start with dashes; an empty one is no filter, but given.
		{[]string{"--capture", "--extcap-interface", ifname, "--fifo", "f", "--extcap-capture-filter", "--x"},
			Args{Mode: ModeCapture, Interface: ifname, Fifo: "f", Filter: "--x", HasFilter: true, Direction: Both}},
		{[]string{"--extcap-capture-filter", "", "--extcap-interface", ifname},
			Args{Mode: ModeCheckFilter, Interface: ifname, HasFilter: true, Direction: Both}},
		// Options a newer Wireshark may add are skipped, with their values.
		{[]string{"--extcap-interfaces", "--extcap-log-level", "debug", "--extcap-cleanup-postkill", "--extcap-log-file=/tmp/x"},
			Args{Mode: ModeInterfaces, Direction: Both}},
		{[]string{"--capture", "--fifo=f", "--extcap-interface=" + ifname, "--direction=out", "--port=*"},
			Args{Mode: ModeCapture, Interface: ifname, Fifo: "f", Direction: Out, Port: AllPorts}},
	} {
		got, err := ParseArgs(tt.args)
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseArgs(%q) = %+v, %v; want %+v", tt.args, got, err, tt.want)
		}
	}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{nil, "none of"},
		{[]string{"--extcap-version=4.0"}, "none of"},
		{[]string{"--extcap-interfaces", "--capture"}, "more than one"},
		{[]string{"--extcap-dlts"}, "no --extcap-interface"},
		{[]string{"--capture", "--extcap-interface", ifname}, "without --fifo"},
		{[]string{"--capture", "--extcap-interface"}, "needs a value"},
		{[]string{"--capture", "--extcap-interface", ifname, "--fifo", "f", "--direction", "sideways"}, "want both, in or out"},
		{[]string{"--extcap-interfaces", "stray"}, `unexpected argument "stray"`},
	} {
		if _, err := ParseArgs(tt.args); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseArgs(%q): %v, want an error with %q", tt.args, err, tt.want)
		}
	}
}

// FuzzParseArgs: any command line parses or fails; what parses has what
// its mode needs.
func FuzzParseArgs(f *testing.F) {
	f.Add("--capture\x00--extcap-interface\x00umlswitch:A@/x\x00--fifo\x00/f\x00--direction\x00in")
	f.Add("--extcap-interfaces\x00--extcap-version=4.0")
	f.Add("--extcap-capture-filter\x00icmp\x00--extcap-interface\x00x")
	f.Fuzz(func(t *testing.T, line string) {
		a, err := ParseArgs(strings.Split(line, "\x00"))
		if err != nil {
			return
		}
		switch {
		case a.Mode < ModeInterfaces || a.Mode > ModeCheckFilter:
			t.Fatalf("mode %d", a.Mode)
		case a.Mode != ModeInterfaces && a.Interface == "":
			t.Fatal("no interface")
		case a.Mode == ModeCapture && a.Fifo == "":
			t.Fatal("a capture without a fifo")
		case a.Direction != Both && a.Direction != In && a.Direction != Out:
			t.Fatalf("direction %q", a.Direction)
		}
	})
}
