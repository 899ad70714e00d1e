package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
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

// Issue 17, findings 2, 3 and 7: nothing the root switch creates, chmods,
// chowns, truncates or unlinks may be reached through a link another user
// planted, and capture and metrics sockets are root's only by default.

func init() {
	roles["fs-swap"] = fsSwapRole
	roles["fs-symlink"] = fsSymlinkRole
	roles["fs-dial"] = fsDialRole
}

// fsSwapRole is the symlink swap: for DURATION it renames each socket
// NAME in DIR away as soon as it appears and puts a link to TARGET in its
// place, then clears the names for the switch's next try. Args: DIR
// TARGET DURATION NAME... It prints READY, then SWAPS N.
func fsSwapRole(args []string) int {
	dir, target := args[0], args[1]
	d, err := time.ParseDuration(args[2])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	names := args[3:]
	fmt.Println("READY")
	swaps := 0
	for deadline := time.Now().Add(d); time.Now().Before(deadline); {
		for _, n := range names {
			p := filepath.Join(dir, n)
			if os.Rename(p, p+".moved") == nil {
				os.Symlink(target, p)
				swaps++
			}
		}
		os.ReadDir(dir) // a moment for the switch to chmod
		for _, n := range names {
			os.Remove(filepath.Join(dir, n))
			os.Remove(filepath.Join(dir, n+".moved"))
		}
	}
	fmt.Printf("SWAPS %d\n", swaps)
	return 0
}

// fsSymlinkRole plants links: args TARGET LINK...
func fsSymlinkRole(args []string) int {
	for _, l := range args[1:] {
		if err := os.Symlink(args[0], l); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	return 0
}

// fsVictim is a root-only file (0600 in a directory only root may write)
// that an attacker wants chmodded, chowned or overwritten.
type fsVictim struct{ dir, path string }

func newFSVictim(t *testing.T) fsVictim {
	t.Helper()
	dir := publicScratch(t, false)
	path := filepath.Join(dir, "secret")
	if err := os.WriteFile(path, []byte("root's secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return fsVictim{dir, path}
}

// intact fails the test if the victim's file or its directory changed.
func (v fsVictim) intact(t *testing.T) {
	t.Helper()
	fi, err := os.Lstat(v.path)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if fi.Mode() != 0o600 || st.Uid != 0 || st.Gid != 0 {
		t.Errorf("%s is now %v owned by %d:%d: the switch wrote through a link (was -rw------- 0:0)", v.path, fi.Mode(), st.Uid, st.Gid)
	}
	if b, _ := os.ReadFile(v.path); string(b) != "root's secret\n" {
		t.Errorf("%s now holds %q: the switch wrote through a link", v.path, b)
	}
	if es, _ := os.ReadDir(v.dir); len(es) != 1 {
		t.Errorf("%s holds %d entries: the switch made something there through a link", v.dir, len(es))
	}
}

// nobodysDir is a directory owned by nobody (0755) in a directory nobody
// may enter: the switch trusts it for a socket given to nobody (owner=),
// and nobody may rename anything in it.
func nobodysDir(t *testing.T) string {
	t.Helper()
	d := filepath.Join(publicScratch(t, false), "nobodys")
	if err := os.Mkdir(d, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(d, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	return d
}

// apiClient talks HTTP to the switch's control API over its socket, as
// root: quicker than a ctl process per request, so the race gets more tries.
func apiClient(ctl string) *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", ctl)
		},
	}}
}

// The symlink swap: a socket given to nobody (mode=0777,owner=65534) in a
// directory nobody owns, bound again and again (daemon, stream, BESS and
// dgram ports added and removed through the API) while nobody swaps it for
// a link to a root-only file as fast as it can. The root file's mode and
// owner never change. (Before issue 17 the switch chmodded and chowned by
// path: the file became 0777 and nobody's within the first second.)
func TestSecurityFSSymlinkSwap(t *testing.T) {
	requireRoot(t)
	v := newFSVictim(t)
	dir := nobodysDir(t)
	ctl := filepath.Join(scratch(t), "ctl")
	startSwitch(t, nil, []string{ctl}, "-unix", ctl)

	attacker := roleCmd(t, "fs-swap", dir, v.path, "3s", "d", "s", "b", "g")
	out, exited, err := startCollecting(attacker)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := out.wait(regexp.MustCompile(`^READY`), 10*time.Second); !ok {
		t.Fatalf("attacker did not start:\n%s", out.text())
	}
	given := ",mode=0777,owner=65534"
	specs := []string{
		"transport=daemon,path=" + filepath.Join(dir, "d") + given,
		"transport=stream,path=" + filepath.Join(dir, "s") + given,
		"transport=bess,path=" + filepath.Join(dir, "b") + given,
		"transport=dgram,path=" + filepath.Join(dir, "g") + ",peer=" + filepath.Join(dir, "q") + given,
	}
	c := apiClient(ctl)
	added, refused := 0, 0
	for running := true; running; {
		select {
		case <-exited:
			running = false
			continue
		default:
		}
		for _, spec := range specs {
			body, _ := json.Marshal(map[string]string{"spec": spec})
			resp, err := c.Post("http://switch/v1/ports", "application/json", strings.NewReader(string(body)))
			if err != nil {
				t.Fatal(err)
			}
			var r struct{ Name string }
			json.NewDecoder(resp.Body).Decode(&r)
			resp.Body.Close()
			if resp.StatusCode != http.StatusCreated {
				refused++
				continue
			}
			added++
			req, _ := http.NewRequest("DELETE", "http://switch/v1/ports/"+r.Name, nil)
			if resp, err := c.Do(req); err != nil {
				t.Fatal(err)
			} else {
				resp.Body.Close()
			}
		}
	}
	m := regexp.MustCompile(`SWAPS (\d+)`).FindStringSubmatch(out.text())
	if m == nil {
		t.Fatalf("attacker:\n%s", out.text())
	}
	swaps, _ := strconv.Atoi(m[1])
	t.Logf("%d ports added, %d refused, %d swaps", added, refused, swaps)
	if added == 0 || swaps == 0 {
		t.Fatalf("the race did not happen: %d ports added, %d swaps", added, swaps)
	}
	v.intact(t)
}

// runRefused runs a root switch that must refuse to start, and returns
// its output. One that starts anyway is stopped and fails the test.
func runRefused(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(env.umlswitch, args...)
	out, exited, err := startCollecting(cmd)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		cmd.Process.Kill()
		<-exited
		t.Fatalf("umlswitch %s did not refuse to start:\n%s", strings.Join(args, " "), out.text())
	}
	if cmd.ProcessState.Success() {
		t.Fatalf("umlswitch %s exited 0:\n%s", strings.Join(args, " "), out.text())
	}
	return out.text()
}

// The planted capture link: nobody puts links to a root-only file at the
// capture path, and at a rotated name, in a sticky directory everyone may
// write (as /tmp). The switch refuses the first, skips the second, and the
// root file is intact; captures are readable by root only.
func TestSecurityFSPlantedCaptureLink(t *testing.T) {
	requireRoot(t)
	v := newFSVictim(t)
	tmp := publicScratch(t, true)
	capture := filepath.Join(tmp, "lab.pcapng")
	plant := func(links ...string) {
		t.Helper()
		if out, err := roleCmd(t, "fs-symlink", append([]string{v.path}, links...)...).CombinedOutput(); err != nil {
			t.Fatalf("planting %v: %v\n%s", links, err, out)
		}
	}

	plant(capture)
	ctl := filepath.Join(scratch(t), "ctl")
	out := runRefused(t, "-unix", ctl, "-mirror", "file="+capture)
	if !strings.Contains(out, "symbolic link") {
		t.Errorf("the refusal does not say why:\n%s", out)
	}
	v.intact(t)

	os.Remove(capture)
	plant(capture+".1", capture+".3")
	sw := startSwitch(t, nil, []string{ctl}, "-unix", ctl, "-mirror", "file="+capture+",rotate=4k")
	a := dialLAN(t, ctl, "a", 1, true)
	b := dialLAN(t, ctl, "b", 2, false)
	a.announce(t)
	b.announce(t)
	buf := make([]byte, 500)
	for k := uint64(1); k <= 100; k++ {
		if err := a.Send(testFrame(buf, b.mac, a.mac, k)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond) // a few frames per write: files fill by steps
	}
	time.Sleep(200 * time.Millisecond)
	sw.stop(t)
	v.intact(t)
	files, _ := filepath.Glob(capture + "*")
	regular := 0
	for _, f := range files {
		fi, err := os.Lstat(f)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Type() == os.ModeSymlink {
			continue // nobody's link, left alone
		}
		regular++
		if fi.Mode() != 0o600 {
			t.Errorf("%s is %v: others may read the lab's traffic", f, fi.Mode())
		}
	}
	if regular < 3 {
		t.Errorf("%d capture files, want the first and rotated ones past the links: %v\n%s", regular, files, sw.log.text())
	}
	if !strings.Contains(sw.log.text(), "mirror rotation: keeping the current file") {
		t.Errorf("the skipped rotation was not logged:\n%s", sw.log.text())
	}
}

// -unix DIR/ in a directory another user owns, or one everyone may write
// that is not sticky, is refused with a message that says what to do, and
// nothing is made there.
func TestSecurityFSUnixDirOfAnotherUser(t *testing.T) {
	requireRoot(t)
	theirs := nobodysDir(t)
	out := runRefused(t, "-unix", theirs+"/")
	if !strings.Contains(out, "directory "+theirs+" is owned by uid 65534") || !strings.Contains(out, "chown root") {
		t.Errorf("the refusal does not say what is wrong and what to do:\n%s", out)
	}
	open := filepath.Join(publicScratch(t, false), "open")
	os.Mkdir(open, 0o777)
	os.Chmod(open, 0o777)
	out = runRefused(t, "-unix", filepath.Join(open, "uml.ctl"))
	if !strings.Contains(out, "writable by others and not sticky") || !strings.Contains(out, "chmod +t") {
		t.Errorf("the refusal does not say what is wrong and what to do:\n%s", out)
	}
	for _, d := range []string{theirs, open} {
		if es, _ := os.ReadDir(d); len(es) != 0 {
			t.Errorf("%s: made %v", d, es)
		}
	}
}

// The capture and metrics sockets are root's only (0600) unless given a
// mode of their own, whatever -mode gives the guests' socket.
func TestSecurityFSCaptureAndMetricsSocketsPrivate(t *testing.T) {
	requireRoot(t)
	dir := publicScratch(t, false)
	ctl := filepath.Join(dir, "uml.ctl")
	capture := filepath.Join(dir, "capture.sock")
	metrics := filepath.Join(dir, "metrics.sock")
	live := filepath.Join(dir, "live.sock")
	startSwitch(t, nil, []string{ctl, capture, metrics, live}, "-unix", ctl, "-mode", "0777",
		"-capture-socket", capture, "-metrics", "unix:"+metrics)
	ctlRun(t, ctl, "mirror", "add", "name=live,stream="+live)
	for path, want := range map[string]os.FileMode{ctl: 0o777, capture: 0o600, metrics: 0o600, live: 0o600} {
		fi, err := os.Lstat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != want {
			t.Errorf("%s is %v, want a socket %04o", path, fi.Mode(), want)
		}
	}
	// And nobody cannot even connect to them.
	for _, path := range []string{capture, live, metrics} {
		if out, err := roleCmd(t, "fs-dial", path).CombinedOutput(); err == nil {
			t.Errorf("nobody connected to %s: %s", path, out)
		}
	}
	if out, err := roleCmd(t, "fs-dial", ctl).CombinedOutput(); err != nil {
		t.Errorf("nobody could not connect to the guests' socket %s: %s", ctl, out)
	}
}

// fsDialRole connects to the unix socket PATH: status 0 if it could.
func fsDialRole(args []string) int {
	c, err := net.Dial("unix", args[0])
	if err != nil {
		fmt.Println(err)
		return 1
	}
	c.Close()
	return 0
}
