package bench

import (
	"fmt"
	"io"
	"sort"
	"strings"
)

// Row is every run of one switch under one setting.
type Row struct {
	Switch string
	Ports  int
	Size   int
	Client string // "uml" or "vde"
	Hub    bool
	Runs   []GenResult
}

// Metrics of one run.
func (r GenResult) offeredMpps() float64   { return float64(r.Offered) / r.Window.Seconds() / 1e6 }
func (r GenResult) deliveredMpps() float64 { return float64(r.Delivered) / r.Window.Seconds() / 1e6 }

// loss is the share of expected deliveries that never arrived, over the
// whole run (so frames in flight at the window's edges do not count).
func (r GenResult) loss() float64 {
	want := float64(r.SentAll) * float64(r.Copies)
	if want == 0 {
		return 0
	}
	return max(0, 1-float64(r.RecvAll)/want)
}

// perSwitchCPU is delivered frames per second of switch CPU, in millions.
func (r GenResult) perSwitchCPU() float64 {
	if r.SwitchCPU <= 0 {
		return 0
	}
	return float64(r.Delivered) / r.SwitchCPU.Seconds() / 1e6
}

func (r GenResult) switchCPUShare() float64 { return r.SwitchCPU.Seconds() / r.Window.Seconds() }
func (r GenResult) genCPUShare() float64    { return r.GenCPU.Seconds() / r.Window.Seconds() }
func (r GenResult) genBusy() float64        { return r.GenBusy }
func (r GenResult) steal() float64          { return r.Steal }

// summary is min, median and max of one metric over runs.
type summary struct{ min, med, max float64 }

func summarize[R any](runs []R, metric func(R) float64) summary {
	v := make([]float64, len(runs))
	for i, r := range runs {
		v[i] = metric(r)
	}
	sort.Float64s(v)
	if len(v) == 0 {
		return summary{}
	}
	med := v[len(v)/2]
	if len(v)%2 == 0 {
		med = (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	return summary{min: v[0], med: med, max: v[len(v)-1]}
}

func (s summary) String() string {
	if s.min == s.max {
		return fmt.Sprintf("%.3f", s.med)
	}
	return fmt.Sprintf("%.3f (%.3f-%.3f)", s.med, s.min, s.max)
}

// Report writes rows as a markdown table, then each row's ratio to the
// first, then warnings.
func Report(w io.Writer, rows []Row) {
	fmt.Fprintln(w, "| switch | ports | size | clients | offered Mfps | delivered Mfps | Gbit/s | loss | switch CPU | Mfps per switch CPU-s | generator CPU | generator busy |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, r := range rows {
		mode := r.Client
		if r.Hub {
			mode += ", hub"
		}
		gbps := summarize(r.Runs, func(g GenResult) float64 { return g.deliveredMpps() * float64(r.Size) * 8 / 1e3 })
		fmt.Fprintf(w, "| %s | %d | %d | %s | %s | %s | %.3f | %.2f%% | %.0f%% | %s | %.0f%% | %.0f%% |\n",
			r.Switch, r.Ports, r.Size, mode,
			summarize(r.Runs, GenResult.offeredMpps), summarize(r.Runs, GenResult.deliveredMpps), gbps.med,
			100*summarize(r.Runs, GenResult.loss).med, 100*summarize(r.Runs, GenResult.switchCPUShare).med,
			summarize(r.Runs, GenResult.perSwitchCPU), 100*summarize(r.Runs, GenResult.genCPUShare).med,
			100*summarize(r.Runs, GenResult.genBusy).med)
	}
	if len(rows) > 1 {
		base := rows[0]
		for _, r := range rows[1:] {
			fmt.Fprintf(w, "\n%s / %s: %s delivered frames per second, %s per switch CPU-second (medians of %d runs)",
				base.Switch, r.Switch, ratio(base, r, GenResult.deliveredMpps), ratio(base, r, GenResult.perSwitchCPU), len(r.Runs))
		}
		fmt.Fprintln(w)
	}
	for _, r := range rows {
		if steal := summarize(r.Runs, GenResult.steal); steal.max > 0.03 {
			fmt.Fprintf(w, "\nwarning: with %s the hypervisor took up to %.0f%% of this machine's CPU time (median %.0f%%):"+
				" on a shared machine those runs measure the neighbours as much as the switch\n", r.Switch, 100*steal.max, 100*steal.med)
		}
		if short := summarize(r.Runs, func(g GenResult) float64 { return float64(g.Short) }); short.max > 0 {
			fmt.Fprintf(w, "\nwarning: %s delivered up to %.0f frames per run shorter than they were sent (it cut them):"+
				" they count as lost, not delivered\n", r.Switch, short.max)
		}
		if busy := summarize(r.Runs, GenResult.genBusy).med; busy > 0.95 {
			fmt.Fprintf(w, "\nwarning: with %s the generator had work in %.0f%% of its passes and hardly ever waited for the switch:"+
				" it, not the switch, may be the limit\n", r.Switch, 100*busy)
		}
	}
}

// ratio formats a's median over b's, or says why there is none.
func ratio(a, b Row, metric func(GenResult) float64) string {
	x, y := summarize(a.Runs, metric).med, summarize(b.Runs, metric).med
	if y == 0 {
		return "no ratio (" + b.Switch + " delivered nothing)"
	}
	return fmt.Sprintf("%.2fx", x/y)
}

// parseList splits a comma-separated list, dropping empty items.
func parseList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}
