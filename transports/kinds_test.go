package transports_test

import (
	"net"
	"net/netip"
	"reflect"
	"testing"

	"github.com/umlswitch/umlswitch/configs"
	_ "github.com/umlswitch/umlswitch/transports" // registers the kinds
	"github.com/umlswitch/umlswitch/transports/bess"
	"github.com/umlswitch/umlswitch/transports/daemon"
	"github.com/umlswitch/umlswitch/transports/dgram"
	"github.com/umlswitch/umlswitch/transports/gre"
	"github.com/umlswitch/umlswitch/transports/l2tpv3"
	"github.com/umlswitch/umlswitch/transports/raw"
	"github.com/umlswitch/umlswitch/transports/stream"
	"github.com/umlswitch/umlswitch/transports/tap"
	"github.com/umlswitch/umlswitch/transports/vxlan"
)

// Every kind is registered, and turns the options a spec gives into its
// package's Config, key by key.
func TestKindsToConfig(t *testing.T) {
	a := netip.MustParseAddr
	const depth, maxFrame = 16, 1518
	for _, c := range []struct {
		spec string
		want any
	}{
		{"transport=daemon,path=/tmp/a.ctl,mode=0660,owner=1,group=2,compat_v0=1,data=/tmp/d,api=ro",
			daemon.Config{Path: "/tmp/a.ctl", Mode: 0o660, Owner: 1, Group: 2, CompatV0: true, DataPath: "/tmp/d", Depth: depth, MaxFrame: maxFrame}},
		{"transport=daemon,path=/tmp/a.ctl", daemon.Config{Path: "/tmp/a.ctl", Owner: -1, Group: -1, Depth: depth, MaxFrame: maxFrame}},
		{"transport=bess,path=/tmp/b,mode=0600,group=3", bess.Config{Path: "/tmp/b", Mode: 0o600, Owner: -1, Group: 3, Depth: depth, MaxFrame: maxFrame}},
		{"transport=tap,ifname=t0,create=1,persist=1,owner=1000,up=1,queues=4,vnet_hdr=1,mtu=9000",
			tap.Config{Ifname: "t0", Create: true, Persist: true, Owner: 1000, Up: true, MTU: 9000, Queues: 4, VnetHdr: true, Depth: depth, MaxFrame: maxFrame}},
		{"transport=tap,ifname=t0", tap.Config{Ifname: "t0", Owner: -1, Depth: depth, MaxFrame: maxFrame}},
		{"transport=raw,ifname=v0,promisc=1", raw.Config{Ifname: "v0", Promisc: true, Depth: depth, MaxFrame: maxFrame}},
		{"transport=gre,src=::1,dst=::2,v6=1,rx_key=0,tx_key=9,sequence=1,pin_sequence=1",
			gre.Config{Local: a("::1"), Remote: a("::2"), HasKey: true, TxKey: 9, Sequence: true, PinSequence: true, Depth: depth, MaxFrame: maxFrame}},
		{"transport=l2tpv3,udp=1,src=10.0.0.1,dst=10.0.0.2,srcport=1,dstport=2,rx_session=3,tx_session=4,rx_cookie=5,tx_cookie=0x600000000,cookie64=1,counter=1,pin_counter=1",
			l2tpv3.Config{UDP: true, Local: a("10.0.0.1"), Remote: a("10.0.0.2"), LocalPort: 1, RemotePort: 2, RxSession: 3, TxSession: 4,
				HasCookie: true, Cookie64: true, RxCookie: 5, TxCookie: 0x600000000, Counter: true, PinCounter: true, Depth: depth, MaxFrame: maxFrame}},
		{"transport=vxlan,src=10.0.0.1,dst=10.0.0.2,vni=7,dstport=8472",
			vxlan.Config{Local: a("10.0.0.1"), Remote: a("10.0.0.2"), VNI: 7, DstPort: 8472, Depth: depth, MaxFrame: maxFrame}},
		{"transport=stream,path=/tmp/q.sock,mode=0666", stream.Config{Path: "/tmp/q.sock", Mode: 0o666, Owner: -1, Group: -1, Depth: depth, MaxFrame: maxFrame}},
		{"transport=stream,host=::1,port=1234,connect=1", stream.Config{Host: "::1", Port: 1234, Connect: true, Owner: -1, Group: -1, Depth: depth, MaxFrame: maxFrame}},
		{"transport=dgram,path=/tmp/sw,peer=/tmp/q,owner=7", dgram.Config{Path: "/tmp/sw", Peer: "/tmp/q", Owner: 7, Group: -1, Depth: depth, MaxFrame: maxFrame}},
	} {
		p, err := configs.ParsePort(c.spec)
		if err != nil {
			t.Fatal(err)
		}
		var got any
		switch o := p.Options.(type) {
		case *daemon.Options:
			got = o.Config(depth, maxFrame, nil, nil)
		case *bess.Options:
			got = o.Config(depth, maxFrame, nil)
		case *tap.Options:
			got = o.Config(p.MTU, depth, maxFrame, nil)
		case *raw.Options:
			got = o.Config(depth, maxFrame, nil)
		case *gre.Options:
			got = o.Config(depth, maxFrame)
		case *l2tpv3.Options:
			got = o.Config(depth, maxFrame)
		case *vxlan.Options:
			got = o.Config(depth, maxFrame)
		case *stream.Options:
			got = o.Config(depth, maxFrame, nil)
		case *dgram.Options:
			got = o.Config(depth, maxFrame, nil)
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s:\n got %+v\nwant %+v", c.spec, got, c.want)
		}
	}
	if got := configs.Transports(); !reflect.DeepEqual(got, []string{"bess", "daemon", "dgram", "gre", "l2tpv3", "raw", "stream", "tap", "vxlan"}) {
		t.Errorf("registered %v", got)
	}
}

// api=off keeps API connections off a daemon socket; ro marks them read
// only.
func TestDaemonAPI(t *testing.T) {
	handoff := func(net.Conn) {}
	for spec, want := range map[string]struct{ handoff, readOnly bool }{
		"transport=daemon,path=/a":         {true, false},
		"transport=daemon,path=/a,api=rw":  {true, false},
		"transport=daemon,path=/a,api=ro":  {true, true},
		"transport=daemon,path=/a,api=off": {false, false},
	} {
		p, err := configs.ParsePort(spec)
		if err != nil {
			t.Fatal(err)
		}
		o := p.Options.(*daemon.Options)
		if cfg := o.Config(1, 1518, nil, handoff); (cfg.Handoff != nil) != want.handoff || o.ReadOnly() != want.readOnly {
			t.Errorf("%s: handoff %v, read-only %v", spec, cfg.Handoff != nil, o.ReadOnly())
		}
	}
}

// A stream port is a unix path or a TCP port, and takes socket file keys
// only as a unix listener.
func TestStreamSpecs(t *testing.T) {
	for spec, ok := range map[string]bool{
		"transport=stream,path=/q":                   true,
		"transport=stream,port=5555":                 true,
		"transport=stream,host=10.0.0.1,port=5555":   true,
		"transport=stream":                           false,
		"transport=stream,path=/q,port=5555":         false,
		"transport=stream,path=/q,host=10.0.0.1":     false,
		"transport=stream,port=5555,owner=1":         false,
		"transport=stream,path=/q,connect=1,group=1": false,
		"transport=stream,port=0":                    false,
		"transport=dgram,path=/a":                    false,
		"transport=dgram,path=/a,peer=/b,mode=0666":  true,
	} {
		if _, err := configs.ParsePort(spec); (err == nil) != ok {
			t.Errorf("%s: %v", spec, err)
		}
	}
}
