package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/umlswitch/umlswitch/frame"
)

// The soak's mix: steady traffic between a few clients of both kinds, and
// churn beside it: clients that attach and leave, and short API calls.
const (
	soakDaemonClients = 4                      // UML-style daemon clients carrying traffic
	soakBESSClients   = 2                      // BESS clients carrying traffic
	soakChurnEvery    = 100 * time.Millisecond // a churn client attaches and leaves
	soakChurnStay     = 20 * time.Millisecond  // how long it stays attached
	soakChurnMACs     = 16                     // churn clients' addresses, reused: the MAC table stays bounded
	soakAPIEvery      = 50 * time.Millisecond  // one control API call, on a connection of its own
	soakTick          = 2 * time.Millisecond   // traffic is paced in steps this long
)

// SoakConfig sets up a soak run.
type SoakConfig struct {
	Switch   *Switch // umlswitch, or another build of it
	Exe      string
	Dir      string // sockets
	Hub      bool
	CPUs     []int         // pin the switch here; empty: anywhere
	Duration time.Duration // the whole run
	Interval time.Duration // between samples
	Rate     int           // frames per second each traffic client sends
	Size     int           // their size in bytes
	// Progress gets each sample's line as it is taken: a long run shows
	// it is alive.
	Progress io.Writer
}

// Soak starts the switch, runs traffic and churn through it for
// cfg.Duration, and samples the switch every cfg.Interval (and once at
// the start). A switch that exits or stops answering ends it with an
// error, and the samples taken so far.
func Soak(cfg SoakConfig) ([]SoakSample, error) {
	metricsSock := filepath.Join(cfg.Dir, "metrics.sock")
	extra := append(bessPorts(cfg.Dir, 0, 0), "-metrics", "unix:"+metricsSock)
	// The switch writes its log straight into a file (an *os.File needs no
	// copying goroutine), read back only to explain a failure.
	logPath := filepath.Join(cfg.Dir, "umlswitch.log")
	log, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer log.Close()
	withLog := func(err error) error {
		b, _ := os.ReadFile(logPath)
		return fmt.Errorf("%v\n%s", err, b)
	}
	p, err := start(cfg.Switch, cfg.Exe, cfg.Dir, cfg.Hub, extra, cfg.CPUs, log)
	if err != nil {
		return nil, withLog(err)
	}
	defer p.shutdown()

	gcfg := GenConfig{Ctl: p.ctl, Dir: cfg.Dir, Size: cfg.Size}
	ports, err := dialSoakPorts(gcfg)
	defer closePorts(ports)
	if err != nil {
		return nil, withLog(err)
	}
	s := &soaker{cfg: cfg, pid: p.pid(), ctl: p.ctl, api: unixHTTP(p.ctl), metrics: unixHTTP(metricsSock)}
	prev, err := s.scrapeUntilUp(5 * time.Second)
	if err != nil {
		return nil, withLog(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	errc := make(chan error, 3)
	for _, run := range []func(context.Context) error{
		func(ctx context.Context) error { return s.traffic(ctx, ports) },
		func(ctx context.Context) error { return s.churn(ctx, gcfg) },
		s.apiCalls,
	} {
		wg.Add(1)
		go func() { defer wg.Done(); errc <- run(ctx) }()
	}
	stop := func() error {
		cancel()
		wg.Wait()
		close(errc)
		return errors.Join(<-errc, <-errc, <-errc)
	}

	t0 := time.Now()
	var samples []SoakSample
	var last soakCounts
	take := func() error {
		now := s.counts()
		sm, err := s.sample(time.Since(t0), prev, last, now)
		if err != nil {
			return err
		}
		prev, last = sm.metrics, now
		samples = append(samples, sm.SoakSample)
		if cfg.Progress != nil {
			x := sm.SoakSample
			fmt.Fprintf(cfg.Progress, "soak: %s rss %.1f MB, fds %d, goroutines %d, forwarded %d, dropped %d, attaches %d, API calls %d, failed %d\n",
				clock(x.At), float64(x.RSS)/1e6, x.FDs, x.Goroutines, x.Forwarded, x.Dropped, x.Attaches, x.APICalls, x.Failures)
		}
		return nil
	}
	if err := take(); err != nil {
		return nil, withLog(errors.Join(err, stop()))
	}
	tick := time.NewTicker(cfg.Interval)
	defer tick.Stop()
	for n := int(cfg.Duration / cfg.Interval); len(samples) <= n; {
		select {
		case <-p.done:
			return samples, withLog(errors.Join(fmt.Errorf("umlswitch exited at %s", clock(time.Since(t0))), stop()))
		case err := <-errc:
			errc <- err // stop reads all three
			return samples, withLog(errors.Join(fmt.Errorf("soak stopped at %s", clock(time.Since(t0))), stop()))
		case <-tick.C:
		}
		if err := take(); err != nil {
			return samples, withLog(errors.Join(err, stop()))
		}
	}
	return samples, stop()
}

// soaker is a running soak's shared state: what its traffic, churn and API
// goroutines count, and how to reach the switch.
type soaker struct {
	cfg                     SoakConfig
	pid                     int
	ctl                     string
	api, metrics            *http.Client
	sent, received          atomic.Uint64
	attaches, calls, failed atomic.Uint64
	failOnce                sync.Once
}

// soakCounts are the bench's own counters at one moment.
type soakCounts struct{ sent, received, attaches, calls, failed uint64 }

func (s *soaker) counts() soakCounts {
	return soakCounts{s.sent.Load(), s.received.Load(), s.attaches.Load(), s.calls.Load(), s.failed.Load()}
}

// taken is a sample and the scrape it came from, kept for the next
// sample's differences.
type taken struct {
	SoakSample
	metrics switchMetrics
}

// sample reads the switch's process and metrics now; prev and last are the
// scrape and the bench's counts at the previous sample.
func (s *soaker) sample(at time.Duration, prev switchMetrics, last, now soakCounts) (taken, error) {
	rss, err := readRSS(s.pid)
	if err != nil {
		return taken{}, fmt.Errorf("umlswitch memory: %w", err)
	}
	fds, err := countFDs(s.pid)
	if err != nil {
		return taken{}, fmt.Errorf("umlswitch descriptors: %w", err)
	}
	m, err := s.scrape()
	if err != nil {
		return taken{}, err
	}
	x := SoakSample{At: at, RSS: rss, FDs: fds, Goroutines: m.goroutines}
	if at > 0 {
		x.Forwarded, x.Dropped = increase(prev.forwarded, m.forwarded), increase(prev.dropped, m.dropped)
		x.Sent, x.Received = now.sent-last.sent, now.received-last.received
		x.Attaches, x.APICalls, x.Failures = now.attaches-last.attaches, now.calls-last.calls, now.failed-last.failed
	}
	return taken{x, m}, nil
}

func (s *soaker) scrape() (switchMetrics, error) {
	resp, err := s.metrics.Get("http://umlswitch/metrics")
	if err != nil {
		return switchMetrics{}, fmt.Errorf("scrape umlswitch's metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return switchMetrics{}, fmt.Errorf("scrape umlswitch's metrics: %s", resp.Status)
	}
	return parseSwitchMetrics(resp.Body)
}

// scrapeUntilUp scrapes until the metrics socket answers: the switch opens
// it beside its control socket, not necessarily before.
func (s *soaker) scrapeUntilUp(limit time.Duration) (switchMetrics, error) {
	deadline := time.Now().Add(limit)
	for {
		m, err := s.scrape()
		if err == nil || time.Now().After(deadline) {
			return m, err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// unixHTTP is a client of an HTTP server on the unix socket path, with a
// new connection for every request: the churn wants them short-lived.
func unixHTTP(path string) *http.Client {
	return &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			DisableKeepAlives: true,
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "unix", path)
			},
		},
	}
}

// dialSoakPorts connects the traffic clients, UML-style daemon clients and
// BESS clients, and has the switch learn them all. Frames go from each to
// the next, so they cross from one transport to the other.
func dialSoakPorts(cfg GenConfig) ([]*genPort, error) {
	var ports []*genPort
	for i := 0; i < soakDaemonClients+soakBESSClients; i++ {
		dial := dialDaemon
		if i >= soakDaemonClients {
			dial = dialBESS
		}
		c, err := dial(cfg, i)
		if err != nil {
			return ports, fmt.Errorf("soak: traffic client %d: %w", i, err)
		}
		ports = append(ports, &genPort{c: c, mac: portMAC(i)})
	}
	return ports, learn(ports)
}

// traffic sends cfg.Rate frames a second from every port to the next,
// paced in soakTick steps, and drains what arrives as it arrives. A frame
// the socket does not take (the switch is holding its sender back) is not
// offered again: the pace stays the same.
func (s *soaker) traffic(ctx context.Context, ports []*genPort) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	const depth = 64
	pfds := make([]unix.PollFd, len(ports))
	pio := make([]portIO, len(ports))
	for i, p := range ports {
		pfds[i] = unix.PollFd{Fd: int32(p.c.fd), Events: unix.POLLIN}
		f := p.c.frame(ports[(i+1)%len(ports)].mac, p.mac, s.cfg.Size)
		pio[i] = p.c.portIO(f, depth, wantSize(ports, i, s.cfg.Size, s.cfg.Hub))
	}
	t0 := time.Now()
	var offered uint64 // per port
	next := t0
	for ctx.Err() == nil {
		if now := time.Now(); !now.Before(next) {
			due := uint64(now.Sub(t0).Seconds() * float64(s.cfg.Rate))
			k := int(min(due-offered, depth))
			offered = due
			for i := range ports {
				if k == 0 {
					break
				}
				n, err := pio[i].send(k)
				switch {
				case err == nil, err == unix.EAGAIN, err == unix.EINTR, err == unix.ENOBUFS:
				default:
					return fmt.Errorf("soak: traffic client %d: send: %w", i, err)
				}
				s.sent.Add(uint64(n))
			}
			next = now.Add(soakTick)
		}
		unix.Poll(pfds, int(max(time.Until(next), 0)/time.Millisecond)+1)
		for i := range ports {
			got, short, err := pio[i].recv()
			if err != nil && err != unix.EAGAIN && err != unix.EINTR {
				return fmt.Errorf("soak: traffic client %d: receive: %w", i, err)
			}
			s.received.Add(uint64(got + short))
		}
	}
	return nil
}

// churn attaches a client every soakChurnEvery, UML-style daemon clients
// and BESS clients in turn; each sends a broadcast from one of a few
// addresses, stays soakChurnStay, and leaves. A failed attach is counted,
// not fatal: the soak reports what the switch refused.
func (s *soaker) churn(ctx context.Context, cfg GenConfig) error {
	tick := time.NewTicker(soakChurnEvery)
	defer tick.Stop()
	buf := make([]byte, 2048)
	for n := 0; ; n++ {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		dial, kind := dialDaemon, "daemon"
		if n%2 == 1 {
			dial, kind = dialBESS, "bess"
		}
		c, err := dial(cfg, soakDaemonClients+soakBESSClients) // the BESS client's socket name is free: one churn client at a time
		if err != nil {
			s.fail(fmt.Errorf("churn %s client: %w", kind, err))
			continue
		}
		mac := portMAC(0x100 + n%soakChurnMACs)
		f := c.frame(frame.Broadcast, mac, learningFrame)
		if err := sendOne(c.sender(f), c.fd); err != nil {
			s.fail(fmt.Errorf("churn %s client: %w", kind, err))
		}
		time.Sleep(soakChurnStay)
		for {
			if _, err := c.readOne(buf); err != nil {
				break
			}
		}
		c.close()
		s.attaches.Add(1)
	}
}

// apiCalls asks the control API for info and ports, in turn, every
// soakAPIEvery, each on a connection of its own.
func (s *soaker) apiCalls(ctx context.Context) error {
	tick := time.NewTicker(soakAPIEvery)
	defer tick.Stop()
	for n := 0; ; n++ {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		path := [...]string{"/v1/info", "/v1/ports"}[n%2]
		req, _ := http.NewRequestWithContext(ctx, "GET", "http://umlswitch"+path, nil)
		resp, err := s.api.Do(req)
		if err != nil {
			if ctx.Err() == nil {
				s.fail(fmt.Errorf("API %s: %w", path, err))
			}
			continue
		}
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || err != nil {
			s.fail(fmt.Errorf("API %s: %s %v", path, resp.Status, err))
			continue
		}
		s.calls.Add(1)
	}
}

// fail counts a failed churn step, and says why the first time.
func (s *soaker) fail(err error) {
	s.failed.Add(1)
	s.failOnce.Do(func() {
		if s.cfg.Progress != nil {
			fmt.Fprintf(s.cfg.Progress, "soak: %v (further failures are only counted)\n", err)
		}
	})
}
