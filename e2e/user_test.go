package e2e

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/umlswitch/umlswitch/internal/nstest"
	"github.com/umlswitch/umlswitch/internal/privdrop"
)

// -user nobody: once its ports are open the switch runs as nobody on every
// thread, with no capability at all for daemon and BESS ports, and the
// UMLs on them still reach each other. The socket directory is nobody's,
// as Debian's /var/run/uml-utilities is uml-net's, so the sockets are
// removed at exit.
func TestUserDropsPrivileges(t *testing.T) {
	requireE2E(t)
	requireRoot(t)
	t.Parallel()
	ns := nstest.New(t)
	d := nobodysDir(t)
	ctl, bess := filepath.Join(d, "sw.ctl"), filepath.Join(d, "sw.bess")
	sw := startSwitch(t, ns, []string{ctl, bess}, "-user", "nobody", "-unix", ctl, "-port", "transport=bess,path="+bess)
	waitLog(t, sw, `msg="running as" user=nobody uid=65534 gid=65534 capabilities=none`, "the switch did not become nobody")
	expectThreads(t, sw.cmd.Process.Pid, nobody, 0)
	bootAll(t, ns, []member{
		{daemonNet(1, ctl), "eth0", ip(1)},
		{vec(2, "transport=bess,src="+filepath.Join(d, "uml2.sock")+",dst="+bess), "vec0", ip(2)},
	})
}

// A raw port needs cap_net_raw to open again (an interface that comes
// back): with -user the switch keeps that one capability and no other.
func TestUserKeepsWhatPortsNeed(t *testing.T) {
	requireE2E(t)
	requireRoot(t)
	t.Parallel()
	ns := nstest.New(t)
	d := nobodysDir(t)
	ctl := filepath.Join(d, "sw.ctl")
	sw := startSwitch(t, ns, []string{ctl}, "-user", "nobody", "-unix", ctl, "-port", "transport=raw,ifname=lo")
	waitLog(t, sw, `msg="running as" user=nobody .*capabilities=cap_net_raw$`, "the switch did not keep cap_net_raw alone")
	expectThreads(t, sw.cmd.Process.Pid, nobody, privdrop.NetRaw)
}

// expectThreads checks that every thread of pid runs as uid with exactly
// caps, effective and permitted.
func expectThreads(t *testing.T, pid, uid int, caps privdrop.Caps) {
	t.Helper()
	tasks, err := filepath.Glob(filepath.Join("/proc", strconv.Itoa(pid), "task", "*", "status"))
	if err != nil || len(tasks) == 0 {
		t.Fatalf("threads of %d: %v", pid, err)
	}
	for _, path := range tasks {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		st, err := privdrop.ParseStatus(data)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if st.UIDs != [4]int{uid, uid, uid, uid} || st.GIDs[0] != uid || st.Effective != caps || st.Permitted != caps {
			t.Fatalf("%s: uids %v gids %v, capabilities %s (permitted %s); want uid %d with %s",
				path, st.UIDs, st.GIDs, st.Effective, st.Permitted, uid, caps)
		}
	}
}
