package instance_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/umlswitch/umlswitch/configs"
	"github.com/umlswitch/umlswitch/instance"
	"github.com/umlswitch/umlswitch/internal/peercred"
	"github.com/umlswitch/umlswitch/transports/porttest"
)

// runStateLab is a switch with two configured listeners; state is the run
// state file.
type runStateLab struct {
	dir, state string
	plan       *configs.File
	log        *porttest.LogBuffer
}

func newRunStateLab(t *testing.T, extra string) *runStateLab {
	t.Helper()
	dir := t.TempDir()
	plan, err := configs.Parse([]byte(fmt.Sprintf(`
%s
switches:
  - name: lab
    ports:
      - {transport: daemon, path: %s, name: lab}
      - {transport: daemon, path: %s, name: gone}
`, extra, filepath.Join(dir, "lab.ctl"), filepath.Join(dir, "gone.ctl"))))
	if err != nil {
		t.Fatal(err)
	}
	return &runStateLab{dir: dir, state: filepath.Join(dir, "lab.run"), plan: plan, log: &porttest.LogBuffer{}}
}

// start runs the lab's configuration with its run state, restored; stop
// closes it (the test's end does too).
func (l *runStateLab) start(t *testing.T) (in *instance.Instance, stop func()) {
	t.Helper()
	in, err := instance.New(l.plan, instance.Config{State: l.state,
		Logger: slog.New(slog.NewTextHandler(l.log, nil)),
		Reload: func() (*configs.File, error) { return l.plan, nil }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { in.Run(ctx); close(done) }()
	in.Restore()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done; in.Close() }) }
	t.Cleanup(stop)
	return in, stop
}

func namesOn(in *instance.Instance, sw string) string {
	var names []string
	for _, p := range in.Ports(sw) {
		names = append(names, p.Name)
	}
	return strings.Join(names, " ")
}

func portNamed(in *instance.Instance, name string) *instance.PortInfo {
	for _, p := range in.Ports("") {
		if p.Name == name {
			return &p
		}
	}
	return nil
}

// What the API changed comes back after a restart: a switch, a listener
// and a tunnel port added, a configured port removed, a mirror, a static
// entry and a port's link delay; a reload then makes the configuration the
// truth again and empties the run state.
func TestRunStateSurvivesRestart(t *testing.T) {
	l := newRunStateLab(t, "")
	in, stop := l.start(t)
	sw, err := configs.NewSwitch("extra", [][2]string{{"hub", "true"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := in.AddSwitch(sw); err != nil {
		t.Fatal(err)
	}
	added := filepath.Join(l.dir, "added.ctl")
	for _, spec := range []string{
		"transport=daemon,path=" + added + ",name=added",
		"transport=vxlan,src=127.0.0.2,dst=127.0.0.3,vni=7,dstport=47893,name=tun",
	} {
		p, err := configs.ParsePort(spec)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := in.AddPort("lab", p); err != nil {
			t.Fatal(err)
		}
	}
	unnamed, _ := configs.ParsePort("transport=bess,path=" + filepath.Join(l.dir, "b.sock"))
	if name, err := in.AddPort("extra", unnamed); err != nil || name != "bess0" {
		t.Fatal(name, err)
	}
	if err := in.RemovePort("gone"); err != nil {
		t.Fatal(err)
	}
	m, _ := configs.ParseMirror("file=" + filepath.Join(l.dir, "lab.pcapng") + ",name=cap")
	if _, err := in.AddMirror("lab", m); err != nil {
		t.Fatal(err)
	}
	if err := in.AddStatic("lab", macA.String(), "tun", 0); err != nil {
		t.Fatal(err)
	}
	if err := in.SetPort("tun", [][2]string{{"delay", "5ms"}, {"link", "down"}}); err != nil {
		t.Fatal(err)
	}
	porttest.Eventually(t, "the run state names the last change", func() bool {
		b, _ := os.ReadFile(l.state)
		return bytes.Contains(b, []byte(`"delay"`))
	})
	if st, err := os.Lstat(l.state); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("run state file: %v, %v", st, err)
	}
	stop()

	in, _ = l.start(t)
	if got := namesOn(in, "lab"); got != "added lab tun" {
		t.Fatalf("lab's ports after the restart: %s", got)
	}
	if got := namesOn(in, "extra"); got != "bess0" {
		t.Fatalf("extra's ports after the restart: %s", got)
	}
	sws := in.Switches()
	if len(sws) != 2 || sws[1].Name != "extra" || !sws[1].Hub {
		t.Fatalf("switches after the restart: %+v", sws)
	}
	if p := portNamed(in, "added"); p.Listening != added {
		t.Fatalf("added listener: %+v", p)
	}
	if p := portNamed(in, "tun"); p.Link == nil || p.Link.DelayS != 0.005 || p.LinkState != "down" {
		t.Fatalf("tun's link: %+v, %s", p.Link, p.LinkState)
	}
	if ms := in.Mirrors(); len(ms) != 1 || ms[0].Name != "cap" || ms[0].Switch != "lab" {
		t.Fatalf("mirrors: %+v", ms)
	}
	fdb, err := in.FDB("lab")
	if err != nil {
		t.Fatal(err)
	}
	if len(fdb) != 1 || fdb[0].MAC != macA.String() || fdb[0].Port != "tun" || !fdb[0].Static {
		t.Fatalf("fdb: %+v", fdb)
	}

	if err := in.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := namesOn(in, ""); got != "gone lab" {
		t.Fatalf("ports after the reload: %s", got)
	}
	if len(in.Switches()) != 1 || len(in.Mirrors()) != 0 {
		t.Fatalf("after the reload: %+v %+v", in.Switches(), in.Mirrors())
	}
	porttest.Eventually(t, "the run state is gone", func() bool {
		_, err := os.Lstat(l.state)
		return errors.Is(err, os.ErrNotExist)
	})
}

// A reload takes back `port set` keys of a configured port and static
// entries, which apply keeps running.
func TestReloadTakesBackPortSet(t *testing.T) {
	l := newRunStateLab(t, "")
	p, _ := configs.ParsePort("transport=vxlan,src=127.0.0.2,dst=127.0.0.3,vni=8,dstport=47894,name=tun")
	l.plan.Switches[0].Ports = append(l.plan.Switches[0].Ports, p)
	in, _ := l.start(t)
	if err := in.SetPort("tun", [][2]string{{"delay", "5ms"}, {"link", "down"}}); err != nil {
		t.Fatal(err)
	}
	if err := in.AddStatic("lab", macA.String(), "tun", 0); err != nil {
		t.Fatal(err)
	}
	porttest.Eventually(t, "the run state", func() bool { _, err := os.Lstat(l.state); return err == nil })
	if err := in.Reload(); err != nil {
		t.Fatal(err)
	}
	if p := portNamed(in, "tun"); p.Link != nil && p.Link.DelayS != 0 || !strings.Contains(p.Spec, "vni=8") || strings.Contains(p.Spec, "delay") ||
		p.LinkState != "up" {
		t.Fatalf("tun after the reload: %+v %+v", p, p.Link)
	}
	if fdb, _ := in.FDB("lab"); len(fdb) != 0 {
		t.Fatalf("fdb after the reload: %+v", fdb)
	}
	porttest.Eventually(t, "the run state is gone", func() bool {
		_, err := os.Lstat(l.state)
		return errors.Is(err, os.ErrNotExist)
	})
}

// A damaged, foreign or world-writable run state is reported and ignored:
// the switch runs its configuration.
func TestRunStateIgnoredWhenUntrusted(t *testing.T) {
	for _, tc := range []struct {
		name string
		data string
		mode os.FileMode
		uid  int
	}{
		{"damaged", `{"format": "umlswitch-run-state/1", "ports": [{"switch": "lab", "spec": "transport=`, 0o600, -1},
		{"bad spec", `{"format": "umlswitch-run-state/1", "ports": [{"switch": "lab", "spec": "transport=nosuch"}]}`, 0o600, -1},
		{"world-writable", `{"format": "umlswitch-run-state/1", "removed_ports": [{"switch": "lab", "name": "gone", "spec": "x"}]}`, 0o666, -1},
		{"foreign", `{"format": "umlswitch-run-state/1", "removed_ports": [{"switch": "lab", "name": "gone", "spec": "x"}]}`, 0o600, 4242},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.uid >= 0 && os.Geteuid() != 0 {
				t.Skip("giving a file away needs root")
			}
			l := newRunStateLab(t, "")
			if err := os.WriteFile(l.state, []byte(tc.data), tc.mode); err != nil {
				t.Fatal(err)
			}
			os.Chmod(l.state, tc.mode)
			if tc.uid >= 0 {
				os.Chown(l.state, tc.uid, tc.uid)
			}
			in, _ := l.start(t)
			if got := namesOn(in, ""); got != "gone lab" {
				t.Fatalf("ports: %s", got)
			}
			if !strings.Contains(l.log.String(), "run state file ignored") {
				t.Fatalf("no warning:\n%s", l.log)
			}
		})
	}
}

// A port a delegated user added comes back as that user's: opened with its
// credentials again, and only while the configuration still grants it the
// API.
func TestRunStateAddsAsTheUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("acting as another user needs root")
	}
	const uid = 4343
	l := newRunStateLab(t, fmt.Sprintf("api_uid: %d", uid))
	userDir := filepath.Join(l.dir, "user")
	if err := os.Mkdir(userDir, 0o755); err != nil {
		t.Fatal(err)
	}
	os.Chown(userDir, uid, uid)
	os.Chmod(l.dir, 0o755)
	os.Chmod(filepath.Dir(l.dir), 0o755) // t.TempDir makes it 0700: the user must reach its directory
	in, stop := l.start(t)
	p, _ := configs.ParsePort("transport=daemon,path=" + filepath.Join(userDir, "u.ctl") + ",name=mine")
	if _, err := in.AddPortAs(&peercred.Cred{UID: uid, GID: uid}, "lab", p); err != nil {
		t.Fatal(err)
	}
	porttest.Eventually(t, "the run state", func() bool { _, err := os.Lstat(l.state); return err == nil })
	stop()
	os.Remove(filepath.Join(userDir, "u.ctl"))

	in, stop = l.start(t)
	if got := namesOn(in, "lab"); got != "gone lab mine" {
		t.Fatalf("ports after the restart: %s", got)
	}
	st, err := os.Lstat(filepath.Join(userDir, "u.ctl"))
	if err != nil {
		t.Fatal(err)
	}
	if owner := st.Sys().(*syscall.Stat_t).Uid; owner != uid {
		t.Fatalf("the socket came back owned by uid %d, not %d", owner, uid)
	}
	stop()

	// No longer granted: not added again.
	l.plan.APIUIDs = nil
	in, _ = l.start(t)
	if got := namesOn(in, "lab"); got != "gone lab" {
		t.Fatalf("ports once the user lost the API: %s", got)
	}
}
