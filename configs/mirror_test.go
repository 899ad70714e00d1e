package configs_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/umlswitch/umlswitch/configs"
)

func TestParseMirror(t *testing.T) {
	tests := []struct {
		spec string
		want configs.Mirror
		err  string
	}{
		{spec: "file=/tmp/a.pcapng", want: configs.Mirror{File: "/tmp/a.pcapng"}},
		{spec: "file=/tmp/a.pcap,format=pcap,snaplen=96,ports=tap,gre 127.0.0.3,dir=in,rotate=10M,keep=3",
			want: configs.Mirror{File: "/tmp/a.pcap", Format: "pcap", Snaplen: 96, Ports: []string{"tap", "gre 127.0.0.3"}, Dir: "in",
				Rotate: 10 << 20, Keep: 3}},
		{spec: "stream=/run/lab.sock,dir=out", want: configs.Mirror{Stream: "/run/lab.sock", Dir: "out"}},
		{spec: "stream=/run/lab.sock,mode=0660,owner=1000,group=100",
			want: configs.Mirror{Stream: "/run/lab.sock", Mode: 0o660, HasOwner: true, Owner: 1000, HasGroup: true, Group: 100}},
		{spec: "file=/a,mode=0660", err: "apply to stream="},
		{spec: "file=/a,rotate=512k", want: configs.Mirror{File: "/a", Rotate: 512 << 10}},
		{spec: "dir=in", err: "give one of file=PATH, stream=PATH and port=SPEC"},
		{spec: "file=/a,stream=/b", err: "give one of file=PATH, stream=PATH and port=SPEC"},
		{spec: "dir=both,ports=daemon,bess,port=transport=tap,ifname=span0,create=1",
			want: configs.Mirror{Dir: "both", Ports: []string{"daemon", "bess"}, Port: specPort(t, "transport=tap,ifname=span0,create=1")}},
		{spec: "port=transport=gre,src=127.0.0.2,dst=127.0.0.9",
			want: configs.Mirror{Port: specPort(t, "transport=gre,src=127.0.0.2,dst=127.0.0.9")}},
		{spec: "port=transport=tap", err: "transport tap needs ifname="},
		{spec: "snaplen=64,port=transport=tap,ifname=s0", err: "a port gets whole frames"},
		{spec: "file=/a,port=transport=tap,ifname=s0", err: "give one of"},
		{spec: "file=/a,format=json", err: "want pcapng or pcap"},
		{spec: "file=/a,dir=sideways", err: "want in, out or both"},
		{spec: "file=/a,snaplen=4", err: "out of range 14..65535"},
		{spec: "file=/a,rotate=lots", err: "not a size"},
		{spec: "file=/a,keep=2", err: "keep= needs rotate="},
		{spec: "stream=/a,rotate=1M", err: "rotate= and keep= apply to file="},
		{spec: "file=/a,colour=red", err: `unknown key "colour" (accepted: dir, file, format, group, keep, mode, name, owner, port, ports, rotate, snaplen, stream)`},
		{spec: "file=/a,file=/b", err: `key "file" given twice`},
		{spec: "stray,file=/a", err: `"stray" is not key=value`},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			got, err := configs.ParseMirror(tt.spec)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil || got.String() != tt.want.String() {
				t.Fatalf("got %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

func specPort(t *testing.T, spec string) *configs.Port {
	p := port(t, spec)
	return &p
}

func TestMirrorsInConfigFile(t *testing.T) {
	f, err := configs.Parse([]byte("ports: [{transport: daemon, path: /tmp/a.ctl}]\nmirrors:\n  - {file: /tmp/all.pcapng, rotate: 1G, keep: 2}\n  - {stream: /tmp/live.sock, ports: 'tap,bess'}\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := []configs.Mirror{{File: "/tmp/all.pcapng", Rotate: 1 << 30, Keep: 2}, {Stream: "/tmp/live.sock", Ports: []string{"tap", "bess"}}}
	if !reflect.DeepEqual(f.Switches[0].Mirrors, want) {
		t.Fatalf("mirrors %+v", f.Switches[0].Mirrors)
	}
	if _, err := configs.Parse([]byte("mirrors: [{file: /a, speed: 1}]")); err == nil || !strings.Contains(err.Error(), `mirrors[0]: unknown key "speed"`) {
		t.Fatalf("err = %v", err)
	}
}

// FuzzParseMirror: no spec makes the parser panic, and what parses names
// exactly one destination.
func FuzzParseMirror(f *testing.F) {
	f.Add("file=/tmp/a.pcap,format=pcap,snaplen=96,ports=tap,gre,dir=in,rotate=10M,keep=3")
	f.Add("stream=/s,ports=,x,dir=out")
	f.Add("name=m1,port=transport=tap,ifname=t0,name=span")
	f.Fuzz(func(t *testing.T, spec string) {
		m, err := configs.ParseMirror(spec)
		n := 0
		for _, set := range []bool{m.File != "", m.Stream != "", m.Port != nil} {
			if set {
				n++
			}
		}
		if err != nil {
			return
		}
		if n != 1 {
			t.Fatalf("%q parsed to %+v", spec, m)
		}
		// It renders to a spec that parses to the same mirror, unless a
		// port name holds a '=' (it would read as a key).
		back, err := configs.ParseMirror(m.String())
		if strings.Contains(strings.Join(m.Ports, ","), "=") {
			return
		}
		if err != nil || back.String() != m.String() {
			t.Fatalf("%q -> %q -> %+v, %v", spec, m.String(), back, err)
		}
	})
}
