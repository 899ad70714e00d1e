package bench

import (
	"fmt"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
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
