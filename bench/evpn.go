package bench

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/umlswitch/umlswitch/transports/vxlan"
)

// -mode evpn: umlswitch in a BGP EVPN fabric at scale. A GoBGP speaker in
// this process (evpninject.go) plays many remote VTEPs; each run starts a
// fresh umlswitch and measures how long it takes, and how much of its CPU,
// to hold every tunnel and remote address once the session comes up, its
// Go heap and resident memory empty, loaded and after the withdrawal, its
// CPU while idle, and how long withdrawing everything takes once the
// session goes down. Forwarding between two local ports of a fabric switch
// is measured before the load and loaded, and, interleaved with the
// loaded runs, through a twin: a second umlswitch on the same plan and
// CPUs that never gets a route. Loaded against twin, at the same moments,
// is the figure (this machine's speed drifts more between the minutes
// that separate before and loaded than the hot path could move); empty
// against twin, before the load, is its control.
//
// It runs in a network namespace of its own: the switch's VTEP is an
// address on its loopback, and the remote VTEPs are behind a veth with
// nothing at its other end, where what the switch floods to them vanishes. The BGP
// session runs over 127.0.0.1 and 127.0.0.2.

// switchVTEP is the switch's own VTEP address in the run's namespace;
// twinVTEP the address of the twin's hand-written VXLAN port, which runs
// to the generator's VTEP (genVTEP) as the switch's fabric tunnel does.
var (
	switchVTEP = netip.MustParseAddr("10.0.0.1")
	twinVTEP   = netip.MustParseAddr("10.0.0.3")
)

// evpnBGPPort is where the switch listens for the injector.
const evpnBGPPort = 1179

// fabricLink is the interface the remote VTEPs are routed to.
const fabricLink = "evpnfab0"

// EVPNConfig sets up -mode evpn.
type EVPNConfig struct {
	Scale EVPNScale
	Exe   string // umlswitch
	Dir   string
	CPUs  []int     // pin the switch here; empty: anywhere
	Gen   GenConfig // the forwarding runs' settings (size, depth, window, warm-up, duration, generator CPUs)
	Runs  int
	// Profile, if set, is where the first run's switch writes its Go CPU
	// profile (umlswitch -cpuprofile).
	Profile string
	// Churn is how many route changes a second the injector makes during
	// the churned remote runs.
	Churn    int
	Progress io.Writer
}

// The three moments of a run at which memory is taken.
const (
	atEmpty     = iota // started, session down, no routes
	atLoaded           // every route in
	atWithdrawn        // every route withdrawn again
	moments
)

// EVPNRun is what one run measured.
type EVPNRun struct {
	Load     time.Duration // session up to every tunnel and remote MAC in the switch
	Withdraw time.Duration // session down to none left
	// The switch's CPU time over the load and over the withdrawal, and
	// this process's (the injector's sending, mostly) over the load.
	LoadCPU, WithdrawCPU, InjectorCPU time.Duration
	// Idle is the switch's CPU time over IdleWindow (the forwarding runs'
	// duration) with nothing to do but its timers (the EVPN speaker's sync
	// of local addresses every second, BGP keepalives), before the load,
	// loaded and after the withdrawal; the memory is taken at the end of
	// each of these windows, when the switch has settled.
	Idle       [moments]time.Duration
	IdleWindow time.Duration
	Heap       [moments]uint64 // live Go heap after a collection, bytes (the runtime's gctrace)
	RSS        [moments]uint64 // resident memory, bytes
	// Forwarding between the two local ports: before the load, through
	// the switch and then through its twin; loaded, evpnPairs runs of each
	// in turn (ABBA...).
	Empty, TwinEmpty GenResult
	Loaded, Twin     []GenResult
	// APILoaded is how long the answers to evpnAPICalls took with every
	// route in (the median of evpnAPITries).
	APILoaded []time.Duration
	// Forwarding from a local port of v1 to an address behind a remote
	// VTEP (the generator's own) and back, loaded, evpnPairs runs of each
	// in turn: to an address an EVPN route put in the table, over the
	// fabric's tunnel; the same through a hand-written VXLAN port of the
	// twin; and the first again while the injector churns routes.
	Remote, Hand, Churned []GenResult
	// Churn is the route changes made during the churned runs, over
	// ChurnTime.
	Churn     int
	ChurnTime time.Duration
}

// evpnAPICalls are the reads an operator or a monitoring system makes
// whose cost may grow with the routes: ctl switches, ctl bgp, ctl evpn,
// ctl fdb, a Prometheus scrape.
var evpnAPICalls = []string{"/v1/switches", "/v1/bgp", "/v1/evpn", "/v1/fdb?switch=v1", "metrics"}

const evpnAPITries = 3

// evpnPairs is how many forwarding runs the loaded switch and its twin
// each make.
const evpnPairs = 2

// ratios are the run's forwarding (metric: frames a second, or per
// switch CPU-second) loaded over its twin's at the same time (the means
// of the pairs), and before the load over its twin's.
func (r EVPNRun) ratios(metric func(GenResult) float64) (loaded, empty float64) {
	return meanRatio(r.Loaded, r.Twin, metric), meanRatio([]GenResult{r.Empty}, []GenResult{r.TwinEmpty}, metric)
}

// remoteRatios are the remote runs' forwarding over the fabric's tunnel
// against the hand-written port's, and churned against quiet.
func (r EVPNRun) remoteRatios(metric func(GenResult) float64) (evpn, churned float64) {
	return meanRatio(r.Remote, r.Hand, metric), meanRatio(r.Churned, r.Remote, metric)
}

// meanRatio is the mean of metric over a against its mean over b; 0
// where b has none.
func meanRatio(a, b []GenResult, metric func(GenResult) float64) float64 {
	mean := func(rs []GenResult) float64 {
		sum := 0.0
		for _, g := range rs {
			sum += metric(g)
		}
		return sum / float64(max(len(rs), 1))
	}
	if mb := mean(b); mb != 0 {
		return mean(a) / mb
	}
	return 0
}

// EVPN measures cfg.Runs runs, each with a fresh switch. The injector and
// its table of routes serve them all.
func EVPN(cfg EVPNConfig) ([]EVPNRun, error) {
	if err := cfg.Scale.Check(); err != nil {
		return nil, err
	}
	if err := setupEVPNNetns(cfg.Scale); err != nil {
		return nil, err
	}
	t0 := time.Now()
	j, err := startInjector(cfg.Scale)
	if err != nil {
		return nil, err
	}
	defer j.close()
	progress(cfg.Progress, "evpn: the injector holds its %d routes (%v to build them)", cfg.Scale.VTEPs+cfg.Scale.MACs,
		time.Since(t0).Round(time.Millisecond))
	var runs []EVPNRun
	for i := 0; i < cfg.Runs; i++ {
		r := EVPNRun{IdleWindow: cfg.Gen.Duration}
		profile := ""
		if i == 0 {
			profile = cfg.Profile
		}
		if err := evpnRun(cfg, j, &r, profile); err != nil {
			return runs, err
		}
		runs = append(runs, r)
		loaded, empty := r.ratios(GenResult.deliveredMpps)
		remote, churned := r.remoteRatios(GenResult.deliveredMpps)
		progress(cfg.Progress, "evpn: run %d: loaded in %v (switch CPU %v), withdrawn in %v (%v); heap %.1f -> %.1f -> %.1f MB, rss %.1f -> %.1f -> %.1f MB; "+
			"forwarding loaded / twin %.2fx, empty / twin %.2fx; to a remote MAC, EVPN / hand-written %.2fx, churned / quiet %.2fx (%.0f changes/s)",
			i+1, r.Load.Round(time.Millisecond), r.LoadCPU, r.Withdraw.Round(time.Millisecond), r.WithdrawCPU,
			mb(r.Heap[atEmpty]), mb(r.Heap[atLoaded]), mb(r.Heap[atWithdrawn]), mb(r.RSS[atEmpty]), mb(r.RSS[atLoaded]), mb(r.RSS[atWithdrawn]),
			loaded, empty, remote, churned, r.churnRate())
	}
	return runs, nil
}

func progress(w io.Writer, format string, a ...any) {
	if w != nil {
		fmt.Fprintf(w, "bench: "+format+"\n", a...)
	}
}

func mb(b uint64) float64 { return float64(b) / 1e6 }

// setupEVPNNetns brings the namespace's loopback up with the switch's,
// the twin's and the generator's VTEPs on it, and routes the remote VTEPs
// to a veth that leads nowhere, so that the switch's tunnels send (and
// their frames vanish) as in a fabric.
func setupEVPNNetns(scale EVPNScale) error {
	lo, err := netlink.LinkByName("lo")
	if err == nil {
		err = netlink.LinkSetUp(lo)
	}
	for _, a := range []netip.Addr{switchVTEP, twinVTEP, genVTEP} {
		if err != nil {
			break
		}
		addr := &netlink.Addr{IPNet: &net.IPNet{IP: a.AsSlice(), Mask: net.CIDRMask(32, 32)}}
		if err = netlink.AddrAdd(lo, addr); err == syscall.EEXIST {
			err = nil
		}
	}
	if err != nil {
		return fmt.Errorf("bench: evpn: the namespace's loopback: %w", err)
	}
	// A veth with ARP off sends to its peer without resolving anyone, and
	// the peer, with no address, drops it all.
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: fabricLink}, PeerName: fabricLink + "p"}
	if err := netlink.LinkAdd(veth); err != nil && err != syscall.EEXIST {
		return fmt.Errorf("bench: evpn: the fabric's interface: %w", err)
	}
	fab, err := netlink.LinkByName(fabricLink)
	if err == nil {
		err = netlink.LinkSetARPOff(fab)
	}
	for _, name := range []string{fabricLink, veth.PeerName} {
		var l netlink.Link
		if err == nil {
			l, err = netlink.LinkByName(name)
		}
		if err == nil {
			err = netlink.LinkSetUp(l)
		}
	}
	if err == nil {
		first, last := evpnVTEP(0), evpnVTEP(scale.VTEPs) // the marker too
		bits := 32
		for p, _ := first.Prefix(bits); !p.Contains(last); p, _ = first.Prefix(bits) {
			bits--
		}
		p, _ := first.Prefix(bits)
		dst := &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(bits, 32)}
		if err = netlink.RouteReplace(&netlink.Route{LinkIndex: fab.Attrs().Index, Dst: dst, Scope: netlink.SCOPE_LINK}); err != nil {
			err = fmt.Errorf("route %s: %w", dst, err)
		}
	}
	if err != nil {
		return fmt.Errorf("bench: evpn: the fabric's interface: %w", err)
	}
	return nil
}

// evpnPlan is the switch's configuration: switches v1..vN with VNIs 1..N,
// v1 with a daemon listener at ctl for the generator's two ports, and an
// evpn: block that waits for the injector at 127.0.0.1 on port listen (0:
// it does not listen, and never has a session: the twin).
func evpnPlan(scale EVPNScale, ctl string, listen int) string {
	var b strings.Builder
	b.WriteString("log_level: warn\nswitches:\n")
	for v := 1; v <= scale.VNIs; v++ {
		fmt.Fprintf(&b, "  - name: v%d\n    vni: %d\n", v, v)
		if v == 1 {
			fmt.Fprintf(&b, "    ports:\n      - {transport: daemon, path: %s}\n", ctl)
		}
	}
	fmt.Fprintf(&b, "evpn:\n  asn: %d\n  router_id: %s\n  vtep: %s\n  vxlan_port: %d\n  listen_port: %d\n  hold_time: 90s\n"+
		"  neighbors:\n    - {address: 127.0.0.1, asn: %d, passive: true}\n", evpnASN, switchVTEP, switchVTEP, vxlan.DefaultPort, listen, evpnASN)
	return b.String()
}

// evpnSwitch is umlswitch run on the configuration file at path, with
// the runtime's garbage collector trace in its log.
func evpnSwitch(path, ctl string, extra ...string) *Switch {
	return &Switch{
		Name: "umlswitch",
		command: func(exe, _ string, _ bool) ([]string, string) {
			return append([]string{exe, "-config", path}, extra...), ctl
		},
		stop:      func(p *process) { p.cmd.Process.Signal(syscall.SIGTERM) },
		umlswitch: true,
		env:       []string{"GODEBUG=gctrace=1"},
	}
}

// evpnSwitchRun is a started switch of an EVPN run.
type evpnSwitchRun struct {
	*process
	logPath      string
	api, metrics *http.Client
}

// startEVPNSwitch writes the plan and starts umlswitch on it, its sockets
// and log in the directory name of the run's.
func startEVPNSwitch(cfg EVPNConfig, name string, listen int, extra ...string) (*evpnSwitchRun, error) {
	dir := filepath.Join(cfg.Dir, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	ctl := filepath.Join(dir, "umlswitch.ctl")
	path := filepath.Join(dir, "evpn.yaml")
	if err := os.WriteFile(path, []byte(evpnPlan(cfg.Scale, ctl, listen)), 0o644); err != nil {
		return nil, err
	}
	metrics := filepath.Join(dir, "metrics.sock")
	extra = append(extra, "-metrics", "unix:"+metrics)
	s := &evpnSwitchRun{logPath: filepath.Join(dir, "umlswitch.log"), api: unixHTTP(ctl), metrics: unixHTTP(metrics)}
	log, err := os.Create(s.logPath)
	if err != nil {
		return nil, err
	}
	defer log.Close() // the child has its own descriptor
	if s.process, err = start(evpnSwitch(path, ctl, extra...), cfg.Exe, dir, false, nil, cfg.CPUs, log); err != nil {
		return nil, s.withLog(err)
	}
	return s, nil
}

// withLog adds the switch's log to err, less the collector's trace.
func (s *evpnSwitchRun) withLog(err error) error {
	b, _ := os.ReadFile(s.logPath)
	var keep []string
	for _, line := range strings.Split(string(b), "\n") {
		if !gcLine.MatchString(line) && line != "" {
			keep = append(keep, line)
		}
	}
	if len(keep) == 0 {
		return err
	}
	return fmt.Errorf("%w\numlswitch's log:\n%s", err, strings.Join(keep, "\n"))
}

// get decodes the JSON answer to GET path of the switch's API into v
// (reads it whole if v is nil); path "metrics" scrapes its metrics.
func (s *evpnSwitchRun) get(path string, v any) error {
	c := s.api
	if path == "metrics" {
		c, path = s.metrics, "/metrics"
	}
	resp, err := c.Get("http://umlswitch" + path)
	if err != nil {
		return fmt.Errorf("bench: evpn: GET %s: %w", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("bench: evpn: GET %s: %s", path, resp.Status)
	}
	if v == nil {
		_, err = io.Copy(io.Discard, resp.Body)
	} else {
		err = json.NewDecoder(resp.Body).Decode(v)
	}
	if err != nil {
		return fmt.Errorf("bench: evpn: GET %s: %w", path, err)
	}
	return nil
}

// post sends v as JSON to path of the switch's API.
func (s *evpnSwitchRun) post(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	resp, err := s.api.Post("http://umlswitch"+path, "application/json", bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("bench: evpn: POST %s: %w", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		msg, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("bench: evpn: POST %s: %s: %s", path, resp.Status, bytes.TrimSpace(msg))
	}
	return nil
}

// evpnStats is what GET /v1/bgp says of the switch's EVPN speaker.
type evpnStats struct {
	Running    bool   `json:"running"`
	Received   int    `json:"routes_received"`
	RemoteMACs int    `json:"remote_macs"`
	VTEPs      int    `json:"vteps"`
	Failures   uint64 `json:"dataplane_failures"`
}

func (s *evpnSwitchRun) stats() (evpnStats, error) {
	var b struct {
		Stats evpnStats `json:"stats"`
	}
	err := s.get("/v1/bgp", &b)
	return b.Stats, err
}

// How the bench knows the switch is done. GET /v1/bgp has the speaker's
// counters, but GoBGP walks its whole table to answer it (ListPeer counts
// the routes received and advertised), on the loop that takes in routes:
// at 100,000 routes one call takes tens of milliseconds, and polling it
// would slow the load it measures. The ports in GET /v1/switches are cheap.
// So the load is done when the marker's tunnel is there (the injector sends
// it last, and the speaker takes routes in order), and one GET /v1/bgp then
// checks the counters (polled if they are short: on a loaded machine the
// marker has been seen early). Once the session is down GoBGP has nothing to walk,
// and the withdrawal is done when GET /v1/bgp says no route is left.

// pollStep is how often the ports are counted while waiting.
const pollStep = 10 * time.Millisecond

// tablesTimeout bounds every wait for the tables.
const tablesTimeout = 10 * time.Minute

// waitPorts counts the switches' ports every pollStep until there are n,
// and returns when it first found them.
func (s *evpnSwitchRun) waitPorts(n int, timeout time.Duration) (time.Time, error) {
	deadline := time.Now().Add(timeout)
	for {
		got, err := s.ports()
		now := time.Now()
		switch {
		case err != nil:
			return now, s.withLog(err)
		case got == n:
			return now, nil
		case now.After(deadline):
			return now, s.withLog(fmt.Errorf("bench: evpn: the switches have %d ports after %v, want %d", got, timeout, n))
		}
		time.Sleep(pollStep)
	}
}

// waitStats asks GET /v1/bgp every step until the speaker holds routes
// routes, macs remote entries and vteps tunnels, and returns when it first
// did. A tunnel or entry the data plane refused fails it at once.
func (s *evpnSwitchRun) waitStats(routes, macs, vteps int, step, timeout time.Duration) (time.Time, error) {
	deadline := time.Now().Add(timeout)
	for {
		st, err := s.stats()
		now := time.Now()
		switch {
		case err != nil:
			return now, s.withLog(err)
		case st.Failures > 0:
			return now, s.withLog(fmt.Errorf("bench: evpn: the switch failed to install %d tunnels or remote entries", st.Failures))
		case st.Running && st.Received == routes && st.RemoteMACs == macs && st.VTEPs == vteps:
			return now, nil
		case now.After(deadline):
			return now, s.withLog(fmt.Errorf("bench: evpn: the switch holds %d routes, %d remote MACs and %d tunnels after %v, want %d, %d and %d",
				st.Received, st.RemoteMACs, st.VTEPs, timeout, routes, macs, vteps))
		}
		time.Sleep(step)
	}
}

// ports counts the ports of every switch: the fabric's tunnels, when the
// generator is away.
func (s *evpnSwitchRun) ports() (int, error) {
	var sws []struct {
		Ports int `json:"ports"`
	}
	if err := s.get("/v1/switches", &sws); err != nil {
		return 0, err
	}
	n := 0
	for _, sw := range sws {
		n += sw.Ports
	}
	return n, nil
}

// gcLine is a line of the runtime's gctrace: "gc N @T s P%: ..., A->B->C
// MB, ...", C the heap that the collection found live.
var gcLine = regexp.MustCompile(`^gc (\d+) @.* (\d+)->(\d+)->(\d+) MB`)

// lastGC is the number of the last collection in a gctrace log, and the
// heap it found live of what was there when it began, in bytes; n is 0 if
// there was none.
func lastGC(log []byte) (n int, live uint64) {
	sc := bufio.NewScanner(bytes.NewReader(log))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		m := gcLine.FindSubmatch(sc.Bytes())
		if m == nil {
			continue
		}
		k, err := strconv.Atoi(string(m[1]))
		var abc [3]uint64
		for i := range abc {
			if err == nil {
				abc[i], err = strconv.ParseUint(string(m[2+i]), 10, 64)
			}
		}
		if err == nil && k > n {
			// What was allocated while it marked (B-A) counts as marked:
			// it is not what survived from before.
			n, live = k, (abc[2]-min(abc[2], abc[1]-min(abc[1], abc[0])))<<20
		}
	}
	return n, live
}

// liveHeap is the switch's live heap now. It makes the switch collect by
// asking its API for poke (garbage once answered, so little of it is live
// at any time) until a collection that began after the call shows in the
// trace.
func (s *evpnSwitchRun) liveHeap(poke string, timeout time.Duration) (uint64, error) {
	b, err := os.ReadFile(s.logPath)
	if err != nil {
		return 0, err
	}
	before, _ := lastGC(b)
	deadline := time.Now().Add(timeout)
	for {
		// A collection that was under way at the call ends with the next
		// number: wait for the one after it.
		if n, live := lastGC(b); n > before+1 {
			return live, nil
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("bench: evpn: the switch ran no garbage collection within %v", timeout)
		}
		for range 10 {
			if err := s.get(poke, nil); err != nil {
				return 0, err
			}
		}
		if b, err = os.ReadFile(s.logPath); err != nil {
			return 0, err
		}
	}
}

// memory takes the switch's live heap and resident memory into r's slot
// at. Loaded, it has the switch list the MAC table of v1 (a
// hundredth of the remote entries, at the default scale) to make it
// collect; empty, a scrape of its metrics, which then has no routes to
// list and allocates more than an empty table's listing.
func (s *evpnSwitchRun) memory(r *EVPNRun, at int) error {
	poke := "metrics"
	if at == atLoaded {
		poke = "/v1/fdb?switch=v1"
	}
	var err error
	if r.Heap[at], err = s.liveHeap(poke, time.Minute); err != nil {
		return err
	}
	r.RSS[at], err = readRSS(s.pid())
	return err
}

// settle takes the switch's CPU time over r.IdleWindow, and then its
// memory, into r's slots at.
func (s *evpnSwitchRun) settle(r *EVPNRun, at int) error {
	c0 := cpuOrZero(s.pid())
	time.Sleep(r.IdleWindow)
	r.Idle[at] = cpuOrZero(s.pid()) - c0
	return s.memory(r, at)
}

// evpnRun is one run: a fresh switch and its twin, forwarding through
// each with no routes, the load, forwarding through each in turn, the
// withdrawal.
func evpnRun(cfg EVPNConfig, j *injector, r *EVPNRun, profile string) error {
	var extra []string
	if profile != "" {
		extra = []string{"-cpuprofile", profile}
	}
	s, err := startEVPNSwitch(cfg, "fabric", evpnBGPPort, extra...)
	if err != nil {
		return err
	}
	defer s.shutdown()
	twin, err := startEVPNSwitch(cfg, "twin", 0)
	if err != nil {
		return err
	}
	defer twin.shutdown()
	for _, sw := range []*evpnSwitchRun{s, twin} {
		if _, err := sw.waitStats(0, 0, 0, pollStep, 10*time.Second); err != nil {
			return err
		}
	}
	time.Sleep(300 * time.Millisecond) // let the start settle
	// forward runs the generator's two ports through sw: both local, or
	// with the second a VTEP talking to the switch's VTEP at to.
	forward := func(sw *evpnSwitchRun, res *GenResult, to ...netip.Addr) error {
		gen := cfg.Gen
		gen.Ctl, gen.Dir, gen.SwitchPID, gen.Ports, gen.Transport = sw.ctl, cfg.Dir, sw.pid(), 2, Transports["daemon"]
		if len(to) > 0 {
			gen.PortTransports = []*Transport{nil, vtepTransport(to[0])}
		}
		var err error
		if *res, err = Generate(gen); err != nil {
			return sw.withLog(err)
		}
		return nil
	}
	if err := s.settle(r, atEmpty); err != nil {
		return err
	}
	if err := forward(s, &r.Empty); err != nil {
		return err
	}
	if err := forward(twin, &r.TwinEmpty); err != nil {
		return err
	}

	sw0, inj0 := cpuOrZero(s.pid()), cpuOrZero(os.Getpid())
	up, err := j.connect(netip.MustParseAddr("127.0.0.2"), evpnBGPPort, 30*time.Second)
	if err != nil {
		return s.withLog(err)
	}
	vteps := cfg.Scale.VTEPs + 1 // and the marker
	full, err := s.waitPorts(vteps, tablesTimeout)
	if err != nil {
		return err
	}
	// The marker comes last in GoBGP's queue, but a loaded machine has
	// been seen to show its tunnel with a few dozen routes still on the
	// way: then the load ends when the counters say so.
	all, err := s.waitStats(vteps+cfg.Scale.MACs, cfg.Scale.MACs, vteps, 100*time.Millisecond, time.Minute)
	if err != nil {
		return err
	}
	if all.Sub(full) > 100*time.Millisecond {
		full = all
	}
	r.Load, r.LoadCPU, r.InjectorCPU = full.Sub(up), cpuOrZero(s.pid())-sw0, cpuOrZero(os.Getpid())-inj0
	if err := s.settle(r, atLoaded); err != nil {
		return err
	}
	r.Loaded, r.Twin = make([]GenResult, evpnPairs), make([]GenResult, evpnPairs)
	for p := range evpnPairs {
		order := []func() error{func() error { return forward(s, &r.Loaded[p]) }, func() error { return forward(twin, &r.Twin[p]) }}
		if p%2 == 1 { // ABBA: a drift hits both alike
			order[0], order[1] = order[1], order[0]
		}
		for _, f := range order {
			if err := f(); err != nil {
				return err
			}
		}
	}
	for _, path := range evpnAPICalls {
		var took []float64
		for range evpnAPITries {
			t0 := time.Now()
			if err := s.get(path, nil); err != nil {
				return s.withLog(err)
			}
			took = append(took, float64(time.Since(t0)))
		}
		r.APILoaded = append(r.APILoaded, time.Duration(medianOf(took)))
	}
	if err := remoteRuns(cfg, j, s, twin, r, forward); err != nil {
		return err
	}

	sw0 = cpuOrZero(s.pid())
	down := time.Now()
	if err := j.disconnect(); err != nil {
		return err
	}
	empty, err := s.waitStats(0, 0, 0, pollStep, tablesTimeout)
	if err != nil {
		return err
	}
	r.Withdraw, r.WithdrawCPU = empty.Sub(down), cpuOrZero(s.pid())-sw0
	if n, err := s.ports(); err != nil || n != 0 {
		return s.withLog(fmt.Errorf("bench: evpn: the switches have %d ports once every route is withdrawn, want none (%v)", n, err))
	}
	return s.settle(r, atWithdrawn)
}

// remoteRuns has the injector announce the generator's VTEP and the
// address of its second port behind it, gives the twin a hand-written
// VXLAN port to the same VTEP, and measures forwarding to that address
// through each, and through the switch while routes churn, in turn.
func remoteRuns(cfg EVPNConfig, j *injector, s, twin *evpnSwitchRun, r *EVPNRun,
	forward func(*evpnSwitchRun, *GenResult, ...netip.Addr) error) error {
	vteps := cfg.Scale.VTEPs + 1 // and the marker
	if err := j.announceGen(); err != nil {
		return err
	}
	if _, err := s.waitPorts(vteps+1, time.Minute); err != nil {
		return err
	}
	routes, macs := vteps+cfg.Scale.MACs+2, cfg.Scale.MACs+1
	if _, err := s.waitStats(routes, macs, vteps+1, 100*time.Millisecond, time.Minute); err != nil {
		return err
	}
	hand := fmt.Sprintf("transport=vxlan,name=hand,src=%s,dst=%s,vni=1,dstport=%d", twinVTEP, genVTEP, vxlan.DefaultPort)
	if err := twin.post("/v1/ports", map[string]string{"switch": "v1", "spec": hand}); err != nil {
		return twin.withLog(err)
	}
	churned := func(res *GenResult) error {
		stop := make(chan struct{})
		type churn struct {
			n    int
			took time.Duration
			err  error
		}
		done := make(chan churn, 1)
		go func() {
			n, took, err := j.churn(cfg.Churn, stop)
			done <- churn{n, took, err}
		}()
		err := forward(s, res, switchVTEP)
		close(stop)
		c := <-done
		r.Churn, r.ChurnTime = r.Churn+c.n, r.ChurnTime+c.took
		if err == nil {
			err = c.err
		}
		if err == nil { // every route back before the next run
			_, err = s.waitStats(routes, macs, vteps+1, 100*time.Millisecond, time.Minute)
		}
		return err
	}
	r.Remote, r.Hand, r.Churned = make([]GenResult, evpnPairs), make([]GenResult, evpnPairs), make([]GenResult, evpnPairs)
	for p := range evpnPairs {
		order := []func() error{
			func() error { return forward(s, &r.Remote[p], switchVTEP) },
			func() error { return forward(twin, &r.Hand[p], twinVTEP) },
			func() error { return churned(&r.Churned[p]) },
		}
		if p%2 == 1 {
			slices.Reverse(order)
		}
		for _, f := range order {
			if err := f(); err != nil {
				return err
			}
		}
	}
	return nil
}

// churnRate is the route changes a second the churned runs saw.
func (r EVPNRun) churnRate() float64 {
	if r.ChurnTime <= 0 {
		return 0
	}
	return float64(r.Churn) / r.ChurnTime.Seconds()
}

// ReportEVPN writes the runs as markdown: the control plane's times and
// CPU, memory, the API's reads, then forwarding loaded against the twin.
func ReportEVPN(w io.Writer, scale EVPNScale, gen GenConfig, runs []EVPNRun) {
	routes := scale.VTEPs + scale.MACs
	fmt.Fprintf(w, "%s: %d routes\n\n", scale, routes)
	fmt.Fprintln(w, "| run | session up to all installed | routes/s | switch CPU | injector CPU | session down to none left | switch CPU | idle switch CPU, empty / loaded / withdrawn | forwarding loaded / twin: frames/s, per switch CPU-s | (before: empty / twin) |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|")
	idle := func(r EVPNRun, at int) float64 { return 100 * r.Idle[at].Seconds() / r.IdleWindow.Seconds() }
	values := func(r EVPNRun) []float64 {
		loaded, empty := r.ratios(GenResult.deliveredMpps)
		loadedCPU, emptyCPU := r.ratios(GenResult.perSwitchCPU)
		return []float64{r.Load.Seconds(), float64(routes) / r.Load.Seconds(), r.LoadCPU.Seconds(), r.InjectorCPU.Seconds(),
			r.Withdraw.Seconds(), r.WithdrawCPU.Seconds(), idle(r, atEmpty), idle(r, atLoaded), idle(r, atWithdrawn), loaded, loadedCPU, empty, emptyCPU}
	}
	line := func(name string, v []float64) {
		fmt.Fprintf(w, "| %s | %.2f s | %.0f | %.2f s | %.2f s | %.2f s | %.2f s | %.1f / %.1f / %.1f %% | %.2fx, %.2fx | %.2fx, %.2fx |\n",
			name, v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9], v[10], v[11], v[12])
	}
	var all [][]float64
	for i, r := range runs {
		all = append(all, values(r))
		line(strconv.Itoa(i+1), all[i])
	}
	if len(runs) > 1 {
		med := make([]float64, len(all[0]))
		for c := range med {
			var col []float64
			for _, v := range all {
				col = append(col, v[c])
			}
			med[c] = medianOf(col)
		}
		line("median", med)
	}

	fmt.Fprintln(w, "\n| run | Go heap live, empty / loaded / withdrawn | RSS, empty / loaded / withdrawn | heap growth per route | heap kept once withdrawn, per route |")
	fmt.Fprintln(w, "|---|---|---|---|---|")
	for i, r := range runs {
		per := func(at int) float64 { return (float64(r.Heap[at]) - float64(r.Heap[atEmpty])) / float64(routes) }
		fmt.Fprintf(w, "| %d | %.0f / %.0f / %.0f MB | %.0f / %.0f / %.0f MB | %.0f bytes | %.0f bytes |\n", i+1,
			mb(r.Heap[atEmpty]), mb(r.Heap[atLoaded]), mb(r.Heap[atWithdrawn]), mb(r.RSS[atEmpty]), mb(r.RSS[atLoaded]), mb(r.RSS[atWithdrawn]),
			per(atLoaded), per(atWithdrawn))
	}

	fmt.Fprintf(w, "\n| run | %s |\n|---|%s\n", strings.Join(evpnAPICalls, " | "), strings.Repeat("---|", len(evpnAPICalls)))
	for i, r := range runs {
		fmt.Fprintf(w, "| %d ", i+1)
		for _, d := range r.APILoaded {
			fmt.Fprintf(w, "| %.1f ms ", float64(d)/1e6)
		}
		fmt.Fprintln(w, "|")
	}

	rowOf := func(name string, pick func(EVPNRun) []GenResult) Row {
		rw := Row{Switch: name, Ports: 2, Size: gen.Size, Client: "uml"}
		for _, r := range runs {
			rw.Runs = append(rw.Runs, pick(r)...)
		}
		return rw
	}
	fmt.Fprintf(w, "\nForwarding between two local ports of v1: with the %d remote MACs and %d tunnels installed, against its twin (no routes) in turn, "+
		"and against itself before the load:\n\n", scale.MACs, scale.VTEPs)
	Report(w, []Row{rowOf("loaded", func(r EVPNRun) []GenResult { return r.Loaded }),
		rowOf("twin", func(r EVPNRun) []GenResult { return r.Twin }),
		rowOf("empty", func(r EVPNRun) []GenResult { return []GenResult{r.Empty} })})

	if len(runs[0].Remote) == 0 {
		return
	}
	fmt.Fprintf(w, "\nForwarding between a local port of v1 and an address behind a remote VTEP (the generator's): over the tunnel an EVPN route made, "+
		"with every route installed; through a hand-written VXLAN port of the twin; over the EVPN tunnel while VNI 1's MAC routes churn; in turn:\n\n")
	Report(w, []Row{rowOf("EVPN", func(r EVPNRun) []GenResult { return r.Remote }),
		rowOf("hand-written", func(r EVPNRun) []GenResult { return r.Hand }),
		rowOf("EVPN, churn", func(r EVPNRun) []GenResult { return r.Churned })})
	fmt.Fprintln(w, "\n| run | EVPN / hand-written: frames/s, per switch CPU-s | churned / quiet: frames/s, per switch CPU-s | route changes/s |")
	fmt.Fprintln(w, "|---|---|---|---|")
	for i, r := range runs {
		remote, churned := r.remoteRatios(GenResult.deliveredMpps)
		remoteCPU, churnedCPU := r.remoteRatios(GenResult.perSwitchCPU)
		fmt.Fprintf(w, "| %d | %.2fx, %.2fx | %.2fx, %.2fx | %.0f |\n", i+1, remote, remoteCPU, churned, churnedCPU, r.churnRate())
	}
}

func medianOf(v []float64) float64 {
	v = slices.Sorted(slices.Values(v))
	if len(v) == 0 {
		return 0
	}
	if len(v)%2 == 0 {
		return (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	return v[len(v)/2]
}
