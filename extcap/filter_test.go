package extcap

import (
	"os/exec"
	"strings"
	"testing"
)

// icmpProgram is tcpdump -ddd -y EN10MB icmp (tcpdump 4.99).
const icmpProgram = "6\n40 0 0 12\n21 0 3 2048\n48 0 0 23\n21 0 1 1\n6 0 0 262144\n6 0 0 0\n"

// frames for the filter tests: an ICMP echo request in IPv4, and an ARP
// request.
var (
	icmpFrame = append(ether(0x0800), 0x45, 0, 0, 28, 0, 0, 0, 0, 64, 1, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2, 8, 0, 0, 0, 0, 0, 0, 0)
	arpFrame  = append(ether(0x0806), make([]byte, 28)...)
)

func ether(typ uint16) []byte {
	return []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 1, byte(typ >> 8), byte(typ)}
}

func TestFilterFromText(t *testing.T) {
	f, err := FilterFromText("icmp", icmpProgram)
	if err != nil {
		t.Fatal(err)
	}
	if !f.Match(icmpFrame) || f.Match(arpFrame) || f.Match(icmpFrame[:10]) {
		t.Errorf("icmp: keeps ICMP %v, ARP %v, a runt %v", f.Match(icmpFrame), f.Match(arpFrame), f.Match(icmpFrame[:10]))
	}
	var none *Filter
	if !none.Match(arpFrame) {
		t.Error("no filter dropped a frame")
	}
	for _, tt := range []struct{ expr, text, want string }{
		// tcpdump -ddd -y EN10MB inbound: the kernel's packet type.
		{"inbound", "4\n40 0 0 4294963204\n21 0 1 4\n6 0 0 0\n6 0 0 262144\n", "Direction option"},
		// ifindex 1
		{"ifindex 1", "4\n32 0 0 4294963208\n21 0 1 1\n6 0 0 262144\n6 0 0 0\n", "ancillary"},
		// A load relative to the network header (SKF_NET_OFF).
		{"net", "2\n48 0 0 4293918720\n6 0 0 262144\n", "relative to a header"},
		{"bad", "2\n40 0 0 12\n", "the count says 2"},
		{"jump", "2\n21 5 0 1\n6 0 0 0\n", "past the end"},
	} {
		if _, err := FilterFromText(tt.expr, tt.text); err == nil || !strings.Contains(err.Error(), tt.want) ||
			!strings.Contains(err.Error(), tt.expr) {
			t.Errorf("%s: %v, want an error with %q", tt.expr, err, tt.want)
		}
	}
}

// CompileFilter runs the real tcpdump (make deps installs it).
func TestCompileFilter(t *testing.T) {
	if _, err := exec.LookPath(Tcpdump); err != nil {
		t.Fatalf("%s not found: install tcpdump", Tcpdump)
	}
	f, err := CompileFilter("icmp or vlan 10")
	if err != nil {
		t.Fatal(err)
	}
	if !f.Match(icmpFrame) || f.Match(arpFrame) {
		t.Errorf("icmp or vlan 10: keeps ICMP %v, ARP %v", f.Match(icmpFrame), f.Match(arpFrame))
	}
	if f, err := CompileFilter("  "); f != nil || err != nil {
		t.Errorf("a blank filter: %v, %v; want none", f, err)
	}
	for _, tt := range []struct{ expr, want string }{
		{"icmp and", "syntax error"},
		{"-x", "syntax error"}, // not an option of tcpdump's
		{"outbound", "Direction option"},
	} {
		if _, err := CompileFilter(tt.expr); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: %v, want an error with %q", tt.expr, err, tt.want)
		}
	}
	old := Tcpdump
	defer func() { Tcpdump = old }()
	Tcpdump = "/nonexistent/tcpdump"
	if _, err := CompileFilter("icmp"); err == nil || !strings.Contains(err.Error(), "install tcpdump") {
		t.Errorf("no tcpdump: %v", err)
	}
}

// FuzzFilterFromText: whatever tcpdump printed, a filter is refused or
// runs on any frame without panicking.
func FuzzFilterFromText(f *testing.F) {
	f.Add(icmpProgram, icmpFrame)
	f.Add("4\n40 0 0 4294963204\n21 0 1 4\n6 0 0 0\n6 0 0 262144\n", arpFrame)
	f.Add("3\n0 0 0 4294967295\n80 0 0 0\n22 0 0 0\n", []byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, text string, frame []byte) {
		if flt, err := FilterFromText("x", text); err == nil {
			flt.Match(frame)
		}
	})
}
