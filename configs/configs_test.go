package configs_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/umlswitch/umlswitch/configs"
	_ "github.com/umlswitch/umlswitch/transports" // registers the kinds
	"github.com/umlswitch/umlswitch/transports/daemon"
	"github.com/umlswitch/umlswitch/transports/raw"
)

// Specs parse to ports that render as want (keys in their kind's order,
// numbers normalised), which parse back to the same; bad specs fail with
// errors that say why and what is accepted.
func TestParsePort(t *testing.T) {
	tests := []struct {
		spec string
		want string // String() of the port
		err  string // a substring of the error
	}{
		{spec: "transport=daemon,path=/tmp/a.ctl", want: "transport=daemon,path=/tmp/a.ctl"},
		{spec: " transport = daemon , path=/tmp/d/ , mode=0660, depth=0x20, mtu=9000 ",
			want: "transport=daemon,path=/tmp/d/,mode=0660,depth=32,mtu=9000"},
		{spec: "transport=daemon,path=/tmp/a,compat_v0=1,data=/tmp/uml.data,api=ro",
			want: "transport=daemon,path=/tmp/a,compat_v0=1,data=/tmp/uml.data,api=ro"},
		{spec: "transport=tap,ifname=tap0", want: "transport=tap,ifname=tap0"},
		{spec: "ifname=tap0,transport=tap,name=host,switch=red", want: "transport=tap,name=host,switch=red,ifname=tap0"},
		{spec: "transport=tap,ifname=tap0,foo=1", err: `unknown key "foo" for transport tap (accepted: create, depth, ifname, mtu, name, owner, persist, queues, switch, up, vnet_hdr; and on every port: broadcast, corrupt, delay, dup, flood, isolated, jitter, link, link_local, loss, loss_burst, mac_limit, native, qinq, queue, rate, reorder, seed, split_horizon, storm, trunk, vlan)`},
		{spec: "transport=gree,src=1", err: `unknown transport "gree" (known transports: bess, daemon, dgram, gre, l2tpv3, nat, raw, stream, tap, vxlan)`},
		{spec: "transport=tap,ifname=lab0,create=1,persist=1,owner=1000,up=1,mtu=9000,queues=4",
			want: "transport=tap,ifname=lab0,create=1,persist=1,owner=1000,up=1,queues=4,mtu=9000"},
		{spec: "transport=tap,ifname=lab0,create=0,up=no", want: "transport=tap,ifname=lab0"},
		{spec: "transport=tap,ifname=lab0,persist=1", err: "add create=1"},
		{spec: "transport=tap,ifname=lab0,owner=0", err: "add create=1"},
		{spec: "transport=tap,ifname=lab0,create=1,owner=-1", err: `no user "-1"`},
		{spec: "transport=daemon,path=/a,owner=nosuchuser-x", err: `no user "nosuchuser-x"`},
		{spec: "transport=bess,path=/a,group=nosuchgroup-x", err: `no group "nosuchgroup-x"`},
		{spec: "transport=daemon,path=/a,owner=root,group=root,mode=0660", want: "transport=daemon,path=/a,mode=0660,owner=0,group=0"},
		{spec: "transport=daemon,path=/a,api=rwx", err: `"rwx" is not rw, ro or off`},
		{spec: "transport=bess,path=/a,owner=1000,group=100", want: "transport=bess,path=/a,owner=1000,group=100"},
		{spec: "transport=tap,ifname=lab0,queues=65", err: "out of range 1..64"},
		{spec: "transport=raw,ifname=veth0,bpf=2\n 40 0 0 12 \n6 0 0 1\n,promisc=1", want: "transport=raw,ifname=veth0,bpf=2;40 0 0 12;6 0 0 1,promisc=1"},
		{spec: "transport=raw,ifname=veth0,bpf=1;6 0 0 65535", want: "transport=raw,ifname=veth0,bpf=1;6 0 0 65535"},
		{spec: "transport=raw,ifname=veth0,bpf=2;21 5 0 2048;6 0 0 1", err: "instruction 0"},
		{spec: "transport=raw,ifname=veth0,bpffile=/nonexistent/arp.bpf", err: `key "bpffile": bpf: open /nonexistent/arp.bpf`},
		{spec: "transport=raw,bpf=1;6 0 0 1", err: "transport raw needs ifname="},
		{spec: "transport=vxlan,src=10.0.0.1,dst=10.0.0.2,vni=42", want: "transport=vxlan,vni=42,src=10.0.0.1,dst=10.0.0.2"},
		{spec: "transport=vxlan,src=10.0.0.1,dst=10.0.0.2,vni=0", want: "transport=vxlan,vni=0,src=10.0.0.1,dst=10.0.0.2"},
		{spec: "transport=vxlan,src=fd00::1,dst=fd00::2,v6=1,vni=0xffffff,dstport=8472",
			want: "transport=vxlan,vni=16777215,src=fd00::1,dst=fd00::2,v6=1,dstport=8472"},
		{spec: "transport=vxlan,src=10.0.0.1,dst=10.0.0.2,vni=16777216", err: "out of range 0..16777215"},
		{spec: "transport=vxlan,src=10.0.0.1,dst=10.0.0.2", err: "transport vxlan needs vni="},
		{spec: "transport=vxlan,src=::ffff:10.0.0.1,dst=10.0.0.2,vni=1", want: "transport=vxlan,vni=1,src=10.0.0.1,dst=10.0.0.2"},
		{spec: "transport=bess,path=/tmp/sw.bess,depth=32", want: "transport=bess,path=/tmp/sw.bess,depth=32"},
		{spec: "transport=bess,path=/" + strings.Repeat("x", 107), err: "a unix socket path holds 107"},
		{spec: "transport=gre,src=127.0.0.2,dst=127.0.0.3", want: "transport=gre,src=127.0.0.2,dst=127.0.0.3"},
		{spec: "transport=gre,src=127.0.0.2,dst=127.0.0.3,rx_key=7,tx_key=-2,sequence=1,pin_sequence=1",
			want: "transport=gre,src=127.0.0.2,dst=127.0.0.3,rx_key=0x7,tx_key=0xfffffffe,sequence=1,pin_sequence=1"},
		{spec: "transport=gre,src=::1,dst=fd00::3,v6=1,rx_key=0xffffffff,tx_key=1",
			want: "transport=gre,src=::1,dst=fd00::3,v6=1,rx_key=0xffffffff,tx_key=0x1"},
		{spec: "transport=gre,src=127.0.0.2,dst=127.0.0.3,rx_key=0,tx_key=0", want: "transport=gre,src=127.0.0.2,dst=127.0.0.3,rx_key=0x0,tx_key=0x0"},
		{spec: "transport=gre,src=127.0.0.2,dst=127.0.0.3,rx_key=7", err: "rx_key and tx_key go together"},
		{spec: "transport=gre,src=127.0.0.2,dst=127.0.0.3,pin_sequence=1", err: "pin_sequence=1 needs sequence=1"},
		{spec: "transport=gre,src=::1,dst=::2", err: "an IPv6 address needs v6=1"},
		{spec: "transport=gre,src=127.0.0.2,dst=127.0.0.3,v6=1", err: "v6=1 needs IPv6 addresses"},
		{spec: "transport=gre,src=127.0.0.2,dst=gateway", err: `"gateway" is not an IP address`},
		{spec: "transport=gre,src=127.0.0.2,dst=127.0.0.3,rx_key=0x100000000,tx_key=1", err: "not a 32-bit number"},
		{spec: "transport=gre,src=127.0.0.2,dst=127.0.0.3,session=1", err: `unknown key "session" for transport gre (accepted: depth, dst, mtu, name, pin_sequence, rx_key, sequence, src, switch, tx_key, v6; and on every port: broadcast, corrupt, delay, dup, flood, isolated, jitter, link, link_local, loss, loss_burst, mac_limit, native, qinq, queue, rate, reorder, seed, split_horizon, storm, trunk, vlan)`},
		{spec: "transport=l2tpv3,udp=1,src=127.0.0.2,dst=127.0.0.4,srcport=17001,dstport=17002,rx_session=11,tx_session=12",
			want: "transport=l2tpv3,src=127.0.0.2,dst=127.0.0.4,udp=1,srcport=17001,dstport=17002,rx_session=0xb,tx_session=0xc"},
		{spec: "transport=l2tpv3,src=127.0.0.2,dst=127.0.0.4,rx_session=-1,tx_session=0xffff,rx_cookie=0x11223344,tx_cookie=-1,counter=1,pin_counter=1",
			want: "transport=l2tpv3,src=127.0.0.2,dst=127.0.0.4,rx_session=0xffffffff,tx_session=0xffff,rx_cookie=0x11223344,tx_cookie=0xffffffff,counter=1,pin_counter=1"},
		{spec: "transport=l2tpv3,src=127.0.0.2,dst=127.0.0.4,rx_session=1,tx_session=2,rx_cookie=0x1122334455667788,tx_cookie=8,cookie64=1",
			want: "transport=l2tpv3,src=127.0.0.2,dst=127.0.0.4,rx_session=0x1,tx_session=0x2,rx_cookie=0x1122334455667788,tx_cookie=0x8,cookie64=1"},
		{spec: "transport=l2tpv3,src=127.0.0.2,dst=127.0.0.4,rx_session=1,tx_session=2,rx_cookie=0,tx_cookie=0",
			want: "transport=l2tpv3,src=127.0.0.2,dst=127.0.0.4,rx_session=0x1,tx_session=0x2,rx_cookie=0x0,tx_cookie=0x0"},
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
		{spec: "transport=tap,ifname=a,mtu=1500,mtu=1500", err: `key "mtu" given twice`},
		{spec: "transport=tap,transport=daemon,ifname=a", err: `"transport" given twice`},
		{spec: "transport=tap,ifname=a,depth=0", err: "out of range 1..1024"},
		{spec: "transport=tap,ifname=a,depth=lots", err: `"lots" is not a number`},
		{spec: "transport=tap,ifname=a,mtu=70000", err: "out of range 68..65513"},
		{spec: "transport=tap,ifname=a,name=a b", err: `key "name": name "a b"`},
		{spec: "transport=tap,ifname=averyveryverylongname", err: "longer than 15 bytes"},
		{spec: "transport=daemon,path=/a,mode=999", err: "not an octal permission"},
		{spec: "transport=daemon,path=/a,compat_v0=maybe", err: "not a boolean"},
		{spec: "", err: "no transport="},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			got, err := configs.ParsePort(tt.spec)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.String() != tt.want {
				t.Fatalf("got %s, want %s", got, tt.want)
			}
			back, err := configs.ParsePort(got.String())
			if err != nil || back.String() != tt.want {
				t.Fatalf("%s does not parse back: %s, %v", got, back, err)
			}
		})
	}
}

// A raw port's filter is read and checked once, when the spec is parsed;
// the spec keeps the file's name.
func TestBPFFile(t *testing.T) {
	dir := t.TempDir()
	good, bad, text := filepath.Join(dir, "arp.bpf"), filepath.Join(dir, "bad.bpf"), filepath.Join(dir, "arp.txt")
	os.WriteFile(good, []byte{0x06, 0, 0, 0, 0xff, 0xff, 0, 0}, 0o644) // ret #65535
	os.WriteFile(bad, []byte{0x15, 0, 5, 0, 0, 8, 0, 0}, 0o644)        // jeq past the end
	os.WriteFile(text, []byte("1\n6 0 0 65535\n"), 0o644)
	for _, f := range []string{good, text} {
		p, err := configs.ParsePort("transport=raw,ifname=veth0,bpffile=" + f)
		if err != nil {
			t.Fatal(err)
		}
		if r := p.Options.(*raw.Options); r.Filter == nil || p.String() != "transport=raw,ifname=veth0,bpffile="+f {
			t.Fatalf("%s: %+v", p, r)
		}
	}
	for _, c := range []struct{ spec, err string }{
		{"transport=raw,ifname=veth0,bpffile=" + bad, bad + ": bpf: instruction 0"},
		{"transport=raw,ifname=veth0,bpffile=" + filepath.Join(dir, "missing.bpf"), "no such file"},
		{"transport=raw,ifname=veth0,bpf=1;6 0 0 1,bpffile=" + good, "bpf= or bpffile=, not both"},
	} {
		if _, err := configs.ParsePort(c.spec); err == nil || !strings.Contains(err.Error(), c.err) {
			t.Errorf("%s: err = %v, want %q", c.spec, err, c.err)
		}
	}
}

func TestParseFile(t *testing.T) {
	f, err := configs.Parse([]byte(`
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
	want := []string{
		"transport=daemon,path=/tmp/sw.ctl,mode=0666",
		"transport=tap,ifname=tap0,depth=16",
		"transport=bess,path=/tmp/sw.bess",
		"transport=gre,src=127.0.0.2,dst=127.0.0.3,rx_key=0xfffffffe,tx_key=0x7,sequence=1",
		"transport=l2tpv3,src=127.0.0.2,dst=127.0.0.4,udp=1,srcport=17001,dstport=17002,rx_session=0xb,tx_session=0xc," +
			"rx_cookie=0x1122334455667788,tx_cookie=0x9,cookie64=1",
	}
	for i, p := range sw.Ports {
		if p.String() != want[i] {
			t.Errorf("ports[%d] = %s, want %s", i, p, want[i])
		}
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
		{"ports: [{transport: tap, ifname: t0, bogus: 1}]", `ports[0]: unknown key "bogus" for transport tap (accepted: create, depth, ifname, mtu, name, owner, persist, queues, switch, up, vnet_hdr; and on every port: broadcast, corrupt, delay, dup, flood, isolated, jitter, link, link_local, loss, loss_burst, mac_limit, native, qinq, queue, rate, reorder, seed, split_horizon, storm, trunk, vlan)`},
		{"ports: [{transport: tap, ifname: [a, b]}]", "must be a single value"},
		{"ports: 3", "cannot unmarshal"},
		{"\t- broken", "config:"},
	}
	for _, tt := range tests {
		t.Run(tt.doc, func(t *testing.T) {
			_, err := configs.Parse([]byte(tt.doc))
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.err)
			}
		})
	}
	if f, err := configs.Parse(nil); err != nil || len(f.Switches) != 1 || len(f.Switches[0].Ports) != 0 {
		t.Fatalf("empty document: %+v, %v", f, err)
	}
}

func TestDefault(t *testing.T) {
	c := configs.Default()
	f := c.Switches[0]
	if len(f.Ports) != 1 || f.Ports[0].Options.(*daemon.Options).Path != "/var/run/uml-utilities/uml_switch.ctl" {
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
		"transport=daemon,path=/x/,mode=0777,compat_v0=yes,data=/tmp/d", ",,=,transport=", "transport=tap,ifname=a,ifname=b",
		"transport=bess,path=/b,split_horizon=g,flood=0,broadcast=no,isolated=1,mac_limit=5,storm=100,link_local=0",
		"transport=bess,path=/b,delay=50ms,jitter=1ms,reorder=1,loss=2.5%,loss_burst=3,dup=1,corrupt=0.1%,rate=10mbit,queue=5,seed=7",
		"transport=daemon,path=/c,allow_uid=0;1000 root,allow_gid=root", "transport=stream,path=/s,allow_gid=0,allow_uid=;"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		p, err := configs.ParsePort(spec)
		if err != nil {
			return
		}
		back, err := configs.ParsePort(p.String())
		if err != nil {
			t.Fatalf("%q parsed to %s, which fails: %v", spec, p, err)
		}
		if back.String() != p.String() {
			t.Fatalf("round trip of %q: %s != %s", spec, back, p)
		}
	})
}

// FuzzParseConfig: no document makes Parse panic, and every port it accepts
// is valid as a -port spec too, unless a value holds a comma.
func FuzzParseConfig(f *testing.F) {
	f.Add(configs.DefaultYAML())
	f.Add([]byte("hub: true\nports:\n  - {transport: tap, ifname: t0}\n"))
	f.Add([]byte("mirrors: [{file: /tmp/a.pcapng, dir: in}, {stream: /tmp/s.sock, ports: 'a,b'}, {port: 'transport=tap,ifname=s0'}]\n"))
	f.Add([]byte("mac_age: 1s\ntx_hold: 1ms\nbusy_poll: 1\nports: [{transport: daemon, path: /a, mode: 777}]"))
	f.Add([]byte("switches:\n  - name: a\n    hub: 1\n    ports: [{transport: daemon, path: /a, name: x}]\n  - {name: b, mac_age: 5s}\n"))
	f.Add([]byte("vni: 100\nrd: 172.31.0.1:7\nimport_rt: [\"65000:100\", \"*:200\"]\nexport_rt: 65000:100\n" +
		"evpn:\n  asn: 65000\n  router_id: 172.31.0.1\n  vtep: 172.31.0.1\n  vxlan_port: 4789\n  listen_port: 0\n  hold_time: 9s\n" +
		"  neighbors:\n    - {address: 172.31.0.254, asn: 65000}\n    - {address: \"fd00::2\", asn: 65001, port: 1179, passive: true}\n"))
	f.Add([]byte("switches: [{name: a, vni: 7, export_rt: 4200000000:1}, {name: b, vni: 0x8, import_rt: '*:8'}]\n" +
		"evpn: {asn: 4200000000, router_id: 10.0.0.1, vtep: 'fd00::1', neighbors: [{address: 'fd00::2', asn: 1}]}"))
	f.Fuzz(func(t *testing.T, doc []byte) {
		c, err := configs.Parse(doc)
		if err != nil {
			return
		}
		if c.EVPN != nil && !c.EVPN.Equal(c.EVPN) {
			t.Fatalf("evpn block %+v differs from itself", c.EVPN)
		}
		for _, sw := range c.Switches {
			// What the fabric's keys keep is what their parsers take.
			if sw.VNI > configs.MaxVNI || (sw.VNI != 0 && c.EVPN == nil) {
				t.Fatalf("switch %s: VNI %d, evpn %v", sw.Name, sw.VNI, c.EVPN)
			}
			if sw.RD != "" && configs.ParseRD(sw.RD) != nil {
				t.Fatalf("switch %s keeps RD %q", sw.Name, sw.RD)
			}
			for _, rt := range sw.ImportRT {
				if configs.ParseRT(rt, true) != nil {
					t.Fatalf("switch %s keeps import target %q", sw.Name, rt)
				}
			}
			for _, rt := range sw.ExportRT {
				if configs.ParseRT(rt, false) != nil {
					t.Fatalf("switch %s keeps export target %q", sw.Name, rt)
				}
			}
			// A spec cannot carry a comma in a value, which a file (and
			// -unix, as uml_switch's) can: such a port is shown with it,
			// and never parsed back (the run state keeps only the API's
			// ports, given as specs).
			for _, p := range sw.Ports {
				if _, err := configs.ParsePort(p.String()); err != nil && !commaIn(configs.SpecValues(p)) {
					t.Fatalf("config port %s is not a valid spec: %v", p, err)
				}
			}
		}
	})
}

// user: names who the switch runs as once its ports are open: a name or a
// uid, looked up at start; anything else is refused when the file is read.
func TestUserKey(t *testing.T) {
	for doc, want := range map[string]string{"user: uml-net": "uml-net", "user: 65534": "65534", "user: _svc$": "_svc$", "": ""} {
		f, err := configs.Parse([]byte(doc))
		if err != nil {
			t.Fatalf("%q: %v", doc, err)
		}
		if f.User != want {
			t.Errorf("%q: user %q, want %q", doc, f.User, want)
		}
	}
	for _, doc := range []string{"user: 'a b'", "user: ../root", "user: ''", "user: -x"} {
		if _, err := configs.Parse([]byte(doc)); err == nil {
			t.Errorf("%q was taken", doc)
		}
	}
}

// allow_uid= and allow_gid= take users and groups by name or number on the
// sockets that accept connections, render back as numbers, and are refused
// where the kernel cannot say who connected (TCP, a datagram socket).
func TestAllowKeys(t *testing.T) {
	p, err := configs.ParsePort("transport=bess,path=/b,allow_uid=root;1000,allow_gid=0 7")
	if err != nil {
		t.Fatal(err)
	}
	if s := p.String(); !strings.Contains(s, "allow_uid=0;1000") || !strings.Contains(s, "allow_gid=0;7") {
		t.Errorf("rendered as %s", s)
	}
	for _, bad := range []string{
		"transport=daemon,path=/c,allow_uid=no-such-user-here",
		"transport=daemon,path=/c,allow_gid=",
		"transport=stream,port=5555,allow_uid=0",
		"transport=stream,path=/s,connect=1,allow_gid=0",
		"transport=dgram,path=/d,peer=/r,allow_uid=0",
	} {
		if _, err := configs.ParsePort(bad); err == nil {
			t.Errorf("%s parsed", bad)
		}
	}
}

// commaIn reports whether a value holds a comma.
func commaIn(values []string) bool {
	return slices.ContainsFunc(values, func(v string) bool { return strings.Contains(v, ",") })
}
