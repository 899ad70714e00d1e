package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"

	"github.com/umlswitch/umlswitch/internal/nstest"
)

func init() { roles["without-af-xdp"] = withoutAFXDPRole }

// auditArch is seccomp's name for this machine's system call table.
var auditArch = map[string]uint32{"amd64": unix.AUDIT_ARCH_X86_64, "arm64": unix.AUDIT_ARCH_AARCH64}

// withoutAFXDPRole runs the program args name, with args, on a kernel that
// behaves for it as one built without AF_XDP: a seccomp filter answers its
// socket(AF_XDP, ...) with EAFNOSUPPORT, as such a kernel does. It runs as
// root, and execs the program in its own process.
func withoutAFXDPRole(args []string) int {
	arch, ok := auditArch[runtime.GOARCH]
	if !ok || len(args) == 0 {
		fmt.Fprintf(os.Stderr, "without-af-xdp: no seccomp arch for %s, or no program\n", runtime.GOARCH)
		return 2
	}
	insns, err := bpf.Assemble([]bpf.Instruction{
		bpf.LoadAbsolute{Off: 4, Size: 4}, // seccomp_data.arch
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: arch, SkipTrue: 5},
		bpf.LoadAbsolute{Off: 0, Size: 4}, // .nr
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: unix.SYS_SOCKET, SkipTrue: 3},
		bpf.LoadAbsolute{Off: 16, Size: 4}, // .args[0], its low half (little-endian)
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: unix.AF_XDP, SkipTrue: 1},
		bpf.RetConstant{Val: unix.SECCOMP_RET_ERRNO | uint32(unix.EAFNOSUPPORT)},
		bpf.RetConstant{Val: unix.SECCOMP_RET_ALLOW},
	})
	if err == nil {
		err = installSeccomp(insns)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "without-af-xdp:", err)
		return 2
	}
	os.Unsetenv(roleEnv)
	err = unix.Exec(args[0], args, os.Environ())
	fmt.Fprintln(os.Stderr, "without-af-xdp: exec:", err)
	return 2
}

// withoutAFXDP is the command that runs the switch with args in ns on a
// kernel without AF_XDP, as far as the switch can tell.
func withoutAFXDP(t *testing.T, ns *nstest.NS, args ...string) *exec.Cmd {
	t.Helper()
	cmd := ns.Cmd(testBinaryPath(t), append([]string{env.umlswitch, "-log-level", "debug"}, args...)...)
	cmd.Env = append(os.Environ(), roleEnv+"=without-af-xdp")
	return cmd
}

// On a kernel without AF_XDP, xdp=auto reads through AF_PACKET and says
// why, and a UML reaches the host through the port; xdp=1 is refused at
// start, saying that the kernel lacks it.
func TestRawPortOnAKernelWithoutAFXDP(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	ns := nstest.New(t)
	hostVeth(t, ns)
	dir := scratch(t)
	ctl := filepath.Join(dir, "sw.ctl")

	out, err := runBounded(withoutAFXDP(t, ns, "-state", "none", "-unix", filepath.Join(dir, "refused.ctl"),
		"-port", "transport=raw,name=up,ifname=sw0,xdp=1"), 10*time.Second)
	if err == nil || !strings.Contains(out, "this kernel has no AF_XDP") || !strings.Contains(out, "xdp=auto reads through AF_PACKET") {
		t.Fatalf("xdp=1 without AF_XDP: %v\n%s", err, out)
	}
	if xdpOn(t, ns, "sw0") {
		t.Fatal("a program is left on sw0 by the refused start")
	}

	sw := startSwitchCmd(t, withoutAFXDP(t, ns, "-state", "none", "-unix", ctl, "-port", "transport=raw,name=up,ifname=sw0,xdp=auto"),
		[]string{ctl})
	waitLog(t, sw, `msg="xdp=auto: reading through AF_PACKET" ifname=sw0 why=".*this kernel has no AF_XDP`,
		"xdp=auto did not say why it reads through AF_PACKET")
	if _, ok := sw.log.wait(regexp.MustCompile(`msg="port attached".*peer="raw sw0 \((ring|packet)`), 5*time.Second); !ok {
		t.Errorf("the attach line does not say AF_PACKET:\n%s", sw.log.text())
	}
	if xdpOn(t, ns, "sw0") {
		t.Error("an XDP program on sw0 though the port reads through AF_PACKET")
	}
	u := bootUML(t, umlConfig{ns: ns, net: daemonNet(1, ctl), ip: ip(1), peers: []string{"10.0.0.254"}})
	expectAllOK(t, []*uml{u}, [][]string{{"10.0.0.254"}})
	u.release(t)
}
