package nat

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/umlswitch/umlswitch/configs"
)

func TestParseNet(t *testing.T) {
	for in, want := range map[string]string{
		"10.0.2.0/24": "10.0.2.0/24", "10.0.2.77/24": "10.0.2.0/24", "192.168.0.0/16": "192.168.0.0/16", "10.0.0.0/8": "10.0.0.0/8",
		"172.16.5.0/23": "172.16.4.0/23",
	} {
		p, err := parseNet(in)
		if err != nil || p.String() != want {
			t.Errorf("parseNet(%q) = %v, %v; want %s", in, p, err, want)
		}
	}
	for in, why := range map[string]string{
		"10.0.2.0/25": "/8 to /24", "10.0.2.0/32": "/8 to /24", "10.0.0.0/7": "/8 to /24", "fd00::/64": "not IPv4",
		"::ffff:10.0.2.0/120": "not IPv4", "10.0.2.0": "not a network", "bogus": "not a network", "127.0.0.0/8": "keeps for itself",
		"169.254.0.0/16": "keeps for itself", "224.0.0.0/8": "keeps for itself", "0.0.0.0/8": "keeps for itself",
		"250.0.0.0/8": "keeps for itself",
	} {
		if _, err := parseNet(in); err == nil || !strings.Contains(err.Error(), why) {
			t.Errorf("parseNet(%q): %v, want an error saying %q", in, err, why)
		}
	}
}

func TestAddresses(t *testing.T) {
	a := addressesOf(netip.MustParsePrefix("10.0.2.0/24"))
	if a.gateway.String() != "10.0.2.2" || a.dns.String() != "10.0.2.3" || a.first.String() != "10.0.2.15" || a.broadcast.String() != "10.0.2.255" {
		t.Errorf("10.0.2.0/24: %+v", a)
	}
	a = addressesOf(netip.MustParsePrefix("172.20.0.0/16"))
	if a.gateway.String() != "172.20.0.2" || a.first.String() != "172.20.0.15" || a.broadcast.String() != "172.20.255.255" {
		t.Errorf("172.20.0.0/16: %+v", a)
	}
	if m := RouterMAC(netip.MustParseAddr("10.0.2.2")).String(); m != "52:55:0a:00:02:02" {
		t.Errorf("router MAC %s", m)
	}
}

func TestParseForward(t *testing.T) {
	for in, want := range map[string]string{
		"tcp:127.0.0.1:2222-10.0.2.15:22": "tcp:127.0.0.1:2222-10.0.2.15:22",
		"::2222-:22":                      "tcp:127.0.0.1:2222-:22", // QEMU's empty protocol and addresses
		"udp::5353-:53":                   "udp:127.0.0.1:5353-:53",
		"tcp:0.0.0.0:8080-10.0.2.20:80":   "tcp:0.0.0.0:8080-10.0.2.20:80",
		"127.0.0.2:80-:8080":              "tcp:127.0.0.2:80-:8080", // without the protocol's field
		":0-:22":                          "tcp:127.0.0.1:0-:22",    // any free port
		"tcp::022-:0022":                  "tcp:127.0.0.1:22-:22",
	} {
		f, err := ParseForward(in)
		if err != nil || f.String() != want {
			t.Errorf("ParseForward(%q) = %s, %v; want %s", in, f, err, want)
		}
	}
	for in, why := range map[string]string{
		"tcp:127.0.0.1:2222":         "no '-'",
		"sctp::22-:22":               `protocol "sctp"`,
		"tcp::-:22":                  "host port: missing",
		"tcp::70000-:22":             "not a port",
		"tcp::22-:0":                 "guest port",
		"tcp::22-:":                  "guest port: missing",
		"tcp::22-10.0.2.15":          "the guest's side",
		"tcp::22-a:b:c":              "the guest's side",
		"tcp:::1:22-:22":             "the host's side",
		"tcp:[::1]:22-:22":           "the host's side",
		"tcp:localhost:22-:22":       "not an IPv4 address",
		"tcp::22-fd00::1:22":         "the guest's side",
		"tcp:::ffff:127.0.0.1:2-:22": "the host's side",
		"tcp::22-10.0.2.x:22":        "not an IPv4 address",
		"tcp::-1-:22":                "host port: missing",
	} {
		if _, err := ParseForward(in); err == nil || !strings.Contains(err.Error(), why) {
			t.Errorf("ParseForward(%q): %v, want an error saying %q", in, err, why)
		}
	}
	fs, err := ParseForwards(" tcp::2222-:22 ; udp::5353-:53;")
	if err != nil || FormatForwards(fs) != "tcp:127.0.0.1:2222-:22;udp:127.0.0.1:5353-:53" {
		t.Errorf("two forwards: %v, %v", fs, err)
	}
	if _, err := ParseForwards(" ; "); err == nil {
		t.Error("no forward at all parsed")
	}
	if _, err := ParseForwards(strings.Repeat("::0-:1;", MaxForwards+1)); err == nil {
		t.Errorf("more than %d forwards parsed", MaxForwards)
	}
}

func TestSpec(t *testing.T) {
	p, err := configs.ParsePort("transport=nat")
	if err != nil {
		t.Fatal(err)
	}
	o := p.Options.(*Options)
	if o.net() != DefaultNet || o.maxConns() != DefaultMaxConns || o.NoDHCP || o.NoDNS || o.Restrict || len(o.Forwards) != 0 {
		t.Errorf("defaults: %+v", o)
	}
	if p.String() != "transport=nat" {
		t.Errorf("defaults render as %s", p)
	}
	spec := "transport=nat,net=192.168.76.0/24,dhcp=0,dns=off,restrict=yes,hostfwd=tcp::2222-192.168.76.20:22;udp:0.0.0.0:5353-:53," +
		"mac=52:54:00:00:00:01,max_conns=10"
	p, err = configs.ParsePort(spec)
	if err != nil {
		t.Fatal(err)
	}
	want := "transport=nat,net=192.168.76.0/24,dhcp=0,dns=0,restrict=1,hostfwd=tcp:127.0.0.1:2222-192.168.76.20:22;udp:0.0.0.0:5353-:53," +
		"mac=52:54:00:00:00:01,max_conns=10"
	if p.String() != want {
		t.Errorf("%s\nrenders as %s\nwant       %s", spec, p, want)
	}
	if why := configs.Privileged(p); why != "" {
		t.Errorf("ports above 1024 privileged: %s", why)
	}
	p, err = configs.ParsePort("transport=nat,hostfwd=tcp::2222-:22;udp::53-:53")
	if err != nil {
		t.Fatal(err)
	}
	if why := configs.Privileged(p); !strings.Contains(why, "udp port 53") {
		t.Errorf("a forward of port 53: privileged says %q", why)
	}
	for spec, why := range map[string]string{
		"transport=nat,net=10.0.2.0/25":                          "/8 to /24",
		"transport=nat,hostfwd=tcp::22":                          "no '-'",
		"transport=nat,hostfwd=tcp::2222-10.0.3.15:22":           "not a guest's address",
		"transport=nat,hostfwd=tcp::2222-10.0.2.2:22":            "not a guest's address",
		"transport=nat,hostfwd=tcp::2222-10.0.2.255:22":          "not a guest's address",
		"transport=nat,hostfwd=tcp::2222-:22;tcp::2222-:23":      "forwarded twice",
		"transport=nat,mac=ff:ff:ff:ff:ff:ff":                    "not a unicast",
		"transport=nat,mac=01:00:5e:00:00:01":                    "not a unicast",
		"transport=nat,mac=zz":                                   "not an Ethernet address",
		"transport=nat,max_conns=0":                              "max_conns",
		"transport=nat,dhcp=0,dns=0,restrict=1":                  "nothing to do",
		"transport=nat,net=10.0.2.0/24,hostfwd=::1-:1,frob=1":    "unknown key",
		"transport=nat,hostfwd=" + strings.Repeat(";::0-:1", 65): "forwards",
	} {
		if _, err := configs.ParsePort(spec); err == nil || !strings.Contains(err.Error(), why) {
			t.Errorf("%s: %v, want an error saying %q", spec, err, why)
		}
	}
	// Two forwards of port 0 are two free ports, not one twice.
	if _, err := configs.ParsePort("transport=nat,hostfwd=::0-:22;::0-:23"); err != nil {
		t.Error(err)
	}
}

// FuzzParseForwards: no input makes the parser panic, and what parses
// renders back to a value that parses to the same forwards.
func FuzzParseForwards(f *testing.F) {
	for _, s := range []string{"tcp:127.0.0.1:2222-10.0.2.15:22", "::2222-:22;udp::5353-:53", "1.2.3.4:5-6.7.8.9:10",
		"udp:0.0.0.0:0-:65535", ";;", "tcp::-:", "-", "a:b:c-d:e"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		fs, err := ParseForwards(v)
		if err != nil {
			return
		}
		s := FormatForwards(fs)
		back, err := ParseForwards(s)
		if err != nil {
			t.Fatalf("%q parsed to %s, which fails: %v", v, s, err)
		}
		if FormatForwards(back) != s || len(back) != len(fs) {
			t.Fatalf("round trip of %q: %s != %s", v, FormatForwards(back), s)
		}
		for i := range fs {
			if fs[i] != back[i] {
				t.Fatalf("round trip of %q: %+v != %+v", v, back[i], fs[i])
			}
		}
	})
}

// FuzzNATSpec: any nat spec parses or fails cleanly, and what parses
// renders back to a spec that parses to the same port (configs'
// FuzzParsePort does so for every kind, without nat's seeds).
func FuzzNATSpec(f *testing.F) {
	for _, s := range []string{"net=10.0.2.0/24", "net=172.16.0.0/12,dhcp=0", "dns=0,restrict=1,hostfwd=::1-:1",
		"hostfwd=tcp::2222-:22;udp:0.0.0.0:5353-10.0.2.20:53", "mac=52:55:0a:00:02:02,max_conns=1", "net=10.0.2.9/24,hostfwd=::0-10.0.2.9:1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, keys string) {
		p, err := configs.ParsePort("transport=nat," + keys)
		if err != nil {
			return
		}
		back, err := configs.ParsePort(p.String())
		if err != nil {
			t.Fatalf("%q parsed to %s, which fails: %v", keys, p, err)
		}
		if back.String() != p.String() {
			t.Fatalf("round trip of %q: %s != %s", keys, back, p)
		}
		_ = configs.Privileged(p)
	})
}
