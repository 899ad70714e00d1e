package api_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/umlswitch/umlswitch/api"
	"github.com/umlswitch/umlswitch/configs"
	"github.com/umlswitch/umlswitch/instance"
	"github.com/umlswitch/umlswitch/instance/instancetest"
	"github.com/umlswitch/umlswitch/internal/peercred/peertest"
	"github.com/umlswitch/umlswitch/transports/porttest"
)

// publicDir is a directory every user may look into, and a sticky one in
// it every user may create files in.
func publicDir(t *testing.T) (dir, sticky string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the API's refusals of other users are tested as root")
	}
	dir = peertest.PublicDir(t, false)
	sticky = filepath.Join(dir, "tmp")
	os.Mkdir(sticky, 0o755)
	os.Chmod(sticky, 0o777|os.ModeSticky)
	return dir, sticky
}

// clientAs is an HTTP client whose every connection to path is made as uid
// and gid.
func clientAs(t *testing.T, uid, gid uint32, path string) *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return peertest.DialAs(t, uid, gid, nil, "unix", path)
		}}}
}

// Nobody may read the switch through a 0777 control socket, and nothing
// else: every write and the live capture are refused with a 403 that names
// the rule and the peer's uid, and nothing changes.
func TestNobodyOnlyReads(t *testing.T) {
	dir, sticky := publicDir(t)
	ctl := filepath.Join(dir, "a.ctl")
	log := porttest.Quiet()
	in := instancetest.Start(t, fmt.Sprintf(`
switches:
  - {name: a, vni: 100, ports: [{transport: daemon, path: %s, mode: "0777", name: ctl}]}
evpn: {asn: 65000, router_id: 10.0.0.1, vtep: 192.0.2.1, listen_port: 0, neighbors: [{address: 127.0.0.9, asn: 65000}]}
`, ctl), instance.Config{Logger: log, API: func(in *instance.Instance) instance.APIServer { return api.New(in, log) }})
	nobody := clientAs(t, peertest.Nobody, peertest.Nobody, ctl)
	for _, p := range []string{"/v1/info", "/v1/switches", "/v1/ports", "/v1/fdb", "/v1/mirrors", "/v1/bgp", "/v1/evpn"} {
		if code, body := call(t, nobody, "GET", p, ""); code != 200 {
			t.Errorf("GET %s as nobody: %d %s", p, code, body)
		}
	}
	target := filepath.Join(dir, "target")
	os.WriteFile(target, []byte("root's"), 0o600)
	for _, c := range [][3]string{
		{"POST", "/v1/ports", `{"spec": "transport=raw,ifname=lo"}`},
		{"POST", "/v1/ports", `{"spec": "transport=stream,path=` + dir + `/s.sock"}`},
		{"POST", "/v1/ports", `{"spec": "transport=bess,path=` + sticky + `/b.bess"}`},
		{"POST", "/v1/mirrors", `{"spec": "file=` + target + `"}`},
		{"POST", "/v1/mirrors", `{"spec": "file=` + sticky + `/x.pcapng"}`},
		{"DELETE", "/v1/switches/a", ""},
		{"POST", "/v1/switches", `{"name": "b"}`},
		{"DELETE", "/v1/ports/ctl", ""},
		{"PATCH", "/v1/ports/ctl", `{"set": "loss=100%"}`},
		{"POST", "/v1/fdb", `{"switch": "a", "mac": "02:00:00:00:00:01", "port": "ctl"}`},
		{"POST", "/v1/fdb/flush", `{"all": true}`},
		{"POST", "/v1/reload", ""},
		{"GET", "/v1/capture", ""},
	} {
		code, body := call(t, nobody, c[0], c[1], c[2])
		if code != 403 || !strings.Contains(body, "uid 65534") || !strings.Contains(body, "api_uid") {
			t.Errorf("%s %s %s as nobody: %d %s, want 403 naming the rule and uid 65534", c[0], c[1], c[2], code, body)
		}
	}
	if ps := in.Ports(""); len(ps) != 1 {
		t.Errorf("ports after nobody's attempts: %+v", ps)
	}
	if len(in.Switches()) != 1 || len(in.Mirrors()) != 0 {
		t.Errorf("switches %d mirrors %d after nobody's attempts", len(in.Switches()), len(in.Mirrors()))
	}
	for _, f := range []string{dir + "/s.sock", sticky + "/b.bess", sticky + "/x.pcapng"} {
		if _, err := os.Lstat(f); err == nil {
			t.Errorf("%s was created for nobody", f)
		}
	}
	if b, _ := os.ReadFile(target); string(b) != "root's" {
		t.Errorf("root's file now holds %q", b)
	}
	if n := in.Security().APIRefused; n != 13 {
		t.Errorf("%d refusals counted, want 13", n)
	}
}

// A user that api_uid= lets in acts with its own rights: it opens sockets
// where it could have made them itself, owned by it, and never a port
// that takes root's privilege.
func TestAPIUserActsAsItself(t *testing.T) {
	dir, sticky := publicDir(t)
	ctl := filepath.Join(dir, "a.ctl")
	log := porttest.Quiet()
	in := instancetest.Start(t, fmt.Sprintf(`
api_gid: "4242"
switches:
  - {name: a, ports: [{transport: daemon, path: %s, mode: "0777", name: ctl, api_uid: "65534"}]}
`, ctl), instance.Config{Logger: log, API: func(in *instance.Instance) instance.APIServer { return api.New(in, log) }})
	nobody := clientAs(t, peertest.Nobody, peertest.Nobody, ctl)
	for _, c := range []struct {
		method, path, body string
		code               int
		want               string
	}{
		{"POST", "/v1/ports", `{"spec": "transport=raw,ifname=lo"}`, 403, "CAP_NET_RAW"},
		{"POST", "/v1/ports", `{"spec": "transport=tap,ifname=nobody0,create=1"}`, 403, "host interface"},
		{"POST", "/v1/ports", `{"spec": "transport=gre,src=127.0.0.1,dst=127.0.0.2"}`, 403, "raw IP"},
		{"POST", "/v1/ports", `{"spec": "transport=vxlan,src=127.0.0.1,dst=127.0.0.2,vni=1,dstport=99"}`, 403, "port 99"},
		{"POST", "/v1/ports", `{"spec": "transport=daemon,path=` + sticky + `/x.ctl,api_uid=65534"}`, 403, "only root may give"},
		{"POST", "/v1/ports", `{"spec": "transport=bess,path=` + dir + `/root-only.bess"}`, 422, "permission denied"},
		{"POST", "/v1/ports", `{"spec": "transport=bess,path=` + sticky + `/mine.bess,name=mine"}`, 201, `"name": "mine"`},
		{"POST", "/v1/ports", `{"spec": "transport=bess,path=` + sticky + `/other.bess,owner=0"}`, 422, "chown"},
		{"POST", "/v1/mirrors", `{"spec": "file=` + dir + `/root-only.pcapng"}`, 422, "permission denied"},
		{"POST", "/v1/mirrors", `{"spec": "file=` + sticky + `/mine.pcapng,name=m"}`, 201, `"name": "m"`},
		{"DELETE", "/v1/mirrors/m", "", 200, "ok"},
		{"POST", "/v1/switches", `{"name": "b"}`, 201, `"name": "b"`},
	} {
		code, body := call(t, nobody, c.method, c.path, c.body)
		if code != c.code || !strings.Contains(body, c.want) {
			t.Errorf("%s %s %s as api_uid nobody: %d %.300s, want %d with %q", c.method, c.path, c.body, code, body, c.code, c.want)
		}
	}
	for _, f := range []string{sticky + "/mine.bess", sticky + "/mine.pcapng"} {
		var st syscall.Stat_t
		if err := syscall.Lstat(f, &st); err != nil || st.Uid != peertest.Nobody {
			t.Errorf("%s: owner %d, %v: want nobody's", f, st.Uid, err)
		}
	}
	for _, f := range []string{dir + "/root-only.bess", dir + "/root-only.pcapng", sticky + "/other.bess"} {
		if _, err := os.Lstat(f); err == nil {
			t.Errorf("%s exists", f)
		}
	}
	if len(in.Ports("a")) != 2 {
		t.Errorf("ports: %+v", in.Ports("a"))
	}
	// A member of api_gid's group may capture; another user may not.
	member := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return peertest.DialAs(t, 1234, 1234, []uint32{4242}, "unix", ctl)
		}}}
	if code, body := call(t, member, "POST", "/v1/fdb/flush", `{"all": true}`); code != 200 {
		t.Errorf("a member of api_gid: %d %s", code, body)
	}
	if code, _ := call(t, clientAs(t, 1234, 1234, ctl), "POST", "/v1/fdb/flush", `{"all": true}`); code != 403 {
		t.Errorf("a user in neither list: %d", code)
	}
}

// One user cannot hold more API connections than its bound, and root
// still gets in while it holds them.
func TestAPIConnectionLimit(t *testing.T) {
	dir, _ := publicDir(t)
	ctl := filepath.Join(dir, "a.ctl")
	log := porttest.Quiet()
	instancetest.Start(t, fmt.Sprintf(`
max_api_per_uid: 3
switches:
  - {name: a, ports: [{transport: daemon, path: %s, mode: "0777", name: ctl}]}
`, ctl), instance.Config{Logger: log, API: func(in *instance.Instance) instance.APIServer { return api.New(in, log) }})
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for i := 0; i < 3; i++ {
		c, err := peertest.DialAs(t, peertest.Nobody, peertest.Nobody, nil, "unix", ctl)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(c, "GET /v1/events HTTP/1.1\r\nHost: x\r\n\r\n")
		buf := make([]byte, 12)
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if n, _ := c.Read(buf); string(buf[:n]) != "HTTP/1.1 200" {
			t.Fatalf("event stream %d: %q", i, buf[:n])
		}
		held = append(held, c)
	}
	code, body := call(t, clientAs(t, peertest.Nobody, peertest.Nobody, ctl), "GET", "/v1/info", "")
	if code != 503 || !strings.Contains(body, "3 API connections for uid 65534") {
		t.Fatalf("fourth connection of nobody: %d %s", code, body)
	}
	if code, _ := call(t, unixClient(ctl), "GET", "/v1/info", ""); code != 200 {
		t.Fatalf("root while nobody is at its bound: %d", code)
	}
	held[0].Close()
	held = held[1:]
	deadline := time.Now().Add(5 * time.Second)
	for {
		code, _ := call(t, clientAs(t, peertest.Nobody, peertest.Nobody, ctl), "GET", "/v1/info", "")
		if code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("nobody's slot never came back after it closed a connection: %d", code)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A grant the configuration takes back on reload is gone for the next
// connection, also on a control socket the reload left open.
func TestReloadRevokesAPIGrant(t *testing.T) {
	dir, _ := publicDir(t)
	ctl := filepath.Join(dir, "a.ctl")
	log := porttest.Quiet()
	doc := func(grant string) string {
		return fmt.Sprintf("%sswitches:\n  - {name: a, ports: [{transport: daemon, path: %s, mode: \"0777\", name: ctl}]}\n", grant, ctl)
	}
	in := instancetest.Start(t, doc("api_uid: \"65534\"\n"), instance.Config{Logger: log,
		API: func(in *instance.Instance) instance.APIServer { return api.New(in, log) }})
	flush := func() int {
		code, _ := call(t, clientAs(t, peertest.Nobody, peertest.Nobody, ctl), "POST", "/v1/fdb/flush", `{"all": true}`)
		return code
	}
	if code := flush(); code != 200 {
		t.Fatalf("granted: %d", code)
	}
	plan, err := configs.Parse([]byte(doc("")))
	if err != nil {
		t.Fatal(err)
	}
	if err := in.Apply(plan); err != nil {
		t.Fatal(err)
	}
	if len(in.Ports("a")) != 1 {
		t.Fatalf("the reload reopened the socket: %+v", in.Ports("a"))
	}
	if code := flush(); code != 403 {
		t.Fatalf("after the grant was taken back: %d", code)
	}
}
