package extcap

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"time"

	xbpf "golang.org/x/net/bpf"

	"github.com/umlswitch/umlswitch/bpf"
)

// Filter is a capture filter compiled to classic BPF, run in x/net/bpf's
// VM on every frame of the capture stream. It runs here, in the extcap
// process, not in the switch: the switch then runs no program a user
// handed it, its live capture stays one stream for every reader, and
// nothing about the API changes.
type Filter struct {
	Expr string
	vm   *xbpf.VM
}

// Tcpdump is the program that compiles filters; a variable for tests.
var Tcpdump = "tcpdump"

// compileTimeout bounds tcpdump: an expression naming a host may make it
// ask DNS.
const compileTimeout = 10 * time.Second

// CompileFilter compiles a tcpdump expression for Ethernet frames with
// `tcpdump -ddd -y EN10MB`, which needs no interface or privileges, and
// checks that the VM can run the program. An empty expression is no
// filter (nil). The error is for people: Wireshark shows it.
func CompileFilter(expr string) (*Filter, error) {
	if strings.TrimSpace(expr) == "" {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), compileTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, Tcpdump, "-ddd", "-y", "EN10MB", "--", expr)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		var exit *exec.ExitError
		if !errors.As(err, &exit) {
			return nil, fmt.Errorf("capture filter %q: cannot run %s to compile it: %w (install tcpdump)", expr, Tcpdump, err)
		}
		msg := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(stderr.String()), "tcpdump: "))
		if msg == "" {
			msg = err.Error()
		}
		return nil, fmt.Errorf("capture filter %q: %s", expr, oneLine(msg))
	}
	return FilterFromText(expr, stdout.String())
}

// FilterFromText makes a filter of the program tcpdump -ddd printed for
// expr. It refuses programs that load the kernel's ancillary data
// (inbound, outbound, ifindex, ...: the VM has none of it, and a frame of
// the switch's capture carries none) or data relative to the network or
// link layer header (negative offsets, which only the kernel resolves).
func FilterFromText(expr, text string) (*Filter, error) {
	raw, err := bpf.ParseText(text)
	if err != nil {
		return nil, fmt.Errorf("capture filter %q: %w", expr, err)
	}
	if _, err := bpf.New(raw); err != nil {
		return nil, fmt.Errorf("capture filter %q: %w", expr, err)
	}
	insts := make([]xbpf.Instruction, len(raw))
	for i, r := range raw {
		insts[i] = r.Disassemble()
		var off uint32
		switch in := insts[i].(type) {
		case xbpf.LoadExtension:
			if in.Num != xbpf.ExtLen {
				return nil, fmt.Errorf("capture filter %q needs the kernel's ancillary data (instruction %d loads extension %d), "+
					"which frames of a switch's capture do not carry: for inbound or outbound use the Direction option instead", expr, i, in.Num)
			}
			continue
		case xbpf.LoadAbsolute:
			off = in.Off
		case xbpf.LoadIndirect:
			off = in.Off
		default:
			continue
		}
		if int32(off) < 0 {
			return nil, fmt.Errorf("capture filter %q: instruction %d loads at offset %d, relative to a header only the kernel knows",
				expr, i, int32(off))
		}
	}
	vm, err := xbpf.NewVM(insts)
	if err != nil {
		return nil, fmt.Errorf("capture filter %q: %w", expr, err)
	}
	return &Filter{Expr: expr, vm: vm}, nil
}

// Match reports whether the filter keeps the frame; a nil filter keeps
// every frame.
func (f *Filter) Match(frame []byte) bool {
	if f == nil {
		return true
	}
	n, err := f.vm.Run(frame)
	return err == nil && n > 0
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
