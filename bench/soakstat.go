package bench

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// SoakSample is the switch as one soak sample found it: its process's
// size now, and what moved in the interval that ended with the sample.
type SoakSample struct {
	At         time.Duration // since the traffic started
	RSS        uint64        // resident memory, bytes (VmRSS)
	FDs        int           // open descriptors
	Goroutines int           // go_goroutines
	// In the interval before this sample (zero in the first, at 0:00):
	Forwarded uint64 // frames the switch sent out of its ports
	Dropped   uint64 // frames it dropped, every reason
	Sent      uint64 // frames the bench's traffic clients sent
	Received  uint64 // and received
	Attaches  uint64 // churn clients that attached and left
	APICalls  uint64 // control API calls answered
	Failures  uint64 // churn attaches and API calls that failed
}

// readRSS returns the resident memory of process pid, in bytes.
func readRSS(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	return parseVmRSS(string(b))
}

// parseVmRSS reads the VmRSS line of /proc/PID/status ("VmRSS:  1234 kB").
func parseVmRSS(status string) (uint64, error) {
	for _, line := range strings.Split(status, "\n") {
		rest, ok := strings.CutPrefix(line, "VmRSS:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("status: VmRSS %q: want a number of kB", strings.TrimSpace(rest))
		}
		kb, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("status: VmRSS %q: %w", f[0], err)
		}
		return kb << 10, nil
	}
	return 0, fmt.Errorf("status: no VmRSS line (a kernel thread, or a process that has exited)")
}

// countFDs returns how many descriptors process pid has open.
func countFDs(pid int) (int, error) {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	return len(ents), err
}

// switchMetrics is what a soak takes from one scrape of the switch's
// Prometheus metrics: counters per series, so that a port that left between
// two scrapes does not make the total go backwards.
type switchMetrics struct {
	goroutines int
	forwarded  seriesValues // umlswitch_port_tx_frames_total
	dropped    seriesValues // umlswitch_port_drops_total
}

// seriesValues maps a series' labels ("k=v,k=v") to its value.
type seriesValues map[string]float64

// parseSwitchMetrics reads the text exposition format.
func parseSwitchMetrics(r io.Reader) (switchMetrics, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(r)
	if err != nil {
		return switchMetrics{}, fmt.Errorf("metrics: %w", err)
	}
	g := mfs["go_goroutines"]
	if g == nil || len(g.Metric) != 1 || g.Metric[0].Gauge == nil && g.Metric[0].Untyped == nil {
		return switchMetrics{}, fmt.Errorf("metrics: no go_goroutines gauge")
	}
	n := g.Metric[0].GetGauge().GetValue() + g.Metric[0].GetUntyped().GetValue()
	m := switchMetrics{goroutines: int(n), forwarded: seriesValues{}, dropped: seriesValues{}}
	for name, into := range map[string]seriesValues{"umlswitch_port_tx_frames_total": m.forwarded, "umlswitch_port_drops_total": m.dropped} {
		mf := mfs[name]
		if mf == nil {
			continue // no ports yet, or none has dropped
		}
		for _, s := range mf.Metric {
			if s.Counter == nil {
				return switchMetrics{}, fmt.Errorf("metrics: %s is not a counter", name)
			}
			var key []string
			for _, l := range s.Label {
				key = append(key, l.GetName()+"="+l.GetValue())
			}
			into[strings.Join(key, ",")] = s.Counter.GetValue()
		}
	}
	return m, nil
}

// increase is how much counters grew from prev to cur, as Prometheus's
// increase() counts it: a series new in cur counts from zero, a series that
// went down was reset (its port left and one of the same name came) and
// counts from zero too, and a series gone from cur counts nothing more.
func increase(prev, cur seriesValues) uint64 {
	var sum float64
	for k, v := range cur {
		if p, ok := prev[k]; ok && v >= p {
			v -= p
		}
		sum += v
	}
	return uint64(sum)
}

// minLeakSteps is the fewest intervals after the first full one in which a
// measure must rise, every one of them, to be called a leak.
const minLeakSteps = 3

// soakGrowth is one measure's change over a soak, from the end of the
// first full interval (the switch has warmed up by then) to the last.
type soakGrowth struct {
	name   string
	delta  float64
	steady bool // rose in every interval: a leak, not noise
}

func growthOf(name string, samples []SoakSample, v func(SoakSample) float64) soakGrowth {
	g := soakGrowth{name: name}
	if len(samples) < 2 {
		return g
	}
	from := samples[1:]
	g.delta = v(from[len(from)-1]) - v(from[0])
	g.steady = len(from)-1 >= minLeakSteps
	for i := 1; i < len(from) && g.steady; i++ {
		g.steady = v(from[i]) > v(from[i-1])
	}
	return g
}

// soakVerdict is the last line of a soak's report: the growth of memory,
// descriptors and goroutines from the end of the first full interval to
// the last sample, and a leak named where one rose in every interval.
func soakVerdict(samples []SoakSample) string {
	if len(samples) < 3 {
		return "verdict: too few samples: a soak needs at least two full intervals"
	}
	gs := []soakGrowth{
		growthOf("rss", samples, func(s SoakSample) float64 { return float64(s.RSS) / 1e6 }),
		growthOf("fds", samples, func(s SoakSample) float64 { return float64(s.FDs) }),
		growthOf("goroutines", samples, func(s SoakSample) float64 { return float64(s.Goroutines) }),
	}
	parts := make([]string, len(gs))
	var leaks []string
	for i, g := range gs {
		if i == 0 {
			parts[i] = fmt.Sprintf("%s %+.1f MB", g.name, g.delta)
		} else {
			parts[i] = fmt.Sprintf("%s %+.0f", g.name, g.delta)
		}
		if g.steady {
			leaks = append(leaks, g.name)
		}
	}
	from, to := samples[1].At, samples[len(samples)-1].At
	line := fmt.Sprintf("verdict: %s (%s to %s)", strings.Join(parts, ", "), clock(from), clock(to))
	steps := len(samples) - 2
	switch {
	case len(leaks) > 0:
		return fmt.Sprintf("%s: LEAK? %s rose in every one of the %d intervals", line, strings.Join(leaks, ", "), steps)
	case steps < minLeakSteps:
		return fmt.Sprintf("%s: too short to tell a leak (%d intervals after the first; it takes %d)", line, steps, minLeakSteps)
	default:
		return line + ": no steady growth"
	}
}

// clock writes d as minutes and seconds: 1:30, 30:00.
func clock(d time.Duration) string {
	s := int(d.Round(time.Second) / time.Second)
	return fmt.Sprintf("%d:%02d", s/60, s%60)
}

// ReportSoak writes the samples as a markdown table and ends with the
// verdict.
func ReportSoak(w io.Writer, samples []SoakSample) {
	fmt.Fprintln(w, "| time | RSS MB | fds | goroutines | forwarded | dropped | sent | received | attach+detach | API calls | failed |")
	fmt.Fprintln(w, "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
	for _, s := range samples {
		fmt.Fprintf(w, "| %s | %.1f | %d | %d | %d | %d | %d | %d | %d | %d | %d |\n", clock(s.At), float64(s.RSS)/1e6, s.FDs, s.Goroutines,
			s.Forwarded, s.Dropped, s.Sent, s.Received, s.Attaches, s.APICalls, s.Failures)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, soakVerdict(samples))
}
