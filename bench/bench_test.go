package bench

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/umlswitch/umlswitch/configs"
	"github.com/umlswitch/umlswitch/fabric"
	"github.com/umlswitch/umlswitch/frame"
	"github.com/umlswitch/umlswitch/instance"
	"github.com/umlswitch/umlswitch/internal/nstest"
	"github.com/umlswitch/umlswitch/transports"
	"github.com/umlswitch/umlswitch/transports/daemon"
	"github.com/umlswitch/umlswitch/transports/portkind"
	"github.com/umlswitch/umlswitch/transports/stream"
)

func TestParseStatCPU(t *testing.T) {
	// Field 2 may hold spaces and parentheses; utime and stime are 14 and 15.
	line := "4242 (a (weird) name) S 1 2 3 4 5 6 7 8 9 10 250 150 0 0 20 0 1 0"
	got, err := parseStatCPU(line)
	if err != nil || got != 4*time.Second {
		t.Fatalf("got %v, %v; want 4s (400 ticks)", got, err)
	}
	if _, err := parseStatCPU("12 (x) S 1 2"); err == nil {
		t.Fatal("accepted a short line")
	}
	if _, err := parseStatCPU("no parenthesis"); err == nil {
		t.Fatal("accepted a line without a command field")
	}
	self, err := cpuTime(os.Getpid())
	if err != nil || self < 0 {
		t.Fatalf("own CPU time: %v, %v", self, err)
	}
}

func TestParseSteal(t *testing.T) {
	stat := "cpu  10 0 10 500 0 0 0 999 0 0\ncpu0 5 0 5 250 0 0 0 30 0 0\ncpu1 5 0 5 250 0 0 0 20 0 0\nintr 1 2\n"
	if got := parseSteal(stat); got != 500*time.Millisecond {
		t.Fatalf("steal %v, want 500ms (50 ticks on the per-CPU lines only)", got)
	}
}

func TestSummarize(t *testing.T) {
	runs := []GenResult{{Delivered: 30, Window: time.Second}, {Delivered: 10, Window: time.Second}, {Delivered: 20, Window: time.Second}}
	s := summarize(runs, func(r GenResult) float64 { return float64(r.Delivered) })
	if s != (summary{min: 10, med: 20, max: 30}) {
		t.Fatalf("odd count: %+v", s)
	}
	s = summarize(runs[:2], func(r GenResult) float64 { return float64(r.Delivered) })
	if s.med != 20 {
		t.Fatalf("even count median %v, want the mean of the middle two", s.med)
	}
	if summarize(nil, GenResult.loss) != (summary{}) {
		t.Fatal("empty runs")
	}
}

func TestMetrics(t *testing.T) {
	r := GenResult{Window: 2 * time.Second, Offered: 400000, Delivered: 380000, SentAll: 1000, RecvAll: 6930, Copies: 7,
		SwitchCPU: time.Second, GenCPU: time.Second}
	if got := r.offeredMpps(); got != 0.2 {
		t.Errorf("offered %v", got)
	}
	if got := r.deliveredMpps(); got != 0.19 {
		t.Errorf("delivered %v", got)
	}
	if got := r.loss(); got < 0.0099 || got > 0.0101 {
		t.Errorf("loss %v, want 1%% of 7000 expected deliveries", got)
	}
	if got := r.perSwitchCPU(); got != 0.38 {
		t.Errorf("per CPU-second %v", got)
	}
	if (GenResult{SentAll: 10, RecvAll: 12, Copies: 1}).loss() != 0 {
		t.Error("loss below zero")
	}
}

func TestReport(t *testing.T) {
	mk := func(delivered uint64, cpu time.Duration) GenResult {
		return GenResult{Window: time.Second, Offered: delivered, Delivered: delivered, SentAll: delivered, RecvAll: delivered,
			Copies: 1, SwitchCPU: cpu, GenCPU: 950 * time.Millisecond, GenBusy: 0.97, Steal: 0.1}
	}
	rows := []Row{
		{Switch: "umlswitch", Ports: 2, Size: 64, Client: "uml", Runs: []GenResult{mk(260000, 900*time.Millisecond)}},
		{Switch: "uml_switch", Ports: 2, Size: 64, Client: "uml", Runs: []GenResult{mk(200000, time.Second)}},
	}
	var b strings.Builder
	Report(&b, rows)
	out := b.String()
	for _, want := range []string{
		"| umlswitch | 2 | 64 | uml | 0.260 | 0.260 | 0.133 | 0.00% | 90% | 0.289 | 95% | 97% |",
		"| uml_switch | 2 | 64 | uml | 0.200 | 0.200 |",
		"umlswitch / uml_switch: 1.30x delivered frames per second, 1.44x per switch CPU-second",
		"warning: with umlswitch the generator had work in 97% of its passes",
		"warning: with umlswitch the hypervisor took up to 10% of this machine's CPU time",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
}

func TestParseCPUList(t *testing.T) {
	for in, want := range map[string][]int{"0": {0}, "0-3": {0, 1, 2, 3}, "4,0-1": {4, 0, 1}, "1,1": {1}} {
		got, err := parseCPUList(in)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("%q: %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "a", "3-1", "-1", "0-2000", "1,,2"} {
		if _, err := parseCPUList(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestMainRejectsBadFlags(t *testing.T) {
	for _, args := range [][]string{{"-ports", "1"}, {"-size", "10"}, {"-clients", "qemu"}, {"-switch", "ovs"}, {"stray"}, {"-depth", "0"},
		{"-cpu", "x"}, {"-gen-cpu", "1"}, {"-mode", "fast"}, {"-mode", "scan", "-sizes", "1"}, {"-mode", "scan", "-port-counts", "x"}} {
		if code := Main(args, io.Discard, io.Discard); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
	if code := Main([]string{"-h"}, io.Discard, io.Discard); code != 0 {
		t.Errorf("-h: exit %d", code)
	}
}

// startRegistry serves a daemon control socket into reg for the test.
func startRegistry(t *testing.T, reg fabric.Registry) string {
	t.Helper()
	tr, err := daemon.Listen(daemon.Config{Options: daemon.Options{Path: filepath.Join(t.TempDir(), "ctl")}, Common: portkind.Common{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}})
	if err != nil {
		t.Fatal(err)
	}
	tr.Start(reg)
	t.Cleanup(func() { tr.Close() })
	return tr.Path()
}

// The generator against a real switch in this process: frames go round,
// the switch learns every port, and hardly anything is lost.
func TestGenerateAgainstSwitch(t *testing.T) {
	for _, c := range []struct {
		name string
		vde  bool
		hub  bool
	}{{"uml", false, false}, {"vde", true, false}, {"uml-hub", false, true}} {
		t.Run(c.name, func(t *testing.T) {
			sw := fabric.New(fabric.Config{Hub: c.hub, TxHold: 50 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
			ctx, cancel := context.WithCancel(context.Background())
			defer func() { cancel(); sw.Close() }()
			go sw.Run(ctx)
			ctl := startRegistry(t, sw)
			res, err := Generate(GenConfig{Ctl: ctl, Ports: 3, Size: 64, Depth: 32, Warmup: 50 * time.Millisecond,
				Duration: 300 * time.Millisecond, ConnectBack: c.vde, Hub: c.hub, SwitchPID: os.Getpid()})
			if err != nil {
				t.Fatal(err)
			}
			if res.Delivered == 0 || res.SentAll == 0 {
				t.Fatalf("nothing went round: %+v", res)
			}
			if loss := res.loss(); loss > 0.05 {
				t.Fatalf("loss %.2f%%: %+v", 100*loss, res)
			}
			if want := map[bool]int{false: 1, true: 2}[c.hub]; res.Copies != want {
				t.Fatalf("copies %d, want %d", res.Copies, want)
			}
			// Had the switch not learned the ports, it would flood and each
			// frame would arrive twice with three ports.
			if max := float64(res.SentAll) * float64(res.Copies) * 1.01; float64(res.RecvAll) > max {
				t.Fatalf("received %d for %d sent with %d copies each: frames were flooded", res.RecvAll, res.SentAll, res.Copies)
			}
		})
	}
}

// The generator over the vector transports, against a real switch whose
// ports the transports package opens (BESS, L2TPv3 over UDP, VXLAN and QEMU's stream need no
// privileges; GRE does and is covered by make bench-smoke).
func TestGenerateOverVectorTransports(t *testing.T) {
	for _, name := range []string{"bess", "l2tpv3", "vxlan", "stream"} {
		t.Run(name, func(t *testing.T) { generateThrough(t, Transports[name]) })
	}
}

// The generator over tap and raw ports, in a namespace of the test's own
// (as root): the switch creates its taps there, Setup makes the veths.
func TestGenerateOverHostPorts(t *testing.T) {
	for _, name := range []string{"tap", "raw"} {
		t.Run(name, func(t *testing.T) {
			ns := nstest.New(t)
			if err := ns.Do(func() error { quietNetns(); return nil }); err != nil {
				t.Fatal(err)
			}
			var res GenResult
			if err := ns.Do(func() error { res = generateThrough(t, Transports[name]); return nil }); err != nil {
				t.Fatal(err)
			}
			// A switch that had not learned the ports would flood, and
			// each frame would arrive twice with three ports.
			if res.RecvAll > res.SentAll {
				t.Fatalf("received %d frames for %d sent", res.RecvAll, res.SentAll)
			}
		})
	}
}

// generateThrough runs the generator's three ports of transport tr
// through an in-process switch, and checks that frames crossed.
func generateThrough(t *testing.T, tr *Transport) GenResult {
	t.Helper()
	sw := fabric.New(fabric.Config{TxHold: 50 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	ctx, cancel := context.WithCancel(context.Background())
	defer func() { cancel(); sw.Close() }()
	go sw.Run(ctx)
	dir := t.TempDir()
	const ports, size = 3, 100
	if tr.Setup != nil {
		if err := tr.Setup(ports, size); err != nil {
			t.Fatal(err)
		}
	}
	set := transports.NewSet(sw, slog.New(slog.NewTextHandler(io.Discard, nil)))
	defer set.Close()
	specs := tr.Ports(dir, ports, size)
	for i := 1; i < len(specs); i += 2 {
		p, err := configs.ParsePort(specs[i])
		if err != nil {
			t.Fatal(err)
		}
		if _, err := set.Open(p, sw, transports.Defaults{Depth: 32, MTU: 1500}); err != nil {
			t.Fatal(err)
		}
	}
	res, err := Generate(GenConfig{Transport: tr, Dir: dir, Window: DefaultWindow, Ports: ports, Size: size, Depth: 32,
		Warmup: 50 * time.Millisecond, Duration: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if res.Delivered == 0 || res.loss() > 0.05 {
		t.Fatalf("%+v", res)
	}
	return res
}

func TestMainRejectsTunnelsForDaemonOnlySwitches(t *testing.T) {
	var errb strings.Builder
	if code := Main([]string{"-transport", "gre", "-compare", "uml_switch"}, io.Discard, &errb); code != 2 ||
		!strings.Contains(errb.String(), "uml_switch speaks only the daemon protocol") {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
}

func TestGenerateAgainstRelay(t *testing.T) {
	r := &relay{hold: 50 * time.Millisecond}
	ctl := startRegistry(t, r)
	res, err := Generate(GenConfig{Ctl: ctl, Ports: 2, Size: 128, Depth: 16, Duration: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if res.Delivered == 0 || res.loss() > 0.05 {
		t.Fatalf("relay: %+v", res)
	}
}

// umlswitch=PATH names another build of umlswitch, started like umlswitch.
func TestSwitchNamedOtherBuild(t *testing.T) {
	sw := switchNamed("umlswitch=/opt/old/umlswitch")
	if sw == nil || sw.Name != "umlswitch=/opt/old/umlswitch" || !sw.vector {
		t.Fatalf("got %+v", sw)
	}
	argv, _ := sw.command("/this/build", t.TempDir(), true)
	if argv[0] != "/opt/old/umlswitch" || argv[len(argv)-1] != "-hub" {
		t.Fatalf("argv %v", argv)
	}
	for _, bad := range []string{"umlswitch=", "nope", "uml_switch=/x"} {
		if switchNamed(bad) != nil {
			t.Errorf("%q names a switch", bad)
		}
	}
}

// The relay is this program (umlswitch-bench relay), whatever umlswitch
// binary the other switches start from.
func TestRelayRunsAsThisProgram(t *testing.T) {
	sw := Known["relay"]
	if !sw.self || Known["umlswitch"].self || switchNamed("umlswitch=/x").self {
		t.Fatal("only the relay runs as this program")
	}
	argv, _ := sw.command("/path/to/umlswitch-bench", t.TempDir(), false)
	if argv[0] != "/path/to/umlswitch-bench" || argv[1] != "relay" {
		t.Fatalf("argv %v", argv)
	}
}

// Without an umlswitch to start the bench says so before it measures
// anything, and names -umlswitch.
func TestMainNeedsUmlswitch(t *testing.T) {
	var errb strings.Builder
	code := Main([]string{"-umlswitch", filepath.Join(t.TempDir(), "umlswitch"), "-duration", "10ms"}, io.Discard, &errb)
	if code != 2 || !strings.Contains(errb.String(), "no umlswitch to start") || !strings.Contains(errb.String(), "-umlswitch PATH") {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
}

// The vlan-access and vlan-trunk layouts, as their commands describe them,
// in an umlswitch instance in this process: every frame crosses, access
// ports send untagged frames (the trunk's frames lose their tag on the way
// to them: 60 bytes of 64) and trunk ports tagged ones (68 bytes).
func TestGenerateOverVLANLayouts(t *testing.T) {
	for _, name := range []string{"vlan-access", "vlan-trunk"} {
		t.Run(name, func(t *testing.T) {
			sw := Known[name]
			argv, ctl := sw.command("umlswitch", t.TempDir(), false)
			var ports []configs.Port
			for i, a := range argv {
				if a == "-port" {
					p, err := configs.ParsePort(argv[i+1])
					if err != nil {
						t.Fatal(err)
					}
					ports = append(ports, p)
				}
			}
			quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
			in, err := instance.New(&configs.File{Switches: []configs.Switch{{Name: configs.DefaultSwitch, Ports: ports}}},
				instance.Config{Logger: quiet})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { in.Run(ctx); close(done) }()
			defer func() { cancel(); <-done }()
			cfg := GenConfig{Ctl: ctl, Ports: 4, Size: 64, Depth: 32, Window: DefaultWindow,
				Warmup: 50 * time.Millisecond, Duration: 300 * time.Millisecond}
			if sw.trunk {
				cfg.TrunkCtl = trunkCtl(ctl)
			}
			// The generator's ports are gone when Generate returns: keep
			// the last look at them while they were all there.
			var last []instance.PortInfo
			trunks := make(map[string]bool) // listener names
			stop := make(chan struct{})
			looked := make(chan struct{})
			go func() {
				defer close(looked)
				for {
					select {
					case <-stop:
						return
					case <-time.After(20 * time.Millisecond):
					}
					var clients []instance.PortInfo
					for _, p := range in.Ports("") {
						if p.Listener != "" {
							clients = append(clients, p)
						} else if strings.Contains(p.Spec, "trunk=") {
							trunks[p.Name] = true
						}
					}
					if len(clients) == 4 {
						last = clients
					}
				}
			}()
			res, err := Generate(cfg)
			close(stop)
			<-looked
			if err != nil {
				t.Fatal(err)
			}
			// A client whose generator thread was held off the CPU (a
			// loaded machine) fills up, and the switch drops past its hold
			// (tx-full), or stops waiting for it for a while
			// (slow-receiver): that is the switch doing its job, and may
			// explain a loss. Nothing else may be dropped.
			stalled := func(reason string) bool { return reason == "tx-full" || reason == "slow-receiver" }
			var full uint64
			for _, p := range last {
				for reason, n := range p.Drops {
					if stalled(reason) {
						full += n
					}
				}
			}
			if res.Delivered == 0 || res.Short > 0 || (res.loss() > 0.05 && full == 0) || res.RecvAll > res.SentAll {
				t.Fatalf("%+v (drops at full clients: %d)", res, full)
			}
			clients := 0
			for _, p := range last {
				clients++
				for reason, n := range p.Drops {
					if !stalled(reason) {
						t.Errorf("%s: %d frames dropped as %s (all drops: %v)", p.Name, n, reason, p.Drops)
					}
				}
				trunk := trunks[p.Listener]
				perFrame := float64(p.TxBytes) / float64(p.TxFrames)
				switch {
				case p.TxFrames < 100:
					t.Errorf("%s sent %d frames", p.Name, p.TxFrames)
				case !sw.trunk && p.TxBytes != 64*p.TxFrames && p.TxBytes < 60*p.TxFrames:
					t.Errorf("%s: %.1f bytes a frame", p.Name, perFrame)
				case sw.trunk && !trunk && p.TxBytes != 60*p.TxFrames:
					t.Errorf("%s, an access port: %.1f bytes a frame, want 60 (tags popped)", p.Name, perFrame)
				case sw.trunk && trunk && perFrame < 67:
					t.Errorf("%s, a trunk port: %.1f bytes a frame, want 68 (tags pushed)", p.Name, perFrame)
				}
				t.Logf("%s (%s): %d frames, %.1f bytes each", p.Name, p.Listener, p.TxFrames, perFrame)
			}
			if clients != 4 {
				t.Fatalf("%d client ports, want 4", clients)
			}
		})
	}
}

// The relay's own stream listener against the generator: unicast between
// two ports, and a hub of three.
func TestGenerateAgainstStreamRelay(t *testing.T) {
	for _, hub := range []bool{false, true} {
		dir := t.TempDir()
		r, err := listenStreamRelay(streamSocket(dir), hub, 64, frame.MaxFrameForMTU(frame.DefaultMTU))
		if err != nil {
			t.Fatal(err)
		}
		ports := map[bool]int{false: 2, true: 3}[hub]
		res, err := Generate(GenConfig{Transport: Transports["stream"], Dir: dir, Window: DefaultWindow, Ports: ports, Size: 100,
			Depth: 32, Hub: hub, Warmup: 50 * time.Millisecond, Duration: 200 * time.Millisecond})
		r.Close()
		if err != nil {
			t.Fatal(err)
		}
		if res.Delivered == 0 || res.Short > 0 || res.loss() > 0.05 || res.RecvAll > res.SentAll*uint64(res.Copies) {
			t.Fatalf("hub %v: %+v", hub, res)
		}
	}
}

// A stream port's sends fill the socket until it takes no more, cutting
// the last record; what the peer reads is whole records only, once the cut
// one is finished, and as many as send counted.
func TestStreamIOFinishesCutRecords(t *testing.T) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fds[0])
	defer unix.Close(fds[1])
	unix.SetsockoptInt(fds[0], unix.SOL_SOCKET, unix.SO_SNDBUF, 4096)
	c := &client{fd: fds[0], framer: stream.NewFramer(200)}
	f := ether(portMAC(1), portMAC(0), 77)
	s := newStreamIO(c, f, 64, 77) // sends larger than the socket's buffer: the kernel takes part of them
	peer := &streamIO{fd: fds[1], rx: stream.NewFramer(200), want: 77}
	sent, got, cuts := 0, 0, 0
	for round := 0; round < 200; round++ {
		n, err := s.send(64)
		if err != nil && err != unix.EAGAIN {
			t.Fatal(err)
		}
		sent += n
		if s.pend > 0 {
			cuts++
		}
		if round%3 == 0 { // read now and then, so that the socket fills
			g, short, err := peer.recv()
			if err != nil || short > 0 {
				t.Fatalf("recv: %d short, %v", short, err)
			}
			got += g
		}
	}
	for s.pend > 0 {
		n, _ := s.send(1)
		sent += n
		g, _, _ := peer.recv()
		got += g
	}
	for {
		g, _, err := peer.recv()
		if err != nil {
			t.Fatal(err)
		}
		if g == 0 {
			break
		}
		got += g
	}
	if cuts == 0 {
		t.Fatal("no send was cut short: the test did not fill the socket")
	}
	if got != sent || peer.rx.Buffered() != 0 {
		t.Fatalf("sent %d, received %d whole records, %d bytes left over", sent, got, peer.rx.Buffered())
	}
}

func TestMainRefusesLayoutsAndTransports(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-compare", "vlan-access", "-transport", "bess"}, "daemon protocol only"},
		{[]string{"-switch", "vlan-trunk", "-transport", "stream"}, "daemon protocol only"},
		{[]string{"-compare", "vlan-trunk", "-ports", "3"}, "even number of ports"},
		{[]string{"-compare", "vlan-trunk", "-size", "16"}, "at least 18 bytes"},
		{[]string{"-compare", "vlan-trunk", "-mode", "scan", "-port-counts", "2,5"}, "even number of ports"},
		{[]string{"-transport", "stream", "-compare", "uml_switch"}, "uml_switch speaks only the daemon protocol"},
		{[]string{"-transport", "stream", "-compare", "vde_switch"}, "vde_switch speaks only the daemon protocol"},
		{[]string{"-compare", "umlswitch-xdp"}, "needs -transport raw or xdp"},
		{[]string{"-transport", "vxlan", "-switch", "umlswitch-filter"}, "needs -transport raw or xdp"},
	} {
		var errb strings.Builder
		args := append([]string{"-umlswitch", "/bin/true", "-duration", "10ms"}, c.args...)
		if code := Main(args, io.Discard, &errb); code != 2 || !strings.Contains(errb.String(), c.want) {
			t.Errorf("%v: exit %d: %s", c.args, code, errb.String())
		}
	}
}

// vlan-access=PATH and vlan-trunk=PATH are other builds, as umlswitch=PATH.
func TestSwitchNamedLayoutOtherBuild(t *testing.T) {
	sw := switchNamed("vlan-trunk=/opt/old/umlswitch")
	if sw == nil || !sw.trunk || !sw.daemonOnly {
		t.Fatalf("got %+v", sw)
	}
	argv, ctl := sw.command("/this/build", t.TempDir(), false)
	want := []string{"/opt/old/umlswitch", "-port", "transport=daemon,path=" + trunkCtl(ctl) + ",trunk=10",
		"-port", "transport=daemon,path=" + ctl + ",vlan=10", "-log-level", "warn"}
	if !slices.Equal(argv, want) {
		t.Fatalf("argv %v, want %v", argv, want)
	}
	if switchNamed("relay=/x") != nil || switchNamed("vlan-access=") != nil {
		t.Fatal("relay=PATH or an empty path names a switch")
	}
}

// The raw-port variants add their keys to raw ports only, and keep them in
// another build (NAME=PATH).
func TestRawVariants(t *testing.T) {
	args := []string{"-port", "transport=raw,ifname=bgsw0", "-port", "transport=raw,ifname=bgsw1", "-mtu", "9000"}
	got := switchNamed("umlswitch-xdp").withRawKeys(args)
	want := []string{"-port", "transport=raw,ifname=bgsw0,xdp=1", "-port", "transport=raw,ifname=bgsw1,xdp=1", "-mtu", "9000"}
	if !slices.Equal(got, want) || args[1] != "transport=raw,ifname=bgsw0" {
		t.Fatalf("%q, want %q (and args unchanged: %q)", got, want, args)
	}
	if got := switchNamed("umlswitch").withRawKeys(args); !slices.Equal(got, args) {
		t.Fatalf("plain umlswitch changed its ports: %q", got)
	}
	other := switchNamed("umlswitch-xdp-filter=/tmp/old")
	if other == nil || !strings.HasPrefix(other.rawKeys, "xdp=1,bpf=") {
		t.Fatalf("umlswitch-xdp-filter=PATH: %+v", other)
	}
	for _, keys := range []string{other.rawKeys, switchNamed("umlswitch-filter").rawKeys} {
		if _, err := configs.ParsePort("transport=raw,ifname=x," + keys); err != nil {
			t.Errorf("%s: %v", keys, err)
		}
	}
}
