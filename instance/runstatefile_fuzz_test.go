package instance

import (
	"testing"
)

// FuzzParseRunState: any file parses or is refused, never panics, and what
// parses encodes to a file that parses to the same records.
func FuzzParseRunState(f *testing.F) {
	f.Add([]byte(`{"format": "umlswitch-run-state/1"}`))
	f.Add([]byte(`{"format": "umlswitch-run-state/1", "removed_switches": ["a"], "switches": [{"name": "x", "settings": [["hub", "true"]]}],
 "removed_ports": [{"switch": "lab", "name": "gone", "spec": "transport=daemon,path=/tmp/g.ctl"}],
 "ports": [{"switch": "lab", "spec": "transport=daemon,path=/tmp/a.ctl,name=added", "as": {"uid": 1000, "gid": 1000, "groups": [5]}}],
 "sets": [{"port": "tun", "set": [["delay", "5ms"], ["loss", ""]]}],
 "mirrors": [{"switch": "lab", "spec": "file=/tmp/x.pcapng,name=cap"}],
 "statics": [{"switch": "lab", "mac": "02:00:00:00:00:0a", "port": "tun", "vlan": 10}]}`))
	f.Add([]byte(`{"format": "umlswitch-run-state/1", "ports": [{"switch": "lab", "spec": "transport=tap"}]}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		doc, err := parseRunState(data)
		if err != nil {
			return
		}
		again, err := parseRunState(encodeRunState(doc))
		if err != nil {
			t.Fatalf("%s: encoded, it does not parse: %v", data, err)
		}
		if string(encodeRunState(again)) != string(encodeRunState(doc)) {
			t.Fatalf("%s: changed on the way round", data)
		}
	})
}
