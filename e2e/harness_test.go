package e2e

import (
	"bufio"
	"cmp"
	"debug/elf"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/umlswitch/umlswitch/internal/nstest"
)

var runE2E = flag.Bool("e2e", false, "run the end-to-end tests (real UML kernels, VDE tools, namespaces); with it, missing tools fail the tests instead of skipping them")

// env is what TestMain prepared: the switch binary and the UML root.
var env struct {
	dir       string // scratch root for the whole run
	umlswitch string // built binary
	root      string // busybox hostfs root
	err       error  // why preparing failed
	vlanErr   error  // why the root has no 8021q module for vlan=
}

func TestMain(m *testing.M) {
	if ctl := os.Getenv(sinkEnv); ctl != "" { // this process is a client, not the tests
		os.Exit(sinkMain(ctl))
	}
	runRoleIfAsked()
	flag.Parse()
	if *runE2E {
		env.err = prepare()
	}
	code := m.Run()
	if env.dir != "" {
		os.RemoveAll(env.dir)
	}
	os.Exit(code)
}

// requireE2E skips without -e2e and fails when -e2e is given but the
// machine lacks what the test needs.
func requireE2E(t *testing.T) {
	t.Helper()
	if !*runE2E {
		t.Skip("end-to-end test: run with -e2e (make test does)")
	}
	if env.err != nil {
		t.Fatal(env.err)
	}
}

func prepare() error {
	var err error
	if env.dir, err = os.MkdirTemp("", "e2e"); err != nil {
		return err
	}
	// The security tests' unprivileged attackers run the binaries here and
	// reach sockets in scratch directories made public for them.
	if err := os.Chmod(env.dir, 0o755); err != nil {
		return err
	}
	for _, tool := range []string{"linux", "ip"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s not found: install Debian's user-mode-linux and iproute2", tool)
		}
	}
	env.umlswitch = filepath.Join(env.dir, "umlswitch")
	// Built as make build builds it: without cgo (-user keeps capabilities
	// on every thread only so).
	build := exec.Command("go", "build", "-o", env.umlswitch, "../cmd/umlswitch")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("build umlswitch: %v\n%s", err, out)
	}
	if err := makeRoot(filepath.Join(env.dir, "root")); err != nil {
		return err
	}
	return probeUML(env.root)
}

// initScript is the UML's /init. Its settings come from the kernel command
// line, which hands unknown name=value words to init as variables:
//
//	iface  interface (eth0)        myip   address/24 to give it
//	peers  comma-separated addresses to ping until they answer
//	nopeers  comma-separated addresses that must not answer: three pings each,
//	       then "UNREACHED ADDR yes" (no answer) or "UNREACHED ADDR no"
//	secondip address/24 for a second interface, eth1 (a machine of a lab on two
//	       collision domains; not eth1ip: UML's eth setup takes every eth* word)
//	noipv6 any value: no IPv6 on the interface (and on its VLAN device), so
//	       that it sends only what the test makes it send (its counters then
//	       match the switch's)
//	vlan   VLAN id: load 8021q (the modules makeRoot copied, once), make the
//	       VLAN device IF.ID on the interface, bring both up and give myip to
//	       the VLAN device; the interface itself gets no address, and its own
//	       counters are still the ones printed (they count the tagged frames)
//	vlanproto 802.1Q (the default) or 802.1ad: the VLAN device's tag protocol
//	flood  "N,ADDR": send N quick pings to ADDR after the peers answered
//	watch  ADDR: after the peers answered, ping ADDR once every 0.2 s until
//	       powered off, each attempt numbered: "WATCH N ok" (answered within
//	       1 s) or "WATCH N no"
//	mtu    interface MTU           big    ping each peer once with this payload size
//	sink   TCP port: accept one connection, print "SINK <bytes read>" when it closes
//	send   "HOST:PORT:BYTES": after the peers answered, send BYTES of zeros to HOST:PORT over TCP
//	       (listening before UML-UP, so the host may dial once the peers answer)
//
// It prints RESULT lines, then "UML-WAITING TX RX" with its interface's
// packet counters, waits for a line on its console (the test's barrier:
// everyone has finished pinging), prints its receive counter and powers off.
const initScript = `#!/bin/sh
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
ip link set lo up
IF=${iface:-eth0}
[ -n "$noipv6" ] && echo 1 > /proc/sys/net/ipv6/conf/$IF/disable_ipv6
[ -n "$mtu" ] && ip link set $IF mtu $mtu
ip link set $IF up
ADDRIF=$IF
if [ -n "$vlan" ]; then
  for m in $(cat /modules/8021q.order); do [ -d /sys/module/${m%.ko} ] || insmod /modules/$m; done
  ADDRIF=$IF.$vlan
  if ip link add link $IF name $ADDRIF type vlan id $vlan ${vlanproto:+protocol $vlanproto}; then
    echo "VLAN $ADDRIF ${vlanproto:-802.1Q} ok"
  else
    echo "VLAN $ADDRIF ${vlanproto:-802.1Q} fail"
  fi
  # IPv6 is a module of this kernel: without it there is nothing to disable.
  [ -n "$noipv6" ] && [ -d /proc/sys/net/ipv6/conf/$ADDRIF ] && echo 1 > /proc/sys/net/ipv6/conf/$ADDRIF/disable_ipv6
  ip link set $ADDRIF up
fi
ip addr add $myip/24 dev $ADDRIF
if [ -n "$secondip" ]; then ip link set eth1 up; ip addr add $secondip/24 dev eth1; fi
if [ -n "$sink" ]; then
  (echo "SINK $(nc -l -p $sink | wc -c)") &
  # The host dials as soon as the pings answer: listen before that.
  hex=$(printf '%04X' $sink)
  for i in $(seq 1 100); do
    cat /proc/net/tcp /proc/net/tcp6 2>/dev/null | grep -q ":$hex [0-9A-F]*:0000 0A" && break
    sleep 0.1
  done
fi
echo "UML-UP $myip"
for p in $(echo "$peers" | tr ',' ' '); do
  r=fail
  for i in $(seq 1 40); do
    if ping -c 1 -W 1 $p >/dev/null 2>&1; then r=ok; break; fi
  done
  echo "RESULT $p $r"
  if [ -n "$big" ]; then
    if ping -c 2 -W 2 -s $big $p >/dev/null 2>&1; then echo "BIG $p ok"; else echo "BIG $p fail"; fi
  fi
done
if [ -n "$watch" ]; then
  (n=0; while :; do n=$((n+1)); r=no; ping -c 1 -W 1 $watch >/dev/null 2>&1 && r=ok; echo "WATCH $n $r"; sleep 0.2; done) &
fi
if [ -n "$send" ]; then
  h=${send%%:*}; r=${send#*:}; p=${r%%:*}; n=${r#*:}
  head -c $n /dev/zero | nc $h $p
  echo "SENT $n"
fi
for p in $(echo "$nopeers" | tr ',' ' '); do
  if ping -c 3 -W 1 $p >/dev/null 2>&1; then echo "UNREACHED $p no"; else echo "UNREACHED $p yes"; fi
done
if [ -n "$flood" ]; then
  n=${flood%%,*}; to=${flood#*,}
  echo "FLOODED $to $(ping -q -c $n -i 0.02 -W 2 $to 2>&1 | grep received)"
fi
echo "UML-WAITING $(cat /sys/class/net/$IF/statistics/tx_packets) $(cat /sys/class/net/$IF/statistics/rx_packets)"
read release
echo "RXPACKETS $(cat /sys/class/net/$IF/statistics/rx_packets) $(cat /sys/class/net/$IF/statistics/tx_packets)"
echo "UML-DONE"
poweroff -f
`

func makeRoot(root string) error {
	bb, err := exec.LookPath("busybox")
	if err != nil {
		return fmt.Errorf("busybox not found: install busybox-static")
	}
	if f, err := elf.Open(bb); err != nil {
		return fmt.Errorf("%s: %v", bb, err)
	} else {
		dynamic := false
		for _, p := range f.Progs {
			dynamic = dynamic || p.Type == elf.PT_INTERP
		}
		f.Close()
		if dynamic {
			return fmt.Errorf("%s is dynamically linked: UML's hostfs root needs busybox-static", bb)
		}
	}
	for _, d := range []string{"bin", "proc", "sys", "dev", "tmp"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return err
		}
	}
	data, err := os.ReadFile(bb)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(root, "bin", "busybox"), data, 0o755); err != nil {
		return err
	}
	list, err := exec.Command(bb, "--list").Output()
	if err != nil {
		return fmt.Errorf("busybox --list: %v", err)
	}
	for _, applet := range strings.Fields(string(list)) {
		os.Symlink("busybox", filepath.Join(root, "bin", applet))
	}
	env.root = root
	// Without the modules only the tests that use vlan= fail (requireVLAN).
	env.vlanErr = copyModules(root, "kernel/net/8021q/8021q.ko")
	return os.WriteFile(filepath.Join(root, "init"), []byte(initScript), 0o755)
}

// umlModules is where Debian's user-mode-linux keeps the UML kernel's
// modules, in a folder named after the kernel's version.
const umlModules = "/usr/lib/uml/modules"

// copyModules copies the UML kernel's module mod (a path as modules.dep
// writes it) and the modules it needs into root/modules, and writes
// root/modules/NAME.order: their file names in load order, dependencies
// first, for init to insmod.
func copyModules(root, mod string) error {
	out, err := exec.Command("linux", "--version").Output()
	if err != nil {
		return fmt.Errorf("linux --version: %v", err)
	}
	dir := filepath.Join(umlModules, strings.TrimSpace(string(out)))
	depFile, err := os.ReadFile(filepath.Join(dir, "modules.dep"))
	if err != nil {
		return fmt.Errorf("the UML kernel's modules: %v", err)
	}
	deps := map[string][]string{}
	for _, line := range strings.Split(string(depFile), "\n") {
		if m, d, ok := strings.Cut(line, ":"); ok {
			deps[m] = strings.Fields(d)
		}
	}
	var order []string
	seen := map[string]bool{}
	var visit func(m string) error
	visit = func(m string) error {
		if seen[m] {
			return nil
		}
		seen[m] = true
		d, ok := deps[m]
		if !ok {
			return fmt.Errorf("%s is not in %s/modules.dep", m, dir)
		}
		for _, m := range d {
			if err := visit(m); err != nil {
				return err
			}
		}
		order = append(order, m)
		return nil
	}
	if err := visit(mod); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(root, "modules"), 0o755); err != nil {
		return err
	}
	var names []string
	for _, m := range order {
		data, err := os.ReadFile(filepath.Join(dir, m))
		if err != nil {
			return err
		}
		names = append(names, filepath.Base(m))
		if err := os.WriteFile(filepath.Join(root, "modules", filepath.Base(m)), data, 0o644); err != nil {
			return err
		}
	}
	list := strings.Join(names, "\n") + "\n"
	return os.WriteFile(filepath.Join(root, "modules", strings.TrimSuffix(filepath.Base(mod), ".ko")+".order"), []byte(list), 0o644)
}

// requireVLAN fails a test that boots UMLs with vlan= when makeRoot could
// not give the root the 8021q module.
func requireVLAN(t *testing.T) {
	t.Helper()
	if env.vlanErr != nil {
		t.Fatalf("UML 802.1Q: %v (install Debian's user-mode-linux, which ships the modules)", env.vlanErr)
	}
}

// scratch is a short-named directory removed at cleanup (UML's mconsole
// socket lives under it and socket paths are limited to 107 bytes).
func scratch(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp(env.dir, "t")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// output collects a process's lines and lets tests wait for patterns.
type output struct {
	mu    sync.Mutex
	lines []string
	cond  *sync.Cond
	done  bool
}

func newOutput(r io.Reader) *output {
	o := &output{}
	o.cond = sync.NewCond(&o.mu)
	go func() {
		s := bufio.NewScanner(r)
		s.Buffer(make([]byte, 64<<10), 1<<20)
		for s.Scan() {
			o.mu.Lock()
			o.lines = append(o.lines, s.Text())
			o.cond.Broadcast()
			o.mu.Unlock()
		}
		o.mu.Lock()
		o.done = true
		o.cond.Broadcast()
		o.mu.Unlock()
	}()
	return o
}

// wait blocks until a line matches re, the stream ends, or timeout passes.
func (o *output) wait(re *regexp.Regexp, timeout time.Duration) (string, bool) {
	timer := time.AfterFunc(timeout, func() { o.mu.Lock(); o.cond.Broadcast(); o.mu.Unlock() })
	defer timer.Stop()
	deadline := time.Now().Add(timeout)
	o.mu.Lock()
	defer o.mu.Unlock()
	for seen := 0; ; {
		for ; seen < len(o.lines); seen++ {
			if re.MatchString(o.lines[seen]) {
				return o.lines[seen], true
			}
		}
		if o.done || time.Now().After(deadline) {
			return "", false
		}
		o.cond.Wait()
	}
}

func (o *output) text() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return strings.Join(o.lines, "\n")
}

// startCollecting starts cmd with its stdout and stderr collected line by
// line, and returns a channel closed when it has exited. The output goes
// through a real pipe, not an io.Writer: helper processes (UML's) inherit it
// and may outlive the process that Wait waits for.
func startCollecting(cmd *exec.Cmd) (*output, chan struct{}, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, nil, err
	}
	cmd.Stdout, cmd.Stderr = w, w
	cmd.WaitDelay = time.Second
	err = cmd.Start()
	w.Close()
	if err != nil {
		r.Close()
		return nil, nil, err
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	return newOutput(r), exited, nil
}

// uml is one booted UML kernel.
type uml struct {
	name    string
	cmd     *exec.Cmd
	console io.WriteCloser
	out     *output
	exited  chan struct{} // closed once the kernel process has exited
}

// umlConfig describes a UML to boot.
type umlConfig struct {
	ns    *nstest.NS // run inside this namespace; nil for the test's own
	enter int        // or: join the mount and network namespaces of this process
	net   string     // interface argument, e.g. eth0=daemon,MAC,unix,CTL
	iface string     // interface name in the UML (default eth0)
	ip    string
	peers []string
	vars  map[string]string // more init variables (flood, mtu, big)
	init  string            // the guest's /init; default initScript's
}

var umlSeq struct {
	sync.Mutex
	n int
}

func bootUML(t *testing.T, c umlConfig) *uml {
	t.Helper()
	umlSeq.Lock()
	umlSeq.n++
	umid := fmt.Sprintf("e2e%d-%d", os.Getpid(), umlSeq.n)
	umlSeq.Unlock()
	dir := scratch(t)
	// 96M, not the 48M the recipe names: UML adds the randomised gap below
	// its binary to "physical" memory and spends part of mem= on that gap's
	// page structures, so 48M left as little as 21M free and a boot could run
	// out. The memory file is sparse; unused memory costs nothing.
	args := []string{"mem=96M", "umid=" + umid, "root=/dev/root", "rootfstype=hostfs", "hostfs=" + env.root, "rw",
		"init=" + cmp.Or(c.init, "/init"), "con=null", "con0=fd:0,fd:1", c.net, "myip=" + c.ip}
	if c.iface != "" {
		args = append(args, "iface="+c.iface)
	}
	if len(c.peers) > 0 {
		args = append(args, "peers="+strings.Join(c.peers, ","))
	}
	for k, v := range c.vars {
		args = append(args, k+"="+v)
	}
	name, args, extraEnv := umlCommand(args)
	var cmd *exec.Cmd
	switch {
	case c.ns != nil:
		cmd = c.ns.Cmd(name, args...)
	case c.enter != 0:
		cmd = exec.Command("nsenter", append([]string{"-t", fmt.Sprint(c.enter), "-m", "-n", "--", name}, args...)...)
	default:
		cmd = exec.Command(name, args...)
	}
	cmd.Env = append(append(os.Environ(), "TMPDIR="+dir, "HOME="+dir), extraEnv...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, exited, err := startCollecting(cmd)
	if err != nil {
		t.Fatalf("boot UML: %v", err)
	}
	u := &uml{name: c.ip, cmd: cmd, console: in, out: out, exited: exited}
	t.Cleanup(func() {
		in.Close()
		select {
		case <-u.exited:
		case <-time.After(10 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-u.exited
		}
		if t.Failed() || testing.Verbose() {
			t.Logf("UML %s console:\n%s", u.name, u.out.text())
		}
	})
	return u
}

// flooded waits for the UML's flood= report and returns how many pings it
// sent and how many were answered, and the line.
func (u *uml) flooded(t *testing.T) (sent, received int, line string) {
	t.Helper()
	line = u.waitLine(t, `^FLOODED `)
	if _, err := fmt.Sscanf(floodedRE.FindString(line), "%d packets transmitted, %d packets received", &sent, &received); err != nil {
		t.Fatalf("UML %s: %q: %v", u.name, line, err)
	}
	return sent, received, line
}

var floodedRE = regexp.MustCompile(`\d+ packets transmitted, \d+ packets received`)

// streamTo sends total bytes of zeros over TCP to addr from inside ns (the
// test's own namespace when nil) and closes the connection.
func streamTo(ns *nstest.NS, addr string, total int) error {
	send := func() error {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			return err
		}
		c.SetDeadline(time.Now().Add(90 * time.Second))
		chunk := make([]byte, 64<<10)
		for sent := 0; sent < total; sent += len(chunk) {
			if _, err := c.Write(chunk); err != nil {
				c.Close()
				return err
			}
		}
		return c.Close()
	}
	if ns == nil {
		return send()
	}
	return ns.Do(send)
}

// results waits until the UML has reported on every peer and returns
// peer -> "ok" or "fail".
func (u *uml) results(t *testing.T, peers []string) map[string]string {
	t.Helper()
	got := make(map[string]string)
	for _, p := range peers {
		line, ok := u.out.wait(regexp.MustCompile(`^RESULT `+regexp.QuoteMeta(p)+` `), 90*time.Second)
		if !ok {
			t.Fatalf("UML %s never reported on %s", u.name, p)
		}
		got[p] = strings.Fields(line)[2]
	}
	return got
}

// waitLine waits for a console line matching re.
// unreached reports whether the UML found addr unreachable, as its
// nopeers variable asks it to check (an UNREACHED line ending in yes).
func (u *uml) unreached(t *testing.T, addr string) bool {
	t.Helper()
	return strings.HasSuffix(u.waitLine(t, `^UNREACHED `+regexp.QuoteMeta(addr)+` `), " yes")
}

func (u *uml) waitLine(t *testing.T, re string) string {
	t.Helper()
	line, ok := u.out.wait(regexp.MustCompile(re), 90*time.Second)
	if !ok {
		t.Fatalf("UML %s: no line matching %q", u.name, re)
	}
	return line
}

// release lets the UML past its barrier; it prints its counters and stops.
func (u *uml) release(t *testing.T) (rxPackets int) {
	t.Helper()
	rxPackets, _ = u.releaseCounting(t)
	return rxPackets
}

// releaseCounting is release, returning the packets the UML received and
// sent in all.
func (u *uml) releaseCounting(t *testing.T) (rxPackets, txPackets int) {
	t.Helper()
	u.waitLine(t, "^UML-WAITING")
	fmt.Fprintln(u.console, "go")
	line := u.waitLine(t, "^RXPACKETS ")
	fmt.Sscan(strings.Fields(line)[1], &rxPackets)
	fmt.Sscan(strings.Fields(line)[2], &txPackets)
	select {
	case <-u.exited:
	case <-time.After(20 * time.Second):
		t.Fatalf("UML %s did not power off", u.name)
	}
	return rxPackets, txPackets
}

// switchProc is a running umlswitch binary.
type switchProc struct {
	cmd    *exec.Cmd
	log    *output
	exited chan struct{} // closed once it has exited
	files  []string      // socket files that must be gone after it stops
}

// startSwitch runs umlswitch with args (in ns if given) and waits until it
// serves. files are its socket paths, checked to be removed on exit.
func startSwitch(t *testing.T, ns *nstest.NS, files []string, args ...string) *switchProc {
	t.Helper()
	args = append([]string{"-log-level", "debug"}, args...)
	if ns != nil {
		return startSwitchCmd(t, ns.Cmd(env.umlswitch, args...), files)
	}
	return startSwitchCmd(t, exec.Command(env.umlswitch, args...), files)
}

// startSwitchCmd is startSwitch for a command line built by the caller,
// which must exec the switch in the process it starts.
func startSwitchCmd(t *testing.T, cmd *exec.Cmd, files []string) *switchProc {
	t.Helper()
	log, exited, err := startCollecting(cmd)
	if err != nil {
		t.Fatal(err)
	}
	s := &switchProc{cmd: cmd, log: log, exited: exited, files: files}
	if _, ok := s.log.wait(regexp.MustCompile(`msg="umlswitch running"`), 10*time.Second); !ok {
		cmd.Process.Kill()
		t.Fatalf("umlswitch did not start:\n%s", s.log.text())
	}
	t.Cleanup(func() { s.stop(t) })
	return s
}

// stop sends SIGTERM and checks a clean exit that removed the socket files.
func (s *switchProc) stop(t *testing.T) {
	t.Helper()
	select {
	case <-s.exited:
		return // already stopped (and checked)
	default:
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
		if !s.cmd.ProcessState.Success() {
			t.Errorf("umlswitch exited with %v:\n%s", s.cmd.ProcessState, s.log.text())
		}
	case <-time.After(10 * time.Second):
		s.cmd.Process.Kill()
		t.Errorf("umlswitch did not stop on SIGTERM:\n%s", s.log.text())
	}
	for _, f := range s.files {
		if _, err := os.Lstat(f); err == nil {
			t.Errorf("%s left behind after SIGTERM", f)
		}
	}
	if t.Failed() || testing.Verbose() {
		t.Logf("umlswitch log:\n%s", s.log.text())
	}
}

// mac gives UML i a fixed, locally administered address.
func mac(i int) string { return fmt.Sprintf("fe:fd:0a:00:00:%02x", i) }

// expectAllOK checks that every UML reached every one of its peers.
func expectAllOK(t *testing.T, umls []*uml, peers [][]string) {
	t.Helper()
	for i, u := range umls {
		for p, r := range u.results(t, peers[i]) {
			if r != "ok" {
				t.Errorf("UML %s could not reach %s", u.name, p)
			}
		}
	}
}

// sinkResult is what a tcpSink read: bytes, and the time from the first
// byte to the last.
type sinkResult struct {
	n       int64
	elapsed time.Duration
	err     error
}

// tcpSink listens on addr in ns for one connection and reads total bytes
// from it (busybox nc may not close at its stdin's end), giving up after
// limit; the channel gets what it read once done.
func tcpSink(t *testing.T, ns *nstest.NS, addr string, total int64, limit time.Duration) <-chan sinkResult {
	t.Helper()
	var ln net.Listener
	if err := ns.Do(func() (err error) { ln, err = net.Listen("tcp", addr); return }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	got := make(chan sinkResult, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- sinkResult{err: err}
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(limit))
		first := make([]byte, 1)
		if _, err := io.ReadFull(c, first); err != nil {
			got <- sinkResult{err: err}
			return
		}
		start := time.Now()
		n, err := io.CopyN(io.Discard, c, total-1)
		got <- sinkResult{n + 1, time.Since(start), err}
	}()
	return got
}

// runFor runs cmd for at most d and returns its output and how it ended;
// killed says it was still running at d (and was killed then).
func runFor(cmd *exec.Cmd, d time.Duration) (out string, killed bool, err error) {
	var b strings.Builder
	cmd.Stdout, cmd.Stderr = &b, &b
	if err := cmd.Start(); err != nil {
		return "", false, err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return b.String(), false, err
	case <-time.After(d):
		cmd.Process.Kill()
		<-done
		return b.String(), true, nil
	}
}

// runBounded is runFor where running past limit is an error.
func runBounded(cmd *exec.Cmd, limit time.Duration) (string, error) {
	out, killed, err := runFor(cmd, limit)
	if killed {
		err = fmt.Errorf("still running after %v", limit)
	}
	return out, err
}
