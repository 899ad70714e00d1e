package api_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/umlswitch/umlswitch/api"
	"github.com/umlswitch/umlswitch/instance"
	"github.com/umlswitch/umlswitch/instance/instancetest"
	"github.com/umlswitch/umlswitch/transports/porttest"
)

// evpnRig runs switch a (VNI 100, a daemon socket and a read-only one)
// with the given evpn: block.
func evpnRig(t *testing.T, block string) (*instance.Instance, string, string) {
	t.Helper()
	dir := t.TempDir()
	ctl, ro := filepath.Join(dir, "a.ctl"), filepath.Join(dir, "ro.ctl")
	log := porttest.Quiet()
	in := instancetest.Start(t, fmt.Sprintf(`
switches:
  - {name: a, vni: 100, ports: [{transport: daemon, path: %s, name: ctl}, {transport: daemon, path: %s, api: ro, name: ro}]}
  - {name: b}
%s`, ctl, ro, block), instance.Config{Logger: log, API: func(in *instance.Instance) instance.APIServer { return api.New(in, log) }})
	return in, ctl, ro
}

// Without an evpn: block both reads answer 404 and say why.
func TestEVPNNotConfigured(t *testing.T) {
	r := newRig(t)
	for _, p := range []string{"/v1/bgp", "/v1/evpn"} {
		if code, body := call(t, r.roClient, "GET", p, ""); code != 404 || !strings.Contains(body, "EVPN is not configured") {
			t.Errorf("GET %s without evpn: %d %s", p, code, body)
		}
	}
	if _, body := call(t, r.client, "GET", "/v1/", ""); !strings.Contains(body, "GET /v1/bgp") || !strings.Contains(body, "GET /v1/evpn") {
		t.Errorf("the index does not list them: %s", body)
	}
}

// A neighbour that never answers: the speaker runs, the neighbour is not
// established, switch a is in the fabric with its derived RD and route
// target, announces its type-3 route and has no remote VTEP. Reads work
// on the read-only socket.
func TestBGPAndEVPNIdle(t *testing.T) {
	_, _, ro := evpnRig(t, "evpn: {asn: 65000, router_id: 10.0.0.1, vtep: 192.0.2.1, listen_port: 0, neighbors: [{address: 127.0.0.9, asn: 65000}]}\n")
	c := unixClient(ro)
	code, body := call(t, c, "GET", "/v1/bgp", "")
	var b instance.BGPInfo
	if err := json.Unmarshal([]byte(body), &b); code != 200 || err != nil {
		t.Fatalf("GET /v1/bgp: %d %v %s", code, err, body)
	}
	if b.ASN != 65000 || b.RouterID != "10.0.0.1" || b.VTEP != "192.0.2.1" || b.ListenPort != 0 || len(b.Neighbors) != 1 ||
		b.Neighbors[0].Address.String() != "127.0.0.9" || b.Neighbors[0].ASN != 65000 || b.Neighbors[0].State == "established" ||
		b.Neighbors[0].Uptime != "" || !b.Stats.Running || b.Stats.Neighbors != 1 || b.Stats.Up != 0 || b.Stats.Received != 0 ||
		b.Stats.Sent != 1 || b.Stats.Ignored == nil {
		t.Errorf("GET /v1/bgp: %s", body)
	}
	for _, key := range []string{`"neighbors"`, `"address": "127.0.0.9"`, `"state"`, `"received"`, `"accepted"`, `"sent"`,
		`"running": true`, `"ignored": {}`, `"dataplane_failures": 0`} {
		if !strings.Contains(body, key) {
			t.Errorf("GET /v1/bgp has no %s: %s", key, body)
		}
	}
	code, body = call(t, c, "GET", "/v1/evpn", "")
	var e instance.EVPNInfo
	if err := json.Unmarshal([]byte(body), &e); code != 200 || err != nil {
		t.Fatalf("GET /v1/evpn: %d %v %s", code, err, body)
	}
	if len(e.VNIs) != 1 || e.VNIs[0].Switch != "a" || e.VNIs[0].VNI != 100 || e.VNIs[0].RD != "10.0.0.1:1" ||
		!slices.Equal(e.VNIs[0].Export, []string{"65000:100"}) || len(e.VNIs[0].VTEPs) != 0 || len(e.Received) != 0 ||
		len(e.Sent) != 1 || e.Sent[0].Type != 3 || e.Sent[0].VTEP.String() != "192.0.2.1" || e.VTEP != "192.0.2.1" {
		t.Errorf("GET /v1/evpn: %s", body)
	}
	// Empty lists are lists: scripts index them.
	for _, key := range []string{`"import_rt": []`, `"vteps": []`, `"received": []`} {
		if !strings.Contains(body, key) {
			t.Errorf("GET /v1/evpn has no %s: %s", key, body)
		}
	}
}

// A real session with a second speaker: the neighbour is established and
// counts its routes, the peer's type-3 and type-2 routes are received and
// imported into switch a, the fabric tunnel is a port with its VTEP, the
// peer's address is a remote entry with its VTEP, and the event stream
// tells the session and the VTEP.
func TestEVPNExchange(t *testing.T) {
	if !instancetest.IsolateEVPN(t) {
		return
	}
	peer := instancetest.NewEVPNPeer(t, 100)
	_, ctl, _ := evpnRig(t, peer.EVPNBlock())
	c := unixClient(ctl)
	resp, err := c.Get("http://x/v1/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	events := make(chan instance.Event, 100)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			var ev instance.Event
			if json.Unmarshal(sc.Bytes(), &ev) == nil {
				events <- ev
			}
		}
		close(events)
	}()
	time.Sleep(50 * time.Millisecond) // subscribed
	peer.Start(t)

	vtep := instancetest.PeerVTEP.String()
	tunnel := "evpn-100-" + vtep
	var b instance.BGPInfo
	var e instance.EVPNInfo
	instancetest.WaitFor(t, "the session up and the peer's routes imported", func() bool {
		_, body := call(t, c, "GET", "/v1/bgp", "")
		json.Unmarshal([]byte(body), &b)
		_, body = call(t, c, "GET", "/v1/evpn", "")
		json.Unmarshal([]byte(body), &e)
		return len(b.Neighbors) == 1 && b.Neighbors[0].State == "established" && b.Neighbors[0].Received >= 2 &&
			len(e.VNIs) == 1 && len(e.VNIs[0].VTEPs) == 1 && e.VNIs[0].RemoteMACs == 1
	})
	n := b.Neighbors[0]
	if n.Address.String() != "127.0.0.2" || n.Uptime == "" || n.Accepted < 2 || n.Sent < 1 || b.Stats.Up != 1 ||
		b.Stats.Received != 2 || b.Stats.RemoteMACs != 1 || b.Stats.VTEPs != 1 {
		t.Errorf("bgp: %+v", b)
	}
	if e.VNIs[0].VTEPs[0].String() != vtep {
		t.Errorf("flood list %v", e.VNIs[0].VTEPs)
	}
	var types []int
	for _, r := range e.Received {
		if r.Peer != "127.0.0.2" || r.VTEP.String() != vtep || r.VNI != 100 || r.Switch != "a" || r.RD != "10.0.0.2:1" {
			t.Errorf("received route %+v", r)
		}
		if r.Type == 2 && r.MAC != instancetest.PeerMAC.String() {
			t.Errorf("received type-2 route %+v", r)
		}
		types = append(types, r.Type)
	}
	if slices.Sort(types); !slices.Equal(types, []int{2, 3}) {
		t.Errorf("received routes of types %v", types)
	}

	code, body := call(t, c, "GET", "/v1/ports?switch=a", "")
	var ports []instance.PortInfo
	json.Unmarshal([]byte(body), &ports)
	i := slices.IndexFunc(ports, func(p instance.PortInfo) bool { return p.Name == tunnel })
	if code != 200 || i < 0 || ports[i].VTEP != vtep || ports[i].Kind != "vxlan" {
		t.Errorf("no tunnel port %s with its VTEP: %s", tunnel, body)
	}
	code, body = call(t, c, "GET", "/v1/fdb?switch=a", "")
	var fdb []instance.MACInfo
	json.Unmarshal([]byte(body), &fdb)
	if code != 200 || len(fdb) != 1 || fdb[0].MAC != instancetest.PeerMAC.String() || !fdb[0].Remote || fdb[0].VTEP != vtep ||
		fdb[0].Port != tunnel || fdb[0].Static {
		t.Errorf("fdb: %s", body)
	}

	want := map[string]func(instance.Event) bool{
		"bgp-up": func(ev instance.Event) bool { return ev.Peer == "127.0.0.2" && ev.Detail == "established" },
		"vtep-joined": func(ev instance.Event) bool {
			return ev.Switch == "a" && ev.Peer == vtep && ev.Port == tunnel && ev.Detail == "vni 100"
		},
	}
	deadline := time.After(10 * time.Second)
	for len(want) > 0 {
		select {
		case ev, ok := <-events:
			if !ok {
				t.Fatalf("the stream ended; no %v", want)
			}
			if ok := want[ev.Type]; ok != nil {
				if !ok(ev) {
					t.Fatalf("event %+v", ev)
				}
				delete(want, ev.Type)
			}
		case <-deadline:
			t.Fatalf("no events %v", want)
		}
	}
}
