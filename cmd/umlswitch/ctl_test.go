package main

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/umlswitch/umlswitch/api"
	"github.com/umlswitch/umlswitch/frame"
	"github.com/umlswitch/umlswitch/instance"
	"github.com/umlswitch/umlswitch/instance/instancetest"
	"github.com/umlswitch/umlswitch/transports/daemon"
	"github.com/umlswitch/umlswitch/transports/porttest"
)

// ctlSwitch runs an instance with switches red (a daemon socket) and blue
// in the test's process and returns red's control socket.
func ctlSwitch(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	ctl := filepath.Join(dir, "red.ctl")
	log := porttest.Quiet()
	instancetest.Start(t, "switches:\n  - {name: red, ports: [{transport: daemon, path: "+ctl+", name: red}]}\n  - {name: blue}\n",
		instance.Config{Logger: log, API: func(in *instance.Instance) instance.APIServer { return api.New(in, log) }})
	return ctl
}

func ctlArgs(args ...string) (int, string, string) {
	var out, errb strings.Builder
	code := ctlMain(args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestCtlCommands(t *testing.T) {
	ctl := ctlSwitch(t)
	c, err := daemon.Dial(daemon.ClientConfig{Ctl: ctl})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Send(porttest.Ether(frame.Broadcast, frame.MAC{2, 0, 0, 0, 0, 1}, 60, 1))
	porttest.Eventually(t, "the frame counted", func() bool {
		_, out, _ := ctlArgs("-s", ctl, "ports")
		return strings.Contains(out, "red.1") && strings.Contains(out, "daemon  1 ")
	})
	dir := filepath.Dir(ctl)
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"info"}, "switch       red"},
		{[]string{"info"}, "refused      0 API requests"},
		{[]string{"switches"}, "red     learning  1"},
		{[]string{"-all", "switches"}, "blue"},
		{[]string{"ports"}, "listening on " + ctl + ", 1 clients"},
		{[]string{"fdb"}, "02:00:00:00:00:01  red.1"},
		{[]string{"-interval", "50ms", "rates"}, "red.1"},
		{[]string{"fdb", "add", "red", "02:00:00:00:00:09", "red.1"}, "ok"},
		{[]string{"fdb"}, "static"},
		{[]string{"fdb", "del", "red", "02:00:00:00:00:09"}, "ok"},
		{[]string{"fdb", "flush"}, "flushed 1"},
		{[]string{"-all", "fdb", "flush"}, "flushed 0"},
		{[]string{"port", "add", "-switch", "blue", "transport=bess,path=" + dir + "/b.bess,name=bb"}, "bb"},
		{[]string{"ports", "blue"}, "listening on " + dir + "/b.bess"},
		{[]string{"port", "del", "bb"}, "ok"},
		{[]string{"switch", "add", "green", "hub=1", "mac_age=30s"}, "green"},
		{[]string{"-all", "switches"}, "green   hub"},
		{[]string{"switch", "del", "green"}, "ok"},
		{[]string{"mirror", "add", "file=" + dir + "/x.pcapng,name=m"}, "m"},
		{[]string{"mirrors"}, "red     m"},
		{[]string{"mirror", "del", "m"}, "ok"},
		{[]string{"link", "red.1", "down"}, "ok"},
		{[]string{"ports"}, "down"},
		{[]string{"port", "set", "red.1", "link=up"}, "ok"},
	} {
		code, out, errs := ctlArgs(append([]string{"-s", ctl}, tt.args...)...)
		if code != 0 || !strings.Contains(out, tt.want) {
			t.Errorf("ctl %s: exit %d, want %q in:\n%s%s", strings.Join(tt.args, " "), code, tt.want, out, errs)
		}
	}
	// -json is the API's JSON.
	_, out, _ := ctlArgs("-s", ctl, "-json", "ports")
	var ports []instance.PortInfo
	if err := json.Unmarshal([]byte(out), &ports); err != nil || len(ports) != 2 || ports[1].Name != "red.1" || ports[1].RxFrames != 1 ||
		ports[1].LinkState != "up" || !strings.Contains(out, `"link_state": "up"`) {
		t.Fatalf("ports -json: %v\n%s", err, out)
	}
	// Errors: the API's message, status 1; a bad command line, status 2.
	for _, tt := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"port", "del", "nosuch"}, 1, "port nosuch: not found"},
		{[]string{"ports", "nosuch"}, 1, "switch nosuch: not found"},
		{[]string{"port", "add", "transport=tap"}, 1, "needs ifname="},
		{[]string{"frobnicate"}, 2, `"frobnicate" is not a command`},
		{[]string{"-all", "ports", "red"}, 2, "not both"},
		{[]string{"switch", "add", "x", "colour=red"}, 2, "unknown switch setting"},
		{[]string{"link", "red.1"}, 2, "link takes a port and a state: link NAME down|up"},
		{[]string{"link", "red.1", "sideways"}, 2, "the state is down or up"},
		{[]string{"link", "nosuch", "down"}, 1, "port nosuch: not found"},
	} {
		code, _, errs := ctlArgs(append([]string{"-s", ctl}, tt.args...)...)
		if code != tt.code || !strings.Contains(errs, tt.want) {
			t.Errorf("ctl %s: exit %d, want %d and %q:\n%s", strings.Join(tt.args, " "), code, tt.code, tt.want, errs)
		}
	}
	if code, _, errs := ctlArgs("-s", filepath.Join(t.TempDir(), "none.ctl"), "-timeout", time.Second.String(), "ports"); code != 1 ||
		!strings.Contains(errs, "is a switch running with that control socket?") {
		t.Errorf("no switch: exit %d: %s", code, errs)
	}
}

// ctl asks again while the switch answers 503 with Retry-After (an upgrade
// under way), up to -timeout; a 503 without it (over a limit) is final.
func TestCtlAsksAgainDuringAnUpgrade(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "fake.ctl")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	var asked, busyFor atomic.Int32
	busyFor.Store(2)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := asked.Add(1)
		switch {
		case r.URL.Path == "/v1/limit":
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, `{"error": "control API: over the limit"}`)
		case n <= busyFor.Load():
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, `{"error": "an upgrade is under way"}`)
		default:
			io.WriteString(w, `{"name": "b"}`)
		}
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	c := &ctl{out: io.Discard, client: apiClient(sock, 5*time.Second), timeout: 5 * time.Second}
	if err := c.do("POST", "/v1/switches", map[string]string{"name": "b"}, nil); err != nil || asked.Load() != 3 {
		t.Fatalf("after two 503s with Retry-After: %v, %d requests", err, asked.Load())
	}
	asked.Store(0)
	if err := c.do("GET", "/v1/limit", nil, nil); err == nil || !strings.Contains(err.Error(), "over the limit") || asked.Load() != 1 {
		t.Fatalf("a 503 without Retry-After: %v, %d requests", err, asked.Load())
	}
	asked.Store(0)
	busyFor.Store(1 << 30)
	c.timeout = 200 * time.Millisecond
	if err := c.do("GET", "/v1/switches", nil, nil); err == nil || !strings.Contains(err.Error(), "under way") {
		t.Fatalf("503s past -timeout: %v", err)
	}
}
