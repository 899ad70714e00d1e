package metrics

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/umlswitch/umlswitch/evpn"
	"github.com/umlswitch/umlswitch/instance"
	"github.com/umlswitch/umlswitch/instance/instancetest"
)

// fake is a Source whose counters the tests change between scrapes. It
// hands out copies, as the instance does.
type fake struct {
	mu       sync.Mutex
	switches []instance.SwitchInfo
	ports    []instance.PortInfo
	mirrors  []instance.MirrorInfo
	security instance.SecurityStats
	bgp      *instance.BGPInfo // nil: no evpn: block
	evpn     *instance.EVPNInfo
}

func (f *fake) BGPView() (instance.BGPInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.bgp == nil {
		return instance.BGPInfo{}, instance.ErrNoEVPN
	}
	b := *f.bgp
	b.Neighbors = slices.Clone(b.Neighbors)
	b.Stats.Ignored = maps.Clone(b.Stats.Ignored)
	return b, nil
}

func (f *fake) EVPNFabric() (instance.EVPNInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.evpn == nil {
		return instance.EVPNInfo{}, instance.ErrNoEVPN
	}
	e := *f.evpn
	e.VNIs = slices.Clone(e.VNIs)
	return e, nil
}

func (f *fake) Security() instance.SecurityStats {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.security
}

func (f *fake) Switches() []instance.SwitchInfo {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := slices.Clone(f.switches)
	for i := range out {
		if c := out[i].Capture; c != nil {
			cc := *c
			out[i].Capture = &cc
		}
	}
	return out
}

func (f *fake) Ports(sw string) []instance.PortInfo {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []instance.PortInfo
	for _, p := range f.ports {
		if sw == "" || p.Switch == sw {
			p.Drops = maps.Clone(p.Drops)
			out = append(out, p)
		}
	}
	return out
}

func (f *fake) Mirrors() []instance.MirrorInfo {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.mirrors)
}

func (f *fake) update(fn func(f *fake)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

func newFake() *fake {
	return &fake{
		switches: []instance.SwitchInfo{
			{Name: "sw0", MACTableSize: 4096, MACs: 3, Statics: 1, MACLearned: 10, MACMoved: 2, MACRefused: 1, MACEvicted: 4,
				Ports: 2, Mirrors: 1, Capture: &instance.CaptureInfo{Captured: 7, Dropped: 1}},
			{Name: "sw1", MACTableSize: 128, MACs: 1, Ports: 1},
		},
		ports: []instance.PortInfo{
			{Name: "tap0", Switch: "sw0", Kind: "tap", ID: 1, RxFrames: 100, RxBytes: 6400, TxFrames: 90, TxBytes: 5760,
				Drops: map[string]uint64{"tx-full": 3, "runt": 1}, Stalls: 2, Slowed: 1, HeldS: 0.25},
			{Name: "ctl", Switch: "sw0", Kind: "daemon", ID: -1, Listening: "/run/umlswitch/ctl", Clients: 2, Spec: "daemon:/run/umlswitch/ctl"},
			{Name: "ctl.1", Switch: "sw0", Kind: "daemon", ID: 2, Listener: "ctl", RxFrames: 5, RxBytes: 320, TxFrames: 6, TxBytes: 384,
				Drops: map[string]uint64{}},
			{Name: "gre0", Switch: "sw1", Kind: "gre", ID: 1, RxFrames: 1, RxBytes: 60, TxFrames: 2, TxBytes: 120},
		},
		mirrors: []instance.MirrorInfo{
			{Name: "m0", Switch: "sw0", Spec: "pcap:/tmp/x.pcap", Captured: 42, Dropped: 3},
		},
		bgp: &instance.BGPInfo{ASN: 65000, Neighbors: []evpn.Neighbor{
			{Address: netip.MustParseAddr("172.31.0.2"), State: "established"},
			{Address: netip.MustParseAddr("172.31.0.3"), State: "active"},
		}, Stats: evpn.Stats{Running: true, Neighbors: 2, Up: 1, Received: 5, Sent: 3, RemoteMACs: 2, VTEPs: 1,
			Ignored: map[string]uint64{"martian-next-hop": 4, "unknown-vni": 1}, Failures: 6}},
		evpn: &instance.EVPNInfo{VNIs: []evpn.VNIInfo{
			{Switch: "sw0", VNI: 100, VTEPs: []netip.Addr{netip.MustParseAddr("172.31.0.2")}},
			{Switch: "sw1", VNI: 200},
		}, Unknown: 7},
	}
}

type families map[string]*dto.MetricFamily

func scrape(t *testing.T, h http.Handler) families {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("scrape: status %d: %s", rec.Code, rec.Body)
	}
	return parse(t, rec.Body)
}

func parse(t *testing.T, r io.Reader) families {
	t.Helper()
	p := expfmt.NewTextParser(model.LegacyValidation)
	mfs, err := p.TextToMetricFamilies(r)
	if err != nil {
		t.Fatalf("parse scrape: %v", err)
	}
	return mfs
}

// find returns the series of name whose labels are exactly labels
// ("k=v" pairs).
func (mfs families) find(name string, labels ...string) (*dto.Metric, dto.MetricType, bool) {
	mf := mfs[name]
	if mf == nil {
		return nil, 0, false
	}
	want := make(map[string]string)
	for _, kv := range labels {
		k, v, _ := strings.Cut(kv, "=")
		want[k] = v
	}
	for _, m := range mf.Metric {
		got := make(map[string]string)
		for _, lp := range m.Label {
			got[lp.GetName()] = lp.GetValue()
		}
		if maps.Equal(got, want) {
			return m, mf.GetType(), true
		}
	}
	return nil, 0, false
}

func (mfs families) value(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	m, typ, ok := mfs.find(name, labels...)
	if !ok {
		t.Fatalf("no %s%v", name, labels)
	}
	switch typ {
	case dto.MetricType_COUNTER:
		return m.GetCounter().GetValue()
	case dto.MetricType_GAUGE:
		return m.GetGauge().GetValue()
	}
	t.Fatalf("%s: type %v", name, typ)
	return 0
}

// count is how many series of name carry all of labels.
func (mfs families) count(name string, labels ...string) int {
	n := 0
	for _, m := range mfs[name].GetMetric() {
		have := 0
		for _, kv := range labels {
			k, v, _ := strings.Cut(kv, "=")
			for _, lp := range m.Label {
				if lp.GetName() == k && lp.GetValue() == v {
					have++
				}
			}
		}
		if have == len(labels) {
			n++
		}
	}
	return n
}

type want struct {
	name   string
	typ    dto.MetricType
	labels []string
	v      float64
}

const (
	C = dto.MetricType_COUNTER
	G = dto.MetricType_GAUGE
)

func TestScrape(t *testing.T) {
	mfs := scrape(t, Handler(newFake()))
	tap0 := []string{"switch=sw0", "port=tap0", "kind=tap"}
	cl := []string{"switch=sw0", "port=ctl.1", "kind=daemon"}
	for _, w := range []want{
		{"umlswitch_port_rx_frames_total", C, tap0, 100},
		{"umlswitch_port_rx_bytes_total", C, tap0, 6400},
		{"umlswitch_port_tx_frames_total", C, tap0, 90},
		{"umlswitch_port_tx_bytes_total", C, tap0, 5760},
		{"umlswitch_port_stalls_total", C, tap0, 2},
		{"umlswitch_port_slowed_total", C, tap0, 1},
		{"umlswitch_port_hold_seconds_total", C, tap0, 0.25},
		{"umlswitch_port_drops_total", C, append(tap0, "reason=tx-full"), 3},
		{"umlswitch_port_drops_total", C, append(tap0, "reason=runt"), 1},
		{"umlswitch_port_rx_frames_total", C, cl, 5},
		{"umlswitch_port_tx_bytes_total", C, cl, 384},
		{"umlswitch_port_rx_frames_total", C, []string{"switch=sw1", "port=gre0", "kind=gre"}, 1},
		{"umlswitch_listener_clients", G, []string{"switch=sw0", "port=ctl", "kind=daemon"}, 2},
		{"umlswitch_switch_ports", G, []string{"switch=sw0"}, 2},
		{"umlswitch_switch_ports", G, []string{"switch=sw1"}, 1},
		{"umlswitch_mac_table_entries", G, []string{"switch=sw0"}, 3},
		{"umlswitch_mac_table_static_entries", G, []string{"switch=sw0"}, 1},
		{"umlswitch_mac_table_size", G, []string{"switch=sw0"}, 4096},
		{"umlswitch_mac_table_size", G, []string{"switch=sw1"}, 128},
		{"umlswitch_mac_learned_total", C, []string{"switch=sw0"}, 10},
		{"umlswitch_mac_moved_total", C, []string{"switch=sw0"}, 2},
		{"umlswitch_mac_table_refused_total", C, []string{"switch=sw0"}, 1},
		{"umlswitch_mac_table_evicted_total", C, []string{"switch=sw0"}, 4},
		{"umlswitch_capture_frames_total", C, []string{"switch=sw0"}, 7},
		{"umlswitch_capture_dropped_frames_total", C, []string{"switch=sw0"}, 1},
		{"umlswitch_mirror_frames_total", C, []string{"switch=sw0", "mirror=m0"}, 42},
		{"umlswitch_mirror_dropped_frames_total", C, []string{"switch=sw0", "mirror=m0"}, 3},
		{"umlswitch_switches", G, nil, 2},
		{"umlswitch_ports_attached", G, nil, 3},
		{"umlswitch_bgp_neighbor_up", G, []string{"neighbor=172.31.0.2"}, 1},
		{"umlswitch_bgp_neighbor_up", G, []string{"neighbor=172.31.0.3"}, 0},
		{"umlswitch_evpn_routes_received", G, nil, 5},
		{"umlswitch_evpn_routes_sent", G, nil, 3},
		{"umlswitch_evpn_remote_macs", G, nil, 2},
		{"umlswitch_evpn_vteps", G, []string{"switch=sw0", "vni=100"}, 1},
		{"umlswitch_evpn_vteps", G, []string{"switch=sw1", "vni=200"}, 0},
		{"umlswitch_evpn_ignored_routes_total", C, []string{"reason=martian-next-hop"}, 4},
		{"umlswitch_evpn_ignored_routes_total", C, []string{"reason=unknown-vni"}, 1},
		{"umlswitch_evpn_dataplane_failures_total", C, nil, 6},
		{"umlswitch_evpn_unknown_vtep_packets_total", C, nil, 7},
	} {
		m, typ, ok := mfs.find(w.name, w.labels...)
		if !ok {
			t.Errorf("no %s%v", w.name, w.labels)
			continue
		}
		if typ != w.typ {
			t.Errorf("%s%v: type %v, want %v", w.name, w.labels, typ, w.typ)
			continue
		}
		if v := mfs.value(t, w.name, w.labels...); v != w.v {
			t.Errorf("%s%v = %v, want %v", w.name, w.labels, v, w.v)
		}
		_ = m
	}

	// Drops: one series per reason present, none for a port without drops.
	if n := mfs.count("umlswitch_port_drops_total", "switch=sw0", "port=tap0"); n != 2 {
		t.Errorf("tap0 has %d drop series, want 2", n)
	}
	if n := mfs.count("umlswitch_port_drops_total", "port=ctl.1") + mfs.count("umlswitch_port_drops_total", "port=gre0"); n != 0 {
		t.Errorf("ports without drops have %d drop series", n)
	}
	// Capture: only for a switch that has one.
	if n := mfs.count("umlswitch_capture_frames_total", "switch=sw1"); n != 0 {
		t.Errorf("sw1 has no capture, yet %d series", n)
	}
	// The listener only has its clients.
	for name, mf := range mfs {
		if name == "umlswitch_listener_clients" {
			if len(mf.Metric) != 1 {
				t.Errorf("%d listener series, want 1", len(mf.Metric))
			}
			continue
		}
		if n := mfs.count(name, "port=ctl"); n != 0 {
			t.Errorf("listener ctl has %d series of %s", n, name)
		}
	}
	// Conventions: one-line Help on every family, counters end in _total.
	for name, mf := range mfs {
		if !strings.HasPrefix(name, "umlswitch_") {
			continue
		}
		if mf.GetHelp() == "" || strings.Contains(mf.GetHelp(), "\n") {
			t.Errorf("%s: help %q", name, mf.GetHelp())
		}
		if (mf.GetType() == C) != strings.HasSuffix(name, "_total") {
			t.Errorf("%s: type %v", name, mf.GetType())
		}
	}
	problems, err := promlint.NewWithMetricFamilies(umlswitchOnly(mfs)).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
	// The runtime's and the process's metrics come along.
	if _, ok := mfs["go_goroutines"]; !ok {
		t.Error("no go_goroutines")
	}
	if _, ok := mfs["process_start_time_seconds"]; !ok && runtime.GOOS == "linux" {
		t.Error("no process_start_time_seconds")
	}
}

func umlswitchOnly(mfs families) []*dto.MetricFamily {
	var out []*dto.MetricFamily
	for name, mf := range mfs {
		if strings.HasPrefix(name, "umlswitch_") {
			out = append(out, mf)
		}
	}
	return out
}

func TestScrapeIncreases(t *testing.T) {
	f := newFake()
	h := Handler(f)
	before := scrape(t, h)
	f.update(func(f *fake) {
		p := &f.ports[0]
		p.RxFrames += 5
		p.RxBytes += 320
		p.TxFrames += 7
		p.TxBytes += 448
		p.Drops["tx-full"] += 2
		p.Drops["hairpin"] = 1
		p.HeldS += 1.5
		f.switches[0].MACLearned += 3
		f.switches[0].Capture.Captured += 9
		f.mirrors[0].Captured += 11
		f.ports[1].Clients = 5
	})
	after := scrape(t, h)
	tap0 := []string{"switch=sw0", "port=tap0", "kind=tap"}
	for _, c := range []struct {
		name   string
		labels []string
		delta  float64
	}{
		{"umlswitch_port_rx_frames_total", tap0, 5},
		{"umlswitch_port_rx_bytes_total", tap0, 320},
		{"umlswitch_port_tx_frames_total", tap0, 7},
		{"umlswitch_port_tx_bytes_total", tap0, 448},
		{"umlswitch_port_drops_total", append(tap0, "reason=tx-full"), 2},
		{"umlswitch_port_drops_total", append(tap0, "reason=runt"), 0},
		{"umlswitch_port_hold_seconds_total", tap0, 1.5},
		{"umlswitch_mac_learned_total", []string{"switch=sw0"}, 3},
		{"umlswitch_capture_frames_total", []string{"switch=sw0"}, 9},
		{"umlswitch_mirror_frames_total", []string{"switch=sw0", "mirror=m0"}, 11},
		{"umlswitch_listener_clients", []string{"switch=sw0", "port=ctl", "kind=daemon"}, 3},
	} {
		b, a := before.value(t, c.name, c.labels...), after.value(t, c.name, c.labels...)
		if a-b != c.delta {
			t.Errorf("%s%v: %v then %v, want +%v", c.name, c.labels, b, a, c.delta)
		}
	}
	if _, _, ok := before.find("umlswitch_port_drops_total", append(tap0, "reason=hairpin")...); ok {
		t.Error("hairpin drops before there were any")
	}
	if v := after.value(t, "umlswitch_port_drops_total", append(tap0, "reason=hairpin")...); v != 1 {
		t.Errorf("hairpin drops %v, want 1", v)
	}
}

// Entries with the same labels, which the instance should never report, and
// label values that are not UTF-8 must not fail the scrape.
func TestScrapeNeverFails(t *testing.T) {
	f := newFake()
	f.update(func(f *fake) {
		f.switches = append(f.switches, instance.SwitchInfo{Name: "sw0", Ports: 99, MACs: 99})
		f.ports = append(f.ports,
			instance.PortInfo{Name: "tap0", Switch: "sw0", Kind: "raw", ID: 7, RxFrames: 999},
			instance.PortInfo{Name: "ctl", Switch: "sw0", Kind: "daemon", ID: -1, Listening: "/elsewhere", Clients: 9},
			instance.PortInfo{Name: "bad\xff", Switch: "sw\xfe", Kind: "tap", ID: 3, RxFrames: 1,
				Drops: map[string]uint64{"ok": 1, "no\xff": 2}},
			instance.PortInfo{Name: "bad\xfe", Switch: "sw\xfe", Kind: "tap", ID: 4, RxFrames: 2},
			instance.PortInfo{Name: "unattached", Switch: "sw1", Kind: "tap", ID: -1}, // neither port nor listener
		)
		f.mirrors = append(f.mirrors, instance.MirrorInfo{Name: "m0", Switch: "sw0", Captured: 999})
	})
	mfs := scrape(t, Handler(f))
	for _, c := range []struct {
		name   string
		labels []string
		v      float64
	}{
		{"umlswitch_switch_ports", []string{"switch=sw0"}, 2},
		{"umlswitch_mac_table_entries", []string{"switch=sw0"}, 3},
		{"umlswitch_port_rx_frames_total", []string{"switch=sw0", "port=tap0", "kind=tap"}, 100},
		{"umlswitch_listener_clients", []string{"switch=sw0", "port=ctl", "kind=daemon"}, 2},
		{"umlswitch_mirror_frames_total", []string{"switch=sw0", "mirror=m0"}, 42},
		{"umlswitch_port_rx_frames_total", []string{"switch=sw\uFFFD", "port=bad\uFFFD", "kind=tap"}, 1},
		{"umlswitch_port_drops_total", []string{"switch=sw\uFFFD", "port=bad\uFFFD", "kind=tap", "reason=ok"}, 1},
		{"umlswitch_switches", nil, 2},
		{"umlswitch_ports_attached", nil, 3},
	} {
		if v := mfs.value(t, c.name, c.labels...); v != c.v {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, v, c.v)
		}
	}
	if n := mfs.count("umlswitch_port_rx_frames_total", "port=tap0"); n != 1 {
		t.Errorf("%d series for tap0", n)
	}
	if n := mfs.count("umlswitch_port_drops_total", "port=bad\uFFFD"); n != 1 {
		t.Errorf("%d drop series for bad\\uFFFD, want 1", n)
	}
	if n := mfs.count("umlswitch_port_rx_frames_total", "port=unattached"); n != 0 {
		t.Errorf("%d series for an unattached entry", n)
	}
	if v := mfs.value(t, "promhttp_metric_handler_errors_total", "cause=gathering"); v != 0 {
		t.Errorf("%v gathering errors", v)
	}
}

// The pedantic registry checks that what Collect emits is what Describe
// announced, and that no two series collide.
func TestCollectorPedantic(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(NewCollector(newFake()))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if len(mfs) != len(allDescs) {
		t.Errorf("%d families, want %d: every desc used by the fake", len(mfs), len(allDescs))
	}
	// The refusals of local users, by what was refused.
	f := newFake()
	f.security = instance.SecurityStats{APIRefused: 3, APIOverLimit: 2, ClientsRefused: 1, NotAllowed: 4}
	reg = prometheus.NewPedanticRegistry()
	reg.MustRegister(NewCollector(f))
	if mfs, err = reg.Gather(); err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "umlswitch_refused_total" {
			continue
		}
		got := map[string]float64{}
		for _, m := range mf.GetMetric() {
			got[m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
		}
		if got["api_request"] != 3 || got["api_connection"] != 2 || got["client"] != 1 || got["not_allowed"] != 4 {
			t.Errorf("umlswitch_refused_total %v", got)
		}
	}
	// Nothing at all must not fail either.
	reg = prometheus.NewPedanticRegistry()
	reg.MustRegister(NewCollector(&fake{}))
	if _, err := reg.Gather(); err != nil {
		t.Fatal(err)
	}
}

func get(t *testing.T, c *http.Client, url string) (int, string) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp.StatusCode, string(b)
}

func TestServeTCP(t *testing.T) {
	s, err := Serve("127.0.0.1:0", 0, newFake(), nil)
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + s.Addr().String()
	c := &http.Client{Timeout: 5 * time.Second}
	code, body := get(t, c, base+"/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	if v := parse(t, strings.NewReader(body)).value(t, "umlswitch_switches"); v != 2 {
		t.Errorf("umlswitch_switches %v", v)
	}
	if code, body := get(t, c, base+"/"); code != 200 || !strings.Contains(body, "/metrics") {
		t.Errorf("/: %d %q", code, body)
	}
	if code, _ := get(t, c, base+"/other"); code != 404 {
		t.Errorf("/other: %d", code)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	c.CloseIdleConnections()
	if _, err := c.Get(base + "/metrics"); err == nil {
		t.Error("still serving after Close")
	}
}

func unixClient(path string) *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
	}}
}

func TestServeUnix(t *testing.T) {
	path := filepath.Join(t.TempDir(), "metrics.sock")
	s, err := Serve("unix:"+path, 0o660, newFake(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Addr().Network() != "unix" || s.Addr().String() != path {
		t.Errorf("Addr %s %s", s.Addr().Network(), s.Addr())
	}
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != fs.ModeSocket || fi.Mode().Perm() != 0o660 {
		t.Errorf("socket mode %v, want socket 0660", fi.Mode())
	}
	c := unixClient(path)
	code, body := get(t, c, "http://metrics/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	if v := parse(t, strings.NewReader(body)).value(t, "umlswitch_ports_attached"); v != 3 {
		t.Errorf("umlswitch_ports_attached %v", v)
	}

	// A second server on the live one's socket fails, and leaves it be.
	s2, err := Serve("unix:"+path, 0, newFake(), nil)
	if err == nil {
		s2.Close()
		t.Fatal("second Serve on a live socket succeeded")
	}
	if !strings.HasPrefix(err.Error(), "metrics: listen unix:"+path+": ") || !strings.Contains(err.Error(), "in use") {
		t.Errorf("second Serve: %v", err)
	}
	if code, _ := get(t, c, "http://metrics/metrics"); code != 200 {
		t.Errorf("first server after the second's attempt: %d", code)
	}

	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("socket after Close: %v", err)
	}
}

func TestServeUnixStale(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "stale.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close() // the file stays, nobody listens: a switch that died
	if _, err := os.Lstat(path); err != nil {
		t.Fatal(err)
	}
	s, err := Serve("unix:"+path, 0, newFake(), nil)
	if err != nil {
		t.Fatalf("Serve over a stale socket: %v", err)
	}
	if code, _ := get(t, unixClient(path), "http://metrics/"); code != 200 {
		t.Errorf("/: %d", code)
	}
	s.Close()

	// A file that is not a socket is never removed.
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	if s, err := Serve("unix:"+file, 0, newFake(), nil); err == nil {
		s.Close()
		t.Fatal("Serve over a regular file succeeded")
	} else if !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("Serve over a regular file: %v", err)
	}
	if b, err := os.ReadFile(file); err != nil || string(b) != "keep" {
		t.Errorf("regular file after Serve: %q %v", b, err)
	}
}

func TestServeBadAddr(t *testing.T) {
	for _, addr := range []string{"", "localhost", "9100", "unix:", "127.0.0.1:99999", "unix:" + filepath.Join(t.TempDir(), "no", "such", "dir")} {
		s, err := Serve(addr, 0, newFake(), nil)
		if err == nil {
			s.Close()
			t.Errorf("Serve(%q) succeeded", addr)
			continue
		}
		if !strings.HasPrefix(err.Error(), "metrics: listen "+addr+": ") {
			t.Errorf("Serve(%q): %v", addr, err)
		}
	}
}

// static is a Source that hands out the same slices, so that the
// benchmark measures the collector, not the copies.
type static struct {
	switches []instance.SwitchInfo
	ports    []instance.PortInfo
	mirrors  []instance.MirrorInfo
}

func (s *static) Switches() []instance.SwitchInfo  { return s.switches }
func (s *static) Ports(string) []instance.PortInfo { return s.ports }
func (s *static) Mirrors() []instance.MirrorInfo   { return s.mirrors }

// big is 100 switches with 10 ports each, two drop reasons per port, a
// capture and a mirror per switch.
func big() *static {
	s := &static{}
	for i := range 100 {
		sw := fmt.Sprintf("sw%d", i)
		s.switches = append(s.switches, instance.SwitchInfo{Name: sw, MACTableSize: 4096, MACs: 10, Ports: 10,
			MACLearned: 1000, Capture: &instance.CaptureInfo{Captured: 5}})
		for j := range 10 {
			s.ports = append(s.ports, instance.PortInfo{Name: fmt.Sprintf("p%d", j), Switch: sw, Kind: "daemon", ID: j + 1,
				RxFrames: 1e6, RxBytes: 1e9, TxFrames: 1e6, TxBytes: 1e9, HeldS: 0.5,
				Drops: map[string]uint64{"tx-full": 10, "hairpin": 3}})
		}
		s.mirrors = append(s.mirrors, instance.MirrorInfo{Name: "m", Switch: sw, Captured: 100})
	}
	return s
}

func BenchmarkCollect(b *testing.B) {
	c := NewCollector(big())
	ch := make(chan prometheus.Metric, 1<<15)
	n := 0
	b.ReportAllocs()
	for b.Loop() {
		c.Collect(ch)
		n = len(ch)
		for range n {
			<-ch
		}
	}
	b.ReportMetric(float64(n), "series/op")
}

// BenchmarkScrape is a whole scrape of Handler: gathering, the runtime's and
// the process's metrics, and encoding.
func BenchmarkScrape(b *testing.B) {
	h := Handler(big())
	req := httptest.NewRequest("GET", "/metrics", nil)
	b.ReportAllocs()
	for b.Loop() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != 200 {
			b.Fatal(rec.Code)
		}
	}
}

// Without a mode the metrics socket is the switch's user's only.
func TestServeUnixDefaultMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "metrics.sock")
	s, err := Serve("unix:"+path, 0, newFake(), nil)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Lstat(path)
	if err != nil || fi.Mode().Perm() != DefaultUnixMode {
		t.Fatalf("socket %v (%v), want %04o", fi, err, DefaultUnixMode)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(path); !os.IsNotExist(err) {
		t.Fatalf("socket left after Close: %v", err)
	}
}

// Without an evpn: block there is no EVPN series at all.
func TestScrapeWithoutEVPN(t *testing.T) {
	f := newFake()
	f.update(func(f *fake) { f.bgp, f.evpn = nil, nil })
	mfs := scrape(t, Handler(f))
	for name := range mfs {
		if strings.HasPrefix(name, "umlswitch_bgp_") || strings.HasPrefix(name, "umlswitch_evpn_") {
			t.Errorf("%s without evpn:", name)
		}
	}
	if _, ok := mfs["umlswitch_switches"]; !ok {
		t.Error("no umlswitch_switches")
	}
}

// A real instance: switch a (VNI 100) whose neighbour never answers, then
// a session with a second speaker that announces a VTEP and an address.
func TestScrapeInstanceEVPN(t *testing.T) {
	if !instancetest.IsolateEVPN(t) {
		return
	}
	peer := instancetest.NewEVPNPeer(t, 100)
	in := instancetest.Start(t, "switches:\n  - {name: a, vni: 100}\n"+peer.EVPNBlock(), instance.Config{})
	h := Handler(in)
	mfs := scrape(t, h)
	for _, w := range []want{
		{"umlswitch_bgp_neighbor_up", G, []string{"neighbor=127.0.0.2"}, 0},
		{"umlswitch_evpn_routes_received", G, nil, 0},
		{"umlswitch_evpn_routes_sent", G, nil, 1}, // a's type-3 route
		{"umlswitch_evpn_vteps", G, []string{"switch=a", "vni=100"}, 0},
		{"umlswitch_evpn_remote_macs", G, nil, 0},
		{"umlswitch_evpn_dataplane_failures_total", C, nil, 0},
	} {
		if v := mfs.value(t, w.name, w.labels...); v != w.v {
			t.Errorf("before the session: %s%v = %v, want %v", w.name, w.labels, v, w.v)
		}
	}
	peer.Start(t)
	instancetest.WaitFor(t, "the session up and the peer's routes in", func() bool {
		mfs = scrape(t, h)
		m, _, ok := mfs.find("umlswitch_evpn_remote_macs")
		return ok && m.GetGauge().GetValue() == 1
	})
	for _, w := range []want{
		{"umlswitch_bgp_neighbor_up", G, []string{"neighbor=127.0.0.2"}, 1},
		{"umlswitch_evpn_routes_received", G, nil, 2},
		{"umlswitch_evpn_vteps", G, []string{"switch=a", "vni=100"}, 1},
	} {
		if v := mfs.value(t, w.name, w.labels...); v != w.v {
			t.Errorf("with the session: %s%v = %v, want %v", w.name, w.labels, v, w.v)
		}
	}
	problems, err := promlint.NewWithMetricFamilies(umlswitchOnly(mfs)).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
}
