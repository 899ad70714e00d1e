package api_test

import (
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
	"github.com/umlswitch/umlswitch/internal/peercred/peertest"
	"github.com/umlswitch/umlswitch/transports/porttest"
)

// allowed is the one user the sockets' allow_uid= names.
const allowed = 4242

// A control, BESS and stream socket open to everyone by their mode
// (0777) but with allow_uid= let in only that user and root: nobody's
// connections are closed at once, never become ports, get no API answer,
// and are counted; the allowed user attaches, and ctl info (GET /v1/info)
// tells it who it was seen as and what it may do.
func TestAllowUIDOnListeners(t *testing.T) {
	dir, _ := publicDir(t)
	ctl, bess, stream := filepath.Join(dir, "a.ctl"), filepath.Join(dir, "bess"), filepath.Join(dir, "stream")
	log := porttest.Quiet()
	in := instancetest.Start(t, fmt.Sprintf(`
switches:
  - name: a
    ports:
      - {transport: daemon, path: %s, mode: "0777", allow_uid: "%d", name: ctl}
      - {transport: bess, path: %s, mode: "0777", allow_uid: "%d", name: bess}
      - {transport: stream, path: %s, mode: "0777", allow_uid: "%d", name: stream}
`, ctl, allowed, bess, allowed, stream, allowed), instance.Config{Logger: log,
		API: func(in *instance.Instance) instance.APIServer { return api.New(in, log) }})

	nobody := clientAs(t, peertest.Nobody, peertest.Nobody, ctl)
	nobody.Timeout = 3 * time.Second
	if resp, err := nobody.Get("http://x/v1/info"); err == nil {
		resp.Body.Close()
		t.Errorf("nobody got an API answer (%s) through a socket whose allow_uid= does not name it", resp.Status)
	}
	for _, l := range []struct{ network, path string }{{"unixpacket", bess}, {"unix", stream}} {
		c, err := peertest.DialAs(t, peertest.Nobody, peertest.Nobody, nil, l.network, l.path)
		if err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(3 * time.Second))
		if n, err := c.Read(make([]byte, 64)); err == nil || strings.Contains(err.Error(), "timeout") {
			t.Errorf("%s: nobody's connection was not closed: read %d, %v", l.path, n, err)
		}
		c.Close()
	}
	if st := in.Security(); st.NotAllowed != 3 {
		t.Errorf("NotAllowed = %d after nobody's three connections, want 3", st.NotAllowed)
	}
	for _, p := range in.Ports("") {
		if strings.Contains(p.Name, ".") {
			t.Errorf("nobody's connection became port %s", p.Name)
		}
	}

	// The allowed user: its API answers say who it is; its clients are ports.
	code, body := call(t, clientAs(t, allowed, allowed, ctl), "GET", "/v1/info", "")
	var info api.Info
	if code != 200 || json.Unmarshal([]byte(body), &info) != nil {
		t.Fatalf("GET /v1/info as the allowed user: %d %s", code, body)
	}
	if info.PeerUID != allowed || info.PeerGID != allowed || !info.MayRead || info.MayChange || info.MayCapture || info.Security.NotAllowed != 3 {
		t.Errorf("info as the allowed user: %+v", info)
	}
	for _, l := range []struct{ network, path string }{{"unixpacket", bess}, {"unix", stream}} {
		c, err := peertest.DialAs(t, allowed, allowed, nil, l.network, l.path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
	}
	porttest.Eventually(t, "the allowed user's two clients are ports", func() bool {
		var names []string
		for _, p := range in.Ports("") {
			names = append(names, p.Name)
		}
		return slices.Contains(names, "bess.1") && slices.Contains(names, "stream.1")
	})
	// Root is never locked out.
	if code, body := call(t, unixClient(ctl), "GET", "/v1/info", ""); code != 200 {
		t.Errorf("GET /v1/info as root: %d %s", code, body)
	}
	if st := in.Security(); st.NotAllowed != 3 {
		t.Errorf("NotAllowed = %d after allowed connections, want still 3", st.NotAllowed)
	}
}
