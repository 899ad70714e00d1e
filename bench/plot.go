package bench

import (
	"fmt"
	"os"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// plotThroughput draws delivered frames per second by frame size, one line
// per switch and port count (a single setting gives one point per switch).
func plotThroughput(path string, sets [][]Row) error {
	p := plot.New()
	p.Title.Text = "umlswitch-bench: throughput"
	p.X.Label.Text = "frame size (bytes)"
	p.Y.Label.Text = "delivered Mfps (median)"
	lines := map[string]plotter.XYs{}
	var order []string
	for _, rows := range sets {
		for _, r := range rows {
			key := fmt.Sprintf("%s, %d ports", r.Switch, r.Ports)
			if _, ok := lines[key]; !ok {
				order = append(order, key)
			}
			lines[key] = append(lines[key], plotter.XY{X: float64(r.Size), Y: summarize(r.Runs, GenResult.deliveredMpps).med})
		}
	}
	var args []any
	for _, k := range order {
		args = append(args, k, lines[k])
	}
	if err := plotutil.AddLinePoints(p, args...); err != nil {
		return err
	}
	return p.Save(8*vg.Inch, 5*vg.Inch, path)
}

// plotLatency draws each switch's round-trip distribution as a CDF.
func plotLatency(path string, rows []LatencyRow) error {
	p := plot.New()
	p.Title.Text = "umlswitch-bench: round-trip latency, one frame in flight"
	p.X.Label.Text = "round trip (µs, log scale)"
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = plot.LogTicks{Prec: -1}
	p.Y.Label.Text = "share of round trips at or below"
	for i, r := range rows {
		all := r.pooled()
		if len(all) == 0 {
			continue
		}
		pts := make(plotter.XYs, 0, 200)
		step := max(1, len(all)/200)
		for j := 0; j < len(all); j += step {
			pts = append(pts, plotter.XY{X: float64(all[j]) / float64(time.Microsecond), Y: float64(j+1) / float64(len(all))})
		}
		pts = append(pts, plotter.XY{X: float64(all[len(all)-1]) / float64(time.Microsecond), Y: 1})
		l, err := plotter.NewLine(pts)
		if err != nil {
			return err
		}
		l.Color = plotutil.Color(i)
		l.Width = vg.Points(1.5)
		p.Add(l)
		p.Legend.Add(r.Switch, l)
	}
	p.Legend.Top = false
	p.Legend.Left = false
	p.Add(plotter.NewGrid())
	return p.Save(8*vg.Inch, 5*vg.Inch, path)
}

// plotSoak draws a soak in panels over the same minutes, each from zero so
// that growth shows at its true size: the switch's memory, descriptors and
// goroutines, and the frames it forwarded and dropped per second of each
// interval.
func plotSoak(path string, samples []SoakSample) error {
	minutes := func(s SoakSample) float64 { return s.At.Minutes() }
	series := func(v func(SoakSample) float64) plotter.XYs {
		pts := make(plotter.XYs, len(samples))
		for i, s := range samples {
			pts[i] = plotter.XY{X: minutes(s), Y: v(s)}
		}
		return pts
	}
	// Frames per second of each interval: the first sample, at 0:00, ends
	// no interval.
	perSecond := func(v func(SoakSample) uint64) plotter.XYs {
		var pts plotter.XYs
		for i := 1; i < len(samples); i++ {
			if d := (samples[i].At - samples[i-1].At).Seconds(); d > 0 {
				pts = append(pts, plotter.XY{X: minutes(samples[i]), Y: float64(v(samples[i])) / d})
			}
		}
		return pts
	}
	panel := func(ylabel string, lines ...any) (*plot.Plot, error) {
		p := plot.New()
		p.Y.Label.Text = ylabel
		p.Y.Min = 0
		p.X.Min, p.X.Max = 0, minutes(samples[len(samples)-1])
		p.Add(plotter.NewGrid())
		if err := plotutil.AddLinePoints(p, lines...); err != nil {
			return nil, err
		}
		p.Legend.Top, p.Legend.Left = false, true
		p.Legend.YOffs = vg.Points(16) // clear of a line along zero (no drops)
		return p, nil
	}
	var panels []*plot.Plot
	for _, spec := range [][]any{
		{"resident memory (MB)", "VmRSS", series(func(s SoakSample) float64 { return float64(s.RSS) / 1e6 })},
		{"open descriptors", "/proc/PID/fd", series(func(s SoakSample) float64 { return float64(s.FDs) })},
		{"goroutines", "go_goroutines", series(func(s SoakSample) float64 { return float64(s.Goroutines) })},
		{"frames per second",
			"forwarded", perSecond(func(s SoakSample) uint64 { return s.Forwarded }),
			"dropped", perSecond(func(s SoakSample) uint64 { return s.Dropped })},
	} {
		p, err := panel(spec[0].(string), spec[1:]...)
		if err != nil {
			return err
		}
		panels = append(panels, p)
	}
	panels[0].Title.Text = "umlswitch-bench: soak, mixed traffic and churn"
	panels[len(panels)-1].X.Label.Text = "time (minutes)"

	img := vgimg.New(8*vg.Inch, 10*vg.Inch)
	grid := make([][]*plot.Plot, len(panels))
	for i, p := range panels {
		grid[i] = []*plot.Plot{p}
	}
	tiles := draw.Tiles{Rows: len(panels), Cols: 1, PadY: vg.Points(10), PadTop: vg.Points(4), PadBottom: vg.Points(4),
		PadLeft: vg.Points(4), PadRight: vg.Points(12)}
	canvases := plot.Align(grid, tiles, draw.New(img))
	for i, p := range panels {
		p.Draw(canvases[i][0])
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
