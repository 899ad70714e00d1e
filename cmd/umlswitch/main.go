// Command umlswitch is a userspace Ethernet switch for User Mode Linux, VDE
// and QEMU clients, a drop-in replacement for uml_switch. Run with -h for
// the flags; `umlswitch-bench -h` for the load generator.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/umlswitch/umlswitch/capture"
	"github.com/umlswitch/umlswitch/configs"
	"github.com/umlswitch/umlswitch/fabric"
	"github.com/umlswitch/umlswitch/frame"
	"github.com/umlswitch/umlswitch/transports"
	"github.com/umlswitch/umlswitch/transports/daemon"
)

// debianCtl is where Debian's UML kernel looks for the switch by default.
const debianCtl = "/var/run/uml-utilities/uml_switch.ctl"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "bench" {
		fmt.Fprintln(stderr, "umlswitch: the load generator is now a command of its own: umlswitch-bench (make build builds it)")
		return 2
	}
	if len(args) > 0 && args[0] == "capture" {
		return captureMain(args[1:], stdout, stderr)
	}
	opts, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "umlswitch: %v\nRun umlswitch -h for the flags.\n", err)
		return 2
	}
	plan, err := opts.plan()
	if err != nil {
		fmt.Fprintf(stderr, "umlswitch: %v\n", err)
		return 2
	}
	if opts.cpuProfile != "" {
		f, err := os.Create(opts.cpuProfile)
		if err != nil {
			fmt.Fprintf(stderr, "umlswitch: %v\n", err)
			return 2
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintf(stderr, "umlswitch: %v\n", err)
			return 2
		}
		defer pprof.StopCPUProfile()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := serve(ctx, plan, stderr); err != nil {
		fmt.Fprintf(stderr, "umlswitch: %v\n", err)
		return 1
	}
	return 0
}

// options are the command line as given.
type options struct {
	fs *flag.FlagSet

	unix, dataPath string
	hub, compatV0  bool
	tapName        string
	ports          portList
	mirrors        portList
	captureSocket  string
	config         string
	macAge, txHold time.Duration
	macTableSize   int
	mtu, depth     int
	mode           string
	logLevel       string
	cpuProfile     string
}

type portList []string

func (l *portList) String() string     { return strings.Join(*l, " ") }
func (l *portList) Set(s string) error { *l = append(*l, s); return nil }

const usageHead = `Usage: umlswitch [flags]
       umlswitch -compat-v0 -unix CONTROL DATA [flags]
       umlswitch capture [-s CONTROL]   (live pcapng of a running switch; umlswitch capture -h)

A userspace Ethernet switch for User Mode Linux, VDE and QEMU clients, and a
drop-in replacement for uml_switch: it takes uml_switch's flags and serves
UML kernels booted with eth0=daemon,MAC,unix,CONTROL, and VDE clients
(vde_plug, vde_plug2tap, qemu -netdev vde) given the control directory.

With no arguments it runs its built-in configuration: one control socket at
` + debianCtl + `, where Debian's UML kernel looks.

Examples:
  umlswitch -unix /tmp/uml.ctl                      # like uml_switch -unix /tmp/uml.ctl
  umlswitch -unix /tmp/uml.ctl -hub -tap tap0       # a hub bridged to the host's tap0
  umlswitch -unix /tmp/vde/                         # VDE layout: /tmp/vde/ctl, vde_plug vde:///tmp/vde
  umlswitch -port transport=daemon,path=/tmp/a.ctl -port transport=tap,ifname=tap0
  umlswitch -unix /tmp/uml.ctl -port transport=tap,ifname=lab0,create=1,persist=1,owner=1000,up=1,mtu=9000
  umlswitch -unix /tmp/uml.ctl -port "transport=raw,ifname=veth0,bpf=$(tcpdump -ddd 'arp or icmp')"
  umlswitch -unix /tmp/uml.ctl -port transport=raw,ifname=veth0,bpffile=arp.bpf,promisc=1
  umlswitch -unix /tmp/uml.ctl -port transport=vxlan,src=192.0.2.1,dst=192.0.2.2,vni=42
  umlswitch -unix /tmp/uml.ctl -mirror file=/tmp/lab.pcapng  # capture every port, tshark/wireshark read it
  umlswitch capture -s /tmp/uml.ctl | tcpdump -n -r -         # watch a running switch live
  umlswitch -config lab.yaml

Port keys: tap: a tap must exist unless create=1 (-tap NAME is transport=tap,create=1,ifname=NAME);
persist=1 keeps a created tap after exit, owner=UID lets that user open it, up=1 brings it up, mtu=
also sets its MTU, queues=N makes it multi-queue with a reader per queue, vnet_hdr=1 takes 64 KiB TSO
frames from the host in one read and cuts them into segments. raw: an AF_PACKET socket on
ifname, ignoring its own frames; bpf= takes tcpdump -ddd text (lines may be joined by ';'), bpffile=
UML's binary sock_filter array or, if it ends in .txt, tcpdump -ddd text; frames the filter refuses
are counted as filtered. vxlan: RFC 7348 to dst:dstport (default 4789) from src:dstport, vni 0..2^24-1.

Flags:
`

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("umlswitch", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o.fs = fs
	fs.StringVar(&o.unix, "unix", "", "control socket `PATH` that UMLs and VDE clients connect to (default "+debianCtl+");\n"+
		"a directory, or a path ending in /, gets VDE's layout PATH/ctl.\nExample: -unix /tmp/uml.ctl")
	fs.BoolVar(&o.hub, "hub", false, "act as a hub: flood every frame to every other port, learn nothing.\nExample: -hub")
	fs.StringVar(&o.tapName, "tap", "", "also switch frames to and from the host tap interface `NAME` (created if absent,\nremoved again on exit), like uml_switch -tap.\nExample: -tap tap0")
	fs.BoolVar(&o.compatV0, "compat-v0", false, "also serve version 0 clients, which send to a shared data socket; its path follows the\ncontrol path (default "+daemon.DefaultV0DataPath+").\nExample: -compat-v0 -unix /tmp/uml.ctl /tmp/uml.data")
	fs.Var(&o.ports, "port", "add a port described by `SPEC` in UML's vector option syntax, transport=NAME,key=value,...\n"+
		"(repeatable). Transports and their keys:\n"+portHelp()+
		"Example: -port transport=daemon,path=/tmp/b.ctl -port transport=tap,ifname=tap1")
	fs.Var(&o.mirrors, "mirror", "capture frames to `SPEC` (repeatable): file=PATH or stream=PATH (a unix socket live readers\n"+
		"connect to), with format=pcapng|pcap (pcapng: one interface per port, direction on every packet),\n"+
		"snaplen=N, ports=NAME,NAME (ports whose names contain one), dir=in|out|both, rotate=SIZE (10M)\n"+
		"and keep=N for files; or port=SPEC, last: SPAN to a port of any kind (-port syntax; dir=in by default).\n"+
		"A full capture buffer drops and counts frames; forwarding never waits.\n"+
		"Example: -mirror file=/tmp/lab.pcapng,rotate=100M,keep=5")
	fs.StringVar(&o.captureSocket, "capture-socket", "", "unix socket `PATH` where `umlswitch capture` reads live frames (default: the first control\n"+
		"socket's path with .capture appended; none: no capture socket).\nExample: -capture-socket /run/lab.capture")
	fs.StringVar(&o.config, "config", "", "read settings and ports from the YAML `FILE` (keys as in configs/default.yaml;\n"+
		"port entries take the same keys as -port). Flags given as well override it.\nExample: -config lab.yaml")
	fs.DurationVar(&o.macAge, "mac-age", fabric.DefaultMACAge, "forget a learned address not seen for this long.\nExample: -mac-age 60s")
	fs.IntVar(&o.macTableSize, "mac-table-size", fabric.DefaultMACTableSize, "most addresses (`N`) learned at once; beyond it a new address evicts the least recently\nseen one of the port that holds the most (a flooding port churns its own).\nExample: -mac-table-size 65536")
	fs.DurationVar(&o.txHold, "tx-hold", fabric.DefaultTxHold, "how long frames wait for a full destination (a UML that is not reading) before\nthey are dropped and counted; the sender is paused meanwhile. A destination that keeps senders\nwaiting while it takes frames one by one is not waited for at all for a while (slow-receiver).\nExample: -tx-hold 20ms")
	fs.IntVar(&o.mtu, "mtu", frame.DefaultMTU, "IP MTU (`BYTES`) of ports without mtu=; the largest frame is MTU+18 (header and a VLAN tag).\n"+
		"Longer frames are dropped and counted, never cut short.\nExample: -mtu 9000")
	fs.IntVar(&o.depth, "depth", 64, "`N` frames read or sent per system call (UML's depth=) for ports without depth=.\nExample: -depth 128")
	fs.StringVar(&o.mode, "mode", "", "permissions (`OCTAL`) of the -unix control socket; the built-in default uses 0777 as Debian's\numl-utilities service does.\nExample: -mode 0660")
	fs.StringVar(&o.logLevel, "log-level", "info", "`LEVEL`: debug, info, warn or error. Logs go to stderr, a line per port attach and detach.\nExample: -log-level debug")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write a Go CPU profile of the whole run to `FILE` (for developers; go tool pprof reads it).\nExample: -cpuprofile /tmp/umlswitch.prof")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usageHead)
		fs.PrintDefaults()
	}
	// uml_switch puts the v0 data path right after the control path, a
	// positional argument in the middle of the flags.
	rest := args
	for {
		if err := fs.Parse(rest); err != nil {
			return nil, err
		}
		rest = fs.Args()
		if len(rest) == 0 {
			break
		}
		if o.compatV0 && o.unix != "" && o.dataPath == "" {
			o.dataPath, rest = rest[0], rest[1:]
			continue
		}
		return nil, fmt.Errorf("unexpected argument %q", rest[0])
	}
	return o, nil
}

func portHelp() string {
	var b strings.Builder
	for _, t := range configs.Transports() {
		fmt.Fprintf(&b, "  %s: %s\n", t, strings.Join(configs.KeysOf(t), ", "))
	}
	return b.String()
}

func (o *options) isSet(name string) bool {
	set := false
	o.fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// plan is what the switch will run: settings and ports, resolved.
type plan struct {
	sw       fabric.Config
	mtu      int
	depth    int
	logLevel slog.Level
	ports    []configs.Port
	mirrors  []configs.Mirror
	mkdirs   []string // parents of default socket paths, created if missing
}

func (o *options) plan() (*plan, error) {
	cfg := configs.Default()
	if o.config != "" {
		data, err := os.ReadFile(o.config)
		if err != nil {
			return nil, err
		}
		if cfg, err = configs.Parse(data); err != nil {
			return nil, fmt.Errorf("%s: %w", o.config, err)
		}
	}
	p := &plan{sw: fabric.Config{Hub: cfg.Hub, MACAge: cfg.MACAge, MACTableSize: cfg.MACTableSize, TxHold: cfg.TxHold},
		mtu: cfg.MTU, depth: cfg.Depth}
	level := cfg.LogLevel
	if o.isSet("hub") {
		p.sw.Hub = o.hub
	}
	if o.isSet("mac-age") || p.sw.MACAge == 0 {
		p.sw.MACAge = o.macAge
	}
	if o.isSet("mac-table-size") || p.sw.MACTableSize == 0 {
		p.sw.MACTableSize = o.macTableSize
	}
	if o.isSet("tx-hold") || p.sw.TxHold == 0 {
		p.sw.TxHold = o.txHold
	}
	if o.isSet("mtu") || p.mtu == 0 {
		p.mtu = o.mtu
	}
	if o.isSet("depth") || p.depth == 0 {
		p.depth = o.depth
	}
	if o.isSet("log-level") || level == "" {
		level = o.logLevel
	}
	if err := p.logLevel.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("-log-level %q: not one of debug, info, warn, error", level)
	}
	switch {
	case p.sw.MACAge <= 0:
		return nil, fmt.Errorf("-mac-age %v: must be positive", p.sw.MACAge)
	case p.sw.TxHold <= 0:
		return nil, fmt.Errorf("-tx-hold %v: must be positive", p.sw.TxHold)
	case p.sw.MACTableSize <= 0:
		return nil, fmt.Errorf("-mac-table-size %d: must be positive", p.sw.MACTableSize)
	case p.mtu < configs.MinMTU || p.mtu > configs.MaxMTU:
		return nil, fmt.Errorf("-mtu %d: out of range %d..%d", p.mtu, configs.MinMTU, configs.MaxMTU)
	case p.depth < 1 || p.depth > configs.MaxDepth:
		return nil, fmt.Errorf("-depth %d: out of range 1..%d", p.depth, configs.MaxDepth)
	}
	var mode os.FileMode
	if o.mode != "" {
		spec, err := configs.ParsePort("transport=daemon,path=x,mode=" + o.mode)
		if err != nil {
			return nil, fmt.Errorf("-mode %q: not an octal permission like 0660", o.mode)
		}
		mode = spec.Mode
	}
	if o.dataPath != "" && !o.compatV0 {
		return nil, errors.New("a data socket path is only taken with -compat-v0")
	}

	// Ports: the configuration file's, or the built-in control socket when
	// no -config, -unix or -port says otherwise; then -unix, -tap, -port.
	if o.config != "" || (o.unix == "" && len(o.ports) == 0) {
		for _, port := range cfg.Ports {
			if port.Transport == "daemon" {
				port.CompatV0 = port.CompatV0 || o.compatV0
				if port.DataPath == "" {
					port.DataPath = o.dataPath
				}
				if mode != 0 {
					port.Mode = mode
				}
				if o.config == "" && port.Path == debianCtl {
					p.mkdirs = append(p.mkdirs, filepath.Dir(debianCtl))
				}
			}
			p.ports = append(p.ports, port)
		}
	}
	if o.unix != "" {
		p.ports = append(p.ports, configs.Port{Transport: "daemon", Path: o.unix, Mode: mode, CompatV0: o.compatV0, DataPath: o.dataPath})
	}
	if o.tapName != "" {
		spec, err := configs.ParsePort("transport=tap,create=1,ifname=" + o.tapName)
		if err != nil {
			return nil, fmt.Errorf("-tap: %w", err)
		}
		p.ports = append(p.ports, spec)
	}
	for _, s := range o.ports {
		spec, err := configs.ParsePort(s)
		if err != nil {
			return nil, fmt.Errorf("-port: %w", err)
		}
		p.ports = append(p.ports, spec)
	}
	if len(p.ports) == 0 {
		return nil, errors.New("no ports configured")
	}
	mirrors := cfg.Mirrors
	for _, s := range o.mirrors {
		m, err := configs.ParseMirror(s)
		if err != nil {
			return nil, fmt.Errorf("-mirror: %w", err)
		}
		mirrors = append(mirrors, m)
	}
	p.mirrors = mirrors
	if sock := o.captureSocketFor(p.ports); sock != "" {
		p.mirrors = append(p.mirrors, configs.Mirror{Stream: sock})
	}
	return p, nil
}

// captureSocketFor is where `umlswitch capture` finds the switch: next to
// its first control socket, unless -capture-socket says otherwise.
func (o *options) captureSocketFor(ports []configs.Port) string {
	switch o.captureSocket {
	case "none":
		return ""
	case "":
		for _, p := range ports {
			if p.Transport == "daemon" {
				return captureSocketOf(p.Path)
			}
		}
		return ""
	}
	return o.captureSocket
}

func serve(ctx context.Context, p *plan, stderr io.Writer) error {
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: p.logLevel}))
	p.sw.Logger = log
	sw := fabric.New(p.sw)
	ports := transports.NewSet(sw, log)
	shutdown := func() {
		ports.Close()
		sw.Close()
	}
	for _, dir := range p.mkdirs {
		os.MkdirAll(dir, 0o755) // the default path's directory; other paths must exist
	}
	for _, port := range p.ports {
		if err := ports.Open(port, transports.Defaults{Depth: p.depth, MTU: p.mtu}); err != nil {
			shutdown()
			return err
		}
	}
	var mirrors []*capture.Mirror
	var spans []*transports.Span
	closeMirrors := func() {
		for _, m := range mirrors {
			sw.RemoveMirror(m)
			m.Close()
		}
		for _, s := range spans {
			if n := s.Dropped(); n > 0 {
				log.Info("mirror port", "port", s.Name(), "dropped", n)
			}
			s.Close()
		}
	}
	for _, mc := range p.mirrors {
		c := capture.Config{File: mc.File, Stream: mc.Stream, Format: mc.Format, Snaplen: mc.Snaplen,
			Ports: mc.Ports, Dir: mc.Dir, Rotate: mc.Rotate, Keep: mc.Keep, Logger: log}
		if mc.Port != nil {
			span, err := transports.NewSpan(*mc.Port, transports.Defaults{Depth: p.depth, MTU: p.mtu}, log)
			if err != nil {
				shutdown()
				closeMirrors()
				return fmt.Errorf("mirror port: %w", err)
			}
			spans = append(spans, span)
			c.Sink = span
		}
		m, err := capture.New(c)
		if err != nil {
			shutdown()
			closeMirrors()
			return err
		}
		mirrors = append(mirrors, m)
		sw.AddMirror(m)
		log.Info("mirror", "to", m.Name())
	}
	log.Info("umlswitch running", "ports", len(p.ports), "hub", p.sw.Hub, "mac_age", p.sw.MACAge, "tx_hold", p.sw.TxHold)
	sw.Run(ctx)
	log.Info("shutting down")
	for _, st := range ports.TunnelStats() {
		if st.Unknown+st.Malformed > 0 {
			log.Info("tunnel endpoint", "transport", st.Kind, "local", st.Local, "unknown", st.Unknown, "malformed", st.Malformed)
		}
	}
	shutdown()
	closeMirrors() // after forwarding stopped: every frame seen is written
	return nil
}
