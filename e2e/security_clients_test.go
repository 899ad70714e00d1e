package e2e

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/umlswitch/umlswitch/frame"
	"github.com/umlswitch/umlswitch/internal/pollfd"
	"github.com/umlswitch/umlswitch/internal/unixsock"
	"github.com/umlswitch/umlswitch/transports/daemon"
)

// Issue 17, findings 4, 5, 6 and 10: a daemon client, whoever it is, gets a
// port and nothing more. Its data address is connected with its own
// rights, never to the switch's own sockets; nobody can get a frame into
// another client's port while it is set up; and one user's clients are
// bounded, with the switch still serving root's.

func init() {
	roles["clients-name"] = clientsNameRole
	roles["clients-many"] = clientsManyRole
	roles["clients-inject"] = clientsInjectRole
}

// attackerMAC is the source address of every frame nobody sends here.
var attackerMAC = frame.MAC{0xfe, 0xfd, 0xba, 0xd0, 0, 1}

// roleAddr reads a data address argument: a path, or @NAME for an
// abstract name padded as UML pads it.
func roleAddr(s string) (unixsock.Addr, error) {
	if strings.HasPrefix(s, "@") {
		return unixsock.Abstract(s[1:]), nil
	}
	return unixsock.FromPath(s)
}

// clientsNameRole asks the switch at CTL for a port whose data socket is
// ADDR (someone else's), prints REPLY or REFUSED, and keeps the control
// connection until its standard input ends. Args: CTL ADDR.
func clientsNameRole(args []string) int {
	addr, err := roleAddr(args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	c, err := net.Dial("unix", args[0])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer c.Close()
	if _, err := c.Write(v3Request(addr)); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	if n, err := c.Read(make([]byte, 200)); n == unixsock.AddrLen {
		fmt.Println("REPLY")
	} else {
		fmt.Println("REFUSED", err)
	}
	io.Copy(io.Discard, os.Stdin)
	return 0
}

// clientsManyRole attaches N clients to the switch at CTL, each with a
// data socket of its own, prints ATTACHED A REFUSED R, and holds them until
// its standard input ends. Args: CTL N.
func clientsManyRole(args []string) int {
	n, _ := strconv.Atoi(args[1])
	attached, refused := 0, 0
	for i := 0; i < n; i++ {
		fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		a := unixsock.UniqueAbstract("e2e-many", os.Getpid())
		if err := unixsock.Bind(fd, &a); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		c, err := net.Dial("unix", args[0])
		if err != nil {
			refused++ // the listen backlog of a busy switch: refused too
			continue
		}
		c.Write(v3Request(a))
		c.SetReadDeadline(time.Now().Add(3 * time.Second))
		if m, _ := c.Read(make([]byte, 200)); m == unixsock.AddrLen {
			attached++
		} else {
			refused++
			c.Close()
		}
	}
	fmt.Printf("ATTACHED %d REFUSED %d\n", attached, refused)
	io.Copy(io.Discard, os.Stdin)
	return 0
}

// clientsInjectRole sends frames from attackerMAC, for DURATION, to the
// data sockets of the switch with process id PID: to every name of its
// that /proc/net/unix shows, and to the next names of a sequence
// ("umlswitch-PID-SEQ", as they were). It prints READY first, and SENT S
// TRIES N at the end: S datagrams were accepted. Args: PID DURATION.
func clientsInjectRole(args []string) int {
	d, err := time.ParseDuration(args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	prefix := "umlswitch-" + args[0] + "-"
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	f := testFrame(make([]byte, 64), frame.Broadcast, attackerMAC, 1)
	var sent, tries int
	send := func(a *unixsock.Addr) {
		tries++
		if _, err := unixsock.Sendto(fd, f, 0, a); err == nil {
			sent++
		}
	}
	fmt.Println("READY")
	var seq uint64
	for deadline := time.Now().Add(d); time.Now().Before(deadline); {
		b, _ := os.ReadFile("/proc/net/unix")
		for _, line := range strings.Split(string(b), "\n") {
			i := strings.Index(line, "@"+prefix)
			if i < 0 {
				continue
			}
			name := strings.TrimRight(line[i+1:], "@") // /proc shows NULs as '@'
			a := unixsock.Abstract(name)
			send(&a)
			if n, err := strconv.ParseUint(name[len(prefix):], 10, 64); err == nil && n > seq {
				seq = n
			}
		}
		for round := 0; round < 200; round++ {
			for k := uint64(1); k <= 4; k++ {
				a := unixsock.Abstract(prefix + strconv.FormatUint(seq+k, 10))
				send(&a)
			}
		}
	}
	fmt.Printf("SENT %d TRIES %d\n", sent, tries)
	return 0
}

// roleProc is a role running as nobody: its output line by line, its
// standard input to end it.
type roleProc struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Scanner
}

func startRole(t *testing.T, role string, args ...string) *roleProc {
	t.Helper()
	cmd := roleCmd(t, role, args...)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &roleProc{cmd: cmd, in: in, out: bufio.NewScanner(out)}
	t.Cleanup(p.stop)
	return p
}

// line returns the role's next line of output.
func (p *roleProc) line(t *testing.T) string {
	t.Helper()
	got := make(chan string, 1)
	go func() {
		if p.out.Scan() {
			got <- p.out.Text()
		}
		close(got)
	}()
	select {
	case l, ok := <-got:
		if !ok {
			t.Fatalf("role %v ended without a line", p.cmd.Args)
		}
		return l
	case <-time.After(20 * time.Second):
		t.Fatalf("role %v said nothing", p.cmd.Args)
	}
	return ""
}

// stop ends the role (closing its standard input) and waits for it.
func (p *roleProc) stop() {
	if p.in != nil {
		p.in.Close()
		p.in = nil
		p.cmd.Wait()
	}
}

// rootDgram binds a datagram socket at path that only root may write
// (mode 0600), as another program's would be.
func rootDgram(t *testing.T, path string) int {
	t.Helper()
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	return fd
}

// Finding 4. Through a 0777 control socket on VLAN 20, nobody names as its
// data socket: the root-only socket of a dgram port on VLAN 10 (VLAN
// hopping), a root-only socket of another program, and the switch's own
// -compat-v0 data socket (0777 like the control socket, so nobody may
// write it and only its being the switch's stops it). Each is refused, and a
// broadcast on VLAN 20 reaches none of them nor the root guest on VLAN 10.
func TestSecurityClientsDataAddress(t *testing.T) {
	requireRoot(t)
	dir := publicScratch(t, false)
	ctl20, ctl10 := filepath.Join(dir, "v20.ctl"), filepath.Join(dir, "v10.ctl")
	main, data := filepath.Join(dir, "main.ctl"), filepath.Join(dir, "main.data")
	dg10, qemu10 := filepath.Join(dir, "dg10.sock"), filepath.Join(dir, "qemu10.sock")
	other := filepath.Join(dir, "other.sock")
	otherFd := rootDgram(t, other)
	qemuFd := rootDgram(t, qemu10) // the dgram port's QEMU: it gets what the port forwards
	sw := startSwitch(t, nil, []string{ctl20, ctl10, main, data, dg10},
		"-unix", main,
		"-port", "transport=daemon,path="+ctl20+",mode=0777,vlan=20,compat_v0=1,data="+data,
		"-port", "transport=daemon,path="+ctl10+",vlan=10",
		"-port", "transport=dgram,path="+dg10+",peer="+qemu10+",vlan=10")
	if err := os.Chmod(dg10, 0o600); err != nil { // root-only, whatever the switch made it
		t.Fatal(err)
	}
	guest10 := dialLAN(t, ctl10, "root guest on VLAN 10", 10, false)
	peer20 := dialLAN(t, ctl20, "root guest on VLAN 20", 20, false)

	// The v0 data socket first: later refusals in the same second are
	// counted in the log, not written.
	for _, target := range []string{data, dg10, other} {
		r := startRole(t, "clients-name", ctl20, target)
		if l := r.line(t); !strings.HasPrefix(l, "REFUSED") {
			t.Errorf("nobody got %s as its data socket: %s", target, l)
		}
	}
	for i := uint64(1); i <= 20; i++ {
		peer20.Send(testFrame(make([]byte, 64), frame.Broadcast, peer20.mac, i))
	}
	buf := make([]byte, 2048)
	for _, s := range []struct {
		what string
		fd   int
	}{{"another program's root-only socket", otherFd}, {"the VLAN 10 dgram port's peer", qemuFd}, {"the root guest on VLAN 10", guest10.Fd}} {
		if n, err := pollfd.ReadTimeout(s.fd, buf, 300*time.Millisecond); err == nil {
			t.Errorf("%s received a frame of %d bytes sent on VLAN 20", s.what, n)
		}
	}
	if st := sw.log.text(); !strings.Contains(st, data+" is one of the switch's own sockets") {
		t.Errorf("the v0 data socket was not refused as the switch's own:\n%s", st)
	}
}

// Finding 5. While root's clients attach one after the other, nobody sends
// frames to the names the switch gives their data sockets (every one
// /proc/net/unix shows, and the next of a sequence): none is taken, no
// client receives one, and the switch never learns nobody's address.
func TestSecurityClientsInjectionDuringSetUp(t *testing.T) {
	requireRoot(t)
	dir := scratch(t)
	ctl := filepath.Join(dir, "sw.ctl")
	sw := startSwitch(t, nil, []string{ctl}, "-unix", ctl, "-log-level", "info")
	rx := dialLAN(t, ctl, "RX", 1, false)
	rx.announce(t)
	stop := make(chan struct{})
	got := rx.drain(attackerMAC, stop)

	attacker := startRole(t, "clients-inject", strconv.Itoa(sw.cmd.Process.Pid), "3s")
	if l := attacker.line(t); l != "READY" {
		t.Fatalf("attacker: %s", l)
	}
	// Data sockets deep in directories: the switch's connect walks the
	// path, which left a socket bound first open to strangers for longer.
	deep := dir
	for len(deep) < unixsock.PathLen-20 {
		deep = filepath.Join(deep, "d")
	}
	if err := os.MkdirAll(deep, 0o755); err != nil {
		t.Fatal(err)
	}
	var last *daemon.Client
	attaches := 0
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); attaches++ {
		c, err := daemon.Dial(daemon.ClientConfig{Ctl: ctl, Description: "victim", LocalPath: filepath.Join(deep, strconv.Itoa(attaches%2))})
		if err != nil {
			t.Fatal(err)
		}
		if last != nil {
			last.Close() // each stays until the next is attached: what was queued on it is read
		}
		last = c
	}
	result := attacker.line(t)
	time.Sleep(300 * time.Millisecond) // frames the switch took are delivered by now
	close(stop)
	<-got.done
	last.Close()
	t.Logf("%d clients attached; attacker: %s", attaches, result)
	if n := got.count.Load(); n > 0 {
		t.Errorf("%d frames from nobody reached a client", n)
	}
	if !strings.HasPrefix(result, "SENT 0 ") {
		t.Errorf("data sockets took datagrams from nobody: %s", result)
	}
	var fdb []ctlMAC
	ctlJSON(t, ctl, &fdb, "fdb")
	for _, e := range fdb {
		if e.MAC == attackerMAC.String() {
			t.Errorf("the switch learned nobody's address on %s", e.Port)
		}
	}
}

// Finding 6. With -max-clients-per-uid 20, nobody opens 40 clients: 20
// attach and the rest are refused at once, the log takes a few refusal
// lines and not one per refusal, and root's clients still attach and
// exchange frames meanwhile.
func TestSecurityClientsBound(t *testing.T) {
	requireRoot(t)
	dir := publicScratch(t, false)
	ctl := filepath.Join(dir, "sw.ctl")
	sw := startSwitch(t, nil, []string{ctl}, "-unix", ctl, "-mode", "0777", "-max-clients-per-uid", "20", "-log-level", "info")
	many := startRole(t, "clients-many", ctl, "40")
	if l := many.line(t); l != "ATTACHED 20 REFUSED 20" {
		t.Fatalf("nobody's 40 clients: %s, want ATTACHED 20 REFUSED 20", l)
	}
	pairWorks(t, ctl, 100)
	log := sw.log.text()
	lines := regexp.MustCompile(`msg="client refused".*`).FindAllString(log, -1)
	if len(lines) == 0 || len(lines) > 3 {
		t.Fatalf("%d refusal lines for 20 refusals, want 1 to 3:\n%s", len(lines), log)
	}
	if !strings.Contains(lines[0], "uid=65534") || !strings.Contains(lines[0], "20 clients for uid 65534") {
		t.Errorf("the refusal does not name the uid and the bound: %s", lines[0])
	}
	many.stop()
	// Their slots come back once the switch has seen them go.
	for deadline := time.Now().Add(5 * time.Second); ; {
		again := startRole(t, "clients-many", ctl, "20")
		l := again.line(t)
		again.stop()
		if l == "ATTACHED 20 REFUSED 0" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("nobody's slots were not given back: %s", l)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Regression: nobody's vde_plug still attaches to a root switch's 0777 VDE
// directory (its data socket is a file, connected as nobody), and frames
// cross both ways between it and a root client.
func TestSecurityClientsNobodyVDEPlug(t *testing.T) {
	requireRoot(t)
	needTool(t, "vde_plug", "vdeplug")
	dir := filepath.Join(publicScratch(t, false), "vde")
	sw := startSwitch(t, nil, []string{filepath.Join(dir, "ctl")}, "-unix", dir+"/", "-mode", "0777")
	cmd := asNobody(exec.Command("vde_plug", "vde://"+dir))
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { in.Close(); cmd.Process.Kill(); cmd.Wait() })
	if _, ok := sw.log.wait(regexp.MustCompile(`msg="port attached" .*peer="daemon#\d+ vdeplug: user=nobody`), 10*time.Second); !ok {
		t.Fatalf("nobody's vde_plug did not attach:\n%s", sw.log.text())
	}
	root := dialLAN(t, filepath.Join(dir, "ctl"), "root", 1, false)
	// vde_plug's standard streams carry frames behind a 2-byte big-endian length.
	plugMAC := frame.MAC{0xfe, 0xfd, 0x0b, 0, 0, 2}
	f := testFrame(make([]byte, 64), frame.Broadcast, plugMAC, 7)
	if _, err := in.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(f))), f...)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2048)
	n, err := root.Recv(buf, 5*time.Second)
	if err != nil || n != 64 || frame.SrcMAC(buf[:n]) != plugMAC {
		t.Fatalf("root's client got %d bytes, %v: want nobody's frame", n, err)
	}
	if err := root.Send(testFrame(make([]byte, 64), plugMAC, root.mac, 8)); err != nil {
		t.Fatal(err)
	}
	got := make(chan []byte, 1)
	go func() {
		var hdr [2]byte
		if _, err := io.ReadFull(out, hdr[:]); err != nil {
			close(got)
			return
		}
		b := make([]byte, binary.BigEndian.Uint16(hdr[:]))
		io.ReadFull(out, b)
		got <- b
	}()
	select {
	case b := <-got:
		if len(b) < 22 || frame.SrcMAC(b) != root.mac {
			t.Fatalf("nobody's vde_plug got %x", b)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("nobody's vde_plug got nothing")
	}
}

// Finding 10: any local user can take a VDE port number first
// (vde:///DIR[3]). That stays a denial of service only, bounded by the
// user's client limit: root asking for the number is refused with a
// message that names the user holding it, so an administrator knows whom
// to ask, and every other number still attaches.
func TestSecurityClientsPortNumberSquatted(t *testing.T) {
	requireRoot(t)
	needTool(t, "vde_plug", "vdeplug")
	dir := filepath.Join(publicScratch(t, false), "vde")
	ctl := filepath.Join(dir, "ctl")
	sw := startSwitch(t, nil, []string{ctl}, "-unix", dir+"/", "-mode", "0777", "-max-clients-per-uid", "2")
	plug := func(nobodys bool, n int) {
		c := exec.Command("sh", "-c", fmt.Sprintf("sleep 30 | vde_plug 'vde://%s[%d]' >/dev/null", dir, n))
		c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if nobodys {
			asNobody(c)
		}
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { syscall.Kill(-c.Process.Pid, syscall.SIGKILL); c.Wait() })
	}
	for _, n := range []int{3, 4, 5} { // nobody squats three numbers; its bound is two
		plug(true, n)
	}
	if _, ok := sw.log.wait(regexp.MustCompile(`msg="client refused" .*uid=65534 .*2 clients for uid 65534`), 10*time.Second); !ok {
		t.Fatalf("nobody's third client was not refused by its bound:\n%s", sw.log.text())
	}
	// Which two of the three got in is a race; root asks for one of them.
	held := regexp.MustCompile(`msg="port attached" .*name=daemon0\.([345]) `)
	deadline := time.Now().Add(10 * time.Second)
	for len(held.FindAllString(sw.log.text(), -1)) < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("nobody's vde_plugs did not attach:\n%s", sw.log.text())
		}
		time.Sleep(50 * time.Millisecond)
	}
	n := held.FindStringSubmatch(sw.log.text())[1]
	plug(false, int(n[0]-'0'))
	if _, ok := sw.log.wait(regexp.MustCompile(`msg="client rejected" .*port `+n+` is held by uid 65534`), 10*time.Second); !ok {
		t.Fatalf("root's request for nobody's port %s was not refused naming nobody:\n%s", n, sw.log.text())
	}
	plug(false, 6)
	if _, ok := sw.log.wait(regexp.MustCompile(`msg="port attached" .*name=daemon0.6`), 10*time.Second); !ok {
		t.Fatalf("root's port 6 did not attach:\n%s", sw.log.text())
	}
}
