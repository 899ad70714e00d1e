package bench

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Switch is a switch the benchmark can start: how to run it and where its
// control socket will be.
type Switch struct {
	Name string
	// command returns the argv to run a switch whose sockets go in dir,
	// and the control socket clients dial. exe is the umlswitch binary, or
	// this program if self.
	command func(exe, dir string, hub bool) (argv []string, ctl string)
	// self: it runs as this program (umlswitch-bench relay), not umlswitch.
	self bool
	// stop asks the process to exit cleanly.
	stop func(p *process)
	// vector: it takes -port specs, so speaks every transport, not only
	// the daemon protocol.
	vector bool
	// jumbo: it takes -mtu, so frames past 1518 bytes can cross it.
	jumbo bool
	// umlswitch: it runs the umlswitch binary that -umlswitch names (or
	// the one next to this program), and NAME=PATH runs another build.
	umlswitch bool
	// daemonOnly: a port layout of umlswitch's daemon listeners, measured
	// over the daemon protocol only.
	daemonOnly bool
	// trunk: it also serves trunkCtl(ctl), a control socket whose clients
	// are tagged members of benchVLAN, for the odd generator ports.
	trunk bool
	// env is added to the environment it starts with.
	env []string
	// rawKeys are added to the -port spec of every raw port the
	// transport gives it: xdp=1, a filter.
	rawKeys string
	// busyPoll: it runs with -busy-poll on the first CPU it is pinned to
	// (CPU 0 without -cpu).
	busyPoll bool
	// watch, if set, starts what watches the switch while it runs (a web
	// page left open, a live capture); stop ends it before the switch.
	watch func(p *process) (stop func(), err error)
}

// withRawKeys adds sw's rawKeys to the raw ports among args.
func (sw *Switch) withRawKeys(args []string) []string {
	if sw.rawKeys == "" {
		return args
	}
	out := slices.Clone(args)
	for i := 1; i < len(out); i++ {
		if out[i-1] == "-port" && strings.HasPrefix(out[i], "transport=raw,") {
			out[i] += "," + sw.rawKeys
		}
	}
	return out
}

// passAll is a classic BPF filter that keeps every frame, as tcpdump -ddd
// ” prints it: what a filter costs, with none of its work.
const passAll = "1;6 0 0 262144"

// rawVariant is umlswitch with keys added to its raw ports.
func rawVariant(name, keys string) *Switch {
	sw := *Known["umlswitch"]
	sw.Name, sw.rawKeys = name, keys
	return &sw
}

func init() {
	// umlswitch's raw ports on AF_XDP, with and without a filter that
	// keeps everything, on AF_PACKET with that filter, and on AF_PACKET
	// reading through either ring or with recvmmsg (ring=): -transport
	// raw or xdp.
	for _, v := range []struct{ name, keys string }{
		{"umlswitch-xdp", "xdp=1"}, {"umlswitch-xdp-filter", "xdp=1,bpf=" + passAll}, {"umlswitch-filter", "bpf=" + passAll},
		{"umlswitch-ring-blocks", "ring=blocks"}, {"umlswitch-ring-frames", "ring=frames"}, {"umlswitch-mmsg", "ring=0"},
	} {
		Known[v.name] = rawVariant(v.name, v.keys)
	}
	// umlswitch busy-polling: its readers never sleep (-mode latency).
	busy := *Known["umlswitch"]
	busy.Name, busy.busyPoll = "umlswitch-busy", true
	Known[busy.Name] = &busy
	// and busy-polling AF_XDP raw ports (-mode latency -transport xdp).
	busyXDP := *rawVariant("umlswitch-busy-xdp", "xdp=1")
	busyXDP.busyPoll = true
	Known[busyXDP.Name] = &busyXDP
	// umlswitch watched: its web page open (-web, the page's requests
	// played), or its live capture read as Wireshark's extcap reads it.
	web := *Known["umlswitch"]
	web.Name = "umlswitch-web"
	plain := web.command
	web.command = func(exe, dir string, hub bool) ([]string, string) {
		argv, ctl := plain(exe, dir, hub)
		addr, err := freeLoopback()
		if err != nil {
			addr = "127.0.0.1:0" // it still serves; the page's requests then fail, and the run says so
		}
		return append(argv, "-web", addr, "-web-token", filepath.Join(dir, "web-token")), ctl
	}
	web.watch = func(p *process) (func(), error) {
		i := slices.Index(p.cmd.Args, "-web")
		if i < 0 || i+1 >= len(p.cmd.Args) {
			return nil, fmt.Errorf("%s: started without -web", p.sw.Name)
		}
		return watchPage(p.cmd.Args[i+1]), nil
	}
	Known[web.Name] = &web
	capture := *Known["umlswitch"]
	capture.Name = "umlswitch-capture"
	capture.watch = func(p *process) (func(), error) { return watchCapture(p.ctl, ""), nil }
	Known[capture.Name] = &capture
	// and the capture of one port, the first generator port, which the
	// switch narrows (the extcap's port interfaces, the page's port
	// captures).
	port := *Known["umlswitch"]
	port.Name = "umlswitch-capture-port"
	port.watch = func(p *process) (func(), error) { return watchCapture(p.ctl, "port=daemon0.1"), nil }
	Known[port.Name] = &port
}

// trunkCtl is the trunk control socket of a switch whose access control
// socket is ctl (vlan-trunk).
func trunkCtl(ctl string) string { return ctl + ".trunk" }

// mtuArgs are the arguments that let frames of size bytes cross sw.
func (sw *Switch) mtuArgs(size int) []string {
	if !sw.jumbo || size <= 1518 {
		return nil
	}
	return []string{"-mtu", fmt.Sprint(size - 18)}
}

// switchNamed returns the switch a -switch or -compare name means: a known
// one, or NAME=PATH for a NAME that runs umlswitch (umlswitch=PATH,
// vlan-access=PATH, vlan-trunk=PATH): another build of umlswitch, to
// measure a change against the build before it in one run.
func switchNamed(name string) *Switch {
	if sw := Known[name]; sw != nil {
		return sw
	}
	kind, path, ok := strings.Cut(name, "=")
	base := Known[kind]
	if !ok || path == "" || base == nil || !base.umlswitch {
		return nil
	}
	sw := *base
	sw.Name = name
	sw.command = func(_, dir string, hub bool) ([]string, string) { return base.command(path, dir, hub) }
	return &sw
}

// Known switches, by the names -switch and -compare take. relay is the
// ceiling: umlswitch's own sockets with no switching logic.
var Known = map[string]*Switch{
	"umlswitch": {
		Name:      "umlswitch",
		command:   umlswitchWith(func(ctl string) []string { return []string{"-unix", ctl} }),
		stop:      func(p *process) { p.cmd.Process.Signal(syscall.SIGTERM) },
		vector:    true,
		jumbo:     true,
		umlswitch: true,
	},
	// vlan-access: umlswitch with every client an access port of
	// benchVLAN; frames go untagged, as to umlswitch.
	"vlan-access": {
		Name: "vlan-access",
		command: umlswitchWith(func(ctl string) []string {
			return []string{"-port", fmt.Sprintf("transport=daemon,path=%s,vlan=%d", ctl, benchVLAN)}
		}),
		stop:       func(p *process) { p.cmd.Process.Signal(syscall.SIGTERM) },
		jumbo:      true,
		umlswitch:  true,
		daemonOnly: true,
	},
	// vlan-trunk: umlswitch with access ports of benchVLAN on its control
	// socket and tagged members of benchVLAN on a second one; the even
	// generator ports are access ports, the odd ones trunk ports, so every
	// frame has its tag pushed or popped once.
	"vlan-trunk": {
		Name: "vlan-trunk",
		command: umlswitchWith(func(ctl string) []string {
			return []string{
				"-port", fmt.Sprintf("transport=daemon,path=%s,trunk=%d", trunkCtl(ctl), benchVLAN),
				"-port", fmt.Sprintf("transport=daemon,path=%s,vlan=%d", ctl, benchVLAN),
			}
		}),
		stop:       func(p *process) { p.cmd.Process.Signal(syscall.SIGTERM) },
		jumbo:      true,
		umlswitch:  true,
		daemonOnly: true,
		trunk:      true,
	},
	"uml_switch": {
		Name: "uml_switch",
		command: func(_, dir string, hub bool) ([]string, string) {
			ctl := filepath.Join(dir, "uml_switch.ctl")
			argv := []string{"uml_switch", "-unix", ctl}
			if hub {
				argv = append(argv, "-hub")
			}
			return argv, ctl
		},
		stop: func(p *process) { p.cmd.Process.Signal(syscall.SIGINT) },
	},
	"relay": relaySwitch("relay"),
	// relay-bare is the relay with QEMU's stream framing served by a bare
	// relay of its own, no port code at all: whole records go on from the
	// buffer they were read into. Against it, umlswitch's stream ports
	// measure the switching and the port's copies of every frame.
	"relay-bare": relaySwitch("relay-bare", "-bare-stream"),
	"vde_switch": {
		Name: "vde_switch",
		command: func(_, dir string, hub bool) ([]string, string) {
			d := filepath.Join(dir, "vde")
			argv := []string{"vde_switch", "-s", d}
			if hub {
				argv = append(argv, "-x")
			}
			return argv, filepath.Join(d, "ctl")
		},
		stop: func(p *process) { p.stdin.Close() }, // it exits on EOF on its console
	},
}

// relaySwitch is umlswitch-bench's own relay, started with flags.
func relaySwitch(name string, flags ...string) *Switch {
	return &Switch{
		Name: name,
		command: func(exe, dir string, hub bool) ([]string, string) {
			ctl := filepath.Join(dir, "relay.ctl")
			argv := append([]string{exe, "relay", "-unix", ctl}, flags...)
			if hub {
				argv = append(argv, "-hub")
			}
			return argv, ctl
		},
		stop:   func(p *process) { p.cmd.Process.Signal(syscall.SIGTERM) },
		self:   true,
		vector: true,
		jumbo:  true,
	}
}

// umlswitchWith is the command of umlswitch serving the listeners that
// listeners(ctl) gives, ctl its control socket.
func umlswitchWith(listeners func(ctl string) []string) func(exe, dir string, hub bool) ([]string, string) {
	return func(exe, dir string, hub bool) ([]string, string) {
		ctl := filepath.Join(dir, "umlswitch.ctl")
		argv := append([]string{exe}, listeners(ctl)...)
		argv = append(argv, "-log-level", "warn")
		if hub {
			argv = append(argv, "-hub")
		}
		return argv, ctl
	}
}

// process is a started switch.
type process struct {
	sw    *Switch
	cmd   *exec.Cmd
	stdin io.WriteCloser
	ctl   string
	done  chan struct{}
	// unwatch stops what watches the switch (Switch.watch).
	unwatch func()
}

// start runs sw with its sockets in dir and extra arguments (the -port
// specs of a transport), pinned to cpus (all CPUs if empty), and waits
// until its control sockets accept connections.
func start(sw *Switch, exe, dir string, hub bool, extra []string, cpus []int, log io.Writer) (*process, error) {
	argv, ctl := sw.command(exe, dir, hub)
	argv = append(argv, extra...)
	if sw.busyPoll {
		argv = append(argv, "-busy-poll", strconv.Itoa(append(slices.Clone(cpus), 0)[0]))
	}
	path, err := exec.LookPath(argv[0])
	if err != nil {
		return nil, fmt.Errorf("%s: %w", sw.Name, err)
	}
	cmd := exec.Command(path, argv[1:]...)
	cmd.Stdout, cmd.Stderr = log, log
	if sw.env != nil {
		cmd.Env = append(os.Environ(), sw.env...)
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	// A child inherits the CPU mask of the thread that forks it: pin this
	// thread for the fork so the switch runs pinned from its first
	// instruction, then restore it.
	runtime.LockOSThread()
	var old []int
	if len(cpus) > 0 {
		old, _ = otherCPUs()
		if err := pinThisThread(cpus); err != nil {
			runtime.UnlockOSThread()
			return nil, fmt.Errorf("pin: %w", err)
		}
	}
	err = cmd.Start()
	if len(cpus) > 0 {
		pinThisThread(old)
	}
	runtime.UnlockOSThread()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", sw.Name, err)
	}
	p := &process{sw: sw, cmd: cmd, stdin: stdin, ctl: ctl, done: make(chan struct{}), unwatch: func() {}}
	go func() { cmd.Wait(); close(p.done) }()
	sockets := []string{ctl}
	if sw.trunk {
		sockets = append(sockets, trunkCtl(ctl))
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		for len(sockets) > 0 {
			c, err := net.Dial("unix", sockets[0])
			if err != nil {
				break
			}
			c.Close() // a connection that never sends a request: every switch drops it
			sockets = sockets[1:]
		}
		if len(sockets) == 0 {
			if sw.watch != nil {
				stop, err := sw.watch(p)
				if err != nil {
					p.kill()
					return nil, err
				}
				p.unwatch = sync.OnceFunc(stop)
			}
			return p, nil
		}
		select {
		case <-p.done:
			return nil, fmt.Errorf("%s exited before serving %s", sw.Name, sockets[0])
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			p.kill()
			return nil, fmt.Errorf("%s did not serve %s within 5s", sw.Name, sockets[0])
		}
	}
}

func (p *process) pid() int { return p.cmd.Process.Pid }

// shutdown stops the switch cleanly, killing it if it does not go.
func (p *process) shutdown() {
	p.unwatch()
	p.sw.stop(p)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		p.kill()
	}
}

func (p *process) kill() {
	p.unwatch()
	p.cmd.Process.Kill()
	<-p.done
}

// scratchDir makes a short-named directory for sockets.
func scratchDir() (string, error) { return os.MkdirTemp("", "umlsw-bench") }
