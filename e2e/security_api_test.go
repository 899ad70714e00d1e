package e2e

import (
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
)

// Finding 1 of the security review: the control API obeyed anyone who could
// connect. Through a root switch's 0777 control socket, nobody may read the
// switch and attach a guest, and nothing else: every change and the live
// capture are refused with a message that names the rule and its uid, and
// nothing appears on the host (no port, no file, no socket). Root still can
// do all of it through the same socket.
func TestSecurityAPIRefusesNobody(t *testing.T) {
	requireRoot(t)
	dir := publicScratch(t, false)   // nobody may look in, not write
	tmp := filepath.Join(dir, "tmp") // and a /tmp of its own
	os.Mkdir(tmp, 0o755)
	os.Chmod(tmp, 0o777|os.ModeSticky)
	ctl := filepath.Join(dir, "uml.ctl")
	sw := startSwitch(t, nil, []string{ctl}, "-unix", ctl, "-mode", "0777")

	secret := filepath.Join(dir, "secret")
	if err := os.WriteFile(secret, []byte("root only\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"port", "add", "transport=raw,ifname=lo"},
		{"port", "add", "transport=tap,ifname=evil0,create=1"},
		{"port", "add", "transport=stream,path=" + filepath.Join(dir, "evil.sock")},
		{"port", "add", "transport=bess,path=" + filepath.Join(tmp, "evil.bess")},
		{"mirror", "add", "file=" + secret},
		{"mirror", "add", "file=" + filepath.Join(tmp, "evil.pcapng")},
		{"switch", "add", "evil"},
		{"switch", "del", "default"},
		{"port", "del", "daemon0"},
		{"port", "set", "daemon0", "loss=100%"},
		{"fdb", "flush"},
		{"fdb", "add", "default", "02:00:00:00:00:01", "daemon0"},
		{"reload"},
	} {
		out, code := nobodyCtl(t, ctl, args...)
		if code == 0 || !strings.Contains(out, "forbidden") || !strings.Contains(out, "uid 65534") {
			t.Errorf("ctl %v as nobody: status %d, %q: want a refusal naming uid 65534", args, code, out)
		}
	}
	// Reading is open to every peer.
	if out, code := nobodyCtl(t, ctl, "ports"); code != 0 || !strings.Contains(out, "daemon0") {
		t.Errorf("ctl ports as nobody: %d %s", code, out)
	}
	if out, code := nobodyCtl(t, ctl, "info"); code != 0 || !strings.Contains(out, "may change") {
		t.Errorf("ctl info as nobody: %d %s", code, out)
	}
	// Live capture of the lab's traffic is not.
	cap := asNobody(exec.Command(env.umlswitch, "capture", "-s", ctl))
	capOut, err := runWithin(cap, 10*time.Second)
	if err == nil || !strings.Contains(capOut, "uid 65534") {
		t.Errorf("capture as nobody: %v %q", err, capOut)
	}
	for _, f := range []string{filepath.Join(dir, "evil.sock"), filepath.Join(tmp, "evil.bess"), filepath.Join(tmp, "evil.pcapng")} {
		if _, err := os.Lstat(f); err == nil {
			t.Errorf("%s was created for nobody", f)
		}
	}
	if b, _ := os.ReadFile(secret); string(b) != "root only\n" {
		t.Errorf("root's file now holds %q", b)
	}
	if out, _ := exec.Command("ip", "link", "show", "evil0").CombinedOutput(); !strings.Contains(string(out), "does not exist") {
		t.Errorf("a tap was made for nobody: %s", out)
	}
	// The switch says once that it refused nobody, not once a request.
	if n := strings.Count(sw.log.text(), `msg="control API: refused" uid=65534`); n != 1 {
		t.Errorf("%d log lines for nobody's refusals, want 1:\n%s", n, sw.log.text())
	}
	// Root, through the same socket, still does everything.
	root := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(env.umlswitch, append([]string{"ctl", "-s", ctl}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("ctl %v as root: %v\n%s", args, err, out)
		}
		return string(out)
	}
	root("port", "add", "transport=bess,name=b0,path="+filepath.Join(dir, "root.bess"))
	root("mirror", "add", "name=m0,file="+filepath.Join(dir, "root.pcapng"))
	root("port", "set", "daemon0", "loss=1%")
	root("port", "del", "b0")
	root("mirror", "del", "m0")
	if out := root("info"); !strings.Contains(out, "14 API requests") {
		t.Errorf("ctl info does not count nobody's 14 refusals (13 ctl commands and a capture):\n%s", out)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join(dir, "root.pcapng"), &st); err != nil || st.Mode&0o077 != 0 {
		t.Errorf("root's capture: mode %o, %v: want nothing for group and others", st.Mode&0o777, err)
	}
}

// A capture socket whose mode lets every user connect (given on purpose,
// mode=0777) still gives the lab's traffic only to whom the control API
// would: nobody is disconnected without a byte, root reads pcapng.
// (TestSecurityFSCaptureAndMetricsSocketsPrivate checks that -mode no
// longer opens capture sockets at all.)
func TestSecurityCaptureSocketCredentials(t *testing.T) {
	requireRoot(t)
	dir := publicScratch(t, false)
	ctl := filepath.Join(dir, "uml.ctl")
	capSock := filepath.Join(dir, "lab.capture")
	sw := startSwitch(t, nil, []string{ctl, capSock}, "-unix", ctl, "-mirror", "stream="+capSock+",mode=0777")
	out, err := runWithin(asNobody(exec.Command(env.umlswitch, "capture", "-socket", capSock)), 5*time.Second)
	if err == nil || !strings.Contains(out, "closed without a capture") {
		t.Errorf("nobody's capture of a root capture socket: %v %q", err, out)
	}
	if _, ok := sw.log.wait(regexp.MustCompile(`msg="mirror reader refused".*uid=65534`), 5*time.Second); !ok {
		t.Errorf("no refusal of nobody in the log:\n%s", sw.log.text())
	}
	root := exec.Command(env.umlswitch, "capture", "-socket", capSock, "-w", filepath.Join(dir, "root.pcapng"))
	if _, err := runWithin(root, 2*time.Second); err != nil {
		t.Errorf("root's capture ended: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "root.pcapng")); err != nil || len(b) < 4 || string(b[:4]) != "\x0a\x0d\x0d\x0a" {
		t.Errorf("root's capture holds no pcapng: %v %q", err, b)
	}
}

// runWithin runs cmd, killing it after d, and returns its output and how
// it ended: still running at d is no error (it was let in).
func runWithin(cmd *exec.Cmd, d time.Duration) (string, error) {
	out, _, err := runFor(cmd, d)
	return out, err
}

func init() { roles["api-hold"] = apiHoldRole }

// apiHoldRole opens N event streams on the control socket CTL and holds
// them without reading: it prints "OPEN o BUSY b" (b answered 503) and
// waits for the end of its input. Args: CTL N.
func apiHoldRole(args []string) int {
	n, _ := strconv.Atoi(args[1])
	open, busy := 0, 0
	var held []net.Conn
	for i := 0; i < n; i++ {
		c, err := net.Dial("unix", args[0])
		if err != nil {
			busy++
			continue
		}
		fmt.Fprintf(c, "GET /v1/events HTTP/1.1\r\nHost: x\r\n\r\n")
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		status := make([]byte, 12)
		if _, err := io.ReadFull(c, status); err == nil && string(status) == "HTTP/1.1 200" {
			open++
			held = append(held, c)
		} else {
			busy++
			c.Close()
		}
	}
	fmt.Printf("OPEN %d BUSY %d\n", open, busy)
	io.Copy(io.Discard, os.Stdin)
	return 0
}

// Finding 6, the API's side: one user holding event streams (3,000 of them
// took the switch's memory from 165 MB to 1.29 GB) stops at its bound, and
// root's requests are still answered meanwhile.
func TestSecurityAPILimitKeepsRootIn(t *testing.T) {
	requireRoot(t)
	dir := publicScratch(t, false)
	ctl := filepath.Join(dir, "uml.ctl")
	sw := startSwitch(t, nil, []string{ctl}, "-unix", ctl, "-mode", "0777", "-max-api-per-uid", "8")
	hold := startRole(t, "api-hold", ctl, "40")
	if l := hold.line(t); l != "OPEN 8 BUSY 32" {
		t.Fatalf("nobody's 40 event streams: %s, want OPEN 8 BUSY 32", l)
	}
	out, err := exec.Command(env.umlswitch, "ctl", "-s", ctl, "info").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "32 API connections") {
		t.Fatalf("root's ctl info while nobody is at its bound: %v\n%s", err, out)
	}
	if n := strings.Count(sw.log.text(), `msg="control API: connection refused"`); n < 1 || n > 3 {
		t.Errorf("%d log lines for 32 refusals in about a second, want one a second:\n%s", n, sw.log.text())
	}
}
