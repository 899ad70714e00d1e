package extcap

import (
	"strings"
	"testing"
)

func TestNames(t *testing.T) {
	for _, tt := range []struct {
		t    Target
		name string
	}{
		{Target{Socket: "/tmp/lab/A.ctl", Switch: "A"}, "umlswitch:A@/tmp/lab/A.ctl"},
		{Target{Socket: "/tmp/lab/A.ctl", Switch: "A", Port: "daemon0.1"}, "umlswitch:A/daemon0.1@/tmp/lab/A.ctl"},
		{Target{Socket: "/var/run/uml-utilities/uml_switch.ctl", Switch: "default"}, "umlswitch:default@/var/run/uml-utilities/uml_switch.ctl"},
		// What names and paths may hold that the syntax uses: escaped.
		{Target{Socket: "/tmp/a b/x@y.ctl", Switch: "a/b@c", Port: "p%1"}, "umlswitch:a%2Fb%40c/p%251@/tmp/a%20b/x@y.ctl"},
		{Target{Socket: "/tmp/{x}\n", Switch: "é"}, "umlswitch:%C3%A9@/tmp/%7Bx%7D%0A"},
	} {
		if got := tt.t.Name(); got != tt.name {
			t.Errorf("%+v: name %q, want %q", tt.t, got, tt.name)
		}
		back, err := ParseName(tt.name)
		if err != nil || back != tt.t {
			t.Errorf("ParseName(%q) = %+v, %v; want %+v", tt.name, back, err, tt.t)
		}
	}
	for _, tt := range []struct{ name, want string }{
		{"ciscodump", "not one of umlswitch's"},
		{"umlswitch:A", "no @SOCKET"},
		{"umlswitch:@/tmp/x", "no switch"},
		{"umlswitch:A/@/tmp/x", "empty port"},
		{"umlswitch:A@", "no socket"},
		{"umlswitch:A%4@/x", "switch: a % not followed"},
		{"umlswitch:A/%zz@/x", "port: a % not followed"},
		{"umlswitch:A@/x%", "socket: a % not followed"},
	} {
		if _, err := ParseName(tt.name); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseName(%q): %v, want an error with %q", tt.name, err, tt.want)
		}
	}
}

// FuzzParseName: any string either fails or reads back to a target whose
// name reads back to the same target.
func FuzzParseName(f *testing.F) {
	for _, s := range []string{"umlswitch:A@/tmp/lab/A.ctl", "umlswitch:A/daemon0.1@/tmp/x@y", "umlswitch:a%2Fb@/%41", "umlswitch:%", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tg, err := ParseName(s)
		if err != nil {
			return
		}
		back, err := ParseName(tg.Name())
		if err != nil || back != tg {
			t.Fatalf("%q -> %+v -> %q -> %+v, %v", s, tg, tg.Name(), back, err)
		}
	})
}

// FuzzNameRoundTrip: every target with a switch and a socket has a name
// that reads back to it, one line of printable ASCII without { or }.
func FuzzNameRoundTrip(f *testing.F) {
	f.Add("/tmp/lab/A.ctl", "A", "")
	f.Add("/tmp/a b/x@y.ctl", "a/b@c", "p%1")
	f.Fuzz(func(t *testing.T, sock, sw, port string) {
		if sock == "" || sw == "" {
			return
		}
		tg := Target{Socket: sock, Switch: sw, Port: port}
		name := tg.Name()
		for _, c := range []byte(name) {
			if c < 0x21 || c > 0x7e || c == '{' || c == '}' {
				t.Fatalf("%+v: name %q holds byte %#x", tg, name, c)
			}
		}
		back, err := ParseName(name)
		if err != nil || back != tg {
			t.Fatalf("%+v -> %q -> %+v, %v", tg, name, back, err)
		}
	})
}
