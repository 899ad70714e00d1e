package api

import "testing"

// FuzzRequests: no body makes a decoder or a request's check panic, and a
// body that decodes and checks names a switch and a valid spec.
func FuzzRequests(f *testing.F) {
	for _, s := range []string{`{"spec": "transport=tap,ifname=t0"}`, `{"switch": "a", "spec": "file=/tmp/x"}`,
		`{"name": "s", "hub": true, "mac_age": "5s", "mac_table_size": 10}`, `{"switch": "a", "mac": "02:00:00:00:00:01", "port": "p"}`,
		`{"target": "a"}`, `{"all": true}`, `{`, `[]`, `null`, `{"spec": "transport=tap,ifname=t0,switch=x", "switch": "y"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if r, err := decode[PortRequest](body); err == nil {
			if p, sw, err := r.port("here"); err == nil && (sw == "" || p.Transport == "") {
				t.Fatalf("port request %q: switch %q, port %+v", body, sw, p)
			}
		}
		if r, err := decode[MirrorRequest](body); err == nil {
			if _, sw, err := r.mirror("here"); err == nil && sw == "" {
				t.Fatalf("mirror request %q: no switch", body)
			}
		}
		if r, err := decode[SwitchRequest](body); err == nil {
			if sw, err := r.switchConfig(); err == nil && sw.Name == "" {
				t.Fatalf("switch request %q: no name", body)
			}
		}
		if r, err := decode[StaticRequest](body); err == nil {
			r.check()
		}
		decode[FlushRequest](body)
		if r, err := decode[SetRequest](body); err == nil {
			if kv, err := r.Pairs(); err == nil && len(kv) == 0 {
				t.Fatalf("set request %q: no keys and no error", body)
			}
		}
	})
}
