package lab

import (
	"bufio"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"strings"
	"testing"

	"github.com/umlswitch/umlswitch/configs"
)

// fuzzLab is the lab.conf every lab.ext of FuzzParseExt is read against.
const fuzzLab = "pc1[0]=A\npc2[0]=B\nr1[1]=C.d\nr1[2]=e_f-9\n"

// FuzzParseExt reads arbitrary lab.ext text (a file from the lab's
// directory, written by whoever made the lab). Accepted, every bridge
// comes from its own line, names a domain of the lab and an interface name
// the switch's ports take, once each; the bridges render back to a file
// that parses to the same; and the lab plans, unless two VLANs are asked
// for one domain. Refused, the error names a line of the input, and the
// bridges of the lines before it are all that was added.
func FuzzParseExt(f *testing.F) {
	f.Add("# host links\nA eth1\n\nB  veth0 \n")
	f.Add("A eth0.100\nA eth1\nB nosuch.7\n")
	f.Add("A eth1\nA eth1.200\n")
	f.Add("C.d lab-tap\ne_f-9\tx\n")
	f.Add("Z eth1\n")
	f.Add("A a/b\nB a,b\n")
	f.Add("A \xff\xfe\n")
	f.Fuzz(func(t *testing.T, ext string) {
		defer func(old func(string) bool) { interfaceExists = old }(interfaceExists)
		interfaceExists = func(name string) bool { // some do, some do not: both plans
			h := fnv.New32a()
			h.Write([]byte(name))
			return h.Sum32()%2 == 0
		}
		l, err := Parse(strings.NewReader(fuzzLab))
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(ext, "\n")
		err = l.ParseExt(strings.NewReader(ext))
		if err != nil {
			var n int
			if _, serr := fmt.Sscanf(err.Error(), "line %d:", &n); serr != nil {
				if errors.Is(err, bufio.ErrTooLong) { // a line past the scanner's buffer
					return
				}
				t.Fatalf("%q: error names no line: %v", ext, err)
			}
			if n < 1 || n > len(lines) {
				t.Fatalf("%q: error names line %d of %d: %v", ext, n, len(lines), err)
			}
			for _, b := range l.Bridges {
				if b.Line >= n {
					t.Fatalf("%q: bridge of line %d kept after an error on line %d", ext, b.Line, n)
				}
			}
			return
		}
		domains := l.Domains()
		var rendered strings.Builder
		for i, b := range l.Bridges {
			if b.Line < 1 || b.Line > len(lines) || (i > 0 && b.Line <= l.Bridges[i-1].Line) {
				t.Fatalf("%q: bridge %d on line %d", ext, i, b.Line)
			}
			if f := strings.Fields(lines[b.Line-1]); len(f) != 2 || f[0] != b.Domain || f[1] != b.Ifname {
				t.Fatalf("%q: bridge %+v is not what its line says", ext, b)
			}
			if !slices.Contains(domains, b.Domain) {
				t.Fatalf("%q: bridge to unknown domain %q", ext, b.Domain)
			}
			if configs.CheckIfname(b.Ifname) != nil || strings.ContainsAny(b.Ifname, "/,= \t\n") {
				t.Fatalf("%q: interface name %q accepted", ext, b.Ifname)
			}
			for _, c := range l.Bridges[:i] {
				if c.Ifname == b.Ifname {
					t.Fatalf("%q: %s bridged twice", ext, b.Ifname)
				}
			}
			fmt.Fprintf(&rendered, "%s %s\n", b.Domain, b.Ifname)
		}
		back, _ := Parse(strings.NewReader(fuzzLab))
		if err := back.ParseExt(strings.NewReader(rendered.String())); err != nil {
			t.Fatalf("%q rendered as %q: %v", ext, rendered.String(), err)
		}
		if len(back.Bridges) != len(l.Bridges) {
			t.Fatalf("%q rendered as %q: %d bridges, want %d", ext, rendered.String(), len(back.Bridges), len(l.Bridges))
		}
		for i, b := range back.Bridges {
			if b.Domain != l.Bridges[i].Domain || b.Ifname != l.Bridges[i].Ifname || b.Line != i+1 {
				t.Fatalf("%q rendered as %q: bridge %d is %+v", ext, rendered.String(), i, b)
			}
		}
		plan, err := l.Plan("/run/lab", false)
		if err != nil {
			if strings.Contains(err.Error(), "a domain is one VLAN") {
				return
			}
			t.Fatalf("%q: accepted but does not plan: %v", ext, err)
		}
		ports := 0
		for _, sw := range plan.Switches {
			ports += len(sw.Ports)
		}
		if want := 2*len(domains) + len(l.Bridges); ports != want {
			t.Fatalf("%q: %d ports planned, want %d", ext, ports, want)
		}
	})
}
