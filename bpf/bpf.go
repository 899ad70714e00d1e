// Package bpf loads, validates and runs the classic BPF programs a raw port
// attaches to its socket: in UML's binary bpffile format (an array of 8-byte
// sock_filter records, as `vecN:transport=raw,bpffile=F` loads) or as the
// text `tcpdump -ddd EXPR` prints, so any tcpdump expression can be compiled
// once with tcpdump and used here without cgo.
//
// Programs are checked before the kernel sees them, with errors that name
// the bad instruction, and can run in golang.org/x/net/bpf's VM, which the
// tests use to check that kernel and VM agree frame by frame.
package bpf

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"golang.org/x/net/bpf"
)

// MaxInstructions is the kernel's limit (BPF_MAXINSNS).
const MaxInstructions = 4096

// acceptAll is the length a program returns to keep a whole frame.
const acceptAll = 0x40000

// Program is a validated classic BPF program.
type Program struct {
	raw   []bpf.RawInstruction
	vm    *bpf.VM // nil if the program uses kernel extensions the VM lacks
	vmErr error
}

// ParseText parses what `tcpdump -ddd` prints: the instruction count on the
// first line, then one "code jt jf k" line (decimal) per instruction. A
// semicolon also ends a line, so a program fits on one line of a -port
// spec. Blank lines and lines starting with # are ignored.
func ParseText(s string) ([]bpf.RawInstruction, error) {
	var lines []string
	for _, l := range strings.FieldsFunc(s, func(r rune) bool { return r == '\n' || r == ';' }) {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			lines = append(lines, l)
		}
	}
	if len(lines) == 0 {
		return nil, errors.New("bpf: empty program")
	}
	n, err := strconv.Atoi(lines[0])
	if err != nil || n < 1 || n > MaxInstructions {
		return nil, fmt.Errorf("bpf: first line %q is not an instruction count in 1..%d (the output of tcpdump -ddd)", lines[0], MaxInstructions)
	}
	if len(lines)-1 != n {
		return nil, fmt.Errorf("bpf: the count says %d instructions, %d follow", n, len(lines)-1)
	}
	raw := make([]bpf.RawInstruction, n)
	for i, l := range lines[1:] {
		f := strings.Fields(l)
		if len(f) != 4 {
			return nil, fmt.Errorf("bpf: instruction %d: %q is not \"code jt jf k\"", i, l)
		}
		var v [4]uint64
		for j, bits := range []int{16, 8, 8, 32} {
			if v[j], err = strconv.ParseUint(f[j], 10, bits); err != nil {
				return nil, fmt.Errorf("bpf: instruction %d: %q is not a %d-bit number", i, f[j], bits)
			}
		}
		raw[i] = bpf.RawInstruction{Op: uint16(v[0]), Jt: uint8(v[1]), Jf: uint8(v[2]), K: uint32(v[3])}
	}
	return raw, nil
}

// ParseBinary parses UML's bpffile format: struct sock_filter records of 8
// bytes (u16 code, u8 jt, u8 jf, u32 k), in the host's byte order
// (little-endian on the machines UML runs on), with no header.
func ParseBinary(b []byte) ([]bpf.RawInstruction, error) {
	if len(b) == 0 || len(b)%8 != 0 {
		return nil, fmt.Errorf("bpf: %d bytes is not a whole number of 8-byte instructions", len(b))
	}
	if len(b)/8 > MaxInstructions {
		return nil, fmt.Errorf("bpf: %d instructions, the kernel takes at most %d", len(b)/8, MaxInstructions)
	}
	raw := make([]bpf.RawInstruction, len(b)/8)
	for i := range raw {
		r := b[i*8:]
		raw[i] = bpf.RawInstruction{Op: binary.LittleEndian.Uint16(r), Jt: r[2], Jf: r[3], K: binary.LittleEndian.Uint32(r[4:])}
	}
	return raw, nil
}

// Binary encodes raw in UML's bpffile format.
func Binary(raw []bpf.RawInstruction) []byte {
	b := make([]byte, 0, 8*len(raw))
	for _, r := range raw {
		b = binary.LittleEndian.AppendUint16(b, r.Op)
		b = append(b, r.Jt, r.Jf)
		b = binary.LittleEndian.AppendUint32(b, r.K)
	}
	return b
}

// Text encodes raw as tcpdump -ddd prints it.
func Text(raw []bpf.RawInstruction) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d\n", len(raw))
	for _, r := range raw {
		fmt.Fprintf(&b, "%d %d %d %d\n", r.Op, r.Jt, r.Jf, r.K)
	}
	return b.String()
}

// maxFileSize bounds what LoadFile reads: the longest program, 4096
// instructions, is 32 KiB in UML's format and well under 1 MiB as text, and
// a spec naming /dev/zero must not eat the memory.
const maxFileSize = 1 << 20

// LoadFile reads a program: tcpdump -ddd text if the name ends in .txt,
// otherwise UML's binary format.
func LoadFile(path string) (*Program, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("bpf: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("bpf: %w", err)
	}
	if len(b) > maxFileSize {
		return nil, fmt.Errorf("bpf: %s: over %d bytes, longer than any program", path, maxFileSize)
	}
	var raw []bpf.RawInstruction
	if strings.HasSuffix(path, ".txt") {
		raw, err = ParseText(string(b))
	} else {
		raw, err = ParseBinary(b)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	p, err := New(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return p, nil
}

// New validates raw as the kernel would: every instruction known, every
// jump inside the program, no division by a zero constant, a return at
// the end. Errors name the instruction.
func New(raw []bpf.RawInstruction) (*Program, error) {
	if len(raw) == 0 || len(raw) > MaxInstructions {
		return nil, fmt.Errorf("bpf: %d instructions, want 1..%d", len(raw), MaxInstructions)
	}
	insts := make([]bpf.Instruction, len(raw))
	for i, r := range raw {
		ins := r.Disassemble()
		if _, unknown := ins.(bpf.RawInstruction); unknown {
			return nil, fmt.Errorf("bpf: instruction %d (%d %d %d %d): not a classic BPF instruction", i, r.Op, r.Jt, r.Jf, r.K)
		}
		left := len(raw) - i - 1 // instructions after this one
		bad := func(skip uint32, what string) error {
			return fmt.Errorf("bpf: instruction %d (%s): %s jumps %d past the end of the program", i, ins, what, int(skip)-left+1)
		}
		switch in := ins.(type) {
		case bpf.Jump:
			if int(in.Skip) >= left {
				return nil, bad(in.Skip, "jump")
			}
		case bpf.JumpIf:
			if int(in.SkipTrue) >= left {
				return nil, bad(uint32(in.SkipTrue), "true branch")
			}
			if int(in.SkipFalse) >= left {
				return nil, bad(uint32(in.SkipFalse), "false branch")
			}
		case bpf.JumpIfX:
			if int(in.SkipTrue) >= left {
				return nil, bad(uint32(in.SkipTrue), "true branch")
			}
			if int(in.SkipFalse) >= left {
				return nil, bad(uint32(in.SkipFalse), "false branch")
			}
		case bpf.ALUOpConstant:
			if in.Val == 0 && (in.Op == bpf.ALUOpDiv || in.Op == bpf.ALUOpMod) {
				return nil, fmt.Errorf("bpf: instruction %d (%s): division by zero", i, ins)
			}
		}
		insts[i] = ins
	}
	switch insts[len(insts)-1].(type) {
	case bpf.RetA, bpf.RetConstant:
	default:
		return nil, fmt.Errorf("bpf: instruction %d (%s): a program must end with a return", len(insts)-1, insts[len(insts)-1])
	}
	p := &Program{raw: append([]bpf.RawInstruction(nil), raw...)}
	p.vm, p.vmErr = bpf.NewVM(insts) // may refuse kernel extensions it does not implement
	return p, nil
}

// Raw is the program as the kernel takes it.
func (p *Program) Raw() []bpf.RawInstruction { return p.raw }

// Match runs the program in x/net/bpf's VM on a frame and reports whether
// it keeps it. It fails for programs that use kernel extensions the VM
// lacks (the kernel still runs them).
func (p *Program) Match(frame []byte) (bool, error) {
	if p.vm == nil {
		return false, fmt.Errorf("bpf: the VM cannot run this program: %w", p.vmErr)
	}
	n, err := p.vm.Run(frame)
	return n > 0, err
}

// Inverted returns a program that keeps the frames p drops (a socket with
// it counts what p filters out). Every constant return is flipped; a return
// of the accumulator jumps to an epilogue that flips it; no existing jump
// changes length, so the program stays valid. One case cannot be flipped:
// a load past a frame's end or a division by a zero X register stops a
// classic program with a 0, in p and in its inversion alike, so frames p
// drops that way are not counted.
func (p *Program) Inverted() []bpf.RawInstruction {
	out := make([]bpf.RawInstruction, 0, len(p.raw)+3)
	epilogue := uint32(len(p.raw))
	needEpilogue := false
	for i, r := range p.raw {
		switch ins := r.Disassemble().(type) {
		case bpf.RetConstant:
			keep := uint32(0)
			if ins.Val == 0 {
				keep = 1
			}
			r = mustAssemble(bpf.RetConstant{Val: keep})
		case bpf.RetA:
			r = mustAssemble(bpf.Jump{Skip: epilogue - uint32(i) - 1})
			needEpilogue = true
		}
		out = append(out, r)
	}
	if needEpilogue {
		out = append(out,
			mustAssemble(bpf.JumpIf{Cond: bpf.JumpEqual, Val: 0, SkipTrue: 1}), // A == 0: p dropped it
			mustAssemble(bpf.RetConstant{Val: 0}),
			mustAssemble(bpf.RetConstant{Val: 1}))
	}
	return out
}

func mustAssemble(i bpf.Instruction) bpf.RawInstruction {
	r, err := i.Assemble()
	if err != nil {
		panic("bpf: " + err.Error()) // only fixed, valid instructions come here
	}
	return r
}

// Equal reports whether two programs are the same instructions.
func Equal(a, b []bpf.RawInstruction) bool {
	return bytes.Equal(Binary(a), Binary(b))
}

// cannotAbort reports whether p surely runs to one of its returns on a
// frame of n bytes: no indirect load, every absolute load inside the frame,
// and no division or modulo by X (which may be zero).
func (p *Program) cannotAbort(n int) bool {
	for _, r := range p.raw {
		switch ins := r.Disassemble().(type) {
		case bpf.LoadIndirect, bpf.LoadMemShift:
			return false
		case bpf.LoadAbsolute:
			if int(ins.Off)+ins.Size > n {
				return false
			}
		case bpf.ALUOpX:
			if ins.Op == bpf.ALUOpDiv || ins.Op == bpf.ALUOpMod {
				return false
			}
		}
	}
	return true
}
