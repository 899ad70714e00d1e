package api

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/umlswitch/umlswitch/configs"
	"github.com/umlswitch/umlswitch/instance"
	"github.com/umlswitch/umlswitch/instance/instancetest"
	"github.com/umlswitch/umlswitch/internal/peercred"
	"github.com/umlswitch/umlswitch/transports/porttest"
)

// FuzzAuthorize sends any request, from any peer, with any api_uid= and
// api_gid= lists, through the API's handler. A peer the rules do not let
// in never gets a 2xx for anything but a read, and nothing changes: no
// switch, port or mirror appears or goes.
func FuzzAuthorize(f *testing.F) {
	f.Add(uint32(65534), uint32(65534), uint32(4242), "1000;1001", "4242", uint8(0), "", `{"name": "x"}`)
	f.Add(uint32(1000), uint32(100), uint32(0), "", "", uint8(3), "?switch=a", `{"spec": "transport=raw,ifname=lo"}`)
	f.Add(uint32(5), uint32(5), uint32(5), "5", "", uint8(9), "", "")
	f.Add(uint32(7), uint32(7), uint32(7), "", "7", uint8(12), "a", `{"all": true}`)
	f.Add(uint32(65534), uint32(65534), uint32(1), "", "", uint8(14), "?switch=a", "")
	f.Add(uint32(65534), uint32(65534), uint32(1), "", "", uint8(15), "", "{}")
	log := porttest.Quiet()
	in := instancetest.Start(f, `
switches:
  - {name: a}
`, instance.Config{Logger: log})
	s := &Server{in: in, log: log}
	h := s.routeTable()
	routes := [][2]string{
		{"POST", "/v1/switches"}, {"DELETE", "/v1/switches/a"}, {"POST", "/v1/ports"}, {"PATCH", "/v1/ports/p"},
		{"DELETE", "/v1/ports/p"}, {"POST", "/v1/fdb"}, {"DELETE", "/v1/fdb/a/02:00:00:00:00:01"}, {"POST", "/v1/fdb/flush"},
		{"POST", "/v1/mirrors"}, {"DELETE", "/v1/mirrors/m"}, {"POST", "/v1/reload"}, {"GET", "/v1/capture"},
		{"GET", "/v1/ports"}, {"GET", "/v1/info"}, {"GET", "/v1/bgp"}, {"GET", "/v1/evpn"},
	}
	state := func() (int, int, int) { return len(in.Switches()), len(in.Ports("")), len(in.Mirrors()) }
	sw0, p0, m0 := state()
	f.Fuzz(func(t *testing.T, uid, gid, group uint32, apiUID, apiGID string, route uint8, suffix, body string) {
		uids, err1 := configs.ParseUsers(apiUID)
		gids, err2 := configs.ParseGroups(apiGID)
		if err1 != nil {
			uids = nil
		}
		if err2 != nil {
			gids = nil
		}
		peer := peercred.Cred{UID: uid, GID: gid, Groups: []uint32{group}}
		ci := instance.ConnInfo{Switch: "a", Listener: "ctl", Peer: peer, APIUIDs: uids, APIGIDs: gids}
		allowed := peer.Known() && (uid == 0 || uid == selfUID || slices.Contains(uids, uid) ||
			slices.Contains(gids, gid) || slices.Contains(gids, group))
		for _, n := range []need{needWrite, needCapture} {
			g, err := authorize(ci, n, selfUID)
			if (err == nil) != allowed || g.ok != allowed {
				t.Fatalf("peer %v lists %v %v: authorize(%v) = %v, %v; allowed %v", peer, uids, gids, n, g, err, allowed)
			}
			if err != nil && !strings.Contains(err.Error(), "api_uid") {
				t.Fatalf("a refusal that does not name the rule: %v", err)
			}
			if g.ok && (g.as == nil) != (uid == 0 || uid == selfUID) {
				t.Fatalf("peer %v acts as %v", peer, g.as)
			}
		}
		if allowed {
			return // what a caller let in may do is the other tests' business
		}
		rt := routes[int(route)%len(routes)]
		req := httptest.NewRequest(rt[0], "http://x"+rt[1], strings.NewReader(body))
		if suffix != "" && !strings.ContainsAny(suffix, " \r\n#") {
			if r2, err := http.NewRequest(rt[0], "http://x"+rt[1]+suffix, strings.NewReader(body)); err == nil {
				req = r2
			}
		}
		req = req.WithContext(context.WithValue(req.Context(), connInfoKey{}, ci))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rt[0] != "GET" || rt[1] == "/v1/capture" {
			if rec.Code/100 == 2 {
				t.Fatalf("%s %s%s from %v: %d %s", rt[0], rt[1], suffix, peer, rec.Code, rec.Body)
			}
		}
		if sw, p, m := state(); sw != sw0 || p != p0 || m != m0 {
			t.Fatalf("%s %s from %v changed the instance: %d %d %d switches, ports, mirrors", rt[0], rt[1], peer, sw, p, m)
		}
	})
}
