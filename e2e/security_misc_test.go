package e2e

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Findings 8 and 9 of the security review: a user kept a root switch from
// starting by holding a lock on its pid file's directory, and injected
// frames into a root guest's L2TPv3 session from a UDP socket of their own.

func init() {
	roles["misc-udp-send"] = miscUDPSendRole
}

// miscUDPSendRole sends one datagram, given in hex, to HOST:PORT from a
// socket of its own (an ephemeral port). Args: HOST:PORT HEX.
func miscUDPSendRole(args []string) int {
	b, err := hex.DecodeString(args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	c, err := net.Dial("udp", args[0])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer c.Close()
	if _, err := c.Write(b); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// startSwitchWithin starts umlswitch with args and fails the test unless it
// serves within d.
func startSwitchWithin(t *testing.T, d time.Duration, files []string, args ...string) *switchProc {
	t.Helper()
	cmd := exec.Command(env.umlswitch, append([]string{"-log-level", "debug"}, args...)...)
	log, exited, err := startCollecting(cmd)
	if err != nil {
		t.Fatal(err)
	}
	s := &switchProc{cmd: cmd, log: log, exited: exited, files: files}
	if _, ok := s.log.wait(regexp.MustCompile(`msg="umlswitch running"`), d); !ok {
		cmd.Process.Kill()
		<-exited
		t.Fatalf("umlswitch did not start within %v:\n%s", d, s.log.text())
	}
	t.Cleanup(func() { s.stop(t) })
	return s
}

// heldFlock reports whether some process holds a flock on path.
func heldFlock(path string) bool {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	if err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB); err != nil {
		return errors.Is(err, unix.EWOULDBLOCK)
	}
	unix.Flock(fd, unix.LOCK_UN)
	return false
}

// Finding 8: nobody holds a lock on the pid file's directory (anyone who
// can read /run or /tmp can): a root switch still starts at once. A lock
// file nobody planted next to the pid file, or a link there, is refused
// at once, with an error that says why, and its target is left alone.
func TestSecurityMiscPidfileLock(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	d := publicScratch(t, true) // like /tmp
	holder := asNobody(exec.Command("flock", "-s", d, "sleep", "30"))
	if err := holder.Start(); err != nil {
		t.Fatalf("flock as nobody: %v", err)
	}
	t.Cleanup(func() { holder.Process.Kill(); holder.Wait() })
	for deadline := time.Now().Add(5 * time.Second); !heldFlock(d); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("nobody's flock on the directory never took hold")
		}
	}
	ctl, pidf := filepath.Join(d, "sw.ctl"), filepath.Join(d, "sw.pid")
	start := time.Now()
	sw := startSwitchWithin(t, 5*time.Second, []string{ctl, pidf}, "-pidfile", pidf, "-unix", ctl)
	t.Logf("started in %v with nobody's lock on %s", time.Since(start).Round(time.Millisecond), d)
	if b, err := os.ReadFile(pidf); err != nil || strings.TrimSpace(string(b)) != fmt.Sprint(sw.cmd.Process.Pid) {
		t.Errorf("pid file holds %q (%v), want the switch's pid %d", b, err, sw.cmd.Process.Pid)
	}
	if _, err := os.Lstat(pidf + ".lock"); err == nil {
		t.Errorf("%s.lock left behind", pidf)
	}

	// What nobody can plant in a sticky world-writable directory: their own
	// lock file, and a link to a root file.
	precious := filepath.Join(scratch(t), "precious")
	if err := os.WriteFile(precious, []byte("root's\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, plant, want string
	}{
		{"own file", "touch " + filepath.Join(d, "own.pid.lock"), "belongs to uid 65534"},
		{"symlink", "ln -s " + precious + " " + filepath.Join(d, "link.pid.lock"), "symbolic link"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if out, err := asNobody(exec.Command("sh", "-c", c.plant)).CombinedOutput(); err != nil {
				t.Fatalf("%s as nobody: %v\n%s", c.plant, err, out)
			}
			words := strings.Fields(c.plant)
			pidf := strings.TrimSuffix(words[len(words)-1], ".lock")
			start := time.Now()
			out, err := exec.Command(env.umlswitch, "-pidfile", pidf, "-unix", pidf+".ctl").CombinedOutput()
			if err == nil || !strings.Contains(string(out), c.want) {
				t.Fatalf("switch with a lock file nobody planted: %v, want an error saying %q:\n%s", err, c.want, out)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("refusing took %v", d)
			}
			if b, _ := os.ReadFile(precious); string(b) != "root's\n" {
				t.Errorf("the link's target now holds %q", b)
			}
			if fi, _ := os.Stat(precious); fi.Mode().Perm() != 0o600 || fi.Sys().(*syscall.Stat_t).Uid != 0 {
				t.Errorf("the link's target is now %v, uid %d", fi.Mode(), fi.Sys().(*syscall.Stat_t).Uid)
			}
			if _, err := os.Lstat(pidf); err == nil {
				t.Errorf("pid file %s written anyway", pidf)
			}
		})
	}
}

// freeUDPPort is a loopback UDP port nothing is bound to now.
func freeUDPPort(t *testing.T) int {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// l2tpv3Packet is an L2TPv3-over-UDP data packet of session (no cookie,
// no counter) carrying a broadcast frame tagged with tag.
func l2tpv3Packet(session uint32, tag byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, 0x00030000) // data message, version 3
	b = binary.BigEndian.AppendUint32(b, session)
	f := make([]byte, 60)
	copy(f, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe, 0xfd, 0xba, 0xd0, 0, tag, 0x88, 0xb5})
	f[14] = tag
	return append(b, f...)
}

// Finding 9: a root switch's L2TPv3 session takes packets from its peer
// alone. nobody sends a well-formed packet with the session's id from a
// socket of their own on the same host: it reaches no other port and is
// counted; the peer's own packet still goes through.
func TestSecurityMiscL2TPv3Peer(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	d := scratch(t)
	sw, peerA, peerB := freeUDPPort(t), freeUDPPort(t), freeUDPPort(t)
	// Two sessions on the switch's one socket: A (11/12) and B (21/22),
	// each with a peer on loopback that the test plays.
	a, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: peerA})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: peerB})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctl := filepath.Join(d, "sw.ctl")
	port := func(dst, rx, tx int) string {
		return fmt.Sprintf("transport=l2tpv3,udp=1,src=127.0.0.1,dst=127.0.0.1,srcport=%d,dstport=%d,rx_session=%d,tx_session=%d", sw, dst, rx, tx)
	}
	s := startSwitchWithin(t, 10*time.Second, []string{ctl}, "-unix", ctl, "-port", port(peerA, 11, 12), "-port", port(peerB, 21, 22))
	swAddr := fmt.Sprintf("127.0.0.1:%d", sw)

	// received is the tag of the frame B gets within wait, or -1.
	buf := make([]byte, 2048)
	received := func(wait time.Duration) int {
		b.SetReadDeadline(time.Now().Add(wait))
		n, err := b.Read(buf)
		if err != nil || n < 8+15 {
			return -1
		}
		return int(buf[8+14])
	}

	out, err := roleCmd(t, "misc-udp-send", swAddr, hex.EncodeToString(l2tpv3Packet(11, 0xbd))).CombinedOutput()
	if err != nil {
		t.Fatalf("nobody's send: %v\n%s", err, out)
	}
	if tag := received(time.Second); tag != -1 {
		t.Fatalf("nobody's packet for session 11 reached session 21's peer (frame %#x)", tag)
	}
	// The peer itself, from its own address and port.
	raddr, _ := net.ResolveUDPAddr("udp", swAddr)
	if _, err := a.WriteToUDP(l2tpv3Packet(11, 0x01), raddr); err != nil {
		t.Fatal(err)
	}
	if tag := received(3 * time.Second); tag != 0x01 {
		t.Fatalf("the peer's own packet did not go through (got %d)", tag)
	}
	s.stop(t)
	if line, ok := s.log.wait(regexp.MustCompile(`msg=closed transport=l2tpv3/udp .*unknown=\d+`), 5*time.Second); !ok ||
		!strings.Contains(line, " unknown=1 ") {
		t.Errorf("nobody's packet was not counted once on the endpoint: %q", line)
	}
}
