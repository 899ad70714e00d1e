package transports_test

import (
	"net"
	"reflect"
	"testing"

	"github.com/umlswitch/umlswitch/configs"
	_ "github.com/umlswitch/umlswitch/transports" // registers the kinds
	"github.com/umlswitch/umlswitch/transports/daemon"
	"github.com/umlswitch/umlswitch/transports/portkind"
)

// Every kind is registered, and its package's Config is the spec's
// options whole plus the settings every kind shares: one generic step,
// so that a key is a field in one place.
func TestKindsToConfig(t *testing.T) {
	common := portkind.Common{Depth: 16, MaxFrame: 1518}
	for _, spec := range []string{
		"transport=daemon,path=/tmp/a.ctl,mode=0660,owner=1,group=2,compat_v0=1,data=/tmp/d,api=ro",
		"transport=bess,path=/tmp/b,mode=0600,group=3",
		"transport=tap,ifname=t0,create=1,persist=1,owner=1000,up=1,queues=4,vnet_hdr=1,mtu=9000",
		"transport=raw,ifname=v0,promisc=1",
		"transport=gre,src=::1,dst=::2,v6=1,rx_key=0,tx_key=9,sequence=1,pin_sequence=1",
		"transport=l2tpv3,udp=1,src=10.0.0.1,dst=10.0.0.2,srcport=1,dstport=2,rx_session=3,tx_session=4,rx_cookie=5,tx_cookie=0x600000000,cookie64=1,counter=1,pin_counter=1",
		"transport=vxlan,src=10.0.0.1,dst=10.0.0.2,vni=7,dstport=8472",
		"transport=stream,path=/tmp/q.sock,mode=0666",
		"transport=stream,host=::1,port=1234,connect=1",
		"transport=dgram,path=/tmp/sw,peer=/tmp/q,owner=7",
		"transport=nat,net=192.168.7.0/24,dhcp=0,restrict=1,hostfwd=tcp::2222-:22;udp::5353-192.168.7.20:53,max_conns=9",
	} {
		p, err := configs.ParsePort(spec)
		if err != nil {
			t.Fatal(err)
		}
		if portkind.Lookup(p.Transport) == nil {
			t.Fatalf("%s: not in the registry", p.Transport)
		}
		// Every kind's Options has Config(portkind.Env), returning its
		// package's Config.
		env := portkind.Env{Common: common, MTU: p.MTU}
		cfg := reflect.ValueOf(p.Options).MethodByName("Config").Call([]reflect.Value{reflect.ValueOf(env)})[0]
		if got, want := cfg.FieldByName("Options").Interface(), reflect.ValueOf(p.Options).Elem().Interface(); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: options\n got %+v\nwant %+v", spec, got, want)
		}
		if got := cfg.FieldByName("Common").Interface(); got != common {
			t.Errorf("%s: common settings %+v, want %+v", spec, got, common)
		}
		if p.Transport == "tap" && cfg.FieldByName("MTU").Int() != 9000 {
			t.Errorf("%s: the tap's mtu= did not reach its Config", spec)
		}
	}
	if got := configs.Transports(); !reflect.DeepEqual(got, []string{"bess", "daemon", "dgram", "gre", "l2tpv3", "nat", "raw", "stream", "tap", "vxlan"}) {
		t.Errorf("registered %v", got)
	}
}

// api=off keeps API connections off a daemon socket; ro marks them read
// only.
func TestDaemonAPI(t *testing.T) {
	var gotAPI portkind.API
	handoff := func(_ net.Conn, a portkind.API) { gotAPI = a }
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
		gotAPI = portkind.API{}
		cfg := p.Options.(*daemon.Options).Config(portkind.Env{Handoff: handoff})
		if cfg.Handoff != nil {
			cfg.Handoff(nil)
		}
		if (cfg.Handoff != nil) != want.handoff || gotAPI.ReadOnly != want.readOnly {
			t.Errorf("%s: handoff %v, read-only %v", spec, cfg.Handoff != nil, gotAPI.ReadOnly)
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
