package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// Debian bookworm's UML kernel (6.1) cannot start a process on a host whose
// XSAVE area has AMX state: it hands PTRACE_SETREGSET(NT_X86_XSTATE) a buffer
// of its own fixed size, the host insists on exactly its own (11008 bytes
// with AMX) and answers EFAULT, and the UML panics with "ptrace set fp regs
// failed, errno = 14" before init runs. Until Debian ships a fixed kernel the
// tests boot the UML through a seccomp filter that fails that regset's
// requests, so that the UML falls back to PTRACE_GETFPREGS/SETFPREGS (x87
// and SSE only), as it does on a host without XSAVE.
//
// That fallback loses the upper halves of the vector registers whenever the
// UML resumes a process after a fault (the host zeroes them for the stub's
// signal handler, and only the SSE part is put back), so the guests' glibc
// is told not to use AVX: busybox is all the guests run.
//
// prepare boots one UML plainly first and uses the workaround only where
// that boot shows the failure.

// umlFPUWorkaround is set by prepare where the host needs the workaround.
var umlFPUWorkaround bool

const fpuRole = "uml-fxsave"

// guestNoAVX goes on the kernel command line: the kernel hands unknown
// name=value words to init as its environment, and busybox's children
// inherit it.
const guestNoAVX = "GLIBC_TUNABLES=glibc.cpu.hwcaps=-AVX,-AVX2,-AVX512F,-AVX512VL,-AVX512BW,-AVX512DQ,-AVX512CD"

func init() { roles[fpuRole] = execUMLWithoutXstate }

// umlCommand returns the program and arguments that boot a UML with the
// kernel arguments args, and any environment that must go with them.
func umlCommand(args []string) (string, []string, []string) {
	if !umlFPUWorkaround {
		return "linux", args, nil
	}
	self, err := os.Executable()
	if err != nil {
		panic(err) // prepare already ran the same call
	}
	return self, append(append([]string{"linux"}, args...), guestNoAVX), []string{roleEnv + "=" + fpuRole}
}

// execUMLWithoutXstate is the role that installs the filter on every thread
// and executes args (the UML kernel and its arguments) in this process.
func execUMLWithoutXstate(args []string) int {
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "uml-fxsave: no program")
		return 2
	}
	path, err := exec.LookPath(args[0])
	if err != nil {
		fmt.Fprintln(os.Stderr, "uml-fxsave:", err)
		return 2
	}
	if err := denyXstateRegset(); err != nil {
		fmt.Fprintln(os.Stderr, "uml-fxsave:", err)
		return 2
	}
	os.Unsetenv(roleEnv)
	err = unix.Exec(path, args, os.Environ())
	fmt.Fprintln(os.Stderr, "uml-fxsave: exec:", err)
	return 2
}

// denyXstateRegset makes ptrace(PTRACE_GETREGSET or PTRACE_SETREGSET, pid,
// NT_X86_XSTATE, ...) fail with EIO in every thread of this process and in
// what it executes. Everything else is allowed.
func denyXstateRegset() error {
	const (
		ptraceGetRegset = 0x4204
		ptraceSetRegset = 0x4205
		ntX86Xstate     = 0x202
		// offsets in struct seccomp_data
		offNr   = 0
		offArch = 4
		offArg0 = 16 // request (low 32 bits)
		offArg2 = 32 // addr: the regset's note type (low 32 bits)
	)
	if runtime.GOARCH != "amd64" {
		return fmt.Errorf("the xstate workaround is for amd64, not %s", runtime.GOARCH)
	}
	prog, err := bpf.Assemble([]bpf.Instruction{
		bpf.LoadAbsolute{Off: offArch, Size: 4},
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: unix.AUDIT_ARCH_X86_64, SkipTrue: 7},
		bpf.LoadAbsolute{Off: offNr, Size: 4},
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: unix.SYS_PTRACE, SkipTrue: 5},
		bpf.LoadAbsolute{Off: offArg0, Size: 4},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: ptraceGetRegset, SkipTrue: 1},
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: ptraceSetRegset, SkipTrue: 2},
		bpf.LoadAbsolute{Off: offArg2, Size: 4},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: ntX86Xstate, SkipTrue: 1},
		bpf.RetConstant{Val: unix.SECCOMP_RET_ALLOW},
		bpf.RetConstant{Val: unix.SECCOMP_RET_ERRNO | uint32(unix.EIO)},
	})
	if err != nil {
		return fmt.Errorf("seccomp filter: %w", err)
	}
	return installSeccomp(prog)
}

// installSeccomp makes prog the seccomp filter of every thread of this
// process and of what it executes.
func installSeccomp(prog []bpf.RawInstruction) error {
	filter := make([]unix.SockFilter, len(prog))
	for i, ins := range prog {
		filter[i] = unix.SockFilter{Code: ins.Op, Jt: ins.Jt, Jf: ins.Jf, K: ins.K}
	}
	fprog := unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
	runtime.LockOSThread()
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("no_new_privs: %w", err)
	}
	if _, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, unix.SECCOMP_FILTER_FLAG_TSYNC, uintptr(unsafe.Pointer(&fprog))); errno != 0 {
		return fmt.Errorf("seccomp: %w", errno)
	}
	return nil
}

// probeUML boots one UML that only says it ran and powers off, plainly and,
// where that fails the way bookworm's kernel does on an AMX host, through
// the workaround. It sets umlFPUWorkaround and errs only when no way boots.
func probeUML(root string) error {
	const probe = "/probe"
	script := "#!/bin/sh\necho UML-PROBE-RAN\n/bin/poweroff -f\n"
	if err := os.WriteFile(filepath.Join(root, probe), []byte(script), 0o755); err != nil {
		return err
	}
	plain, err := bootProbe(root, probe)
	if err == nil {
		return nil
	}
	if !strings.Contains(plain, "ptrace set fp regs failed") {
		return fmt.Errorf("a UML does not boot here: %v\n%s", err, plain)
	}
	umlFPUWorkaround = true
	if out, err := bootProbe(root, probe); err != nil {
		return fmt.Errorf("a UML does not boot here, not even without XSAVE state (%v):\n%s", err, out)
	}
	fmt.Fprintln(os.Stderr, "e2e: this host's XSAVE area is too big for the UML kernel; booting UMLs with XSAVE regsets refused (see umlfpu_test.go)")
	return nil
}

func bootProbe(root, probe string) (string, error) {
	dir, err := os.MkdirTemp(env.dir, "probe")
	if err != nil {
		return "", err
	}
	name, args, extra := umlCommand([]string{"mem=96M", "umid=" + filepath.Base(dir), "root=/dev/root", "rootfstype=hostfs",
		"hostfs=" + root, "rw", "init=" + probe, "con=null", "con0=fd:0,fd:1"})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(append(os.Environ(), "TMPDIR="+dir, "HOME="+dir), extra...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if strings.Contains(string(out), "UML-PROBE-RAN") {
		return string(out), nil
	}
	if err == nil {
		err = fmt.Errorf("init never ran")
	}
	return string(out), err
}
