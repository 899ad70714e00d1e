package bench

import (
	"strings"
	"testing"
	"time"
)

func TestReportNAT(t *testing.T) {
	run := func(gbit float64, sw, qemu time.Duration) NATResult {
		return NATResult{Bytes: int64(gbit * 1e9 / 8), Window: time.Second, SwitchCPU: sw, RouterCPU: qemu}
	}
	var b strings.Builder
	ReportNAT(&b, []NATRow{
		{Path: "nat", Runs: []NATResult{run(2, time.Second, 0), run(1, 800*time.Millisecond, 0), run(3, time.Second, 0)}},
		{Path: "slirp", Runs: []NATResult{run(1, 400*time.Millisecond, 600*time.Millisecond)}},
	})
	out := b.String()
	for _, want := range []string{"| nat | 2.000 (1.000-3.000) | 1.000 (0.800-1.000) | 0.000 | - |",
		"| slirp | 1.000 | 0.400 | 0.600 | 0.50x |"} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
}
