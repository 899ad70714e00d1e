package extcap

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// fakeAPI answers for sockets from a table; a socket missing from it
// does not answer, one in slow answers only once the context ends.
type fakeAPI struct {
	infos   map[string]SocketInfo
	ports   map[string][]Port // socket|switch
	slow    map[string]bool
	capture func(socket, sw string) (io.ReadCloser, error)
}

func (f *fakeAPI) Info(ctx context.Context, socket string) (SocketInfo, error) {
	if f.slow[socket] {
		<-ctx.Done()
		return SocketInfo{}, ctx.Err()
	}
	info, ok := f.infos[socket]
	if !ok {
		return SocketInfo{}, errors.New("connection refused")
	}
	return info, nil
}

func (f *fakeAPI) Ports(ctx context.Context, socket, sw string) ([]Port, error) {
	if _, ok := f.infos[socket]; !ok {
		return nil, errors.New("connection refused")
	}
	return f.ports[socket+"|"+sw], nil
}

func (f *fakeAPI) Capture(ctx context.Context, socket, sw string, _ Select) (io.ReadCloser, error) {
	if _, ok := f.infos[socket]; !ok {
		return nil, errors.New("connection refused")
	}
	return f.capture(socket, sw)
}

func lab() *fakeAPI {
	return &fakeAPI{
		// One process (pid 7) with switches A and B, each with its own
		// socket; another (pid 9) whose socket's switch is called A too.
		infos: map[string]SocketInfo{
			"/lab/A.ctl":   {PID: 7, Self: "A", MayCapture: true, Switches: []string{"A", "B"}},
			"/lab/B.ctl":   {PID: 7, Self: "B", MayCapture: true, Switches: []string{"A", "B"}},
			"/other/A.ctl": {PID: 9, Self: "A", Switches: []string{"A"}},
		},
		ports: map[string][]Port{"/lab/A.ctl|A": {{Name: "A.1", Kind: "daemon", Peer: "daemon#1 pid=42"}, {Name: "vx0", Kind: "vxlan"}}},
		slow:  map[string]bool{"/stopped.ctl": true},
	}
}

func TestList(t *testing.T) {
	api := lab()
	cfg := Config{API: api, Sockets: []string{"/var/run/none.ctl", "/stopped.ctl", "/lab/B.ctl", "/lab/A.ctl", "/other/A.ctl"},
		Timeout: 200 * time.Millisecond}
	start := time.Now()
	var names []string
	for _, i := range List(context.Background(), cfg) {
		names = append(names, i.Target.Name()+" "+i.Display)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("listing took %v with a socket that does not answer", d)
	}
	want := []string{
		"umlswitch:B@/lab/B.ctl umlswitch B (/lab/B.ctl)",
		"umlswitch:A@/lab/A.ctl umlswitch A (/lab/A.ctl)",
		"umlswitch:A@/other/A.ctl umlswitch A (/other/A.ctl, capturing not allowed for you)",
	}
	if !equal(names, want) {
		t.Errorf("interfaces:\n%s\nwant\n%s", strings.Join(names, "\n"), strings.Join(want, "\n"))
	}
	// A process's other switches go under the first of its sockets asked.
	cfg.Sockets = []string{"/lab/A.ctl"}
	cfg.PerPort = true
	names = nil
	for _, i := range List(context.Background(), cfg) {
		names = append(names, i.Target.Name()+" "+i.Display)
	}
	want = []string{
		"umlswitch:A@/lab/A.ctl umlswitch A (/lab/A.ctl)",
		"umlswitch:A/A.1@/lab/A.ctl umlswitch A port A.1: daemon#1 pid=42 (/lab/A.ctl)",
		"umlswitch:A/vx0@/lab/A.ctl umlswitch A port vx0 (/lab/A.ctl)",
		"umlswitch:B@/lab/A.ctl umlswitch B (/lab/A.ctl)",
	}
	if !equal(names, want) {
		t.Errorf("interfaces with ports:\n%s\nwant\n%s", strings.Join(names, "\n"), strings.Join(want, "\n"))
	}
}

func TestSockets(t *testing.T) {
	abs := func(s string) string {
		if !filepath.IsAbs(s) {
			return "/cwd/" + s
		}
		return s
	}
	got := Sockets("/var/run/uml.ctl", "/lab/A.ctl::lab/B.ctl: /var/run/uml.ctl:/lab/A.ctl", abs)
	if want := []string{"/var/run/uml.ctl", "/lab/A.ctl", "/cwd/lab/B.ctl"}; !equal(got, want) {
		t.Errorf("sockets %q, want %q", got, want)
	}
}

func run(t *testing.T, cfg Config, ctx context.Context, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Run(ctx, cfg, args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestRun(t *testing.T) {
	cfg := Config{API: lab(), Sockets: []string{"/lab/A.ctl"}, Version: "1.0", Timeout: 200 * time.Millisecond}
	ctx := context.Background()
	code, out, _ := run(t, cfg, ctx, "--extcap-interfaces", "--extcap-version=4.0")
	if code != 0 || !strings.HasPrefix(out, "extcap {version=1.0}") || !strings.Contains(out, "interface {value=umlswitch:B@/lab/A.ctl}") {
		t.Errorf("interfaces: %d\n%s", code, out)
	}
	// Nothing answers: an empty list, still status 0.
	if code, out, _ := run(t, Config{API: lab(), Sockets: []string{"/none"}}, ctx, "--extcap-interfaces"); code != 0 || strings.Contains(out, "interface") {
		t.Errorf("no switch: %d\n%s", code, out)
	}
	if code, out, _ := run(t, cfg, ctx, "--extcap-dlts", "--extcap-interface", "umlswitch:A@/lab/A.ctl"); code != 0 || !strings.Contains(out, "{name=EN10MB}") {
		t.Errorf("dlts: %d %q", code, out)
	}
	if code, out, _ := run(t, cfg, ctx, "--extcap-config", "--extcap-interface", "umlswitch:A@/lab/A.ctl"); code != 0 ||
		!strings.Contains(out, "value {arg=0}{value=vx0}") {
		t.Errorf("config: %d\n%s", code, out)
	}
	// The options of a switch that does not answer: no port to choose.
	if code, out, _ := run(t, cfg, ctx, "--extcap-config", "--extcap-interface", "umlswitch:A@/stopped.ctl"); code != 0 ||
		!strings.Contains(out, "{value=*}") || strings.Count(out, "value {arg=0}") != 1 {
		t.Errorf("config of a switch that does not answer: %d\n%s", code, out)
	}
	if code, _, errs := run(t, cfg, ctx, "--extcap-dlts", "--extcap-interface", "ciscodump"); code != 2 || !strings.Contains(errs, "not one of umlswitch's") {
		t.Errorf("another extcap's interface: %d %s", code, errs)
	}
	if code, _, errs := run(t, cfg, ctx, "--extcap-dlts"); code != 2 || !strings.Contains(errs, "no --extcap-interface") {
		t.Errorf("no interface: %d %s", code, errs)
	}
}

// The filter check: nothing for a valid filter, the reason on one line for
// an invalid one, status 0 both times (Wireshark reads other statuses as
// "cannot tell").
func TestRunChecksFilters(t *testing.T) {
	cfg := Config{API: lab(), Sockets: []string{"/lab/A.ctl"}}
	for _, tt := range []struct{ filter, want string }{
		{"icmp or arp", ""},
		{"", ""},
		{"icmp and", "syntax error"},
		{"inbound", "Direction option"},
	} {
		code, out, _ := run(t, cfg, context.Background(), "--extcap-capture-filter", tt.filter, "--extcap-interface", "umlswitch:A@/lab/A.ctl")
		if code != 0 || (tt.want == "") != (out == "") || !strings.Contains(out, tt.want) || strings.Count(out, "\n") > 1 {
			t.Errorf("filter %q: %d %q, want %q", tt.filter, code, out, tt.want)
		}
	}
}

// live is a capture body: the stream's header, then frames until closed
// (or until it ends by itself, as a switch that goes).
type live struct {
	mu     sync.Mutex
	r      *io.PipeReader
	w      *io.PipeWriter
	closed chan struct{}
	once   sync.Once
}

func newLive(frames int) *live {
	r, w := io.Pipe()
	l := &live{r: r, w: w, closed: make(chan struct{})}
	go func() {
		n := &ng{o: binary.LittleEndian}
		w.Write(n.shb().idb("A.1").idb("vx0").b)
		for i := 0; frames < 0 || i < frames; i++ {
			n.b = n.b[:0]
			n.epb(0, icmpFrame, 1).epb(1, arpFrame, 2)
			if _, err := w.Write(n.b); err != nil {
				return
			}
			time.Sleep(time.Millisecond)
		}
		w.Close() // the switch went
	}()
	return l
}

func (l *live) Read(b []byte) (int, error) { return l.r.Read(b) }
func (l *live) Close() error {
	l.once.Do(func() { close(l.closed) })
	return l.r.Close()
}

// fifo makes a fifo and reads what comes into it until stop.
func fifo(t *testing.T, stop <-chan struct{}) (path string, got func() []byte) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var buf bytes.Buffer
	done := make(chan struct{})
	go func() {
		defer close(done)
		f, err := os.Open(path)
		if err != nil {
			return
		}
		defer f.Close()
		b := make([]byte, 4096)
		for {
			select {
			case <-stop:
				return
			default:
			}
			n, err := f.Read(b)
			mu.Lock()
			buf.Write(b[:n])
			mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	return path, func() []byte {
		<-done
		mu.Lock()
		defer mu.Unlock()
		return bytes.Clone(buf.Bytes())
	}
}

func TestRunCaptures(t *testing.T) {
	api := lab()
	cfg := Config{API: api, Sockets: []string{"/lab/A.ctl"}, Timeout: time.Second}
	ifname := "umlswitch:A@/lab/A.ctl"

	// The switch goes after 5 frame pairs: what came is in the fifo,
	// filtered, and the extcap fails with a message.
	api.capture = func(socket, sw string) (io.ReadCloser, error) {
		if socket != "/lab/A.ctl" || sw != "A" {
			t.Errorf("capture of %s at %s", sw, socket)
		}
		return newLive(5), nil
	}
	path, got := fifo(t, nil)
	code, _, errs := run(t, cfg, context.Background(), "--capture", "--extcap-interface", ifname, "--fifo", path,
		"--extcap-capture-filter", "icmp")
	if code != 1 || !strings.Contains(errs, "umlswitch: switch A at /lab/A.ctl: the capture ended: the switch stopped") {
		t.Errorf("a switch that went: %d %s", code, errs)
	}
	if p := packets(t, got()); len(p) != 5 || p[0] != "A.1/ICMP" {
		t.Errorf("the fifo got %q, want 5 ICMP frames", p)
	}

	// Port and direction options, on a port's own interface.
	path, got = fifo(t, nil)
	code, _, _ = run(t, cfg, context.Background(), "--capture", "--extcap-interface", "umlswitch:A/vx0@/lab/A.ctl", "--fifo", path,
		"--direction", "out")
	if p := packets(t, got()); code != 1 || len(p) != 5 || p[0] != "vx0/ARP" {
		t.Errorf("port vx0 out: %d %q", code, p)
	}
	path, got = fifo(t, nil)
	code, _, _ = run(t, cfg, context.Background(), "--capture", "--extcap-interface", ifname, "--fifo", path, "--port", "A.1")
	if p := packets(t, got()); code != 1 || len(p) != 5 || p[0] != "A.1/ICMP" {
		t.Errorf("--port A.1: %d %q", code, p)
	}

	// Wireshark stops: SIGTERM (the context), or the fifo's reader goes.
	var body *live
	api.capture = func(socket, sw string) (io.ReadCloser, error) { body = newLive(-1); return body, nil }
	ctx, cancel := context.WithCancel(context.Background())
	path, got = fifo(t, nil)
	time.AfterFunc(200*time.Millisecond, cancel)
	if code, _, errs := run(t, cfg, ctx, "--capture", "--extcap-interface", ifname, "--fifo", path); code != 0 {
		t.Errorf("stopped by a signal: %d %s", code, errs)
	}
	if p := packets(t, got()); len(p) == 0 {
		t.Error("nothing came before the stop")
	}
	select {
	case <-body.closed:
	default:
		t.Error("the capture was not closed")
	}
	stop := make(chan struct{})
	path, _ = fifo(t, stop)
	time.AfterFunc(200*time.Millisecond, func() { close(stop) })
	if code, _, errs := run(t, cfg, context.Background(), "--capture", "--extcap-interface", ifname, "--fifo", path); code != 0 {
		t.Errorf("the reader went: %d %s", code, errs)
	}

	// Failures, each with the fifo opened and closed so that Wireshark
	// sees this process's message.
	api.capture = func(socket, sw string) (io.ReadCloser, error) {
		return nil, errors.New("capturing its traffic is for root")
	}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--extcap-interface", ifname}, "capturing its traffic is for root"},
		{[]string{"--extcap-interface", ifname, "--extcap-capture-filter", "icmp and"}, "syntax error"},
		{[]string{"--extcap-interface", ifname, "--port", "A.9"}, "no port A.9"},
		{[]string{"--extcap-interface", "umlswitch:A@/none.ctl"}, "connection refused"},
	} {
		path, got := fifo(t, nil)
		code, _, errs := run(t, cfg, context.Background(), append([]string{"--capture", "--fifo", path}, tt.args...)...)
		if code != 1 || !strings.Contains(errs, tt.want) {
			t.Errorf("%q: %d %s, want %q", tt.args, code, errs, tt.want)
		}
		if b := got(); len(b) != 0 {
			t.Errorf("%q: the fifo got %d bytes", tt.args, len(b))
		}
	}
}
