package bench

import (
	"errors"
	"fmt"
	"io"
	"math"
	"runtime"
	"slices"
	"time"

	"golang.org/x/sys/unix"
)

// LatencyResult is one latency run: round-trip times with one frame in
// flight.
type LatencyResult struct {
	RTTs      []time.Duration
	Lost      int // frames that did not come back within a second
	Window    time.Duration
	SwitchCPU time.Duration
}

// Latency measures round trips through the switch: port 0 sends a frame to
// port 1, which sends it straight back; the next frame leaves only when the
// previous one returned. Frames not back within a second are counted lost.
func Latency(cfg GenConfig) (LatencyResult, error) {
	cfg.Ports = 2
	ports, err := dialPorts(cfg)
	defer closePorts(ports)
	if err != nil {
		return LatencyResult{}, err
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := pinThisThread(cfg.CPUs); err != nil {
		return LatencyResult{}, err
	}
	there := ports[0].c.sender(ports[0].c.frame(ports[1].mac, ports[0].mac, cfg.Size))
	back := ports[1].c.sender(ports[1].c.frame(ports[0].mac, ports[1].mac, cfg.Size))
	buf := make([]byte, cfg.Size+256)
	var res LatencyResult
	roundTrip := func() (time.Duration, error) {
		t0 := time.Now()
		if err := sendOne(there, ports[0].c.fd); err != nil {
			return 0, err
		}
		if ok, err := awaitFrame(ports[1].c, buf, t0); !ok || err != nil {
			return 0, err
		}
		if err := sendOne(back, ports[1].c.fd); err != nil {
			return 0, err
		}
		if ok, err := awaitFrame(ports[0].c, buf, t0); !ok || err != nil {
			return 0, err
		}
		return time.Since(t0), nil
	}
	for end := time.Now().Add(cfg.Warmup); time.Now().Before(end); {
		if _, err := roundTrip(); err != nil {
			return res, err
		}
	}
	sw0 := cpuOrZero(cfg.SwitchPID)
	t0 := time.Now()
	for end := t0.Add(cfg.Duration); time.Now().Before(end); {
		d, err := roundTrip()
		if err != nil {
			return res, err
		}
		if d == 0 {
			res.Lost++
			drain(ports)
			continue
		}
		res.RTTs = append(res.RTTs, d)
	}
	res.Window = time.Since(t0)
	res.SwitchCPU = cpuOrZero(cfg.SwitchPID) - sw0
	if len(res.RTTs) == 0 {
		return res, errors.New("bench: no frame came back")
	}
	return res, nil
}

// sendOne sends a frame with send (from client.sender), waiting while
// fd is full.
func sendOne(send func() error, fd int) error {
	for {
		err := send()
		if err == nil || icmpError(err) {
			return nil
		}
		if err != unix.EAGAIN && err != unix.EINTR {
			return fmt.Errorf("bench: send: %w", err)
		}
		pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
		unix.Poll(pfd, 100)
	}
}

// awaitFrame waits for one frame on c, spinning briefly first (a
// sleeping generator would add its own wake-up to every round trip), for
// at most a second after t0. It reports whether one came.
func awaitFrame(c *client, buf []byte, t0 time.Time) (bool, error) {
	pfd := []unix.PollFd{{Fd: int32(c.fd), Events: unix.POLLIN}}
	for spin := 0; ; spin++ {
		_, err := c.readOne(buf)
		switch {
		case err == nil:
			return true, nil
		case err != unix.EAGAIN && err != unix.EINTR && !icmpError(err):
			return false, fmt.Errorf("bench: receive: %w", err)
		}
		if time.Since(t0) > time.Second {
			return false, nil
		}
		if spin > 200 {
			unix.Poll(pfd, 10)
		}
	}
}

// drain reads whatever is left after a lost frame, so a late one does not
// pair with the next round trip.
func drain(ports []*genPort) {
	buf := make([]byte, 65536)
	time.Sleep(10 * time.Millisecond)
	for _, p := range ports {
		for {
			if _, err := p.c.readOne(buf); err != nil {
				break
			}
		}
	}
}

// percentile returns the q-quantile (0 < q <= 1) of sorted samples: the
// smallest sample with at least a share q of the samples at or below it.
func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// LatencyRow is every latency run of one switch.
type LatencyRow struct {
	Switch string
	Size   int
	Client string
	Runs   []LatencyResult
}

// pooled returns every run's round trips, sorted.
func (r LatencyRow) pooled() []time.Duration {
	var all []time.Duration
	for _, run := range r.Runs {
		all = append(all, run.RTTs...)
	}
	slices.Sort(all)
	return all
}

var latencyQuantiles = []float64{0.5, 0.9, 0.99, 0.999}

// ReportLatency writes the rows as a markdown table of round-trip
// percentiles over all runs' samples, then each row's p50 and p99 against
// the first row's.
func ReportLatency(w io.Writer, rows []LatencyRow) {
	fmt.Fprintln(w, "| switch | size | clients | round trips | lost | p50 µs | p90 µs | p99 µs | p99.9 µs | switch CPU µs per round trip |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|")
	us := func(d time.Duration) float64 { return float64(d) / 1e3 }
	for _, r := range rows {
		all := r.pooled()
		lost := 0
		var cpu time.Duration
		for _, run := range r.Runs {
			lost += run.Lost
			cpu += run.SwitchCPU
		}
		perRT := 0.0
		if len(all) > 0 {
			perRT = us(cpu) / float64(len(all))
		}
		fmt.Fprintf(w, "| %s | %d | %s | %d | %d |", r.Switch, r.Size, r.Client, len(all), lost)
		for _, q := range latencyQuantiles {
			fmt.Fprintf(w, " %.1f |", us(percentile(all, q)))
		}
		fmt.Fprintf(w, " %.1f |\n", perRT)
	}
	if len(rows) > 1 {
		base := rows[0].pooled()
		for _, r := range rows[1:] {
			other := r.pooled()
			fmt.Fprintf(w, "\n%s / %s: p50 %.2fx, p99 %.2fx (lower is faster)", rows[0].Switch, r.Switch,
				float64(percentile(base, 0.5))/float64(max(percentile(other, 0.5), 1)),
				float64(percentile(base, 0.99))/float64(max(percentile(other, 0.99), 1)))
		}
		fmt.Fprintln(w)
	}
}
