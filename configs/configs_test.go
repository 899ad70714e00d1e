package configs

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }

func TestParsePort(t *testing.T) {
	tests := []struct {
		spec string
		want Port
		err  string // substrings, all of which the error must contain
	}{
		{spec: "transport=daemon,path=/tmp/a.ctl", want: Port{Transport: "daemon", Path: "/tmp/a.ctl"}},
		{spec: " transport = daemon , path=/tmp/d/ , mode=0660, depth=0x20, mtu=9000 ",
			want: Port{Transport: "daemon", Path: "/tmp/d/", Mode: 0o660, Depth: 32, MTU: 9000}},
		{spec: "transport=daemon,path=/tmp/a,compat_v0=1,data=/tmp/uml.data",
			want: Port{Transport: "daemon", Path: "/tmp/a", CompatV0: true, DataPath: "/tmp/uml.data"}},
		{spec: "transport=tap,ifname=tap0", want: Port{Transport: "tap", Ifname: "tap0"}},
		{spec: "ifname=tap0,transport=tap", want: Port{Transport: "tap", Ifname: "tap0"}},
		{spec: "transport=tap,ifname=tap0,foo=1", err: `unknown key "foo" for transport tap (accepted: create, depth, ifname, mtu, name, owner, persist, queues, switch, up, vnet_hdr)`},
		{spec: "transport=gree,src=1", err: `unknown transport "gree" (known transports: bess, daemon, gre, l2tpv3, raw, tap, vxlan)`},
		{spec: "transport=tap,ifname=lab0,create=1,persist=1,owner=1000,up=1,mtu=9000,queues=4",
			want: Port{Transport: "tap", Ifname: "lab0", Create: true, Persist: true, HasOwner: true, Owner: 1000, Up: true, MTU: 9000, Queues: 4}},
		{spec: "transport=tap,ifname=lab0,persist=1", err: "add create=1"},
		{spec: "transport=tap,ifname=lab0,create=1,owner=-1", err: `no user "-1"`},
		{spec: "transport=daemon,path=/a,owner=nosuchuser-x", err: `no user "nosuchuser-x"`},
		{spec: "transport=bess,path=/a,group=nosuchgroup-x", err: `no group "nosuchgroup-x"`},
		{spec: "transport=daemon,path=/a,owner=root,group=root,mode=0660", want: Port{Transport: "daemon", Path: "/a", HasOwner: true, HasGroup: true, Mode: 0o660}},
		{spec: "transport=bess,path=/a,owner=1000,group=100", want: Port{Transport: "bess", Path: "/a", HasOwner: true, Owner: 1000, HasGroup: true, Group: 100}},
		{spec: "transport=tap,ifname=lab0,queues=65", err: "out of range 1..64"},
		{spec: "transport=raw,ifname=veth0,promisc=1,bpffile=/etc/arp.bpf",
			want: Port{Transport: "raw", Ifname: "veth0", Promisc: true, BPFFile: "/etc/arp.bpf"}},
		{spec: "transport=raw,ifname=veth0,bpf=2\n 40 0 0 12 \n6 0 0 1\n",
			want: Port{Transport: "raw", Ifname: "veth0", BPF: "2;40 0 0 12;6 0 0 1"}},
		{spec: "transport=raw,ifname=veth0,bpf=1;6 0 0 65535", want: Port{Transport: "raw", Ifname: "veth0", BPF: "1;6 0 0 65535"}},
		{spec: "transport=raw,ifname=veth0,bpf=2;21 5 0 2048;6 0 0 1", err: "instruction 0"},
		{spec: "transport=raw,ifname=veth0,bpf=1;6 0 0 1,bpffile=/x", err: "bpf= or bpffile=, not both"},
		{spec: "transport=raw,bpf=1;6 0 0 1", err: "transport raw needs ifname="},
		{spec: "transport=vxlan,src=10.0.0.1,dst=10.0.0.2,vni=42",
			want: Port{Transport: "vxlan", Src: addr("10.0.0.1"), Dst: addr("10.0.0.2"), VNI: 42}},
		{spec: "transport=vxlan,src=fd00::1,dst=fd00::2,v6=1,vni=0xffffff,dstport=8472",
			want: Port{Transport: "vxlan", Src: addr("fd00::1"), Dst: addr("fd00::2"), V6: true, VNI: 0xffffff, DstPort: 8472}},
		{spec: "transport=vxlan,src=10.0.0.1,dst=10.0.0.2,vni=16777216", err: "out of range 0..16777215"},
		{spec: "transport=vxlan,src=10.0.0.1,dst=10.0.0.2", err: "transport vxlan needs vni="},
		{spec: "transport=bess,path=/tmp/sw.bess,depth=32", want: Port{Transport: "bess", Path: "/tmp/sw.bess", Depth: 32}},
		{spec: "transport=bess,path=/" + strings.Repeat("x", 107), err: "a unix socket path holds 107"},
		{spec: "transport=gre,src=127.0.0.2,dst=127.0.0.3",
			want: Port{Transport: "gre", Src: addr("127.0.0.2"), Dst: addr("127.0.0.3")}},
		{spec: "transport=gre,src=127.0.0.2,dst=127.0.0.3,rx_key=7,tx_key=-2,sequence=1,pin_sequence=1",
			want: Port{Transport: "gre", Src: addr("127.0.0.2"), Dst: addr("127.0.0.3"), HasKey: true, RxKey: 7, TxKey: 0xfffffffe,
				Sequence: true, PinSeq: true}},
		{spec: "transport=gre,src=::1,dst=fd00::3,v6=1,rx_key=0xffffffff,tx_key=1",
			want: Port{Transport: "gre", Src: addr("::1"), Dst: addr("fd00::3"), V6: true, HasKey: true, RxKey: 0xffffffff, TxKey: 1}},
		{spec: "transport=gre,src=127.0.0.2,dst=127.0.0.3,rx_key=7", err: "rx_key and tx_key go together"},
		{spec: "transport=gre,src=127.0.0.2,dst=127.0.0.3,pin_sequence=1", err: "pin_sequence=1 needs sequence=1"},
		{spec: "transport=gre,src=::1,dst=::2", err: "an IPv6 address needs v6=1"},
		{spec: "transport=gre,src=127.0.0.2,dst=127.0.0.3,v6=1", err: "v6=1 needs IPv6 addresses"},
		{spec: "transport=gre,src=127.0.0.2,dst=gateway", err: `"gateway" is not an IP address`},
		{spec: "transport=gre,src=127.0.0.2,dst=127.0.0.3,rx_key=0x100000000,tx_key=1", err: "not a 32-bit number"},
		{spec: "transport=gre,src=127.0.0.2,dst=127.0.0.3,session=1", err: `unknown key "session" for transport gre (accepted: depth, dst, mtu, name, pin_sequence, rx_key, sequence, src, switch, tx_key, v6)`},
		{spec: "transport=l2tpv3,udp=1,src=127.0.0.2,dst=127.0.0.4,srcport=17001,dstport=17002,rx_session=11,tx_session=12",
			want: Port{Transport: "l2tpv3", UDP: true, Src: addr("127.0.0.2"), Dst: addr("127.0.0.4"), SrcPort: 17001, DstPort: 17002,
				RxSession: 11, TxSession: 12}},
		{spec: "transport=l2tpv3,src=127.0.0.2,dst=127.0.0.4,rx_session=-1,tx_session=0xffff,rx_cookie=0x11223344,tx_cookie=-1,counter=1,pin_counter=1",
			want: Port{Transport: "l2tpv3", Src: addr("127.0.0.2"), Dst: addr("127.0.0.4"), RxSession: 0xffffffff, TxSession: 0xffff,
				HasCookie: true, RxCookie: 0x11223344, TxCookie: 0xffffffff, Counter: true, PinCounter: true}},
		{spec: "transport=l2tpv3,src=127.0.0.2,dst=127.0.0.4,rx_session=1,tx_session=2,rx_cookie=0x1122334455667788,tx_cookie=8,cookie64=1",
			want: Port{Transport: "l2tpv3", Src: addr("127.0.0.2"), Dst: addr("127.0.0.4"), RxSession: 1, TxSession: 2,
				HasCookie: true, Cookie64: true, RxCookie: 0x1122334455667788, TxCookie: 8}},
		{spec: "transport=l2tpv3,udp=1,src=127.0.0.2,dst=127.0.0.4,rx_session=1,tx_session=2", err: "udp=1 needs srcport= and dstport="},
		{spec: "transport=l2tpv3,src=127.0.0.2,dst=127.0.0.4,srcport=1,rx_session=1,tx_session=2", err: "srcport= and dstport= need udp=1"},
		{spec: "transport=l2tpv3,src=127.0.0.2,dst=127.0.0.4,rx_session=0,tx_session=2", err: "session 0 is reserved"},
		{spec: "transport=l2tpv3,src=127.0.0.2,dst=127.0.0.4,tx_session=2", err: "transport l2tpv3 needs rx_session="},
		{spec: "transport=l2tpv3,src=127.0.0.2,dst=127.0.0.4,rx_session=1,tx_session=2,tx_cookie=1", err: "rx_cookie and tx_cookie go together"},
		{spec: "transport=l2tpv3,src=127.0.0.2,dst=127.0.0.4,rx_session=1,tx_session=2,rx_cookie=0x123456789,tx_cookie=1", err: "needs cookie64=1"},
		{spec: "transport=l2tpv3,src=127.0.0.2,dst=127.0.0.4,rx_session=1,tx_session=2,cookie64=1", err: "cookie64=1 needs rx_cookie"},
		{spec: "transport=l2tpv3,src=127.0.0.2,dst=127.0.0.4,rx_session=1,tx_session=2,pin_counter=1", err: "pin_counter=1 needs counter=1"},
		{spec: "path=/tmp/a", err: "no transport="},
		{spec: "transport=tap", err: "transport tap needs ifname="},
		{spec: "transport=tap,ifname", err: `"ifname" is not key=value`},
		{spec: "transport=tap,ifname=", err: `key "ifname" has an empty value`},
		{spec: "transport=tap,ifname=a,ifname=b", err: `key "ifname" given twice`},
		{spec: "transport=tap,transport=daemon,ifname=a", err: `"transport" given twice`},
		{spec: "transport=tap,ifname=a,depth=0", err: "out of range 1..1024"},
		{spec: "transport=tap,ifname=a,depth=lots", err: `"lots" is not a number`},
		{spec: "transport=tap,ifname=a,mtu=70000", err: "out of range 68..65517"},
		{spec: "transport=tap,ifname=averyveryverylongname", err: "longer than 15 bytes"},
		{spec: "transport=daemon,path=/a,mode=999", err: "not an octal permission"},
		{spec: "transport=daemon,path=/a,compat_v0=maybe", err: "not a boolean"},
		{spec: "", err: "no transport="},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			got, err := ParsePort(tt.spec)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
			back, err := ParsePort(got.String())
			if err != nil || back != got {
				t.Fatalf("String() = %q does not parse back: %+v, %v", got.String(), back, err)
			}
		})
	}
}

func TestParseFile(t *testing.T) {
	f, err := Parse([]byte(`
hub: true
mac_age: 90s
mac_table_size: 100
tx_hold: 20ms
mtu: 9000
depth: 32
log_level: debug
ports:
  - transport: daemon
    path: /tmp/sw.ctl
    mode: "0666"
  - {transport: tap, ifname: tap0, depth: 16}
  - {transport: bess, path: /tmp/sw.bess}
  - {transport: gre, src: 127.0.0.2, dst: 127.0.0.3, rx_key: -2, tx_key: 0x7, sequence: 1}
  - transport: l2tpv3
    udp: 1
    src: 127.0.0.2
    dst: 127.0.0.4
    srcport: 17001
    dstport: 17002
    rx_session: 11
    tx_session: 12
    rx_cookie: 0x1122334455667788
    tx_cookie: 9
    cookie64: true
`))
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Switches) != 1 {
		t.Fatalf("switches %+v", f.Switches)
	}
	sw := f.Switches[0]
	if sw.Name != "default" || !sw.Hub || sw.MACAge != 90*time.Second || sw.MACTableSize != 100 || f.TxHold != 20*time.Millisecond ||
		f.MTU != 9000 || f.Depth != 32 || f.LogLevel != "debug" || len(sw.Ports) != 5 {
		t.Fatalf("got %+v", f)
	}
	ports := sw.Ports
	if ports[0] != (Port{Transport: "daemon", Path: "/tmp/sw.ctl", Mode: 0o666}) ||
		ports[1] != (Port{Transport: "tap", Ifname: "tap0", Depth: 16}) ||
		ports[2] != (Port{Transport: "bess", Path: "/tmp/sw.bess"}) ||
		ports[3] != (Port{Transport: "gre", Src: addr("127.0.0.2"), Dst: addr("127.0.0.3"), HasKey: true, RxKey: 0xfffffffe, TxKey: 7, Sequence: true}) ||
		ports[4] != (Port{Transport: "l2tpv3", UDP: true, Src: addr("127.0.0.2"), Dst: addr("127.0.0.4"), SrcPort: 17001, DstPort: 17002,
			RxSession: 11, TxSession: 12, HasCookie: true, Cookie64: true, RxCookie: 0x1122334455667788, TxCookie: 9}) {
		t.Fatalf("ports %+v", ports)
	}
}

func TestParseFileErrors(t *testing.T) {
	tests := []struct{ doc, err string }{
		{"hubb: true", "field hubb not found"},
		{"mac_age: soon", `mac_age: "soon" is not a positive duration`},
		{"tx_hold: -1s", "tx_hold"},
		{"mtu: 10", "mtu: 10 is out of range"},
		{"depth: 5000", "depth: 5000 is out of range"},
		{"log_level: loud", `log_level: "loud"`},
		{"hub: maybe", `hub: "maybe" is not a boolean`},
		{"switches: [{name: a}, {name: a}]", `switch "a" given twice`},
		{"switches: [{hub: true}]", "switches[0]: no name"},
		{"switches: [{name: 'a b'}]", `name "a b"`},
		{"hub: true\nswitches: [{name: a}]", "move them into an entry of switches"},
		{"name: x", "the top level is the default switch"},
		{"switches: [{name: a, ports: [{transport: tap, ifname: t, switch: b}]}]", "switch=b inside switch a"},
		{"ports: [{transport: tap}]", "ports[0]: transport tap needs ifname="},
		{"ports: [{transport: tap, ifname: t0, bogus: 1}]", `ports[0]: unknown key "bogus" for transport tap (accepted: create, depth, ifname, mtu, name, owner, persist, queues, switch, up, vnet_hdr)`},
		{"ports: [{transport: tap, ifname: [a, b]}]", "must be a single value"},
		{"ports: 3", "cannot unmarshal"},
		{"\t- broken", "config:"},
	}
	for _, tt := range tests {
		t.Run(tt.doc, func(t *testing.T) {
			_, err := Parse([]byte(tt.doc))
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.err)
			}
		})
	}
	if f, err := Parse(nil); err != nil || len(f.Switches) != 1 || len(f.Switches[0].Ports) != 0 {
		t.Fatalf("empty document: %+v, %v", f, err)
	}
}

func TestDefault(t *testing.T) {
	c := Default()
	f := c.Switches[0]
	if len(f.Ports) != 1 || f.Ports[0].Transport != "daemon" || f.Ports[0].Path != "/var/run/uml-utilities/uml_switch.ctl" {
		t.Fatalf("default ports %+v", f.Ports)
	}
	if f.MACAge != 300*time.Second || f.MACTableSize != 8192 || c.Depth != 64 || c.MTU != 1500 {
		t.Fatalf("default %+v", f)
	}
}

// FuzzParsePort: any spec parses or fails cleanly, and what parses renders
// back to a spec that parses to the same port.
func FuzzParsePort(f *testing.F) {
	for _, s := range []string{"transport=daemon,path=/tmp/a.ctl", "transport=tap,ifname=tap0,depth=0x10,mtu=9000",
		"transport=gre,src=127.0.0.2,dst=127.0.0.3,rx_key=7,tx_key=-2,sequence=1",
		"transport=l2tpv3,udp=1,src=::1,dst=::2,v6=1,srcport=1,dstport=2,rx_session=1,tx_session=2,rx_cookie=1,tx_cookie=2,cookie64=1,counter=1",
		"transport=bess,path=/tmp/b", "transport=raw,ifname=v0,bpf=1;6 0 0 1,promisc=1",
		"transport=tap,ifname=t,create=1,persist=1,owner=0,up=1,queues=2", "transport=vxlan,src=::1,dst=::2,v6=1,vni=7,dstport=4790",
		"transport=daemon,path=/x/,mode=0777,compat_v0=yes,data=/tmp/d", ",,=,transport=", "transport=tap,ifname=a,ifname=b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		p, err := ParsePort(spec)
		if err != nil {
			return
		}
		back, err := ParsePort(p.String())
		if err != nil {
			t.Fatalf("%q parsed to %+v whose String %q fails: %v", spec, p, p.String(), err)
		}
		if back != p {
			t.Fatalf("round trip of %q: %+v != %+v", spec, back, p)
		}
	})
}

// FuzzParseConfig: no document makes Parse panic, and every port it accepts
// is valid as a -port spec too.
func FuzzParseConfig(f *testing.F) {
	f.Add(DefaultYAML())
	f.Add([]byte("hub: true\nports:\n  - {transport: tap, ifname: t0}\n"))
	f.Add([]byte("mac_age: 1s\ntx_hold: 1ms\nports: [{transport: daemon, path: /a, mode: 777}]"))
	f.Add([]byte("switches:\n  - name: a\n    hub: 1\n    ports: [{transport: daemon, path: /a, name: x}]\n  - {name: b, mac_age: 5s}\n"))
	f.Fuzz(func(t *testing.T, doc []byte) {
		c, err := Parse(doc)
		if err != nil {
			return
		}
		for _, sw := range c.Switches {
			for _, p := range sw.Ports {
				if _, err := ParsePort(p.String()); err != nil {
					t.Fatalf("config port %+v is not a valid spec: %v", p, err)
				}
			}
		}
	})
}
