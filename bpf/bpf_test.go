package bpf

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/net/bpf"

	"github.com/umlswitch/umlswitch/frame"
)

// "icmp or arp" as tcpdump -ddd prints it for Ethernet (tcpdump 4.99).
const icmpOrARP = `7
40 0 0 12
21 0 2 2048
48 0 0 23
21 1 2 1
21 0 1 2054
6 0 0 262144
6 0 0 0
`

// "vlan 10" as tcpdump -i lo -ddd prints it: it reads the tag with the
// kernel's extensions (ld [0xfffff030], ld [0xfffff02c]), which the x/net VM
// does not run. It must validate all the same.
const vlan10 = `15
48 0 0 4294963248
21 4 0 1
40 0 0 12
21 2 0 33024
21 1 0 34984
21 0 8 37120
48 0 0 4294963248
21 0 2 1
48 0 0 4294963244
5 0 0 1
40 0 0 14
84 0 0 4095
21 0 1 10
6 0 0 262144
6 0 0 0
`

func TestParseTextAndBinaryRoundTrip(t *testing.T) {
	raw, err := ParseText(icmpOrARP)
	if err != nil {
		t.Fatal(err)
	}
	if len(raw) != 7 || raw[4] != (bpf.RawInstruction{Op: 21, Jt: 0, Jf: 1, K: 2054}) {
		t.Fatalf("%v", raw)
	}
	back, err := ParseBinary(Binary(raw))
	if err != nil || !Equal(back, raw) {
		t.Fatalf("binary round trip: %v %v", back, err)
	}
	again, err := ParseText(Text(raw))
	if err != nil || !Equal(again, raw) {
		t.Fatalf("text round trip: %v", err)
	}
	// UML's format is host-order sock_filter records: code 0x28 (ldh) first.
	if b := Binary(raw[:1]); string(b) != "\x28\x00\x00\x00\x0c\x00\x00\x00" {
		t.Fatalf("binary % x", b)
	}
}

func TestErrorsNameTheInstruction(t *testing.T) {
	tests := []struct{ text, err string }{
		{"", "empty program"},
		{"x\n6 0 0 0", "not an instruction count"},
		{"2\n6 0 0 0", "the count says 2 instructions, 1 follow"},
		{"1\n6 0 0", `instruction 0: "6 0 0" is not "code jt jf k"`},
		{"1\n70000 0 0 0", "instruction 0: \"70000\" is not a 16-bit number"},
		{"2\n21 5 0 1\n6 0 0 0", "instruction 0 (jeq #1,5): true branch jumps 5 past the end"},
		{"2\n5 0 0 7\n6 0 0 0", "instruction 0 (ja 7): jump jumps 7 past the end"},
		{"2\n52 0 0 0\n6 0 0 0", "instruction 0 (div #0): division by zero"},
		{"1\n40 0 0 12", "instruction 0 (ldh [12]): a program must end with a return"},
		{"2\n65535 0 0 0\n6 0 0 0", "instruction 0 (65535 0 0 0): not a classic BPF instruction"},
		{"2\n2 0 0 16\n6 0 0 0", "instruction 0 (2 0 0 16): not a classic BPF instruction"},
	}
	for _, tt := range tests {
		raw, err := ParseText(tt.text)
		if err == nil {
			_, err = New(raw)
		}
		if err == nil || !strings.Contains(err.Error(), tt.err) {
			t.Errorf("%q: %v, want %q", tt.text, err, tt.err)
		}
	}
	if _, err := ParseBinary(make([]byte, 12)); err == nil {
		t.Error("accepted 12 bytes")
	}
}

func TestKernelExtensionsValidate(t *testing.T) {
	raw, err := ParseText(vlan10)
	if err != nil {
		t.Fatal(err)
	}
	p, err := New(raw)
	if err != nil {
		t.Fatalf("tcpdump's vlan program: %v", err)
	}
	if _, err := p.Match(make([]byte, 60)); err == nil {
		t.Fatal("the VM ran a program with kernel extensions it does not implement")
	}
}

func TestLoadFile(t *testing.T) {
	d := t.TempDir()
	raw, _ := ParseText(icmpOrARP)
	os.WriteFile(filepath.Join(d, "f.bpf"), Binary(raw), 0o644)
	os.WriteFile(filepath.Join(d, "f.txt"), []byte(icmpOrARP), 0o644)
	for _, name := range []string{"f.bpf", "f.txt"} {
		p, err := LoadFile(filepath.Join(d, name))
		if err != nil || !Equal(p.Raw(), raw) {
			t.Fatalf("%s: %v", name, err)
		}
	}
	if _, err := LoadFile(filepath.Join(d, "missing.bpf")); err == nil {
		t.Fatal("loaded a missing file")
	}
	if _, err := LoadFile("/dev/zero"); err == nil || !strings.Contains(err.Error(), "longer than any program") {
		t.Fatalf("/dev/zero: %v", err)
	}
}

func TestBuildersInTheVM(t *testing.T) {
	a, b := frame.MAC{2, 0, 0, 0, 0, 1}, frame.MAC{2, 0, 0, 0, 0, 2}
	arp := mk(b, 0x0806, nil)
	ip := mk(b, 0x0800, nil)
	tagged := mk(b, 0x8100, []byte{0, 10, 0x08, 0x00})
	other := mk(b, 0x8100, []byte{0, 20, 0x08, 0x00})
	fromA := mk(a, 0x0800, nil)
	et, _ := EtherTypes(0x0806, 0x86dd)
	vl, _ := VLAN(10)
	nf, _ := NotFrom(a)
	for _, c := range []struct {
		p    *Program
		f    []byte
		want bool
	}{{et, arp, true}, {et, ip, false}, {vl, tagged, true}, {vl, other, false}, {vl, ip, false},
		{nf, fromA, false}, {nf, ip, true}} {
		got, err := c.p.Match(c.f)
		if err != nil || got != c.want {
			t.Errorf("% x: %v %v, want %v", c.f[:16], got, err, c.want)
		}
		inv, err := New(c.p.Inverted())
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := inv.Match(c.f); got == c.want {
			t.Errorf("inverted program agrees with the original on % x", c.f[:16])
		}
	}
}

func mk(src frame.MAC, etype uint16, after []byte) []byte {
	f := make([]byte, 60)
	copy(f, frame.Broadcast[:])
	copy(f[6:], src[:])
	f[12], f[13] = byte(etype>>8), byte(etype)
	copy(f[14:], after)
	return f
}

// FuzzParseText: no text makes the parser or the validator panic; what
// parses prints back to the same instructions.
func FuzzParseText(f *testing.F) {
	f.Add(icmpOrARP)
	f.Add("1\n6 0 0 262144\n")
	f.Add("3\n21 1 0 5\n6 0 0 0\n22 0 0 0\n")
	f.Fuzz(func(t *testing.T, s string) {
		raw, err := ParseText(s)
		if err != nil {
			return
		}
		if back, err := ParseText(Text(raw)); err != nil || !Equal(back, raw) {
			t.Fatalf("round trip: %v", err)
		}
		checkProgram(t, raw, []byte(s))
	})
}

// FuzzParseBinary: the same for UML's binary format, and programs that
// validate behave: the VM never panics, and the inverted program keeps
// exactly what the original drops.
func FuzzParseBinary(f *testing.F) {
	raw, _ := ParseText(icmpOrARP)
	f.Add(Binary(raw), mk(frame.MAC{2}, 0x0806, nil))
	p, _ := VLAN(10)
	f.Add(Binary(p.Raw()), mk(frame.MAC{2}, 0x8100, []byte{0, 10}))
	f.Fuzz(func(t *testing.T, b, frameBytes []byte) {
		raw, err := ParseBinary(b)
		if err != nil {
			return
		}
		if !Equal(raw, mustParseBinary(t, Binary(raw))) {
			t.Fatal("binary round trip")
		}
		checkProgram(t, raw, frameBytes)
	})
}

func mustParseBinary(t *testing.T, b []byte) []bpf.RawInstruction {
	raw, err := ParseBinary(b)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func checkProgram(t *testing.T, raw []bpf.RawInstruction, f []byte) {
	p, err := New(raw)
	if err != nil {
		return
	}
	inv, err := New(p.Inverted())
	if err != nil {
		t.Fatalf("inverted program of a valid one does not validate: %v", err)
	}
	keep, err := p.Match(f)
	if err != nil || !p.cannotAbort(len(f)) {
		return // extensions the VM lacks, or instructions that may stop the program early
	}
	if got, err := inv.Match(f); err != nil || got == keep {
		t.Fatalf("inverted verdict %v (%v), original %v", got, err, keep)
	}
}
