package e2e

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
)

// The security tests attack a root switch as an unprivileged user: uid and
// gid 65534 (nobody), no supplementary groups, no capabilities. Their
// attackers are the test binary itself, run as that user in a role (see
// roleEnv), or the umlswitch binary's own ctl and capture commands.

// nobody is the unprivileged user the attacks run as.
const nobody = 65534

// asNobody makes cmd run as nobody. The child of a root parent that
// changes its uid keeps no capabilities.
func asNobody(cmd *exec.Cmd) *exec.Cmd {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Credential = &syscall.Credential{Uid: nobody, Gid: nobody, Groups: []uint32{}}
	cmd.Env = append(os.Environ(), "HOME=/nonexistent")
	return cmd
}

// requireRoot fails a security test that is not run as root: each one
// attacks a root switch, which only root can start.
func requireRoot(t *testing.T) {
	t.Helper()
	requireE2E(t)
	if os.Geteuid() != 0 {
		t.Fatal("this test attacks a root switch as nobody: run the e2e tests as root (make test does in CI)")
	}
}

// publicScratch is a scratch directory nobody may enter (mode 0755) or,
// with sticky, create files in as in /tmp (mode 01777).
func publicScratch(t *testing.T, sticky bool) string {
	t.Helper()
	d := scratch(t)
	mode := os.FileMode(0o755)
	if sticky {
		mode = 0o777 | os.ModeSticky
	}
	if err := os.Chmod(d, mode); err != nil {
		t.Fatal(err)
	}
	return d
}

// roleEnv makes the test binary run one attacker role (roles) instead of
// the tests: TestMain runs it with the process's arguments and exits with
// its status.
const roleEnv = "UMLSWITCH_E2E_ROLE"

// roles are the attackers and clients that must run as a process of their
// own, usually as nobody. Each file of security tests adds its own in an
// init function.
var roles = map[string]func(args []string) int{}

// runRoleIfAsked is called first by TestMain.
func runRoleIfAsked() {
	name := os.Getenv(roleEnv)
	if name == "" {
		return
	}
	role, ok := roles[name]
	if !ok {
		fmt.Fprintf(os.Stderr, "no role %q\n", name)
		os.Exit(2)
	}
	os.Exit(role(os.Args[1:]))
}

var testBinary struct {
	once sync.Once
	path string
	err  error
}

// roleCmd returns the command that runs role as nobody with args: the test
// binary, copied where nobody can execute it (go test keeps it in a
// private directory).
func roleCmd(t *testing.T, role string, args ...string) *exec.Cmd {
	t.Helper()
	if _, ok := roles[role]; !ok {
		t.Fatalf("no role %q", role)
	}
	cmd := asNobody(exec.Command(testBinaryPath(t), args...))
	cmd.Env = append(cmd.Env, roleEnv+"="+role)
	return cmd
}

// testBinaryPath is the test binary's copy that roles run from.
func testBinaryPath(t *testing.T) string {
	t.Helper()
	testBinary.once.Do(func() { testBinary.path, testBinary.err = copyTestBinary() })
	if testBinary.err != nil {
		t.Fatal(testBinary.err)
	}
	return testBinary.path
}

func copyTestBinary() (string, error) {
	self, err := os.Executable()
	if err != nil {
		return "", err
	}
	in, err := os.Open(self)
	if err != nil {
		return "", err
	}
	defer in.Close()
	path := filepath.Join(env.dir, "e2e.test")
	out, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o755)
	if err != nil {
		return "", err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return "", err
	}
	return path, out.Close()
}

// nobodyCtl runs the switch's own ctl command as nobody against ctl and
// returns its output and exit status.
func nobodyCtl(t *testing.T, ctl string, args ...string) (string, int) {
	t.Helper()
	cmd := asNobody(exec.Command(env.umlswitch, append([]string{"ctl", "-s", ctl}, args...)...))
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok {
		return string(out), ee.ExitCode()
	}
	if err != nil {
		t.Fatalf("ctl %v as nobody: %v", args, err)
	}
	return string(out), 0
}
