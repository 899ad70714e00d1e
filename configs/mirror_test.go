package configs_test

import (
	"reflect"
	"regexp"
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
	f.Add("stream=/s,mode=0660,owner=0,group=0,snaplen=64")
	f.Add("keep=2,rotate=1k,file=/a,ports=,a,b,dir=both")
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

// Every declared mirror key is one declaration: given in a spec or a
// config file entry, it parses, renders back as given, and -h documents
// it. A key added without a sample here fails the test.
func TestEveryMirrorKeyRoundTrips(t *testing.T) {
	samples := map[string]string{ // in the order String renders them
		"name":    "name=m1,file=/a",
		"file":    "file=/a",
		"stream":  "stream=/s",
		"format":  "file=/a,format=pcap",
		"snaplen": "stream=/s,snaplen=96",
		"ports":   "file=/a,ports=tap,gre 10.0.0.1",
		"dir":     "file=/a,dir=in",
		"rotate":  "file=/a,rotate=1048576",
		"keep":    "file=/a,rotate=1024,keep=3",
		"mode":    "stream=/s,mode=0660",
		"owner":   "stream=/s,owner=1000",
		"group":   "stream=/s,group=100",
		"port":    "dir=out,port=transport=gre,src=127.0.0.2,dst=127.0.0.9",
	}
	help := configs.MirrorHelp()
	for _, key := range configs.MirrorKeys() {
		t.Run(key, func(t *testing.T) {
			spec, ok := samples[key]
			if !ok {
				t.Fatalf("mirror key %q has no sample spec in this test", key)
			}
			m, err := configs.ParseMirror(spec)
			if err != nil {
				t.Fatal(err)
			}
			if got := m.String(); got != spec {
				t.Fatalf("%q renders as %q", spec, got)
			}
			// The same keys as a config file entry.
			yaml := "ports: [{transport: daemon, path: /tmp/a.ctl}]\nmirrors:\n  - " + mirrorEntry(spec) + "\n"
			f, err := configs.Parse([]byte(yaml))
			if err != nil {
				t.Fatalf("%s: %v", yaml, err)
			}
			if got := f.Switches[0].Mirrors[0].String(); got != spec {
				t.Fatalf("config entry %s renders as %q", yaml, got)
			}
			if !regexp.MustCompile(`(?m)^    ` + key + `=\S+ +\S`).MatchString(help) {
				t.Fatalf("MirrorHelp does not document %s=:\n%s", key, help)
			}
		})
	}
}

// mirrorEntry writes a -mirror spec as a YAML map: a list key's commas
// and port='s spec stay in one quoted value.
func mirrorEntry(spec string) string {
	var fields []string
	before, port, hasPort := strings.Cut(spec, "port=transport=")
	for _, f := range strings.Split(strings.TrimSuffix(before, ","), ",") {
		if k, v, ok := strings.Cut(f, "="); ok {
			fields = append(fields, k+": '"+v+"'")
		} else if f != "" {
			last := &fields[len(fields)-1]
			*last = strings.TrimSuffix(*last, "'") + "," + f + "'"
		}
	}
	if hasPort {
		fields = append(fields, "port: 'transport="+port+"'")
	}
	return "{" + strings.Join(fields, ", ") + "}"
}

// A key that serves some destinations only is refused with the others,
// and the error names the keys of its kind and what they serve.
func TestMirrorKeysServeTheirDestinations(t *testing.T) {
	tests := []struct{ spec, err string }{
		{"stream=/s,rotate=1M", "rotate= and keep= apply to file="},
		{"port=transport=tap,ifname=s0,keep=1", ""}, // keep= is the tap's here: port= takes the rest
		{"keep=1,port=transport=tap,ifname=s0", "rotate= and keep= apply to file="},
		{"file=/a,owner=0", "mode=, owner= and group= apply to stream="},
		{"format=pcap,port=transport=tap,ifname=s0", "format= and snaplen= apply to file= and stream=: a port gets whole frames"},
		{"file=/a,mode=0", ""}, // mode=0 is the default, as before
	}
	for _, tt := range tests {
		_, err := configs.ParseMirror(tt.spec)
		if tt.err == "" && err != nil && strings.Contains(err.Error(), "apply to") {
			t.Errorf("%q: %v", tt.spec, err)
		}
		if tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)) {
			t.Errorf("%q: err = %v, want %q", tt.spec, err, tt.err)
		}
	}
}
