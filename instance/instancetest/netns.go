package instancetest

import (
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/umlswitch/umlswitch/internal/nstest"
)

// isolatedEnv names, in a child test process, the test it runs in a
// namespace of its own.
const isolatedEnv = "UMLSWITCH_ISOLATED_TEST"

// Isolate runs the calling test in a network namespace of its own, whose
// loopback is up and holds the IPv4 addresses addrs (/32): every thread of
// the process is in it, so the instance's and GoBGP's sockets are too,
// and nothing the test sends leaves the namespace. It returns true in the
// child process that runs there, where the test goes on; in the test's own
// process it runs that child, fails the test as the child failed, and
// returns false: the test returns at once.
//
//	if !instancetest.Isolate(t, "192.0.2.1") {
//		return
//	}
func Isolate(t *testing.T, addrs ...string) bool {
	t.Helper()
	if os.Getenv(isolatedEnv) == t.Name() {
		return true
	}
	ns := nstest.New(t)
	for _, a := range addrs {
		ns.MustRun(t, "ip", "addr", "add", a+"/32", "dev", "lo")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("ip", "netns", "exec", ns.Name, exe, "-test.run=^"+t.Name()+"$", "-test.count=1", "-test.v=true",
		"-test.timeout="+(2*time.Minute).String())
	cmd.Env = append(os.Environ(), isolatedEnv+"="+t.Name())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s in namespace %s: %v:\n%s", t.Name(), ns.Name, err, out)
	}
	t.Logf("%s ran in namespace %s:\n%s", t.Name(), ns.Name, out)
	return false
}
