package web

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/umlswitch/umlswitch/api"
	"github.com/umlswitch/umlswitch/instance"
	"github.com/umlswitch/umlswitch/instance/instancetest"
	"github.com/umlswitch/umlswitch/transports/porttest"
)

type rig struct {
	s     *Server
	in    *instance.Instance
	base  string
	token string
}

// newRig serves the page of an instance with a port "p" (a bess listener)
// on a loopback port of its own.
func newRig(t *testing.T, writable bool) *rig {
	t.Helper()
	dir := t.TempDir()
	log := porttest.Quiet()
	var apiServer *api.Server
	in := instancetest.Start(t, fmt.Sprintf(`
switches:
  - {name: a, ports: [{transport: daemon, path: %s, name: ctl}, {transport: bess, path: %s, name: p}]}
  - {name: b}
`, filepath.Join(dir, "a.ctl"), filepath.Join(dir, "p.bess")),
		instance.Config{Logger: log, API: func(in *instance.Instance) instance.APIServer { apiServer = api.New(in, log); return apiServer }})
	tokenFile := filepath.Join(dir, "web-token")
	s, err := Serve(Config{Addr: "127.0.0.1:0", Writable: writable, TokenFile: tokenFile, Switch: "a"}, in, apiServer.Handler, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Close()
		if _, err := os.Stat(tokenFile); err == nil {
			t.Errorf("the token file is left after Close")
		}
	})
	tok, err := os.ReadFile(tokenFile)
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(tokenFile); st.Mode().Perm() != 0o600 {
		t.Errorf("token file mode %v, want 0600", st.Mode().Perm())
	}
	return &rig{s: s, in: in, base: "http://" + s.Addr().String(), token: strings.TrimSpace(string(tok))}
}

func (r *rig) do(t *testing.T, method, path, body string, token bool, host string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, r.base+path, strings.NewReader(body))
	if token {
		req.Header.Set("Authorization", "Bearer "+r.token)
	}
	if host != "" {
		req.Host = host
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestPageAndReads(t *testing.T) {
	r := newRig(t, false)
	for _, path := range []string{"/", "/app.js", "/style.css"} {
		if code, body := r.do(t, "GET", path, "", false, ""); code != 200 || len(body) == 0 {
			t.Errorf("GET %s: %d", path, code)
		}
	}
	code, body := r.do(t, "GET", "/v1/ports", "", false, "")
	if code != 200 || !strings.Contains(body, `"name": "p"`) {
		t.Errorf("GET /v1/ports without the token: %d %s", code, body)
	}
	var a Access
	_, body = r.do(t, "GET", "/web/access", "", false, "")
	if json.Unmarshal([]byte(body), &a) != nil || a.Token || a.Capture || a.Change || !strings.Contains(a.Why, "token") {
		t.Errorf("access without the token: %s", body)
	}
	_, body = r.do(t, "GET", "/web/access", "", true, "")
	if json.Unmarshal([]byte(body), &a) != nil || !a.Token || !a.Capture || a.Change || !strings.Contains(a.Why, "-web-rw") {
		t.Errorf("access with the token, read-only: %s", body)
	}
	if code, _ := r.do(t, "POST", "/", "", false, ""); code != http.StatusMethodNotAllowed {
		t.Errorf("POST /: %d", code)
	}
}

func TestRefusals(t *testing.T) {
	r := newRig(t, false)
	for _, c := range []struct {
		method, path, body string
		token              bool
		want               string
	}{
		{"PATCH", "/v1/ports/p", `{"set":"link=down"}`, true, "without -web-rw"},
		{"GET", "/v1/capture?switch=a", "", false, "needs the token"},
		{"POST", "/v1/ports", `{"spec":"transport=tap,ifname=x"}`, true, "changes only"},
		{"DELETE", "/v1/ports/p", "", true, "changes only"},
		{"POST", "/v1/upgrade", "", true, "changes only"},
	} {
		code, body := r.do(t, c.method, c.path, c.body, c.token, "")
		if code != http.StatusForbidden || !strings.Contains(body, c.want) {
			t.Errorf("%s %s: %d %s, want 403 with %q", c.method, c.path, code, body, c.want)
		}
	}
	if st := r.in.Ports("a"); len(st) == 0 {
		t.Fatal("no ports")
	}
}

func TestWritable(t *testing.T) {
	r := newRig(t, true)
	if code, body := r.do(t, "PATCH", "/v1/ports/p", `{"set":"link=down"}`, false, ""); code != http.StatusForbidden ||
		!strings.Contains(body, "token") {
		t.Errorf("a change without the token: %d %s", code, body)
	}
	if code, body := r.do(t, "PATCH", "/v1/ports/p", `{"set":"vlan=5"}`, true, ""); code != http.StatusBadRequest ||
		!strings.Contains(body, "not vlan=") {
		t.Errorf("a VLAN change: %d %s", code, body)
	}
	if code, body := r.do(t, "PATCH", "/v1/ports/p", `{"set":"link=down,loss=10%"}`, true, ""); code != 200 {
		t.Fatalf("link=down,loss=10%%: %d %s", code, body)
	}
	for _, p := range r.in.Ports("a") {
		if p.Name == "p" && !strings.Contains(p.Spec, "link=down") {
			t.Errorf("port p after the change: %s", p.Spec)
		}
	}
	code, body := r.do(t, "PATCH", "/v1/ports/p", strings.Repeat("x", 2*maxBody), true, "")
	if code != http.StatusRequestEntityTooLarge {
		t.Errorf("a large body: %d %s", code, body)
	}
	// The change is in the last events a page opened later sees.
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, body := r.do(t, "GET", "/web/events", "", false, "")
		if strings.Contains(body, `"link-down"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no link-down in /web/events: %s", body)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestCaptureWithToken(t *testing.T) {
	r := newRig(t, false)
	req, _ := http.NewRequest("GET", r.base+"/v1/capture?switch=a", nil)
	req.Header.Set("Authorization", "Bearer "+r.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var shb [4]byte
	if _, err := io.ReadFull(resp.Body, shb[:]); err != nil || shb != [4]byte{0x0a, 0x0d, 0x0d, 0x0a} {
		t.Errorf("capture: %v %x, want a pcapng section header", err, shb)
	}
}

func TestHostChecked(t *testing.T) {
	r := newRig(t, false)
	_, port, _ := net.SplitHostPort(r.s.Addr().String())
	for host, want := range map[string]int{
		"127.0.0.1:" + port:        200,
		"localhost:" + port:        200,
		"rebind.example:" + port:   http.StatusMisdirectedRequest,
		"127.0.0.1:1":              http.StatusMisdirectedRequest,
		"127.0.0.1.nip.io:" + port: http.StatusMisdirectedRequest,
	} {
		if code, _ := r.do(t, "GET", "/v1/ports", "", false, host); code != want {
			t.Errorf("Host %s: %d, want %d", host, code, want)
		}
	}
}

func TestHostAllowed(t *testing.T) {
	loopback := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8080}
	v6 := &net.TCPAddr{IP: net.IPv6loopback, Port: 8080}
	any := &net.TCPAddr{IP: net.IPv4zero, Port: 8080}
	lan := &net.TCPAddr{IP: net.IPv4(192, 0, 2, 7), Port: 8080}
	for _, c := range []struct {
		host, addr string
		bound      *net.TCPAddr
		want       bool
	}{
		{"127.0.0.1:8080", "127.0.0.1:8080", loopback, true},
		{"[::1]:8080", "[::1]:8080", v6, true},
		{"LOCALHOST:8080", "127.0.0.1:8080", loopback, true},
		{"localhost:8080", "192.0.2.7:8080", lan, false},
		{"lab.example:8080", "lab.example:8080", lan, true},
		{"lab.example.:8080", "lab.example:8080", lan, true},
		{"192.0.2.7:8080", "lab.example:8080", lan, true},
		{"other.example:8080", "lab.example:8080", lan, false},
		{"lab.example:8081", "lab.example:8080", lan, false},
		{"10.0.0.1:8080", "127.0.0.1:8080", loopback, false},
		{"10.0.0.1:8080", ":8080", any, true},
		{"localhost:8080", ":8080", any, true},
		{"evil.example:8080", ":8080", any, false},
		{"127.0.0.1", "127.0.0.1:8080", loopback, false},
		{":8080", ":8080", any, false},
		{"", "127.0.0.1:8080", loopback, false},
	} {
		if got := HostAllowed(c.host, c.addr, c.bound); got != c.want {
			t.Errorf("HostAllowed(%q, %q, %v) = %v, want %v", c.host, c.addr, c.bound, got, c.want)
		}
	}
}

func FuzzHostAllowed(f *testing.F) {
	for _, h := range []string{"127.0.0.1:8080", "[::1]:8080", "localhost:8080", "a.example:8080", "%", "[", ":"} {
		f.Add(h, "127.0.0.1:8080")
	}
	bound := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8080}
	f.Fuzz(func(t *testing.T, host, addr string) {
		if !HostAllowed(host, addr, bound) {
			return
		}
		// What passes names the port, and the configured name, the
		// address listened on or localhost: never some other name.
		h, port, err := net.SplitHostPort(host)
		if err != nil || port != "8080" {
			t.Fatalf("%q allowed", host)
		}
		want, _, _ := net.SplitHostPort(addr)
		h = strings.TrimSuffix(strings.ToLower(h), ".")
		if ip := net.ParseIP(h); !strings.EqualFold(h, strings.TrimSuffix(want, ".")) && h != "localhost" && (ip == nil || !ip.Equal(bound.IP)) {
			t.Fatalf("%q allowed for %q", host, addr)
		}
	})
}

func FuzzCheckChange(f *testing.F) {
	for _, b := range []string{`{"set":"link=down"}`, `{"set":"loss=10%,delay=5ms"}`, `{"set":"vlan=4"}`, `{}`, `[`} {
		f.Add([]byte(b))
	}
	allowed := changeable()
	f.Fuzz(func(t *testing.T, body []byte) {
		if checkChange(body) != nil {
			return
		}
		var req api.SetRequest
		if json.Unmarshal(body, &req) != nil {
			t.Fatalf("%q passed but is not JSON", body)
		}
		kv, _ := req.Pairs()
		for _, p := range kv {
			ok := false
			for _, k := range allowed {
				ok = ok || k == p[0]
			}
			if !ok {
				t.Fatalf("%q passed with key %q", body, p[0])
			}
		}
	})
}
