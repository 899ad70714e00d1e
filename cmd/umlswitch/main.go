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
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/umlswitch/umlswitch/api"
	"github.com/umlswitch/umlswitch/configs"
	"github.com/umlswitch/umlswitch/extcap"
	"github.com/umlswitch/umlswitch/fabric"
	"github.com/umlswitch/umlswitch/frame"
	"github.com/umlswitch/umlswitch/instance"
	"github.com/umlswitch/umlswitch/internal/accept"
	"github.com/umlswitch/umlswitch/internal/background"
	"github.com/umlswitch/umlswitch/internal/handover"
	"github.com/umlswitch/umlswitch/internal/pidfile"
	"github.com/umlswitch/umlswitch/internal/privdrop"
	"github.com/umlswitch/umlswitch/internal/sdnotify"
	"github.com/umlswitch/umlswitch/internal/unixsock"
	"github.com/umlswitch/umlswitch/metrics"
	"github.com/umlswitch/umlswitch/topology"
	"github.com/umlswitch/umlswitch/transports/daemon"
	"github.com/umlswitch/umlswitch/transports/portkind"
	"github.com/umlswitch/umlswitch/web"
)

// debianCtl is where Debian's UML kernel looks for the switch by default.
const debianCtl = "/var/run/uml-utilities/uml_switch.ctl"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if extcap.IsExtcap(args) { // Wireshark runs a link to umlswitch in its extcap folder
		return extcapMain(args, stdout, stderr)
	}
	if len(args) > 0 {
		switch args[0] {
		case "bench":
			fmt.Fprintln(stderr, "umlswitch: the load generator is now a command of its own: umlswitch-bench (make build builds it)")
			return 2
		case "capture":
			return captureMain(args[1:], stdout, stderr)
		case "ctl":
			return ctlMain(args[1:], stdout, stderr)
		case "extcap":
			return extcapCmd(args[1:], stdout, stderr)
		case "lab":
			return labMain(args[1:], stdout, stderr)
		}
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
	if plan.BusyPoll != nil {
		if err := busyPoll(*plan.BusyPoll); err != nil {
			fmt.Fprintf(stderr, "umlswitch: %v\n", err)
			return 2
		}
	}
	var metricsMode os.FileMode
	if opts.metricsMode != "" {
		if metricsMode, err = configs.ParseMode(opts.metricsMode); err != nil {
			fmt.Fprintf(stderr, "umlswitch: -metrics-mode: %v\n", err)
			return 2
		}
	}
	return service{plan: plan, reload: opts.plan, daemon: opts.daemon, pidFile: opts.pidFile, cpuProfile: opts.cpuProfile,
		metrics: opts.metrics, metricsMode: metricsMode, builtinDir: opts.config == "", exe: startedFrom()}.run(stdout, stderr)
}

// startedFrom is the path of the binary this process was started from, as
// its command line named it: an upgrade starts what is at that path then,
// not the file this process runs (which a package upgrade has replaced).
func startedFrom() string {
	p, err := exec.LookPath(os.Args[0])
	if err != nil {
		return ""
	}
	if p, err = filepath.Abs(p); err != nil {
		return ""
	}
	return p
}

// service is how a plan runs, in the foreground or as a daemon: the
// switch's own command line and umlswitch lab both end here.
type service struct {
	plan        *configs.File
	reload      func() (*configs.File, error) // SIGHUP and ctl reload: the plan again
	daemon      bool                          // -daemon
	pidFile     string                        // -pidfile
	cpuProfile  string                        // -cpuprofile
	exe         string                        // the binary started from, for upgrades; empty: unknown
	metrics     string                        // -metrics
	metricsMode os.FileMode                   // a unix metrics socket's permissions
	builtinDir  bool                          // create the built-in control socket's directory if missing
	machines    []topology.Machine            // the lab's, for the web page's drawing
	// announce, if set, tells the user what now listens: on stdout once
	// every socket listens, or with -daemon by the parent once the child
	// is ready (the child's stdout is /dev/null).
	announce func(io.Writer)
	// cleanup, if set, runs in the process that served, once it stops.
	cleanup func()
}

// run serves s.plan until SIGINT or SIGTERM and returns the exit status.
func (s service) run(stdout, stderr io.Writer) int {
	// The new switch of an upgrade is in the background already: the old
	// one's parent returned long ago.
	if s.daemon && !background.IsChild() && !handover.Upgrading() {
		// uml_switch -daemon: the parent returns once the child's sockets
		// exist, or with the child's own error.
		if err := background.Start(30 * time.Second); err != nil {
			fmt.Fprintf(stderr, "umlswitch: %v\n", err)
			return 1
		}
		if s.announce != nil {
			s.announce(stdout)
		}
		return 0
	}
	if s.cleanup != nil {
		defer s.cleanup()
	}
	fail := func(err error) int {
		background.Fail(err)
		fmt.Fprintf(stderr, "umlswitch: %v\n", err)
		return 1
	}
	if s.pidFile != "" {
		write := pidfile.Write
		if handover.Upgrading() { // the old switch, our parent, is going
			write = func(path string) (*pidfile.File, error) { return pidfile.TakeOver(path, handover.OldSwitch()) }
		}
		pf, err := write(s.pidFile)
		if err != nil {
			return fail(err)
		}
		defer pf.Remove()
	}
	if s.cpuProfile != "" {
		f, err := unixsock.CreatePath(s.cpuProfile, 0o600)
		if err != nil {
			return fail(err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fail(err)
		}
		defer pprof.StopCPUProfile()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := s.serve(ctx, stdout, stderr); err != nil {
		return fail(err)
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
	daemon         bool
	pidFile        string
	metrics        string
	metricsMode    string
	apiUID, apiGID string
	user           string
	state          string
	maxClients     int
	maxClientsUID  int
	maxAPI         int
	maxAPIUID      int
	busyPoll       int
}

type portList []string

func (l *portList) String() string     { return strings.Join(*l, " ") }
func (l *portList) Set(s string) error { *l = append(*l, s); return nil }

const usageHead = `Usage: umlswitch [flags]
       umlswitch -compat-v0 -unix CONTROL DATA [flags]
       umlswitch capture [-s CONTROL]   (live pcapng of a running switch; umlswitch capture -h)
       umlswitch ctl [-s CONTROL] COMMAND   (show and change a running switch; umlswitch ctl -h)
       umlswitch lab [-dir DIR] [-hub] lab.conf   (a switch per collision domain of a Netkit or Kathara lab; umlswitch lab -h)
       umlswitch extcap install   (every switch a Wireshark capture interface; umlswitch extcap -h)

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
		"(repeatable). Numbers are decimal or 0x hex; 32-bit keys, sessions and cookies may also be negative,\n"+
		"as UML needs values of 2^31 and more written (-1 is 0xffffffff). Transports and their keys:\n"+configs.Help()+
		"Example: -port transport=daemon,path=/tmp/b.ctl -port transport=tap,ifname=tap1")
	fs.Var(&o.mirrors, "mirror", "capture frames to `SPEC` (repeatable): key=value pairs, with one of file=, stream= and port=.\n"+
		"A full capture buffer drops and counts frames; forwarding never waits. Mirror keys:\n"+configs.MirrorHelp()+
		"Example: -mirror file=/tmp/lab.pcapng,rotate=100M,keep=5")
	fs.StringVar(&o.captureSocket, "capture-socket", "", "also serve live frames of the default switch on the unix socket `PATH` (umlswitch capture\n"+
		"-socket PATH reads it). Not needed for umlswitch capture -s CONTROL, which asks the control socket itself.\n"+
		"Example: -capture-socket /run/lab.capture")
	fs.StringVar(&o.config, "config", "", "read settings and ports from the YAML `FILE` (keys as in configs/default.yaml;\n"+
		"port entries take the same keys as -port). Flags given as well override it.\nExample: -config lab.yaml")
	fs.DurationVar(&o.macAge, "mac-age", fabric.DefaultMACAge, "forget a learned address not seen for this long.\nExample: -mac-age 60s")
	fs.IntVar(&o.macTableSize, "mac-table-size", fabric.DefaultMACTableSize, "most addresses (`N`) learned at once; beyond it a new address evicts the least recently\nseen one of the port that holds the most (a flooding port churns its own).\nExample: -mac-table-size 65536")
	fs.DurationVar(&o.txHold, "tx-hold", fabric.DefaultTxHold, "how long frames wait for a full destination (a UML that is not reading) before\nthey are dropped and counted; the sender is paused meanwhile. A destination that keeps senders\nwaiting while it takes frames one by one is not waited for at all for a while (slow-receiver).\nExample: -tx-hold 20ms")
	fs.IntVar(&o.mtu, "mtu", frame.DefaultMTU, "IP MTU (`BYTES`) of ports without mtu=; the largest frame is MTU+22 (header and two VLAN tags).\n"+
		"Longer frames are dropped and counted, never cut short.\nExample: -mtu 9000")
	fs.IntVar(&o.depth, "depth", 64, "`N` frames read or sent per system call (UML's depth=) for ports without depth=.\nExample: -depth 128")
	fs.StringVar(&o.mode, "mode", "", "permissions (`OCTAL`) of the -unix control socket (and of the default switch's other sockets\n"+
		"guests attach to, never of capture or metrics sockets); the built-in default uses 0777 as Debian's\n"+
		"uml-utilities service does. Whoever may connect may attach a guest and read the switch's state; changing it\n"+
		"and capturing is for root, the switch's user and -api-uid/-api-gid.\nExample: -mode 0660")
	fs.StringVar(&o.apiUID, "api-uid", "", "`USERS` (uids or names, ';'-separated) who may, besides root and the switch's own user, change\n"+
		"the switch and capture its traffic through every control socket's API; what they open is opened with their\n"+
		"own rights, and ports that take root's privilege (raw, tap, GRE, ports below 1024) are refused them.\n"+
		"A daemon port's api_uid= adds users for its socket alone.\nExample: -api-uid 'alice;1001'")
	fs.StringVar(&o.apiGID, "api-gid", "", "`GROUPS` whose members may do what -api-uid allows.\nExample: -api-gid uml-net")
	fs.StringVar(&o.user, "user", "", "once its ports are open, run as `USER` (a name or uid) and its groups, as Debian runs\n"+
		"uml_switch as uml-net; only the capabilities the configured ports need to open again are kept\n"+
		"(cap_net_raw for raw, gre and l2tpv3 over IP, cap_net_admin for taps; none otherwise). Sockets\n"+
		"and files made later are the user's: give it the socket directories. Applies at start only.\n"+
		"Example: -user uml-net")
	fs.StringVar(&o.state, "state", "", "keep what the control API changes (ports, switches, mirrors, static MACs, port set keys) in\n"+
		"the run state `FILE`, so that the switch started again runs the lab as it was running; ctl reload empties it.\n"+
		"Default: next to the default switch's first daemon control socket (CONTROL.run); none: keep none.\n"+
		"Example: -state /run/umlswitch.run")
	fs.String("web", "", "serve a page of the running lab on `ADDR` (host:port; keep it on loopback or a network whose hosts\n"+
		"may see all the lab's traffic): switches, ports, MAC tables, live rates, events, the topology, and\n"+
		"captures to download (with the token). Example: -web 127.0.0.1:8080")
	fs.Bool("web-rw", false, "let the page set a port's link (up, down) and impairment keys, with the token.\nExample: -web-rw -web 127.0.0.1:8080")
	fs.String("web-token", "", "write the page's token to `FILE` (mode 0600: the switch's user only); the page asks for it\n"+
		"before captures and changes. Default: next to the default switch's first daemon control socket\n"+
		"(CONTROL.web-token).\nExample: -web-token /run/umlswitch.web-token")
	fs.IntVar(&o.maxClients, "max-clients", configs.DefaultLimits.Clients, "most client ports (`N`) of every listener (daemon, BESS, stream) together; a client over a\n"+
		"bound is refused at once. Root's and the switch's own user's clients are never refused.\nExample: -max-clients 8192")
	fs.IntVar(&o.maxClientsUID, "max-clients-per-uid", configs.DefaultLimits.ClientsPerUID, "most client ports (`N`) of one user.\nExample: -max-clients-per-uid 64")
	fs.IntVar(&o.maxAPI, "max-api", configs.DefaultLimits.API, "most control API connections (`N`, event and capture streams included) and capture-socket\n"+
		"readers at once; over it a connection gets 503.\nExample: -max-api 512")
	fs.IntVar(&o.maxAPIUID, "max-api-per-uid", configs.DefaultLimits.APIPerUID, "most control API connections (`N`) of one user.\nExample: -max-api-per-uid 8")
	fs.StringVar(&o.logLevel, "log-level", "info", "`LEVEL`: debug, info, warn or error. Logs go to stderr, a line per port attach and detach.\nExample: -log-level debug")
	fs.BoolVar(&o.daemon, "daemon", false, "run in the background, like uml_switch -daemon: the command returns (status 0) once every\n"+
		"socket is listening, or with the error that stopped the switch. Logs are discarded; use -pidfile to stop it.\n"+
		"Example: -daemon -pidfile /run/umlswitch.pid")
	fs.StringVar(&o.pidFile, "pidfile", "", "write the switch's process id to `FILE` (removed at exit; a stale one is replaced, a live\none refused).\nExample: -pidfile /run/umlswitch.pid")
	fs.StringVar(&o.metrics, "metrics", "", "serve Prometheus metrics at /metrics on `ADDR`: host:port (TCP; keep it on loopback\n"+
		"unless the network is trusted) or unix:PATH (a unix socket with -metrics-mode's permissions).\n"+
		"Example: -metrics 127.0.0.1:9477")
	fs.StringVar(&o.metricsMode, "metrics-mode", "", "permissions (`OCTAL`) of a unix:PATH metrics socket (default 0600: root only).\nExample: -metrics-mode 0660")
	fs.IntVar(&o.busyPoll, "busy-poll", -1, "busy-poll on `CPU`: pin the switch there and keep its readers spinning on their sockets instead of\n"+
		"sleeping until a frame wakes them, for labs that measure latency (a round trip through the switch loses its\n"+
		"wake-ups). That CPU is always busy, and the switch forwards on it alone. -1: off (also of a busy_poll\nin the file). Example: -busy-poll 3")
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

func (o *options) isSet(name string) bool {
	set := false
	o.fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// flagKeys are the flags that set a configuration key (configs.Merge).
var flagKeys = map[string]string{"hub": "hub", "mac-age": "mac_age", "mac-table-size": "mac_table_size",
	"tx-hold": "tx_hold", "mtu": "mtu", "depth": "depth", "log-level": "log_level",
	"api-uid": "api_uid", "api-gid": "api_gid", "max-clients": "max_clients", "max-clients-per-uid": "max_clients_per_uid",
	"max-api": "max_api", "max-api-per-uid": "max_api_per_uid", "user": "user", "state": "state",
	"web": "web", "web-rw": "web_rw", "web-token": "web_token", "busy-poll": "busy_poll"}

// plan reads the configuration (the file, or the built-in one) and merges
// the command line into it. A reload calls it again.
func (o *options) plan() (*configs.File, error) {
	base := configs.Default()
	if o.config != "" {
		data, err := configs.ReadFile(o.config)
		if err != nil {
			return nil, err
		}
		if base, err = configs.Parse(data); err != nil {
			return nil, fmt.Errorf("%s: %w", o.config, err)
		}
	}
	ov := configs.Overrides{CompatV0: o.compatV0, DataPath: o.dataPath,
		ReplacePorts: o.config == "" && (o.unix != "" || len(o.ports) > 0)}
	o.fs.Visit(func(f *flag.Flag) {
		if key, ok := flagKeys[f.Name]; ok {
			ov.Settings = append(ov.Settings, [2]string{key, f.Value.String()})
		}
	})
	if o.mode != "" {
		m, err := configs.ParseMode(o.mode)
		if err != nil {
			return nil, fmt.Errorf("-mode: %w", err)
		}
		ov.Mode = m
	}
	if o.unix != "" {
		spec, err := configs.NewPort([][2]string{{"transport", "daemon"}, {"path", o.unix}})
		if err != nil {
			return nil, fmt.Errorf("-unix: %w", err)
		}
		ov.Ports = append(ov.Ports, spec)
	}
	if o.tapName != "" {
		spec, err := configs.NewPort([][2]string{{"transport", "tap"}, {"create", "1"}, {"ifname", o.tapName}})
		if err != nil {
			return nil, fmt.Errorf("-tap: %w", err)
		}
		ov.Ports = append(ov.Ports, spec)
	}
	for _, s := range o.ports {
		spec, err := configs.ParsePort(s)
		if err != nil {
			return nil, fmt.Errorf("-port: %w", err)
		}
		ov.Ports = append(ov.Ports, spec)
	}
	for _, s := range o.mirrors {
		m, err := configs.ParseMirror(s)
		if err != nil {
			return nil, fmt.Errorf("-mirror: %w", err)
		}
		ov.Mirrors = append(ov.Mirrors, m)
	}
	if o.captureSocket != "" {
		ov.Mirrors = append(ov.Mirrors, configs.Mirror{Name: "capture-socket", Stream: o.captureSocket})
	}
	return configs.Merge(base, ov)
}

func (s service) serve(ctx context.Context, stdout, stderr io.Writer) (err error) {
	plan := s.plan
	// The new switch of a hot upgrade: the old one's sockets are used
	// instead of opening new ones, and the old one hears whether this one
	// serves.
	upgraded, err := handover.Adopt()
	if err != nil {
		return err
	}
	if upgraded {
		// Nothing is accepted until the old switch has heard that this
		// one serves: a request taken before that (a second upgrade) would
		// find this switch half started. Until then both accept nothing,
		// and clients wait in the backlog a moment longer.
		accept.Pause(0)
		defer func() {
			if err != nil {
				handover.Failed(err)
			}
		}()
		var listeners []*os.File
		for _, it := range handover.All(handover.Listener) {
			listeners = append(listeners, it.File)
		}
		if _, err := unixsock.Inherit(listeners, "upgrade"); err != nil {
			return err
		}
	}
	ctx, leave := context.WithCancel(ctx) // ends Run once an upgrade has handed over
	defer leave()
	level := new(slog.LevelVar)
	if plan.LogLevel != "" {
		level.UnmarshalText([]byte(plan.LogLevel))
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	if s.builtinDir {
		// The built-in socket's directory may not exist on a fresh system;
		// other paths must.
		for _, sw := range plan.Switches {
			for _, p := range sw.Ports {
				if path, _ := p.Get("path"); path == debianCtl {
					os.MkdirAll(filepath.Dir(debianCtl), 0o755)
				}
			}
		}
	}
	// Socket activation: the control sockets a socket unit holds, used
	// instead of binding new ones.
	files, err := sdnotify.Listeners()
	if err != nil {
		return err
	}
	if len(files) > 0 {
		paths, err := unixsock.Inherit(files, "systemd")
		if err != nil {
			return err
		}
		log.Info("sockets from systemd", "paths", strings.Join(paths, ","))
	}
	var runAs *privdrop.Identity
	if plan.User != "" {
		id, err := privdrop.Lookup(plan.User)
		if err != nil {
			return fmt.Errorf("-user: %w", err)
		}
		runAs = &id
		unixsock.RunsAs(id.UID) // its directories are trusted as the switch's own
	}
	// Set below; an upgrade hands their TCP sockets over.
	var metricsServer atomic.Pointer[metrics.Server]
	var webServer atomic.Pointer[web.Server]
	var serving atomic.Bool // the old switch of this one's upgrade, if any, has heard that it serves
	serving.Store(!upgraded)
	upgrade := func(in *instance.Instance) error {
		if !serving.Load() {
			return errors.New("this switch is still taking over from the old one: ask again in a moment")
		}
		var servers []handingOver
		if m := metricsServer.Load(); m != nil {
			servers = append(servers, m)
		}
		if w := webServer.Load(); w != nil {
			servers = append(servers, w)
		}
		return s.upgrade(in, servers, log, stderr, leave)
	}
	var apiServer *api.Server
	in, err := instance.New(plan, instance.Config{Logger: log, Level: level, Reload: s.reload, Upgrade: upgrade,
		State: runStatePath(plan), Upgrading: upgraded,
		API: func(in *instance.Instance) instance.APIServer { apiServer = api.New(in, log); return apiServer }})
	if err != nil {
		return err
	}
	defer in.Close()
	if s.metrics != "" {
		m, err := metrics.Serve(s.metrics, s.metricsMode, in, log)
		if err != nil {
			return err
		}
		defer m.Close()
		metricsServer.Store(m)
	}
	if plan.Web.Addr != "" {
		first := ""
		if len(plan.Switches) > 0 {
			first = plan.Switches[0].Name
		}
		w, err := web.Serve(web.Config{Addr: plan.Web.Addr, Writable: plan.Web.RW, TokenFile: webTokenPath(plan), Switch: first,
			Machines: s.machines},
			in, apiServer.Handler, log)
		if err != nil {
			return err
		}
		defer w.Close()
		webServer.Store(w)
	}
	if runAs != nil {
		if err := becomeUser(*runAs, plan, log); err != nil {
			return fmt.Errorf("-user %s: %w", plan.User, err)
		}
	}
	// As the user it runs as: what the API changed opens again with the
	// rights it had.
	in.Restore()
	if unused := unixsock.Unused(); len(unused) > 0 {
		log.Warn("handed-over sockets that no control socket uses now: closed", "paths", strings.Join(unused, ","))
	}
	defer onSignal(syscall.SIGHUP, in.Reload)()   // before in.Close: a reload under way ends first
	defer onSignal(syscall.SIGUSR2, in.Upgrade)() // and an upgrade
	ports := 0
	for _, sw := range plan.Switches {
		ports += len(sw.Ports)
	}
	if s.announce != nil && !background.IsChild() {
		s.announce(stdout)
	}
	if upgraded {
		unused := handover.Ready()
		serving.Store(true)
		accept.Resume()
		unixsock.Adopted() // the old switch goes: the socket files are this one's now
		log.Info("took over from the old switch", "pid", handover.OldSwitch(), "sockets_unused", unused)
		in.JoinFabric() // the old switch's BGP port, once it has gone
	}
	running := []any{"switches", len(plan.Switches), "ports", ports}
	if plan.BusyPoll != nil {
		running = append(running, "busy_poll", *plan.BusyPoll)
	}
	log.Info("umlswitch running", running...)
	background.Ready() // after this, -daemon's stderr is /dev/null
	sdnotify.Ready()
	in.Run(ctx)
	sdnotify.Stopping()
	log.Info("shutting down")
	return nil
}

// upgrade starts the binary this switch was started from, as it is on disk
// now, with the same arguments, and hands it every listening socket and
// what the ports can hand over (internal/handover). Once the new switch
// serves, this one leaves: its sockets' files, state files and taps are
// the new one's, and Run ends.
func (s service) upgrade(in *instance.Instance, servers []handingOver, log *slog.Logger, stderr io.Writer, leave func()) error {
	exe := s.exe
	if exe == "" {
		return errors.New("the binary this switch was started from is not known")
	}
	// Nothing is accepted from here on (clients wait in the backlogs, for
	// the new switch or, if it fails, for this one), so that the list of
	// ports below is whole when the new switch reads it.
	if !accept.Pause(pauseSettle) {
		log.Warn("upgrade: clients still in their handshake; they may have to connect again", "waited", pauseSettle)
	}
	handedOver := false
	defer func() {
		if !handedOver {
			accept.Resume()
		}
	}()
	var items []handover.Item
	for _, l := range unixsock.Listeners() {
		f, err := handover.Dup(l.UnixListener, "listener "+l.Path())
		if err != nil {
			return fmt.Errorf("listener %s: %w", l.Path(), err)
		}
		items = append(items, handover.Item{Kind: handover.Listener, Key: l.Path(), File: f})
	}
	items = append(items, in.HandOver()...)
	for _, srv := range servers {
		items = append(items, srv.HandOver()...)
	}
	defer func() {
		for _, it := range items {
			it.File.Close() // duplicates: the new switch has its own now
		}
	}()
	log.Info("upgrade: starting the new switch", "exe", exe, "sockets", len(items))
	pid, err := handover.Start(exe, os.Args[1:], items, upgradeTimeout, stderr)
	if err != nil {
		if s.pidFile != "" { // the new switch had taken it over before it failed
			if perr := pidfile.Reclaim(s.pidFile); perr != nil {
				log.Warn("upgrade: the pid file", "err", perr)
			}
		}
		return err
	}
	handedOver = true
	handover.Leave()
	unixsock.KeepFiles()
	sdnotify.Notify(fmt.Sprintf("MAINPID=%d", pid))
	log.Info("upgrade: the new switch serves; this one leaves", "pid", pid)
	leave()
	return nil
}

// handingOver is a server whose TCP listener a hot upgrade hands over.
type handingOver interface{ HandOver() []handover.Item }

// upgradeTimeout bounds how long a new switch may take to serve.
const upgradeTimeout = 30 * time.Second

// pauseSettle bounds how long an upgrade waits for the clients accepted
// before it to be ports: a daemon client's handshake takes at most
// daemon.DefaultHandshakeTimeout.
const pauseSettle = daemon.DefaultHandshakeTimeout + time.Second

// webTokenPath is the web page's token file: web_token (-web-token), or
// next to the default switch's first daemon control socket
// (CONTROL.web-token), or none (the page then only reads).
func webTokenPath(plan *configs.File) string {
	if plan.Web.Token != "" {
		return plan.Web.Token
	}
	if ctl := defaultControl(plan); ctl != "" {
		return ctl + ".web-token"
	}
	return ""
}

// runStatePath is the run state file: -state (state:), or next to the
// default switch's first daemon control socket (CONTROL.run), or none.
func runStatePath(plan *configs.File) string {
	switch plan.State {
	case configs.NoState:
		return ""
	case "":
	default:
		return plan.State
	}
	if ctl := defaultControl(plan); ctl != "" {
		return ctl + ".run"
	}
	return ""
}

// defaultControl is the default switch's first daemon control socket, or "".
func defaultControl(plan *configs.File) string {
	if sw := plan.Switch(configs.DefaultSwitch); sw != nil {
		for _, p := range sw.Ports {
			if path, ok := p.Get("path"); ok && p.Transport == "daemon" {
				return daemon.ControlPath(path)
			}
		}
	}
	return ""
}

// becomeUser makes the switch, its ports open, the user id, keeping the
// capabilities its configured ports (and SPAN destinations) need to open
// again while it runs.
func becomeUser(id privdrop.Identity, plan *configs.File, log *slog.Logger) error {
	var ports []configs.Port
	for _, sw := range plan.Switches {
		ports = append(ports, sw.Ports...)
		for _, m := range sw.Mirrors {
			if m.Port != nil {
				ports = append(ports, *m.Port)
			}
		}
	}
	keep := portkind.Capabilities(ports...)
	if err := privdrop.To(id, keep); err != nil {
		return err
	}
	log.Info("running as", "user", id.Name, "uid", id.UID, "gid", id.GID, "capabilities", keep.String())
	return nil
}

// onSignal runs do on every sig until the function it returns is called,
// which returns once the loop has ended (and a do under way with it):
// SIGHUP reloads, SIGUSR2 upgrades. signal.Stop does not close the
// channel, so the loop needs a stop of its own.
func onSignal(sig os.Signal, do func() error) (stop func()) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, sig)
	done, ended := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(ended)
		for {
			select {
			case <-hup:
				do() // it logs and publishes its own errors
			case <-done:
				return
			}
		}
	}()
	return func() {
		signal.Stop(hup)
		close(done)
		<-ended
	}
}
