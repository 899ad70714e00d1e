package api_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/umlswitch/umlswitch/api"
	"github.com/umlswitch/umlswitch/frame"
	"github.com/umlswitch/umlswitch/instance"
	"github.com/umlswitch/umlswitch/instance/instancetest"
	"github.com/umlswitch/umlswitch/transports/daemon"
	"github.com/umlswitch/umlswitch/transports/porttest"
)

type rig struct {
	in       *instance.Instance
	ctl, ro  string
	client   *http.Client
	roClient *http.Client
}

func newRig(t *testing.T) *rig {
	t.Helper()
	dir := t.TempDir()
	r := &rig{ctl: filepath.Join(dir, "a.ctl"), ro: filepath.Join(dir, "ro.ctl")}
	log := porttest.Quiet()
	r.in = instancetest.Start(t, fmt.Sprintf(`
switches:
  - {name: a, ports: [{transport: daemon, path: %s, name: ctl}, {transport: daemon, path: %s, api: ro, name: ro}]}
  - {name: b}
`, r.ctl, r.ro), instance.Config{Logger: log, API: func(in *instance.Instance) instance.APIServer { return api.New(in, log) }})
	r.client, r.roClient = unixClient(r.ctl), unixClient(r.ro)
	return r
}

// dial attaches a daemon client to the rig's socket, closed at cleanup.
func (r *rig) dial(t *testing.T) *daemon.Client {
	t.Helper()
	c, err := daemon.Dial(daemon.ClientConfig{Ctl: r.ctl})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func unixClient(path string) *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", path)
		}}}
}

func call(t *testing.T, c *http.Client, method, path, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, "http://x"+path, strings.NewReader(body))
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestReadsAndWrites(t *testing.T) {
	r := newRig(t)
	code, body := call(t, r.client, "GET", "/v1/info", "")
	var info api.Info
	if json.Unmarshal([]byte(body), &info); code != 200 || info.Switch != "a" || info.Listener != "ctl" || info.Path != r.ctl {
		t.Fatalf("info %d %s", code, body)
	}
	dir := filepath.Dir(r.ctl)
	for _, c := range []struct {
		method, path, body string
		code               int
		want               string
	}{
		{"GET", "/v1/switches", "", 200, `"name": "b"`},
		{"GET", "/v1/ports?switch=a", "", 200, `"listening": "` + r.ctl},
		{"GET", "/v1/ports?switch=zz", "", 404, "switch zz: not found"},
		{"POST", "/v1/ports", `{"spec": "transport=bess,path=` + dir + `/b.bess"}`, 201, `"name": "bess0"`},
		{"POST", "/v1/ports", `{"spec": "transport=bess,path=` + dir + `/c.bess,name=bess0"}`, 409, "already exists"},
		{"POST", "/v1/ports", `{"switch": "b", "spec": "transport=bess,path=` + dir + `/c.bess"}`, 201, `"switch": "b"`},
		{"POST", "/v1/ports", `{"spec": "transport=tap"}`, 400, "needs ifname="},
		{"POST", "/v1/ports", `{"spec": "transport=daemon,path=/nonexistent/x.ctl"}`, 422, "nonexistent"},
		{"POST", "/v1/ports", `{"spec": "transport=bess,path=/tmp/x", "colour": 1}`, 400, `unknown field`},
		{"POST", "/v1/ports", `{"spec": 7}`, 400, "cannot unmarshal"},
		{"POST", "/v1/ports", `{"spec": "transport=bess,path=/tmp/x"} {}`, 400, "data after"},
		{"POST", "/v1/ports", `{`, 400, "unexpected EOF"},
		{"POST", "/v1/ports", `{"switch": "zz", "spec": "transport=bess,path=` + dir + `/d.bess"}`, 404, "switch zz"},
		{"DELETE", "/v1/ports/bess0", "", 200, "ok"},
		{"DELETE", "/v1/ports/bess0", "", 404, "not found"},
		{"POST", "/v1/switches", `{"name": "c", "hub": true, "mac_age": "10s"}`, 201, `"name": "c"`},
		{"POST", "/v1/switches", `{"name": "c"}`, 409, "exists"},
		{"POST", "/v1/switches", `{"name": "bad name"}`, 400, "name"},
		{"POST", "/v1/switches", `{"name": "d", "mac_age": "soon"}`, 400, "mac_age"},
		{"DELETE", "/v1/switches/c", "", 200, "ok"},
		{"POST", "/v1/fdb", `{"switch": "a", "mac": "02:00:00:00:00:01", "port": "nosuch"}`, 404, "port nosuch"},
		{"POST", "/v1/fdb", `{"switch": "a", "mac": "banana", "port": "x"}`, 400, "banana"},
		{"DELETE", "/v1/fdb/a/02:00:00:00:00:01", "", 404, "not found"},
		{"POST", "/v1/fdb/flush", `{"target": "a"}`, 200, `"flushed": 0`},
		{"POST", "/v1/fdb/flush", `{}`, 400, "target"},
		{"POST", "/v1/fdb/flush", `{"all": true}`, 200, "flushed"},
		{"POST", "/v1/mirrors", `{"spec": "file=` + dir + `/x.pcapng"}`, 201, `"name": "mirror0"`},
		{"GET", "/v1/mirrors", "", 200, `"switch": "a"`},
		{"DELETE", "/v1/mirrors/mirror0", "", 200, "ok"},
		{"POST", "/v1/reload", "", 422, "without a configuration"},
		{"GET", "/v1/nothing", "", 404, "see GET /v1/"},
		{"PUT", "/v1/ports", "", 404, "no such path PUT /v1/ports"},
		{"POST", "/v1/ports", `{"spec": "` + strings.Repeat("x", 10<<20) + `"}`, 413, "too large"},
	} {
		code, body := call(t, r.client, c.method, c.path, c.body)
		if code != c.code || !strings.Contains(body, c.want) {
			t.Errorf("%s %s %.60s: %d %.200s, want %d with %q", c.method, c.path, c.body, code, body, c.code, c.want)
		}
	}
	// The read-only socket reads, and refuses every write.
	if code, _ := call(t, r.roClient, "GET", "/v1/ports", ""); code != 200 {
		t.Fatalf("read on the read-only socket: %d", code)
	}
	for _, w := range [][2]string{{"POST", "/v1/switches"}, {"DELETE", "/v1/ports/ctl"}, {"POST", "/v1/fdb/flush"}, {"POST", "/v1/reload"}} {
		if code, body := call(t, r.roClient, w[0], w[1], `{"name": "x", "target": "a"}`); code != 403 || !strings.Contains(body, "read-only") {
			t.Errorf("%s %s on the read-only socket: %d %s", w[0], w[1], code, body)
		}
	}
}

// A thousand API clients at once, and clients that connect and say nothing
// (or half a request), while two UMLs exchange frames: every client gets
// its answer or is closed, and forwarding never stalls.
func TestHostileAPIClients(t *testing.T) {
	r := newRig(t)
	c1, c2 := r.dial(t), r.dial(t)

	var idle []net.Conn
	for i := 0; i < 20; i++ {
		c, err := net.Dial("unix", r.ctl)
		if err != nil {
			t.Fatal(err)
		}
		if i%2 == 1 {
			c.Write([]byte("GET /v1/ports HTTP/1.1\r\nHost: x\r\n")) // and never the blank line
		}
		idle = append(idle, c)
	}
	stop := make(chan struct{})
	var fwd sync.WaitGroup
	var sent, got int
	fwd.Add(1)
	go func() { // forwarding during the storm
		defer fwd.Done()
		b := make([]byte, 2048)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if c1.Send(porttest.Ether(frame.Broadcast, frame.MAC{2, 0, 0, 0, 0, 1}, 60, 1)) == nil {
				sent++
			}
			if n, err := c2.Recv(b, 50*time.Millisecond); err == nil && n > 0 {
				got++
			}
		}
	}()
	var wg sync.WaitGroup
	errs := make(chan error, 1000)
	for i := 0; i < 1000; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := r.client.Get("http://x/v1/ports")
			if err != nil {
				errs <- err
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				errs <- fmt.Errorf("status %d", resp.StatusCode)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("a concurrent client: %v", err)
		break
	}
	// The silent clients are closed within the handshake and header timeouts.
	for _, c := range idle {
		c.SetReadDeadline(time.Now().Add(8 * time.Second))
		if _, err := bufio.NewReader(c).ReadString('\n'); err == nil {
			// An HTTP 408 or nothing at all; either way the connection ends.
			if _, err := io.Copy(io.Discard, c); err != nil {
				t.Errorf("a silent client was not closed: %v", err)
			}
		} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Error("a silent client was still open after 8 s")
		}
		c.Close()
	}
	close(stop)
	fwd.Wait()
	if sent == 0 || got < sent/2 {
		t.Fatalf("forwarding during the storm: sent %d, received %d", sent, got)
	}
}

// The event stream shows a client's attach, its learned address and its
// detach.
func TestEventStream(t *testing.T) {
	r := newRig(t)
	resp, err := r.client.Get("http://x/v1/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	lines := make(chan instance.Event, 100)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			var ev instance.Event
			if json.Unmarshal(sc.Bytes(), &ev) == nil {
				lines <- ev
			}
		}
		close(lines)
	}()
	time.Sleep(50 * time.Millisecond) // subscribed
	c, err := daemon.Dial(daemon.ClientConfig{Ctl: r.ctl})
	if err != nil {
		t.Fatal(err)
	}
	c.Send(porttest.Ether(frame.Broadcast, frame.MAC{2, 0, 0, 0, 0, 7}, 60, 1))
	time.Sleep(50 * time.Millisecond)
	c.Close()
	want := []string{"port-attached", "mac-learned", "port-detached"}
	deadline := time.After(5 * time.Second)
	for len(want) > 0 {
		select {
		case ev, ok := <-lines:
			if !ok {
				t.Fatalf("stream ended; still waiting for %v", want)
			}
			if ev.Type == want[0] {
				if ev.Switch != "a" || !strings.HasPrefix(ev.Port, "ctl.") {
					t.Fatalf("event %+v", ev)
				}
				want = want[1:]
			}
		case <-deadline:
			t.Fatalf("no %v events", want)
		}
	}
}

// While an upgrade is under way, changes are refused with a 503 that asks
// to come again (the new switch would not have them); reads are answered.
// Once the upgrade has failed, changes are taken again.
func TestChangesRefusedDuringAnUpgrade(t *testing.T) {
	ctl := filepath.Join(t.TempDir(), "a.ctl")
	log := porttest.Quiet()
	entered, release := make(chan struct{}), make(chan error)
	in := instancetest.Start(t, fmt.Sprintf("switches: [{name: a, ports: [{transport: daemon, path: %s}]}]\n", ctl),
		instance.Config{Logger: log, API: func(in *instance.Instance) instance.APIServer { return api.New(in, log) },
			Upgrade: func(*instance.Instance) error {
				close(entered)
				return <-release
			}})
	client := unixClient(ctl)
	upgraded := make(chan error, 1)
	go func() { upgraded <- in.Upgrade() }()
	<-entered
	req, _ := http.NewRequest("POST", "http://x/v1/switches", strings.NewReader(`{"name": "b"}`))
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || !strings.Contains(string(body), "upgrade is under way") {
		t.Fatalf("a change during an upgrade: %d, Retry-After %q, %s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	if code, body := call(t, client, "GET", "/v1/switches", ""); code != 200 {
		t.Fatalf("a read during an upgrade: %d %s", code, body)
	}
	release <- fmt.Errorf("the new switch ended")
	if err := <-upgraded; err == nil {
		t.Fatal("the upgrade's failure was not returned")
	}
	if code, body := call(t, client, "POST", "/v1/switches", `{"name": "b"}`); code != 201 {
		t.Fatalf("a change after a failed upgrade: %d %s", code, body)
	}
}
