package bench

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseVmRSS(t *testing.T) {
	status := "Name:\tumlswitch\nVmPeak:\t 1300000 kB\nVmRSS:\t   22904 kB\nRssAnon:\t 9000 kB\n"
	got, err := parseVmRSS(status)
	if err != nil || got != 22904<<10 {
		t.Fatalf("got %d, %v; want %d", got, err, 22904<<10)
	}
	for _, bad := range []string{"Name:\tkworker/0:1\n", "VmRSS:\t 12 MB\n", "VmRSS:\t x kB\n", "VmRSS:\n"} {
		if _, err := parseVmRSS(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	// This process's own, as the soak reads the switch's.
	if rss, err := readRSS(os.Getpid()); err != nil || rss == 0 {
		t.Fatalf("own rss %d, %v", rss, err)
	}
	if n, err := countFDs(os.Getpid()); err != nil || n < 3 {
		t.Fatalf("own descriptors %d, %v", n, err)
	}
}

const scrapeText = `# HELP go_goroutines Number of goroutines that currently exist.
# TYPE go_goroutines gauge
go_goroutines 31
# TYPE umlswitch_port_tx_frames_total counter
umlswitch_port_tx_frames_total{kind="daemon",port="daemon 1",switch="default"} 1000
umlswitch_port_tx_frames_total{kind="bess",port="bess} 2",switch="default"} 500
# TYPE umlswitch_port_drops_total counter
umlswitch_port_drops_total{kind="daemon",port="daemon 1",reason="full",switch="default"} 7
umlswitch_port_drops_total{kind="daemon",port="daemon 1",reason="mtu",switch="default"} 0
`

func TestParseSwitchMetrics(t *testing.T) {
	m, err := parseSwitchMetrics(strings.NewReader(scrapeText))
	if err != nil {
		t.Fatal(err)
	}
	if m.goroutines != 31 || len(m.forwarded) != 2 || len(m.dropped) != 2 {
		t.Fatalf("%+v", m)
	}
	if v := m.forwarded["kind=bess,port=bess} 2,switch=default"]; v != 500 {
		t.Fatalf("bess series %v in %v", v, m.forwarded)
	}
	if increase(nil, m.forwarded) != 1500 || increase(nil, m.dropped) != 7 {
		t.Fatalf("totals %d, %d", increase(nil, m.forwarded), increase(nil, m.dropped))
	}
	// A switch with no ports yet has no port series: zero, not an error.
	if m, err := parseSwitchMetrics(strings.NewReader("go_goroutines 9\n")); err != nil || m.goroutines != 9 || len(m.forwarded) != 0 {
		t.Fatalf("%+v, %v", m, err)
	}
	for _, bad := range []string{"", "umlswitch_port_tx_frames_total{port=\"a\"} 1\n", "go_goroutines{\n",
		"# TYPE umlswitch_port_drops_total gauge\ngo_goroutines 1\numlswitch_port_drops_total 3\n"} {
		if _, err := parseSwitchMetrics(strings.NewReader(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// Counters add up per series, as Prometheus's increase(): a port that left
// takes its count with it, one that came counts from zero, and one whose
// count went down is a new port of the same name.
func TestIncrease(t *testing.T) {
	prev := seriesValues{"a": 100, "b": 50, "gone": 1000}
	cur := seriesValues{"a": 130, "b": 20, "new": 5}
	if got := increase(prev, cur); got != 30+20+5 {
		t.Fatalf("increase %d, want 55", got)
	}
	if got := increase(prev, prev); got != 0 {
		t.Fatalf("no change: %d", got)
	}
}

// soakOf makes samples a minute apart with the given measures.
func soakOf(rssMB []float64, fds, goroutines []int) []SoakSample {
	out := make([]SoakSample, len(rssMB))
	for i := range out {
		out[i] = SoakSample{At: time.Duration(i) * time.Minute, RSS: uint64(rssMB[i] * 1e6), FDs: fds[i], Goroutines: goroutines[i]}
	}
	return out
}

func TestSoakVerdict(t *testing.T) {
	for _, c := range []struct {
		name    string
		samples []SoakSample
		want    []string
		notWant []string
	}{
		{"flat", soakOf([]float64{10, 20, 21, 20.5, 21, 20.9}, []int{20, 27, 27, 28, 27, 27}, []int{25, 30, 31, 30, 30, 30}),
			// from the end of the first interval (20 MB, 27, 30), not from the start
			[]string{"rss +0.9 MB, fds +0, goroutines +0 (1:00 to 5:00)", "no steady growth"}, []string{"LEAK"}},
		{"fds leak", soakOf([]float64{10, 20, 20, 20, 20, 20}, []int{20, 27, 28, 29, 30, 31}, []int{25, 30, 30, 30, 30, 30}),
			[]string{"fds +4", "LEAK? fds rose in every one of the 4 intervals"}, []string{"rss rose", "goroutines rose"}},
		{"both leak", soakOf([]float64{10, 20, 20.1, 20.2, 20.3}, []int{20, 27, 27, 27, 27}, []int{25, 30, 31, 32, 33}),
			[]string{"rss +0.3 MB", "goroutines +3", "LEAK? rss, goroutines rose in every one of the 3 intervals"}, nil},
		// a rise that paused once is growth, not a steady one
		{"pause", soakOf([]float64{10, 20, 20, 20, 20, 20}, []int{20, 27, 28, 28, 29, 30}, []int{25, 30, 30, 30, 30, 30}),
			[]string{"fds +3", "no steady growth"}, []string{"LEAK"}},
		{"short", soakOf([]float64{10, 20, 21, 22}, []int{1, 2, 3, 4}, []int{1, 1, 1, 1}),
			[]string{"fds +2", "too short to tell a leak (2 intervals after the first; it takes 3)"}, []string{"LEAK"}},
		{"too few", soakOf([]float64{10, 20}, []int{1, 2}, []int{1, 1}), []string{"too few samples"}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := soakVerdict(c.samples)
			for _, w := range c.want {
				if !strings.Contains(got, w) {
					t.Errorf("%q lacks %q", got, w)
				}
			}
			for _, w := range c.notWant {
				if strings.Contains(got, w) {
					t.Errorf("%q has %q", got, w)
				}
			}
		})
	}
}

func TestReportSoak(t *testing.T) {
	samples := soakOf([]float64{10, 20, 20, 20}, []int{20, 27, 27, 27}, []int{25, 30, 30, 30})
	samples[1].Forwarded, samples[1].Dropped, samples[1].Attaches = 6000, 3, 600
	var b strings.Builder
	ReportSoak(&b, samples)
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 2+4+2 || !strings.HasPrefix(lines[len(lines)-1], "verdict: ") {
		t.Fatalf("report:\n%s", b.String())
	}
	if !strings.Contains(lines[3], "| 1:00 | 20.0 | 27 | 30 | 6000 | 3 |") {
		t.Fatalf("row %q", lines[3])
	}
}

func TestPlotSoak(t *testing.T) {
	path := filepath.Join(t.TempDir(), "soak.png")
	if err := plotSoak(path, soakOf([]float64{10, 20, 20}, []int{20, 27, 27}, []int{25, 30, 30})); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil || len(b) < 1000 || string(b[1:4]) != "PNG" {
		t.Fatalf("%d bytes, %v", len(b), err)
	}
}

// A soak measures one umlswitch of its own for at least two intervals; the
// rest is refused before anything starts.
func TestMainRefusesSoaks(t *testing.T) {
	for _, args := range [][]string{
		{"-compare", "relay"}, {"-switch", "uml_switch"}, {"-switch", "vlan-access"}, {"-ctl", "/tmp/x.ctl"},
		{"-transport", "bess"}, {"-duration", "1s"}, {"-duration", "3s", "-interval", "2s"}, {"-interval", "0s"},
		{"-duration", "3s", "-interval", "1s", "-rate", "0"},
	} {
		var errb strings.Builder
		if code := Main(append([]string{"-mode", "soak"}, args...), io.Discard, &errb); code != 2 || !strings.Contains(errb.String(), "-mode soak: ") {
			t.Errorf("%v: exit %d: %s", args, code, errb.String())
		}
	}
}
