package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/umlswitch/umlswitch/transports/vxlan"
)

// -mode evpn: umlswitch in a BGP EVPN fabric at scale. A GoBGP speaker in
// this process (evpninject.go) plays many remote VTEPs; the run measures
// how long umlswitch takes to hold all their tunnels and addresses, its
// memory, forwarding to an address it learned from EVPN with and without
// route churn, the same forwarding over a hand-written VXLAN port, and how
// long it takes to withdraw everything once the session goes down.
//
// It runs in a network namespace of its own: the switch's VTEP and the
// generator's (VTEP 0 of the fabric, the only remote VTEP that exists) are
// addresses on its loopback; the other VTEPs are nowhere, which a switch
// that only sends to them never notices. The BGP session runs over
// 127.0.0.1 and 127.0.0.2.

// switchVTEP is the switch's own VTEP address in the run's namespace.
var switchVTEP = netip.MustParseAddr("10.0.0.1")

// evpnBGPPort is where the switch listens for the injector.
const evpnBGPPort = 1179

// EVPNConfig sets up -mode evpn.
type EVPNConfig struct {
	Scale EVPNScale
	Exe   string // umlswitch
	Dir   string
	CPUs  []int     // pin the switch here; empty: anywhere
	Gen   GenConfig // the forwarding runs' settings (size, depth, window, warm-up, duration, generator CPUs)
	Runs  int
	Churn int // type-2 routes withdrawn (and as many announced again) a second in the churn runs; 0: none
	// Profile, if set, is where the first run's EVPN switch writes its Go
	// CPU profile (umlswitch -cpuprofile).
	Profile  string
	Progress io.Writer
}

// EVPNRun is what one run measured.
type EVPNRun struct {
	Load     time.Duration // session up to every tunnel and remote MAC in the switch's tables
	Withdraw time.Duration // session down to none left
	Recover  time.Duration // end of the churn to every churned route back in the tables
	// Resident memory of the switch: idle with its switches and no routes,
	// with every route in, and after they were withdrawn.
	RSSBefore, RSSLoaded, RSSWithdrawn uint64
	Quiet, Churned, Hand               GenResult // forwarding to the EVPN-learned address, with churn, over a hand-written port
	ChurnRate                          float64   // routes withdrawn a second during the churn run, as done
}

// EVPN measures cfg.Runs runs, each with a fresh switch for the fabric
// and another for the hand-written port.
func EVPN(cfg EVPNConfig) ([]EVPNRun, error) {
	if err := cfg.Scale.Check(); err != nil {
		return nil, err
	}
	if err := setupEVPNNetns(); err != nil {
		return nil, err
	}
	var runs []EVPNRun
	for i := 0; i < cfg.Runs; i++ {
		var r EVPNRun
		profile := ""
		if i == 0 {
			profile = cfg.Profile
		}
		if err := evpnFabricRun(cfg, &r, i%2 == 1, profile); err != nil {
			return runs, err
		}
		if err := evpnHandRun(cfg, &r); err != nil {
			return runs, err
		}
		runs = append(runs, r)
		progress(cfg.Progress, "evpn: run %d: loaded in %v, withdrawn in %v, rss %.1f -> %.1f -> %.1f MB; %.3f Mfps, %.3f with churn (%.0f routes/s, tables full again %v after), %.3f over a hand-written port",
			i+1, r.Load.Round(time.Millisecond), r.Withdraw.Round(time.Millisecond), mb(r.RSSBefore), mb(r.RSSLoaded), mb(r.RSSWithdrawn),
			r.Quiet.deliveredMpps(), r.Churned.deliveredMpps(), r.ChurnRate, r.Recover.Round(time.Millisecond), r.Hand.deliveredMpps())
	}
	return runs, nil
}

func progress(w io.Writer, format string, a ...any) {
	if w != nil {
		fmt.Fprintf(w, format+"\n", a...)
	}
}

func mb(b uint64) float64 { return float64(b) / 1e6 }

// setupEVPNNetns brings the namespace's loopback up with the two VTEP
// addresses on it.
func setupEVPNNetns() error {
	lo, err := netlink.LinkByName("lo")
	if err == nil {
		err = netlink.LinkSetUp(lo)
	}
	for _, a := range []netip.Addr{switchVTEP, evpnVTEP(0)} {
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
	return nil
}

// evpnPlan is the switch's configuration: switches v1..vN with VNIs 1..N
// (v1 with a daemon listener at ctl for the generator) and an evpn: block
// that waits for the injector at 127.0.0.1 on listen. hand: the same
// switches with no VNI and no evpn: block, and v1 with a hand-written
// VXLAN port to the generator's VTEP instead.
func evpnPlan(scale EVPNScale, ctl string, vtep netip.Addr, listen int, vxlanPort uint16, hand bool) string {
	var b strings.Builder
	b.WriteString("log_level: warn\nswitches:\n")
	for v := 1; v <= scale.VNIs; v++ {
		fmt.Fprintf(&b, "  - name: v%d\n", v)
		if !hand {
			fmt.Fprintf(&b, "    vni: %d\n", v)
		}
		if v == 1 && ctl != "" {
			fmt.Fprintf(&b, "    ports:\n      - {transport: daemon, path: %s}\n", ctl)
			if hand {
				fmt.Fprintf(&b, "      - {transport: vxlan, src: %s, dst: %s, vni: 1, dstport: %d}\n", vtep, evpnVTEP(0), vxlanPort)
			}
		}
	}
	if !hand {
		fmt.Fprintf(&b, "evpn:\n  asn: %d\n  router_id: %s\n  vtep: %s\n  vxlan_port: %d\n  listen_port: %d\n  hold_time: 90s\n"+
			"  neighbors:\n    - {address: 127.0.0.1, asn: %d, passive: true}\n", evpnASN, vtep, vtep, vxlanPort, listen, evpnASN)
	}
	return b.String()
}

// evpnSwitch is umlswitch run on the configuration file at path.
func evpnSwitch(path, ctl string, extra ...string) *Switch {
	return &Switch{
		Name: "umlswitch",
		command: func(exe, _ string, _ bool) ([]string, string) {
			return append([]string{exe, "-config", path}, extra...), ctl
		},
		stop:      func(p *process) { p.cmd.Process.Signal(syscall.SIGTERM) },
		umlswitch: true,
	}
}

// startEVPNSwitch writes the plan and starts umlswitch on it, its log in
// the run's directory.
func startEVPNSwitch(cfg EVPNConfig, hand bool, extra ...string) (*process, func(error) error, error) {
	ctl := filepath.Join(cfg.Dir, "umlswitch.ctl")
	path := filepath.Join(cfg.Dir, "evpn.yaml")
	doc := evpnPlan(cfg.Scale, ctl, switchVTEP, evpnBGPPort, vxlan.DefaultPort, hand)
	if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
		return nil, nil, err
	}
	logPath := filepath.Join(cfg.Dir, "umlswitch.log")
	log, err := os.Create(logPath)
	if err != nil {
		return nil, nil, err
	}
	defer log.Close() // the child has its own descriptor
	withLog := func(err error) error {
		b, _ := os.ReadFile(logPath)
		return fmt.Errorf("%v\n%s", err, b)
	}
	p, err := start(evpnSwitch(path, ctl, extra...), cfg.Exe, cfg.Dir, false, nil, cfg.CPUs, log)
	if err != nil {
		return nil, nil, withLog(err)
	}
	return p, withLog, nil
}

// evpnTablesAt counts the tables of the switch whose API is at ctl: its
// remote MAC entries, and its attached ports, which are its tunnels while
// the generator is away.
func evpnTablesAt(ctl string) evpnTables {
	c := unixHTTP(ctl)
	return func() (int, int, error) {
		resp, err := c.Get("http://umlswitch/v1/switches")
		if err != nil {
			return 0, 0, fmt.Errorf("bench: evpn: list the switches: %w", err)
		}
		defer resp.Body.Close()
		var sws []struct {
			Ports      int `json:"ports"`
			RemoteMACs int `json:"remote_macs"`
		}
		if resp.StatusCode != http.StatusOK {
			return 0, 0, fmt.Errorf("bench: evpn: list the switches: %s", resp.Status)
		}
		if err := json.NewDecoder(resp.Body).Decode(&sws); err != nil {
			return 0, 0, fmt.Errorf("bench: evpn: list the switches: %w", err)
		}
		var remote, ports int
		for _, s := range sws {
			remote += s.RemoteMACs
			ports += s.Ports
		}
		return remote, ports, nil
	}
}

// pollStep is how often the tables are counted while waiting: each count
// is one API call the switch answers on its CPU.
const pollStep = 20 * time.Millisecond

// tablesTimeout bounds every wait for the tables.
const tablesTimeout = 10 * time.Minute

// evpnFabricRun is one run of the switch in the fabric: load every route,
// forward with and without churn (churnFirst: in that order), withdraw.
func evpnFabricRun(cfg EVPNConfig, r *EVPNRun, churnFirst bool, profile string) error {
	var extra []string
	if profile != "" {
		extra = []string{"-cpuprofile", profile}
	}
	j, err := startInjector(cfg.Scale, portMAC(1))
	if err != nil {
		return err
	}
	defer j.close()
	p, withLog, err := startEVPNSwitch(cfg, false, extra...)
	if err != nil {
		return err
	}
	defer p.shutdown()
	count := evpnTablesAt(p.ctl)
	if _, err := waitTables(count, 0, 0, pollStep, 10*time.Second); err != nil {
		return withLog(err)
	}
	time.Sleep(500 * time.Millisecond) // let the start settle before the first reading
	if r.RSSBefore, err = readRSS(p.pid()); err != nil {
		return err
	}

	up, err := j.connect(netip.MustParseAddr("127.0.0.2"), evpnBGPPort, 30*time.Second)
	if err != nil {
		return withLog(err)
	}
	full, err := waitTables(count, cfg.Scale.MACs, cfg.Scale.VTEPs, pollStep, tablesTimeout)
	if err != nil {
		return withLog(err)
	}
	r.Load = full.Sub(up)
	if r.RSSLoaded, err = readRSS(p.pid()); err != nil {
		return err
	}

	gen := cfg.Gen
	gen.Ctl, gen.Dir, gen.SwitchPID, gen.Ports = p.ctl, cfg.Dir, p.pid(), 2
	gen.Transport = evpnTransport
	quiet := func() error {
		res, err := Generate(gen)
		r.Quiet = res
		return err
	}
	churned := func() error {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		var n int
		t0 := time.Now()
		go func() {
			var err error
			n, err = j.churn(ctx, cfg.Churn)
			done <- err
		}()
		res, err := Generate(gen)
		cancel()
		cerr := <-done
		stopped := time.Now()
		r.Churned, r.ChurnRate = res, float64(n)/stopped.Sub(t0).Seconds()
		if err != nil {
			return err
		}
		if cerr != nil {
			return cerr
		}
		back, err := waitTables(count, cfg.Scale.MACs, cfg.Scale.VTEPs, pollStep, tablesTimeout)
		r.Recover = back.Sub(stopped)
		return err
	}
	order := []func() error{quiet, churned}
	if churnFirst {
		order = []func() error{churned, quiet}
	}
	for _, f := range order {
		if err := f(); err != nil {
			return withLog(err)
		}
	}

	down := time.Now()
	if err := j.disconnect(); err != nil {
		return err
	}
	empty, err := waitTables(count, 0, 0, pollStep, tablesTimeout)
	if err != nil {
		return withLog(err)
	}
	r.Withdraw = empty.Sub(down)
	r.RSSWithdrawn, err = readRSS(p.pid())
	return err
}

// evpnHandRun measures the same forwarding through a switch with no
// EVPN, whose VXLAN port to the generator's VTEP is written by hand.
func evpnHandRun(cfg EVPNConfig, r *EVPNRun) error {
	p, withLog, err := startEVPNSwitch(cfg, true)
	if err != nil {
		return err
	}
	defer p.shutdown()
	gen := cfg.Gen
	gen.Ctl, gen.Dir, gen.SwitchPID, gen.Ports = p.ctl, cfg.Dir, p.pid(), 2
	gen.Transport = evpnTransport
	if r.Hand, err = Generate(gen); err != nil {
		return withLog(err)
	}
	return nil
}

// evpnTransport is the generator's two ports in an EVPN run: a UML-style
// daemon client of v1, and VTEP 0 of the fabric, a VXLAN socket at its
// address sending VNI 1 to the switch's VTEP. The switch knows port 1's
// address from EVPN (the injector announces it behind VTEP 0), or, over the
// hand-written port, learns it there.
var evpnTransport = &Transport{Name: "evpn", Dial: func(cfg GenConfig, i int) (*client, error) {
	if i == 0 {
		return dialDaemon(cfg, 0)
	}
	hdr := vxlan.Encode(1)
	c, err := dialIP(unix.SOCK_DGRAM, 0, evpnVTEP(0), vxlan.DefaultPort, switchVTEP, vxlan.DefaultPort, hdr[:])
	if err != nil {
		return nil, fmt.Errorf("bench: evpn: the generator's VTEP: %w", err)
	}
	return c, nil
}}

// ReportEVPN writes the runs as markdown: the control plane's figures
// per run, then the forwarding tables and their ratios.
func ReportEVPN(w io.Writer, scale EVPNScale, churn int, gen GenConfig, runs []EVPNRun) {
	fmt.Fprintf(w, "%s; churn %d type-2 routes withdrawn and announced again a second\n\n", scale, churn)
	fmt.Fprintln(w, "| run | session up to all in tables | session down to none left | RSS idle | RSS loaded | RSS withdrawn | churn done | tables full again after churn |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|")
	var load, wd, before, loaded, after, rate, rec []float64
	for i, r := range runs {
		fmt.Fprintf(w, "| %d | %.2f s | %.2f s | %.1f MB | %.1f MB | %.1f MB | %.0f routes/s | %.2f s |\n", i+1, r.Load.Seconds(), r.Withdraw.Seconds(),
			mb(r.RSSBefore), mb(r.RSSLoaded), mb(r.RSSWithdrawn), r.ChurnRate, r.Recover.Seconds())
		load, wd, rec = append(load, r.Load.Seconds()), append(wd, r.Withdraw.Seconds()), append(rec, r.Recover.Seconds())
		before, loaded, after = append(before, mb(r.RSSBefore)), append(loaded, mb(r.RSSLoaded)), append(after, mb(r.RSSWithdrawn))
		rate = append(rate, r.ChurnRate)
	}
	if len(runs) > 1 {
		fmt.Fprintf(w, "| median | %.2f s | %.2f s | %.1f MB | %.1f MB | %.1f MB | %.0f routes/s | %.2f s |\n",
			medianOf(load), medianOf(wd), medianOf(before), medianOf(loaded), medianOf(after), medianOf(rate), medianOf(rec))
	}
	row := func(name string, pick func(EVPNRun) GenResult) Row {
		rw := Row{Switch: name, Ports: 2, Size: gen.Size, Client: "uml + vxlan"}
		for _, r := range runs {
			rw.Runs = append(rw.Runs, pick(r))
		}
		return rw
	}
	evpnRow := row("evpn", func(r EVPNRun) GenResult { return r.Quiet })
	fmt.Fprintln(w, "\nForwarding with route churn against without:")
	fmt.Fprintln(w)
	Report(w, []Row{row("evpn+churn", func(r EVPNRun) GenResult { return r.Churned }), evpnRow})
	fmt.Fprintln(w, "\nForwarding to the EVPN-learned address against over a hand-written VXLAN port:")
	fmt.Fprintln(w)
	Report(w, []Row{evpnRow, row("vxlan-port", func(r EVPNRun) GenResult { return r.Hand })})
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
