package bench

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/umlswitch/umlswitch/fabric"
)

func TestPercentile(t *testing.T) {
	var s []time.Duration
	for i := 1; i <= 1000; i++ {
		s = append(s, time.Duration(i)*time.Microsecond)
	}
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 500 * time.Microsecond}, {0.9, 900 * time.Microsecond}, {0.99, 990 * time.Microsecond},
		{0.999, 999 * time.Microsecond}, {1, 1000 * time.Microsecond}, {0.0001, time.Microsecond}} {
		if got := percentile(s, c.q); got != c.want {
			t.Errorf("p%v = %v, want %v", c.q, got, c.want)
		}
	}
	if percentile(nil, 0.5) != 0 || percentile(s[:1], 0.99) != time.Microsecond {
		t.Error("edge cases")
	}
}

func TestReportLatency(t *testing.T) {
	mk := func(us ...int) LatencyResult {
		var r LatencyResult
		for _, u := range us {
			r.RTTs = append(r.RTTs, time.Duration(u)*time.Microsecond)
		}
		r.SwitchCPU = time.Duration(len(us)) * 10 * time.Microsecond
		return r
	}
	var b strings.Builder
	ReportLatency(&b, []LatencyRow{
		{Switch: "umlswitch", Size: 64, Client: "uml", Runs: []LatencyResult{mk(10, 20, 30), mk(40)}},
		{Switch: "uml_switch", Size: 64, Client: "uml", Runs: []LatencyResult{mk(20, 40, 60, 80)}},
	})
	out := b.String()
	for _, want := range []string{"| umlswitch | 64 | uml | 4 | 0 | 20.0 | 40.0 | 40.0 | 40.0 | 10.0 |",
		"| uml_switch | 64 | uml | 4 | 0 | 40.0 | 80.0 | 80.0 | 80.0 | 10.0 |",
		"umlswitch / uml_switch: p50 0.50x, p99 0.50x"} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
}

// Latency against a real switch in this process: every frame comes back.
func TestLatencyAgainstSwitch(t *testing.T) {
	sw := fabric.New(fabric.Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	ctx, cancel := context.WithCancel(context.Background())
	defer func() { cancel(); sw.Close() }()
	go sw.Run(ctx)
	ctl := startRegistry(t, sw)
	res, err := Latency(GenConfig{Ctl: ctl, Size: 64, Warmup: 20 * time.Millisecond, Duration: 200 * time.Millisecond, SwitchPID: os.Getpid()})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.RTTs) < 10 || res.Lost != 0 {
		t.Fatalf("%d round trips, %d lost", len(res.RTTs), res.Lost)
	}
}

func TestPlots(t *testing.T) {
	dir := t.TempDir()
	run := GenResult{Window: time.Second, Delivered: 1e6}
	sets := [][]Row{{{Switch: "umlswitch", Ports: 2, Size: 64, Runs: []GenResult{run}}, {Switch: "relay", Ports: 2, Size: 64, Runs: []GenResult{run}}},
		{{Switch: "umlswitch", Ports: 2, Size: 1514, Runs: []GenResult{run}}, {Switch: "relay", Ports: 2, Size: 1514, Runs: []GenResult{run}}}}
	lat := []LatencyRow{{Switch: "umlswitch", Runs: []LatencyResult{{RTTs: []time.Duration{time.Microsecond, 3 * time.Microsecond}}}}}
	for name, draw := range map[string]func(string) error{
		"scan.png":    func(p string) error { return plotThroughput(p, sets) },
		"latency.png": func(p string) error { return plotLatency(p, lat) },
	} {
		p := filepath.Join(dir, name)
		if err := draw(p); err != nil {
			t.Fatal(err)
		}
		if b, _ := os.ReadFile(p); !bytes.HasPrefix(b, []byte("\x89PNG")) {
			t.Fatalf("%s is not a PNG", name)
		}
	}
}

func TestParseInts(t *testing.T) {
	if got, err := parseInts("64, 1514,9000", 14, 65535); err != nil || len(got) != 3 || got[2] != 9000 {
		t.Fatalf("%v %v", got, err)
	}
	for _, bad := range []string{"", "x", "10", "70000"} {
		if _, err := parseInts(bad, 14, 65535); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
