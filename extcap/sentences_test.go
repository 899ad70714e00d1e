package extcap

import (
	"strings"
	"testing"
)

func TestWriteInterfaces(t *testing.T) {
	var b strings.Builder
	err := WriteInterfaces(&b, "1.0", []Interface{
		{Target: Target{Socket: "/tmp/lab/A.ctl", Switch: "A"}, Display: "umlswitch A (/tmp/lab/A.ctl)"},
		{Target: Target{Socket: "/tmp/lab/A.ctl", Switch: "A", Port: "A.1"}, Display: "port {x}\nline"},
	})
	want := "extcap {version=1.0}{help=" + HelpURL + "}\n" +
		"interface {value=umlswitch:A@/tmp/lab/A.ctl}{display=umlswitch A (/tmp/lab/A.ctl)}\n" +
		"interface {value=umlswitch:A/A.1@/tmp/lab/A.ctl}{display=port (x) line}\n"
	if err != nil || b.String() != want {
		t.Errorf("got %v\n%s\nwant\n%s", err, b.String(), want)
	}
}

func TestWriteDLTs(t *testing.T) {
	var b strings.Builder
	if err := WriteDLTs(&b); err != nil || b.String() != "dlt {number=1}{name=EN10MB}{display=Ethernet}\n" {
		t.Errorf("got %v %q", err, b.String())
	}
}

func TestWriteConfig(t *testing.T) {
	var b strings.Builder
	WriteConfig(&b, Target{Socket: "/s", Switch: "A"}, []string{"A.1", "vx0"})
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	want := []string{
		"arg {number=0}{call=--port}{display=Port}{type=selector}",
		"value {arg=0}{value=*}{display=every port}{default=true}",
		"value {arg=0}{value=A.1}{display=A.1}{default=false}",
		"value {arg=0}{value=vx0}{display=vx0}{default=false}",
		"arg {number=1}{call=--direction}{display=Direction}{type=radio}",
		"value {arg=1}{value=both}{display=both}{default=true}",
		"value {arg=1}{value=in}{display=into the switch}{default=false}",
		"value {arg=1}{value=out}{display=out of the switch}{default=false}",
	}
	if len(lines) != len(want) {
		t.Fatalf("got %d lines, want %d:\n%s", len(lines), len(want), b.String())
	}
	for i := range want {
		if !strings.HasPrefix(lines[i], want[i]) {
			t.Errorf("line %d: %q, want it to start %q", i, lines[i], want[i])
		}
	}
	// A port's own interface: no port option, the direction is arg 0.
	b.Reset()
	WriteConfig(&b, Target{Socket: "/s", Switch: "A", Port: "A.1"}, nil)
	if out := b.String(); strings.Contains(out, "--port") || !strings.HasPrefix(out, "arg {number=0}{call=--direction}") ||
		!strings.Contains(out, "value {arg=0}{value=in}") {
		t.Errorf("a port's options:\n%s", out)
	}
}
