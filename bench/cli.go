package bench

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/umlswitch/umlswitch/frame"
)

const usageHead = `Usage: umlswitch-bench [flags]

Drives a switch with P generator ports over the daemon protocol (or BESS,
GRE, L2TPv3, VXLAN, QEMU's stream framing, tap, raw): each port sends one
frame so the switch learns it, then every port blasts unicast frames to the
next with sendmmsg, at most -window in flight, while receivers drain with recvmmsg. Prints offered and
delivered frames per second, Gbit/s, loss, and the switch's CPU time (frames
per switch CPU-second), as a markdown table. -mode latency measures round trips with one frame in flight;
-mode scan repeats the throughput run over frame sizes and port counts; -mode soak runs
mixed traffic and churn through umlswitch for a long time (-duration, 30m by default) and
samples its memory, descriptors and goroutines every -interval, to find leaks; -mode evpn
puts umlswitch in a BGP EVPN fabric of many VTEPs that a GoBGP speaker in the bench plays,
and measures the load, the withdrawal, memory, and forwarding with the routes against without;
-mode nat streams TCP from a guest (a network namespace behind a raw port) to a server on the
host's loopback through umlswitch's nat port, QEMU's user networking and the kernel's NAT.

The umlswitch it starts is the one next to umlswitch-bench, in the same directory
(make build puts both in bin/), unless -umlswitch PATH names another; the relay
is umlswitch-bench itself (umlswitch-bench relay).

Examples:
  umlswitch-bench                                     # start umlswitch, 2 ports, 64-byte frames
  umlswitch-bench -compare uml_switch -cpu 0 -runs 3  # umlswitch against uml_switch, switch on CPU 0
  umlswitch-bench -compare uml_switch,vde_switch -ports 8 -hub
  umlswitch-bench -clients vde -compare relay         # against the ceiling: a bare relay on the same sockets
  umlswitch-bench -transport gre -compare relay -cpu 0  # GRE ports (as root), against the relay on GRE
  umlswitch-bench -transport stream -compare relay,relay-bare -cpu 0  # QEMU stream ports, against the relay on the same ports and a bare stream relay
  umlswitch-bench -compare vlan-access,vlan-trunk -cpu 0  # VLAN 10 access ports, and tags pushed and popped, against plain ports
  umlswitch-bench -transport tap -ports 8 -cpu 0      # taps the switch creates, in a private namespace (as root)
  umlswitch-bench -ctl /tmp/uml.ctl -pid 1234         # a switch that is already running
  umlswitch-bench -mode latency -compare uml_switch -cpu 0          # round-trip percentiles
  umlswitch-bench -mode scan -sizes 64,1514,9000 -port-counts 2,8,64 -compare relay -plot scan.png
  umlswitch-bench -mode soak -cpu 0 -duration 30m -interval 1m -plot soak.png  # leaks: memory, descriptors, goroutines
  umlswitch-bench -mode evpn -cpu 0 -runs 3         # 1,000 VTEPs, 100,000 MACs, 100 VNIs (as root)
  umlswitch-bench -mode evpn -vnis 2 -vteps 10 -macs 1000 -duration 1s  # the same, small
  umlswitch-bench -mode nat -cpu 0                  # TCP through the nat port, QEMU's slirp and kernel NAT (as root)
  umlswitch-bench -compare umlswitch=/tmp/umlswitch.old,uml_switch -cpu 0  # this build against an older one
  umlswitch-bench -umlswitch /usr/local/bin/umlswitch  # start that umlswitch, not the one next to umlswitch-bench
  umlswitch-bench relay -unix /tmp/relay.ctl          # run the ceiling relay by hand

Flags:
`

// Main runs `umlswitch-bench`.
func Main(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "relay" {
		return RelayMain(args[1:], stderr)
	}
	fs := flag.NewFlagSet("umlswitch-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		swName = fs.String("switch", "umlswitch", "switch to start and measure: umlswitch, uml_switch, vde_switch, relay (the ceiling:\n"+
			"umlswitch's sockets with no switching logic; relay-bare: the same, but with -transport stream a\n"+
			"bare relay of its own, no port code at all), or umlswitch with its daemon clients on VLAN 10:\n"+
			"vlan-access (every port an access port of VLAN 10) or vlan-trunk (even ports access ports of\n"+
			"VLAN 10, odd ports its tagged trunk members, whose frames carry an 802.1Q tag counted within\n"+
			"-size; -ports must be even, so that every frame has its tag pushed or popped once).\n"+
			"vlan-access and vlan-trunk take the daemon transport only. umlswitch-web is umlswitch with its web\n"+
			"page open (-web; the page's requests played: every second its switches, ports, MAC table and\n"+
			"drawing, and its event stream); umlswitch-capture, umlswitch with its live capture read as\n"+
			"Wireshark's extcap reads it; umlswitch-capture-port, the capture of one port (port=).\n"+
			"Example: -switch uml_switch")
		compare = fs.String("compare", "", "also measure these switches, in turn and with identical settings; ratios are to -switch.\n"+
			"umlswitch=PATH is another umlswitch build (before and after a change, in one run); so are\n"+
			"vlan-access=PATH and vlan-trunk=PATH.\nExample: -compare uml_switch,vde_switch")
		ctl      = fs.String("ctl", "", "drive the already running switch at this control socket `PATH` instead of starting one.\nExample: -ctl /tmp/uml.ctl")
		pid      = fs.Int("pid", 0, "with -ctl: the switch's process id, for its CPU time.\nExample: -pid 1234")
		ports    = fs.Int("ports", 2, "generator ports (clients of the switch).\nExample: -ports 8")
		size     = fs.Int("size", 64, "frame size in `BYTES`, Ethernet header included.\nExample: -size 1514")
		duration = fs.Duration("duration", 3*time.Second, "measured time per run; with -mode soak the whole run (default 30m there).\nExample: -duration 10s")
		warmup   = fs.Duration("warmup", 500*time.Millisecond, "traffic before the measurement starts.\nExample: -warmup 1s")
		depth    = fs.Int("depth", 64, "frames per sendmmsg and recvmmsg call.\nExample: -depth 32")
		clients  = fs.String("clients", "uml", "with -transport daemon: uml clients (sendto the switch, never connect back) or vde clients\n(connect back).\nExample: -clients vde")
		window   = fs.Int("window", DefaultWindow, "most frames in flight from each generator port (0: no limit). One thread plays\nevery client, so without a bound it offers a port more than it drains from that port's\ndestination, and UDP and IP sockets do not hold it back at all.\nExample: -window 0")
		trName   = fs.String("transport", "daemon", "what the generator's ports speak: daemon (every switch), or bess, gre, l2tpv3, vxlan,\n"+
			"stream, tap or raw (umlswitch and the relay; gre, tap and raw need root). stream: QEMU's\n"+
			"-netdev stream, every port a connection to one unix stream listener, each frame behind its\n"+
			"length (4 bytes, big-endian). tap: the switch creates a tap\n"+
			"per port and the generator sends and receives on the host's side of it; raw: the switch's raw\n"+
			"port opens one end of a veth pair and the generator the other; xdp: as raw, with the generator on\n"+
			"AF_XDP sockets (the switch's raw ports are as it is named: umlswitch-xdp for AF_XDP). tap, raw\n"+
			"and xdp run in a network namespace of the bench's own, so the interfaces are private to it.\n"+
			"Example: -transport xdp -switch umlswitch -compare umlswitch-xdp")
		hub    = fs.Bool("hub", false, "start the switches in hub mode; every frame then reaches every other port.\nExample: -hub")
		runs   = fs.Int("runs", 0, "runs per switch, interleaved; tables show median (min-max). Default 1, or 3 with -compare.\nExample: -runs 5")
		cpu    = fs.String("cpu", "", "pin the switch to these CPUs (`LIST`: 0, 0-3, 0,2) and the generator to the others.\nExample: -cpu 0")
		genCPU = fs.String("gen-cpu", "", "with -cpu: pin the generator to these CPUs (`LIST`) instead of all the others.\nExample: -cpu 0-3 -gen-cpu 4")
		exe    = fs.String("umlswitch", "", "umlswitch binary `PATH` to start for umlswitch, vlan-access and vlan-trunk in -switch or\n-compare (default: umlswitch in umlswitch-bench's own directory).\nExample: -umlswitch /usr/local/bin/umlswitch")
		mode   = fs.String("mode", "throughput", "throughput (frames per second, loss, CPU), latency (one frame in flight between two\n"+
			"ports: round-trip p50, p90, p99, p99.9), scan (throughput over -sizes and -port-counts), or soak\n"+
			"(umlswitch only: 4 UML-style daemon clients and 2 BESS clients send -rate frames a second each,\n"+
			"while clients attach and leave and API calls come and go, for -duration; every -interval a row of\n"+
			"the switch's memory, descriptors, goroutines, frames forwarded and dropped, and at the end the\n"+
			"growth of each and a leak flagged where one rose in every interval), or evpn (umlswitch in a BGP\n"+
			"EVPN fabric of -vteps remote VTEPs and -macs remote MACs over -vnis VNIs, played by a GoBGP speaker\n"+
			"in the bench: time and switch CPU from the session coming up until every tunnel and remote MAC is\n"+
			"installed, and from its going down until none is left; the switch's live Go heap and resident\n"+
			"memory empty, loaded and withdrawn; its idle CPU; forwarding between two local ports loaded\n"+
			"against a twin umlswitch without routes, in turn; as root, in a network namespace of its own), or\n"+
			"nat (TCP from a guest namespace to a server on the host's 127.0.0.1 through the gateway 10.0.2.2 of\n"+
			"umlswitch's nat port, of QEMU's user networking, and of a tap with the kernel's DNAT, in turn;\n"+
			"Gbit/s and CPU; 3 runs by default; as root).\n"+
			"Example: -mode latency -compare uml_switch")
		interval = fs.Duration("interval", time.Minute, "with -mode soak: time between samples.\nExample: -interval 30s")
		rate     = fs.Int("rate", 1000, "with -mode soak: frames a second each traffic client sends.\nExample: -rate 200")
		sizes    = fs.String("sizes", "64,512,1514,9000", "with -mode scan: frame sizes in `BYTES` (past 1518, umlswitch and the relay get a larger\n-mtu; uml_switch and vde_switch keep theirs).\nExample: -sizes 64,1514")
		counts   = fs.String("port-counts", "2,8,64", "with -mode scan: generator port counts (`LIST`).\nExample: -port-counts 2,64")
		vnis     = fs.Int("vnis", 100, "with -mode evpn: VNIs, one switch each (v1..vN).\nExample: -vnis 10")
		vteps    = fs.Int("vteps", 1000, "with -mode evpn: remote VTEPs the injector plays, each in one VNI (so one tunnel port each).\nExample: -vteps 10")
		macs     = fs.Int("macs", 100000, "with -mode evpn: type-2 routes (remote MACs), spread evenly over the VTEPs.\nExample: -macs 1000")
		churn    = fs.Int("churn", 1000, "with -mode evpn: route changes a second (withdrawals and announcements of VNI 1's MACs) during the\nchurned runs that forward to a remote MAC.\nExample: -churn 5000")
		profile  = fs.String("profile", "", "with -mode evpn: have the first run's switch write its Go CPU profile to `FILE`.\nExample: -profile /tmp/evpn.prof")
		plotTo   = fs.String("plot", "", "also draw the comparison into `FILE.png`: throughput by frame size (scan), latency CDF\n(latency), delivered frames per second (throughput), or memory, descriptors, goroutines and\n"+
			"frames forwarded and dropped over time (soak).\nExample: -plot bench.png")
	)
	fs.Usage = func() { fmt.Fprint(fs.Output(), usageHead); fs.PrintDefaults() }
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "umlswitch-bench: "+format+"\n", a...)
		return 2
	}
	if fs.NArg() > 0 {
		return fail("unexpected argument %q", fs.Arg(0))
	}
	if *clients != "uml" && *clients != "vde" {
		return fail("-clients %q: want uml or vde", *clients)
	}
	tr := Transports[*trName]
	if tr == nil {
		return fail("-transport %q: want daemon, bess, gre, l2tpv3, vxlan, stream, tap, raw or xdp", *trName)
	}
	label := *clients
	if tr.Ports != nil {
		label = tr.Name
		if *ports > maxTunnelPorts {
			return fail("-ports %d: at most %d with -transport %s", *ports, maxTunnelPorts, tr.Name)
		}
	}
	if *ports < 2 || *ports > 1024 {
		return fail("-ports %d: want 2..1024", *ports)
	}
	if *size < 14 || *size > 65535 {
		return fail("-size %d: want 14..65535", *size)
	}
	if *depth < 1 || *depth > 1024 {
		return fail("-depth %d: want 1..1024", *depth)
	}
	if *duration <= 0 || *warmup < 0 {
		return fail("-duration must be positive and -warmup not negative")
	}
	names := append([]string{*swName}, parseList(*compare)...)
	for _, n := range names {
		sw := switchNamed(n)
		switch {
		case sw == nil:
			return fail("unknown switch %q (known: %s, or umlswitch=PATH)", n, strings.Join(slices.Sorted(maps.Keys(Known)), ", "))
		case sw.rawKeys != "" && tr.Name != "raw" && tr.Name != "xdp":
			return fail("%s changes umlswitch's raw ports: it needs -transport raw or xdp", n)
		case sw.daemonOnly && tr.Name != "daemon":
			return fail("%s measures umlswitch's VLAN ports over the daemon protocol only: drop -transport %s", n, tr.Name)
		case tr.Ports != nil && !sw.vector:
			return fail("%s speaks only the daemon protocol; -transport %s needs umlswitch or relay", n, tr.Name)
		}
	}
	if *mode == "soak" {
		explicit := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { explicit[f.Name] = true })
		if !explicit["duration"] {
			*duration = 30 * time.Minute
		}
		if err := checkSoak(names, *ctl, tr, *duration, *interval, *rate); err != nil {
			return fail("-mode soak: %v", err)
		}
	}
	self, err := os.Executable()
	if err != nil {
		return fail("%v", err)
	}
	if *runs == 0 {
		*runs = 1
		if len(names) > 1 || *mode == "nat" {
			*runs = 3
		}
	}
	if *mode == "evpn" {
		if err := checkEVPN(names, *ctl, tr, *ports, *hub, EVPNScale{VNIs: *vnis, VTEPs: *vteps, MACs: *macs}); err != nil {
			return fail("-mode evpn: %v", err)
		}
		if *churn < 1 {
			return fail("-mode evpn: -churn %d: want at least 1 route change a second", *churn)
		}
	}
	if *mode == "nat" && (len(names) > 1 || names[0] != "umlswitch" || *ctl != "") {
		return fail("-mode nat measures umlswitch's nat port against QEMU's slirp and the kernel's NAT itself: drop -switch, -compare and -ctl")
	}
	if (tr.Netns || *mode == "evpn" || *mode == "nat") && !inNetns() {
		if *ctl != "" {
			return fail("-transport %s makes its interfaces in a network namespace of its own and starts the switches there: drop -ctl", tr.Name)
		}
		code, err := reexecInNetns(self, args, stdout, stderr)
		if err != nil {
			return fail("%v", err)
		}
		return code
	}
	if inNetns() {
		quietNetns()
	}
	var swCPUs, genCPUs []int
	if *cpu != "" {
		var err error
		if swCPUs, err = parseCPUList(*cpu); err != nil {
			return fail("-cpu: %v", err)
		}
		if *genCPU != "" {
			genCPUs, err = parseCPUList(*genCPU)
		} else {
			genCPUs, err = otherCPUs(swCPUs...)
		}
		if err != nil {
			return fail("-gen-cpu: %v", err)
		}
		if err := pinProcess(os.Getpid(), genCPUs); err != nil {
			return fail("pin the generator: %v", err)
		}
	} else if *genCPU != "" {
		return fail("-gen-cpu needs -cpu")
	}
	if *exe == "" {
		*exe = filepath.Join(filepath.Dir(self), "umlswitch")
	}
	if *window < 0 {
		return fail("-window %d: want 0 or more", *window)
	}
	cfg := GenConfig{Transport: tr, Window: *window, Ports: *ports, Size: *size, Depth: *depth, Warmup: *warmup, Duration: *duration,
		ConnectBack: *clients == "vde", Hub: *hub, CPUs: genCPUs}

	if *ctl != "" { // an external switch: one row, no starting or stopping
		cfg.Ctl, cfg.SwitchPID = *ctl, *pid
		if tr.Ports != nil {
			return fail("-ctl drives the daemon protocol; start the switch yourself with %v and omit -ctl", tr.Ports(".", *ports, *size))
		}
		row := Row{Switch: *ctl, Ports: *ports, Size: *size, Client: label, Hub: *hub}
		for i := 0; i < *runs; i++ {
			res, err := Generate(cfg)
			if err != nil {
				return fail("%v", err)
			}
			row.Runs = append(row.Runs, res)
		}
		Report(stdout, []Row{row})
		return 0
	}

	if slices.ContainsFunc(names, func(n string) bool { return Known[n] != nil && Known[n].umlswitch }) {
		if _, err := exec.LookPath(*exe); err != nil {
			return fail("no umlswitch to start: %v (make build builds bin/umlswitch next to bin/umlswitch-bench; or give -umlswitch PATH)", err)
		}
	}
	dir, err := scratchDir()
	if err != nil {
		return fail("%v", err)
	}
	defer os.RemoveAll(dir)
	cfg.Dir = dir
	r := &runner{exe: *exe, self: self, dir: dir, hub: *hub, cpus: swCPUs, tr: tr, stderr: stderr}
	switch *mode {
	case "throughput":
		if err := checkLayout(names, *ports, *size); err != nil {
			return fail("%v", err)
		}
		fmt.Fprintf(stderr, "bench: %d ports, %d-byte frames, %s clients%s, %v per run, %d run(s) per switch\n",
			*ports, *size, label, map[bool]string{true: ", hub mode", false: ""}[*hub], *duration, *runs)
		rows, err := r.throughput(names, *runs, cfg, label)
		if err != nil {
			return fail("%v", err)
		}
		Report(stdout, rows)
		if *plotTo != "" {
			err = plotThroughput(*plotTo, [][]Row{rows})
		}
		if err != nil {
			return fail("plot: %v", err)
		}
	case "latency":
		if err := checkLayout(names, 2, *size); err != nil {
			return fail("%v", err)
		}
		fmt.Fprintf(stderr, "bench: latency, %d-byte frames, %s clients, %v per run, %d run(s) per switch\n", *size, label, *duration, *runs)
		rows := make([]LatencyRow, len(names))
		for i, n := range names {
			rows[i] = LatencyRow{Switch: n, Size: *size, Client: label}
		}
		err := r.each(names, *runs, 2, *size, cfg, func(i int, c GenConfig) error {
			res, err := Latency(c)
			if err == nil {
				rows[i].Runs = append(rows[i].Runs, res)
				fmt.Fprintf(stderr, "bench: %s: %d round trips, p50 %.1f µs\n", names[i], len(res.RTTs),
					float64(percentile(slices.Sorted(slices.Values(res.RTTs)), 0.5))/1e3)
			}
			return err
		})
		if err != nil {
			return fail("%v", err)
		}
		ReportLatency(stdout, rows)
		if *plotTo != "" {
			if err := plotLatency(*plotTo, rows); err != nil {
				return fail("plot: %v", err)
			}
		}
	case "scan":
		sizeList, err := parseInts(*sizes, 14, 65535)
		if err != nil {
			return fail("-sizes: %v", err)
		}
		countList, err := parseInts(*counts, 2, 1024)
		if err != nil {
			return fail("-port-counts: %v", err)
		}
		for _, pc := range countList {
			for _, sz := range sizeList {
				if err := checkLayout(names, pc, sz); err != nil {
					return fail("-mode scan: %v", err)
				}
			}
		}
		var all [][]Row
		for _, pc := range countList {
			if tr.Ports != nil && pc > maxTunnelPorts {
				return fail("-port-counts %d: at most %d with -transport %s", pc, maxTunnelPorts, tr.Name)
			}
			for _, sz := range sizeList {
				c := cfg
				c.Ports, c.Size = pc, sz
				fmt.Fprintf(stderr, "bench: scan: %d ports, %d-byte frames\n", pc, sz)
				rows, err := r.throughput(names, *runs, c, label)
				if err != nil {
					return fail("%v", err)
				}
				fmt.Fprintf(stdout, "\n#### %d ports, %d-byte frames\n\n", pc, sz)
				Report(stdout, rows)
				all = append(all, rows)
			}
		}
		if *plotTo != "" {
			if err := plotThroughput(*plotTo, all); err != nil {
				return fail("plot: %v", err)
			}
		}
	case "evpn":
		scale := EVPNScale{VNIs: *vnis, VTEPs: *vteps, MACs: *macs}
		fmt.Fprintf(stderr, "bench: evpn: %s; %d-byte frames, %v per forwarding run, %d run(s)\n", scale, *size, *duration, *runs)
		exePath := *exe
		if _, path, ok := strings.Cut(names[0], "="); ok {
			exePath = path
		}
		runs, err := EVPN(EVPNConfig{Scale: scale, Exe: exePath, Dir: dir, CPUs: swCPUs, Gen: cfg, Runs: *runs,
			Profile: *profile, Churn: *churn, Progress: stderr})
		if len(runs) > 0 {
			ReportEVPN(stdout, scale, cfg, runs)
		}
		if err != nil {
			return fail("%v", err)
		}
	case "nat":
		fmt.Fprintf(stderr, "bench: nat: TCP from a guest namespace to 127.0.0.1 through %v, %v per run, %d run(s) each\n",
			NATPaths, *duration, *runs)
		rows, err := NAT(NATConfig{Exe: *exe, Dir: dir, Runs: *runs, Warmup: *warmup, Duration: *duration, CPUs: swCPUs, Log: stderr})
		if err != nil {
			return fail("%v", err)
		}
		ReportNAT(stdout, rows)
	case "soak":
		fmt.Fprintf(stderr, "bench: soak: %d daemon and %d BESS clients at %d frames/s each, %d-byte frames, churn; %v, a sample every %v\n",
			soakDaemonClients, soakBESSClients, *rate, *size, *duration, *interval)
		samples, err := Soak(SoakConfig{Switch: switchNamed(names[0]), Exe: *exe, Dir: dir, Hub: *hub, CPUs: swCPUs,
			Duration: *duration, Interval: *interval, Rate: *rate, Size: *size, Progress: stderr})
		if len(samples) > 0 {
			ReportSoak(stdout, samples)
		}
		if err != nil {
			return fail("%v", err)
		}
		if *plotTo != "" {
			if err := plotSoak(*plotTo, samples); err != nil {
				return fail("plot: %v", err)
			}
		}
	default:
		return fail("-mode %q: want throughput, latency, scan, soak or evpn", *mode)
	}
	return 0
}

// runner starts the switches under test in turn.
type runner struct {
	exe    string // umlswitch
	self   string // this program, for the relay
	dir    string
	hub    bool
	cpus   []int
	tr     *Transport
	stderr io.Writer
}

// each runs f once per run for every switch, interleaved so that slow
// drifts on a shared machine hit every switch alike, each time on a fresh
// switch with ports generator ports of its transport and room for size.
func (r *runner) each(names []string, runs, ports, size int, cfg GenConfig, f func(i int, c GenConfig) error) error {
	for run := 0; run < runs; run++ {
		for i, n := range names {
			sw := switchNamed(n)
			var extra []string
			if r.tr.Ports != nil {
				extra = r.tr.Ports(r.dir, ports, size)
			}
			if r.tr.Setup != nil {
				if err := r.tr.Setup(ports, size); err != nil {
					return err
				}
			}
			extra = append(sw.withRawKeys(extra), sw.mtuArgs(size)...)
			var log strings.Builder
			exe := r.exe
			if sw.self {
				exe = r.self
			}
			p, err := start(sw, exe, r.dir, r.hub, extra, r.cpus, &log)
			if err != nil {
				return fmt.Errorf("%v\n%s", err, log.String())
			}
			c := cfg
			c.Ctl, c.SwitchPID, c.Ports, c.Size = p.ctl, p.pid(), ports, size
			if sw.trunk {
				c.TrunkCtl = trunkCtl(p.ctl)
			}
			err = f(i, c)
			p.shutdown()
			if err != nil {
				return fmt.Errorf("%s: %v\n%s", n, err, log.String())
			}
		}
	}
	return nil
}

// throughput measures every switch runs times at cfg's ports and size.
func (r *runner) throughput(names []string, runs int, cfg GenConfig, label string) ([]Row, error) {
	rows := make([]Row, len(names))
	for i, n := range names {
		rows[i] = Row{Switch: n, Ports: cfg.Ports, Size: cfg.Size, Client: label, Hub: cfg.Hub}
	}
	err := r.each(names, runs, cfg.Ports, cfg.Size, cfg, func(i int, c GenConfig) error {
		res, err := Generate(c)
		if err == nil {
			rows[i].Runs = append(rows[i].Runs, res)
			fmt.Fprintf(r.stderr, "bench: %s: %.3f Mfps delivered\n", names[i], res.deliveredMpps())
		}
		return err
	})
	return rows, err
}

// checkLayout refuses a run that a switch's port layout cannot take:
// vlan-trunk alternates access and trunk ports, and pushes or pops every
// frame's tag only with an even number of ports; its trunk ports' frames
// hold a tag and a type.
func checkLayout(names []string, ports, size int) error {
	for _, n := range names {
		if sw := switchNamed(n); sw != nil && sw.trunk {
			if ports%2 != 0 {
				return fmt.Errorf("%s: %d ports: its even ports are access ports and its odd ports trunk ports, "+
					"and every frame is pushed or popped once only with an even number of ports", n, ports)
			}
			if least := frame.HeaderLen + frame.VLANTagLen; size < least {
				return fmt.Errorf("%s: %d-byte frames: its trunk ports' frames hold an 802.1Q tag, at least %d bytes", n, size, least)
			}
		}
	}
	return nil
}

// checkSoak refuses a soak the run cannot do: it starts one umlswitch of
// its own and gives it its own mix of clients, and it needs at least two
// full intervals (the first is the warm-up the growth is measured from).
func checkSoak(names []string, ctl string, tr *Transport, duration, interval time.Duration, rate int) error {
	switch sw := switchNamed(names[0]); {
	case len(names) > 1:
		return errors.New("it measures one switch: drop -compare")
	case !sw.umlswitch || sw.daemonOnly:
		return fmt.Errorf("-switch %s: it reads umlswitch's metrics: want umlswitch or umlswitch=PATH", names[0])
	case ctl != "":
		return errors.New("it starts umlswitch itself, with a metrics socket: drop -ctl")
	case tr.Name != "daemon":
		return fmt.Errorf("-transport %s: it runs its own mix of daemon and BESS clients: drop -transport", tr.Name)
	case interval <= 0:
		return fmt.Errorf("-interval %v: want a positive time", interval)
	case duration < 2*interval:
		return fmt.Errorf("-duration %v: want at least two -interval (%v): growth is measured from the end of the first", duration, interval)
	case rate < 1 || rate > 1000000:
		return fmt.Errorf("-rate %d: want 1..1000000 frames a second", rate)
	}
	return nil
}

// checkEVPN refuses an EVPN run the mode cannot do: it starts umlswitch
// itself, on a configuration of its own, and drives it with two daemon
// clients.
func checkEVPN(names []string, ctl string, tr *Transport, ports int, hub bool, scale EVPNScale) error {
	switch sw := switchNamed(names[0]); {
	case len(names) > 1:
		return errors.New("it measures umlswitch loaded against a twin without routes, in one run: drop -compare")
	case !sw.umlswitch || sw.daemonOnly:
		return fmt.Errorf("-switch %s: want umlswitch or umlswitch=PATH", names[0])
	case ctl != "":
		return errors.New("it starts umlswitch itself, on an EVPN configuration: drop -ctl")
	case tr.Name != "daemon":
		return fmt.Errorf("-transport %s: its generator is two daemon clients: drop -transport", tr.Name)
	case ports != 2:
		return fmt.Errorf("-ports %d: it forwards between two local ports", ports)
	case hub:
		return errors.New("its switches learn: drop -hub")
	}
	return scale.Check()
}

// parseInts reads a comma-separated list of integers within [lo, hi].
func parseInts(s string, lo, hi int) ([]int, error) {
	var out []int
	for _, f := range parseList(s) {
		n, err := strconv.Atoi(f)
		if err != nil || n < lo || n > hi {
			return nil, fmt.Errorf("%q: want numbers in %d..%d", f, lo, hi)
		}
		out = append(out, n)
	}
	if len(out) == 0 {
		return nil, errors.New("empty list")
	}
	return out, nil
}
