package bpf

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// XDP verdicts of the test wrapper.
const (
	xdpDrop = 1
	xdpPass = 2
)

// ethHLen: BPF_PROG_TEST_RUN refuses XDP input shorter than an Ethernet
// header (EINVAL), so frames under 14 bytes cannot be run in the kernel;
// TestXDPRefusesShortFrames checks that this is still so.
const ethHLen = 14

// maxTestFrame keeps test frames in the linear part of the kernel's test
// xdp_buff (a page less headroom and skb_shared_info).
const maxTestFrame = 1518

// loadXDP wraps block as the convention's embedding program does (R6 =
// data, R7 = data_end, the block, then the two labels, here returning
// XDP_PASS and XDP_DROP) and loads it. R8 is set before the block and
// checked at both labels: a block that changes it returns XDP_ABORTED.
func loadXDP(tb testing.TB, block asm.Instructions) *ebpf.Program {
	tb.Helper()
	const r8 = 0x5eed
	insns := asm.Instructions{
		asm.LoadMem(asm.R6, asm.R1, 0, asm.Word), // xdp_md->data
		asm.LoadMem(asm.R7, asm.R1, 4, asm.Word), // xdp_md->data_end
		asm.Mov.Imm(asm.R8, r8),
	}
	insns = append(insns, block...)
	insns = append(insns,
		asm.Mov.Imm(asm.R0, xdpPass).WithSymbol(AcceptLabel),
		asm.JNE.Imm(asm.R8, r8, "aborted"),
		asm.Return(),
		asm.Mov.Imm(asm.R0, xdpDrop).WithSymbol(RefuseLabel),
		asm.JNE.Imm(asm.R8, r8, "aborted"),
		asm.Return(),
		asm.Mov.Imm(asm.R0, 0).WithSymbol("aborted"),
		asm.Return(),
	)
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Type:         ebpf.XDP,
		Instructions: insns,
		License:      "GPL",
	})
	if errors.Is(err, unix.EPERM) {
		tb.Skipf("loading an XDP program needs root (CAP_BPF, CAP_PERFMON): %v", err)
	}
	if err != nil {
		tb.Fatalf("the verifier refused the translation: %+v\nblock:\n%v", err, block)
	}
	tb.Cleanup(func() { prog.Close() })
	return prog
}

// xdpKeeps runs prog on f in the kernel (BPF_PROG_TEST_RUN).
func xdpKeeps(tb testing.TB, prog *ebpf.Program, f []byte) bool {
	tb.Helper()
	ret, err := prog.Run(&ebpf.RunOptions{Data: f})
	if err != nil {
		tb.Fatalf("running on % x: %v", f, err)
	}
	switch ret {
	case xdpPass:
		return true
	case xdpDrop:
		return false
	}
	tb.Fatalf("on % x the program returned %d: the block changed R8", f, ret)
	return false
}

// vmKeeps is the VM's verdict on f, the reference for the translation.
// x/net's VM does not run neg (it returns an error there), so neg is run
// as the equal mul #0xffffffff. ok is false where the VM cannot run the
// program (extensions it lacks).
func vmKeeps(raw []bpf.RawInstruction, f []byte) (keep, ok bool) {
	raw = slices.Clone(raw)
	for i, r := range raw {
		ins := r.Disassemble()
		if _, neg := ins.(bpf.NegateA); neg {
			raw[i] = mustAssemble(bpf.ALUOpConstant{Op: bpf.ALUOpMul, Val: 0xffffffff})
			continue
		}
		// An instruction the VM refuses outright (a kernel extension, a
		// negative offset) is one no path of a translatable program
		// reaches, or EBPF would have refused the program: stand a return
		// in for it, so that the VM runs the rest.
		switch ins.(type) {
		case bpf.LoadExtension, bpf.LoadAbsolute, bpf.LoadIndirect, bpf.LoadMemShift:
			if _, err := bpf.NewVM([]bpf.Instruction{ins, bpf.RetConstant{}}); err != nil {
				raw[i] = mustAssemble(bpf.RetConstant{})
			}
		}
	}
	p, err := New(raw)
	if err != nil {
		return false, false
	}
	keep, err = p.Match(f)
	return keep, err == nil
}

// translate returns p's block, checked against the convention.
func translate(tb testing.TB, p *Program) asm.Instructions {
	tb.Helper()
	block, err := p.EBPF()
	if err != nil {
		tb.Fatalf("EBPF: %v\nprogram:\n%s", err, Text(p.Raw()))
	}
	if err := checkConvention(block); err != nil {
		tb.Fatalf("%v\nblock:\n%v", err, block)
	}
	return block
}

// checkConvention checks what the verifier does not: the block writes no
// register but R0-R5 and R9, touches no memory but the frame and the 64
// bytes below R10, has no exit or call, jumps only to its own symbols and
// the two labels, and ends in an unconditional jump.
func checkConvention(block asm.Instructions) error {
	if len(block) == 0 {
		return errors.New("empty block")
	}
	symbols := map[string]bool{AcceptLabel: true, RefuseLabel: true}
	for _, ins := range block {
		if s := ins.Symbol(); s != "" {
			symbols[s] = true
		}
	}
	mayWrite := func(r asm.Register) bool { return r <= asm.R5 || r == asm.R9 }
	for i, ins := range block {
		op := ins.OpCode
		switch cls := op.Class(); {
		case cls.IsJump():
			if op.JumpOp() == asm.Exit || op.JumpOp() == asm.Call {
				return fmt.Errorf("instruction %d (%v): exit or call", i, ins)
			}
			if !symbols[ins.Reference()] {
				return fmt.Errorf("instruction %d (%v): jumps to %q, not a label of the block", i, ins, ins.Reference())
			}
		case cls.IsALU():
			if !mayWrite(ins.Dst) {
				return fmt.Errorf("instruction %d (%v) writes %v", i, ins, ins.Dst)
			}
		case cls == asm.LdXClass:
			if !mayWrite(ins.Dst) {
				return fmt.Errorf("instruction %d (%v) writes %v", i, ins, ins.Dst)
			}
			if ins.Src == asm.R10 && (ins.Offset < scratchOff || ins.Offset > -4) {
				return fmt.Errorf("instruction %d (%v) reads the stack outside M[]", i, ins)
			}
		case cls == asm.StClass || cls == asm.StXClass:
			if ins.Dst != asm.R10 || ins.Offset < scratchOff || ins.Offset > -4 {
				return fmt.Errorf("instruction %d (%v) writes outside M[]", i, ins)
			}
		default:
			return fmt.Errorf("instruction %d (%v): unexpected class %v", i, ins, cls)
		}
	}
	if last := block[len(block)-1]; last.OpCode.JumpOp() != asm.Ja {
		return fmt.Errorf("the block ends in %v: it may fall through", last)
	}
	return nil
}

// agree checks that p's translation keeps exactly the frames the VM keeps,
// and returns what the VM kept.
func agree(t *testing.T, name string, p *Program, frames [][]byte) []bool {
	t.Helper()
	prog := loadXDP(t, translate(t, p))
	var kept []bool
	for _, f := range frames {
		want, ok := vmKeeps(p.Raw(), f)
		if !ok {
			t.Fatalf("%s: the VM cannot run it", name)
		}
		if got := xdpKeeps(t, prog, f); got != want {
			t.Errorf("%s: on % x the translation keeps %v, the VM %v", name, f, got, want)
		}
		kept = append(kept, want)
	}
	return kept
}

func TestXDPRefusesShortFrames(t *testing.T) {
	p, _ := New([]bpf.RawInstruction{mustAssemble(bpf.RetConstant{Val: 1})})
	prog := loadXDP(t, translate(t, p))
	for n := 0; n <= ethHLen; n++ {
		_, err := prog.Run(&ebpf.RunOptions{Data: make([]byte, n)})
		if n < ethHLen && !errors.Is(err, unix.EINVAL) {
			t.Errorf("%d bytes: %v, want EINVAL (then tests could run shorter frames)", n, err)
		}
		if n == ethHLen && err != nil {
			t.Errorf("%d bytes: %v", n, err)
		}
	}
}

// TestEBPFAgreesOnKernelTestPrograms: the programs TestKernelAndVMAgree
// runs in the kernel's socket filter, translated, keep what the VM keeps
// on the same frames.
func TestEBPFAgreesOnKernelTestPrograms(t *testing.T) {
	frames := testFrames()
	for name, p := range agreePrograms(t) {
		kept := agree(t, name, p, frames)
		if n := countTrue(kept); n == 0 || n == len(frames) {
			t.Errorf("%s keeps %d of %d frames: the set does not exercise it", name, n, len(frames))
		}
	}
}

func countTrue(b []bool) (n int) {
	for _, v := range b {
		if v {
			n++
		}
	}
	return n
}

// corner is a hand-written program with the VM's verdict on each frame
// written out, so the test fails if the VM and the translation agree on
// something else.
type corner struct {
	name   string
	prog   []bpf.Instruction
	frames [][]byte
	want   []bool
}

// testFrame is n bytes counting up from 1 (byte i is i+1).
func testFrame(n int) []byte {
	f := make([]byte, n)
	for i := range f {
		f[i] = byte(i + 1)
	}
	return f
}

func ret1() bpf.Instruction { return bpf.RetConstant{Val: 1} }

func corners() []corner {
	f14, f20, f60 := testFrame(14), testFrame(20), testFrame(60)
	three := [][]byte{f14, f20, f60}
	var cs []corner
	add := func(name string, frames [][]byte, want []bool, prog ...bpf.Instruction) {
		cs = append(cs, corner{name, prog, frames, want})
	}
	// Loads at and past the frame's end (the VM returns 0 there).
	for _, size := range []int{1, 2, 4} {
		for _, off := range []uint32{uint32(14 - size), uint32(15 - size), uint32(20 - size), uint32(21 - size), uint32(60 - size), uint32(61 - size)} {
			in := 14 >= int(off)+size
			add(fmt.Sprintf("ld%d [%d]", size, off), three, []bool{in, 20 >= int(off)+size, 60 >= int(off)+size},
				bpf.LoadAbsolute{Off: off, Size: size}, ret1())
		}
		// Around maxLoadEnd, where the checks at run time give way to a
		// refuse for every frame.
		for _, off := range []uint32{maxLoadEnd - uint32(size), maxLoadEnd - uint32(size) + 1, 0xffff - uint32(size), 0x10000 - uint32(size), 0x10000, 0x7fffffff} {
			add(fmt.Sprintf("ld%d [%#x]", size, off), three, []bool{false, false, false},
				bpf.LoadAbsolute{Off: off, Size: size}, ret1())
		}
		// X+k, around the end and with X large enough to wrap 32 bits.
		for _, c := range []struct {
			x, k uint32
			want []bool
		}{
			{0, uint32(14 - size), []bool{true, true, true}},
			{1, uint32(14 - size), []bool{false, true, true}},
			{uint32(14 - size), 0, []bool{true, true, true}},
			{uint32(60 - size), 1, []bool{false, false, false}},
			{uint32(59 - size), 1, []bool{false, false, true}},
			{0xffffffff, 1, []bool{false, false, false}},
			{0xffffffff, 0, []bool{false, false, false}},
			{0xffff, 0, []bool{false, false, false}},
			{maxLoadEnd - uint32(size), 0, []bool{false, false, false}},
			{maxLoadEnd - uint32(size) + 1, 0, []bool{false, false, false}},
			{0, maxLoadEnd - uint32(size), []bool{false, false, false}},
			{0, maxLoadEnd - uint32(size) + 1, []bool{false, false, false}},
			{0, 0xffff, []bool{false, false, false}},
			{1, 0x7fffffff, []bool{false, false, false}},
		} {
			add(fmt.Sprintf("ld%d [x+%d] x=%#x", size, c.k, c.x), three, c.want,
				bpf.LoadConstant{Dst: bpf.RegX, Val: c.x}, bpf.LoadIndirect{Off: c.k, Size: size}, ret1())
		}
	}
	// Loaded values are big-endian: ld [10] is 0x0b0c0d0e.
	for _, v := range []struct {
		size int
		val  uint32
	}{{1, 0x0b}, {2, 0x0b0c}, {4, 0x0b0c0d0e}} {
		add(fmt.Sprintf("ld%d [10] == %#x", v.size, v.val), [][]byte{f14, make([]byte, 14)}, []bool{true, false},
			bpf.LoadAbsolute{Off: 10, Size: v.size},
			bpf.JumpIf{Cond: bpf.JumpEqual, Val: v.val, SkipTrue: 1},
			bpf.RetConstant{Val: 0}, ret1())
		add(fmt.Sprintf("ld%d [x+7] x=3 == %#x", v.size, v.val), [][]byte{f14, make([]byte, 14)}, []bool{true, false},
			bpf.LoadConstant{Dst: bpf.RegX, Val: 3},
			bpf.LoadIndirect{Off: 7, Size: v.size},
			bpf.JumpIf{Cond: bpf.JumpEqual, Val: v.val, SkipTrue: 1},
			bpf.RetConstant{Val: 0}, ret1())
	}
	// ld len.
	add("ld len == 20", three, []bool{false, true, false},
		bpf.LoadExtension{Num: bpf.ExtLen}, bpf.JumpIf{Cond: bpf.JumpEqual, Val: 20, SkipTrue: 1}, bpf.RetConstant{}, ret1())
	// Division and modulo by a zero X stop the program with 0, even
	// before a ret #1; by a non-zero X they divide, unsigned.
	for _, op := range []bpf.ALUOp{bpf.ALUOpDiv, bpf.ALUOpMod} {
		add(fmt.Sprintf("alu %v x=0", op), [][]byte{f14}, []bool{false},
			bpf.LoadConstant{Dst: bpf.RegA, Val: 5}, bpf.ALUOpX{Op: op}, ret1())
	}
	alu := func(a uint32, in bpf.Instruction, x, want uint32) {
		add(fmt.Sprintf("%#x %v x=%#x == %#x", a, in, x, want), [][]byte{f14}, []bool{true},
			bpf.LoadConstant{Dst: bpf.RegA, Val: a},
			bpf.LoadConstant{Dst: bpf.RegX, Val: x},
			in,
			bpf.JumpIf{Cond: bpf.JumpEqual, Val: want, SkipTrue: 1},
			bpf.RetConstant{}, ret1())
	}
	aluBoth := func(a uint32, op bpf.ALUOp, v, want uint32) {
		alu(a, bpf.ALUOpConstant{Op: op, Val: v}, 0, want)
		alu(a, bpf.ALUOpX{Op: op}, v, want)
	}
	aluBoth(0xffffffff, bpf.ALUOpAdd, 1, 0)
	aluBoth(0, bpf.ALUOpSub, 1, 0xffffffff)
	aluBoth(0x10000, bpf.ALUOpMul, 0x10000, 0)
	aluBoth(0xffffffff, bpf.ALUOpMul, 0xffffffff, 1)
	aluBoth(0xffffffff, bpf.ALUOpDiv, 0x80000000, 1) // signed, it would be 0
	aluBoth(7, bpf.ALUOpDiv, 2, 3)
	aluBoth(0xffffffff, bpf.ALUOpMod, 0x80000000, 0x7fffffff)
	aluBoth(0xf0f0f0f0, bpf.ALUOpAnd, 0xff00ff00, 0xf000f000)
	aluBoth(0xf0f0f0f0, bpf.ALUOpOr, 0x0f000000, 0xfff0f0f0)
	aluBoth(0xf0f0f0f0, bpf.ALUOpXor, 0xffffffff, 0x0f0f0f0f)
	// Shifts: Go's uint32 shifts by 32 or more give 0.
	for _, s := range []uint32{0, 1, 31, 32, 33, 40, 63, 64, 0x80000000, 0xffffffff} {
		shl, shr := uint32(0x80000001)<<s, uint32(0x80000001)>>s
		aluBoth(0x80000001, bpf.ALUOpShiftLeft, s, shl)
		aluBoth(0x80000001, bpf.ALUOpShiftRight, s, shr)
		add(fmt.Sprintf("ret (1<<%d)", s), [][]byte{f14}, []bool{uint32(1)<<s != 0},
			bpf.LoadConstant{Dst: bpf.RegA, Val: 1}, bpf.ALUOpConstant{Op: bpf.ALUOpShiftLeft, Val: s}, bpf.RetA{})
	}
	// neg, which the VM runs as mul #0xffffffff.
	alu(1, bpf.NegateA{}, 0, 0xffffffff)
	alu(0, bpf.NegateA{}, 0, 0)
	alu(0x80000000, bpf.NegateA{}, 0, 0x80000000)
	// ldx 4*([k]&0xf): byte 14 of f20 is 0x0f.
	add("ldx msh [14]", [][]byte{f14, f20}, []bool{false, true},
		bpf.LoadMemShift{Off: 14}, bpf.TXA{}, bpf.JumpIf{Cond: bpf.JumpEqual, Val: 60, SkipTrue: 1}, bpf.RetConstant{}, ret1())
	add("x set on two paths, then ld [x+2]", [][]byte{f14, append([]byte{0}, f14[1:]...)}, []bool{true, false},
		bpf.LoadAbsolute{Off: 0, Size: 1},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: 0, SkipFalse: 2},
		bpf.LoadConstant{Dst: bpf.RegX, Val: 20}, // byte 0 is 0: X=20, out of bounds
		bpf.Jump{Skip: 1},
		bpf.LoadConstant{Dst: bpf.RegX, Val: 8},
		bpf.LoadIndirect{Off: 2, Size: 4}, ret1())
	add("ldx msh [20] keeps the low nibble", [][]byte{f60}, []bool{true}, // byte 20 is 0x15: X = 20
		bpf.LoadMemShift{Off: 20}, bpf.TXA{}, bpf.JumpIf{Cond: bpf.JumpEqual, Val: 20, SkipTrue: 1}, bpf.RetConstant{}, ret1())
	add("ldx msh [0x10000]", [][]byte{f60}, []bool{false}, bpf.LoadMemShift{Off: 0x10000}, ret1())
	add("ldx msh [3] then ld [x+0]", [][]byte{f14, f20}, []bool{false, true}, // X = 4*(4&0xf) = 16
		bpf.LoadMemShift{Off: 3}, bpf.LoadIndirect{Off: 0, Size: 4}, ret1())
	// Scratch memory starts at 0.
	for _, m := range []int{0, 3, 15} {
		add(fmt.Sprintf("ld M[%d] unwritten", m), [][]byte{f14}, []bool{false},
			bpf.LoadConstant{Dst: bpf.RegA, Val: 7}, bpf.LoadScratch{Dst: bpf.RegA, N: m}, bpf.RetA{})
		add(fmt.Sprintf("ldx M[%d] unwritten", m), [][]byte{f14}, []bool{false},
			bpf.LoadConstant{Dst: bpf.RegX, Val: 7}, bpf.LoadScratch{Dst: bpf.RegX, N: m}, bpf.TXA{}, bpf.RetA{})
	}
	add("st M[5], stx M[6], ld back", [][]byte{f14}, []bool{true},
		bpf.LoadConstant{Dst: bpf.RegA, Val: 7}, bpf.StoreScratch{Src: bpf.RegA, N: 5},
		bpf.LoadConstant{Dst: bpf.RegX, Val: 9}, bpf.StoreScratch{Src: bpf.RegX, N: 6},
		bpf.LoadConstant{Dst: bpf.RegA, Val: 0}, bpf.LoadConstant{Dst: bpf.RegX, Val: 0},
		bpf.LoadScratch{Dst: bpf.RegA, N: 6}, bpf.LoadScratch{Dst: bpf.RegX, N: 5},
		bpf.ALUOpX{Op: bpf.ALUOpSub}, bpf.RetA{}) // 9-7
	// Jumps: every condition with K and X, both ways; ld [0] of f14 is
	// 0x01020304, of the second frame 0x81020304 (unsigned comparisons).
	hi := append([]byte{0x81}, f14[1:]...)
	for _, c := range []struct {
		cond    bpf.JumpTest
		val     uint32
		lo, big bool
	}{
		{bpf.JumpEqual, 0x01020304, true, false},
		{bpf.JumpNotEqual, 0x01020304, false, true},
		{bpf.JumpGreaterThan, 0x01020304, false, true},
		{bpf.JumpGreaterThan, 0x7fffffff, false, true},
		{bpf.JumpGreaterOrEqual, 0x01020304, true, true},
		{bpf.JumpGreaterOrEqual, 0x81020305, false, false},
		{bpf.JumpLessThan, 0x81020304, true, false},
		{bpf.JumpLessOrEqual, 0x01020304, true, false},
		{bpf.JumpBitsSet, 0x80000000, false, true},
		{bpf.JumpBitsSet, 0x00000004, true, true},
		{bpf.JumpBitsNotSet, 0x80000000, true, false},
	} {
		frames, want := [][]byte{f14, hi}, []bool{c.lo, c.big}
		add(fmt.Sprintf("jump %v #%#x", c.cond, c.val), frames, want,
			bpf.LoadAbsolute{Off: 0, Size: 4},
			bpf.JumpIf{Cond: c.cond, Val: c.val, SkipTrue: 1},
			bpf.RetConstant{}, ret1())
		add(fmt.Sprintf("jump %v x=%#x", c.cond, c.val), frames, want,
			bpf.LoadConstant{Dst: bpf.RegX, Val: c.val},
			bpf.LoadAbsolute{Off: 0, Size: 4},
			bpf.JumpIfX{Cond: c.cond, SkipTrue: 1},
			bpf.RetConstant{}, ret1())
		// The same with a false branch that jumps too.
		add(fmt.Sprintf("jump %v #%#x, true falls through", c.cond, c.val), frames, []bool{!c.lo, !c.big},
			bpf.LoadAbsolute{Off: 0, Size: 4},
			bpf.JumpIf{Cond: c.cond, Val: c.val, SkipTrue: 0, SkipFalse: 2},
			bpf.RetConstant{}, ret1(), ret1())
		add(fmt.Sprintf("jump %v x=%#x, both ways", c.cond, c.val), frames, []bool{!c.lo, !c.big},
			bpf.LoadConstant{Dst: bpf.RegX, Val: c.val},
			bpf.LoadAbsolute{Off: 0, Size: 4},
			bpf.JumpIfX{Cond: c.cond, SkipTrue: 2, SkipFalse: 1},
			bpf.RetConstant{}, ret1(), bpf.RetConstant{})
	}
	add("ja over a drop", [][]byte{f14}, []bool{true}, bpf.Jump{Skip: 1}, bpf.RetConstant{}, ret1())
	add("ja 0", [][]byte{f14}, []bool{true}, bpf.Jump{Skip: 0}, ret1())
	add("jeq to the same place both ways", [][]byte{f14}, []bool{true},
		bpf.JumpIf{Cond: bpf.JumpEqual, SkipTrue: 1, SkipFalse: 1}, bpf.RetConstant{}, ret1())
	// Returns.
	add("ret a, a=0", [][]byte{f14}, []bool{false}, bpf.RetA{})
	add("ret a, a=1", [][]byte{f14}, []bool{true}, bpf.LoadConstant{Dst: bpf.RegA, Val: 1}, bpf.RetA{})
	add("ret a, a=0x80000000", [][]byte{f14}, []bool{true}, bpf.LoadConstant{Dst: bpf.RegA, Val: 0x80000000}, bpf.RetA{})
	add("ret #0", [][]byte{f14}, []bool{false}, bpf.RetConstant{})
	add("ret #0xffffffff", [][]byte{f14}, []bool{true}, bpf.RetConstant{Val: 0xffffffff})
	add("tax, txa", [][]byte{f14}, []bool{true},
		bpf.LoadConstant{Dst: bpf.RegA, Val: 3}, bpf.TAX{}, bpf.LoadConstant{Dst: bpf.RegA, Val: 0}, bpf.TXA{}, bpf.RetA{})
	// Dead code: the verifier refuses unreachable instructions, and an
	// extension nobody reaches is no reason to refuse the program.
	add("dead code after ret", [][]byte{f14}, []bool{true},
		ret1(), bpf.LoadIndirect{Off: 0xffe00000, Size: 1}, bpf.RetConstant{})
	add("dead code after a load past any frame", [][]byte{f60}, []bool{false},
		bpf.LoadAbsolute{Off: 0x10000, Size: 1}, ret1())
	add("jumped-over code", [][]byte{f14}, []bool{false},
		bpf.Jump{Skip: 2}, bpf.LoadAbsolute{Off: 0xfff00000, Size: 1}, ret1(), bpf.RetConstant{})
	return cs
}

func TestEBPFCorners(t *testing.T) {
	for _, c := range corners() {
		raw, err := bpf.Assemble(c.prog)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		p, err := New(raw)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		for i, f := range c.frames {
			if got, ok := vmKeeps(raw, f); !ok || got != c.want[i] {
				t.Errorf("%s: on %d bytes the VM keeps %v (runs: %v), the test says %v", c.name, len(f), got, ok, c.want[i])
			}
		}
		agree(t, c.name, p, c.frames)
	}
}

// TestEBPFNotTranslatable: the kernel's extensions and negative offsets
// are refused with ErrNotTranslatable.
func TestEBPFNotTranslatable(t *testing.T) {
	for _, prog := range [][]bpf.Instruction{
		{bpf.LoadExtension{Num: bpf.ExtProto}, ret1()},
		{bpf.LoadExtension{Num: bpf.ExtVLANTag}, bpf.RetA{}},
		{bpf.LoadAbsolute{Off: 0xfff00000, Size: 1}, ret1()}, // SKF_NET_OFF
		{bpf.LoadAbsolute{Off: 0xffe00000, Size: 2}, ret1()}, // SKF_LL_OFF
		{bpf.LoadAbsolute{Off: 0x80000000, Size: 4}, ret1()},
		{bpf.LoadIndirect{Off: 0xfff00000, Size: 1}, ret1()},
		{bpf.LoadMemShift{Off: 0xfff00000}, ret1()},
		{bpf.RawInstruction{Op: 0x20, K: 0xfffff001}, ret1()}, // ld [SKF_AD_OFF+1], the VM's "len"
	} {
		raw, err := bpf.Assemble(prog)
		if err != nil {
			t.Fatal(err)
		}
		p, err := New(raw)
		if err != nil {
			t.Fatalf("%v: %v", prog, err)
		}
		if _, err := p.EBPF(); !errors.Is(err, ErrNotTranslatable) {
			t.Errorf("%v: %v, want ErrNotTranslatable", prog, err)
		}
	}
	raw, _ := ParseText(vlan10)
	p, _ := New(raw)
	if _, err := p.EBPF(); !errors.Is(err, ErrNotTranslatable) || !strings.Contains(err.Error(), "instruction 0") {
		t.Errorf("tcpdump's vlan 10: %v, want ErrNotTranslatable naming instruction 0", err)
	}
}

// TestEBPFLongestPrograms: programs of MaxInstructions translate and load,
// or are refused as too long, never miscompiled (jump offsets are 16-bit).
func TestEBPFLongestPrograms(t *testing.T) {
	long := func(ins bpf.Instruction) *Program {
		prog := make([]bpf.Instruction, MaxInstructions)
		for i := range prog {
			prog[i] = ins
		}
		prog[0] = bpf.LoadConstant{Dst: bpf.RegX, Val: 1}
		prog[len(prog)-1] = bpf.RetA{}
		raw, err := bpf.Assemble(prog)
		if err != nil {
			t.Fatal(err)
		}
		p, err := New(raw)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	// 4094 additions: a short block, run in full.
	p := long(bpf.ALUOpX{Op: bpf.ALUOpAdd})
	agree(t, "4094 additions", p, [][]byte{testFrame(14)})
	// 4094 indirect loads of 8 instructions each: too long.
	p = long(bpf.LoadIndirect{Off: 1, Size: 4})
	if _, err := p.EBPF(); !errors.Is(err, ErrNotTranslatable) {
		t.Errorf("4094 indirect loads: %v, want ErrNotTranslatable", err)
	}
	// Jumps across a long block land where they should.
	// ldb [0]; jne #1, 1; ja 3000 (to the ret #1); 2999 loads; ret #0; ret #1
	prog := []bpf.Instruction{bpf.LoadAbsolute{Off: 0, Size: 1}, bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: 1, SkipTrue: 1}, bpf.Jump{Skip: 3000}}
	for len(prog) < 3002 {
		prog = append(prog, bpf.LoadAbsolute{Off: 2, Size: 4})
	}
	prog = append(prog, bpf.RetConstant{}, ret1())
	raw, err := bpf.Assemble(prog)
	if err != nil {
		t.Fatal(err)
	}
	p, err = New(raw)
	if err != nil {
		t.Fatal(err)
	}
	two := testFrame(14)
	two[0] = 2
	agree(t, "3000 loads jumped over", p, [][]byte{testFrame(14), two})
}

// FuzzEBPFAgreesWithVM: every program bpf.New validates translates (or is
// refused with ErrNotTranslatable), the verifier accepts the translation,
// and it keeps a frame exactly when the VM does. The input encodes the
// program compactly (see fuzzProgram) so that most inputs are programs;
// the rest of the input is the frame.
func FuzzEBPFAgreesWithVM(f *testing.F) {
	for _, c := range corners() {
		raw, err := bpf.Assemble(c.prog)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(append(encodeFuzzProgram(raw), c.frames[0]...))
	}
	frames := testFrames()
	for _, text := range []string{icmpOrARP, udpPort53, tcpSYN} {
		raw, err := ParseText(text)
		if err != nil {
			f.Fatal(err)
		}
		for _, fr := range frames[:8] {
			f.Add(append(encodeFuzzProgram(raw), fr...))
		}
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		raw, frame := fuzzProgram(in)
		p, err := New(raw)
		if err != nil {
			return
		}
		block, err := p.EBPF()
		if errors.Is(err, ErrNotTranslatable) {
			return
		}
		if err != nil {
			t.Fatalf("EBPF: %v\nprogram:\n%s", err, Text(raw))
		}
		if err := checkConvention(block); err != nil {
			t.Fatalf("%v\nblock:\n%v", err, block)
		}
		prog := loadXDP(t, block)
		if len(frame) < ethHLen {
			return // the kernel runs no XDP program on less (TestXDPRefusesShortFrames)
		}
		want, ok := vmKeeps(raw, frame)
		if !ok {
			t.Fatalf("the VM cannot run a translatable program:\n%s", Text(raw))
		}
		if got := xdpKeeps(t, prog, frame); got != want {
			t.Fatalf("translation keeps %v, the VM %v, on % x\nprogram:\n%s\nblock:\n%v", got, want, frame, Text(raw), block)
		}
	})
}

// fuzzOps are the opcodes x/net's Disassemble decodes (bpf.New refuses
// the rest), so that the fuzzer spends its time on programs.
var fuzzOps = func() []uint16 {
	var ops []uint16
	for op := range uint16(0x100) {
		switch (bpf.RawInstruction{Op: op}).Disassemble().(type) {
		case bpf.RawInstruction:
		default:
			ops = append(ops, op)
		}
	}
	return ops
}()

// fuzzProgram decodes a program and a frame: the first byte is the number
// of instructions less one (mod 64), then each instruction is its opcode
// (an index into fuzzOps), jt and jf (modulo the instructions left, so
// jumps stay inside), and a byte k: K = k if k < 0xf0, else the next four
// bytes (big-endian). A last instruction that is no return is followed by
// ret a. What is left is the frame, at most maxTestFrame bytes.
func fuzzProgram(in []byte) ([]bpf.RawInstruction, []byte) {
	if len(in) == 0 {
		return nil, nil
	}
	n := int(in[0])%64 + 1
	in = in[1:]
	var raw []bpf.RawInstruction
	for i := 0; i < n && len(in) >= 4; i++ {
		left := n - i - 1
		r := bpf.RawInstruction{Op: fuzzOps[int(in[0])%len(fuzzOps)], K: uint32(in[3])}
		if cls := r.Op & 7; cls == 2 || cls == 3 || cls <= 1 && r.Op&0xe0 == 0x60 {
			r.K %= 16 // st, stx, ld/ldx M[k]: k < 16 (bpf.New refuses the rest)
		}
		if left > 0 {
			r.Jt, r.Jf = in[1]%uint8(left), in[2]%uint8(left) // left < 64
		}
		in = in[4:]
		if r.K >= 0xf0 && len(in) >= 4 {
			r.K = binary.BigEndian.Uint32(in)
			in = in[4:]
		}
		raw = append(raw, r)
	}
	if len(raw) == 0 {
		return nil, nil
	}
	switch raw[len(raw)-1].Disassemble().(type) {
	case bpf.RetA, bpf.RetConstant:
	default:
		raw = append(raw, mustAssemble(bpf.RetA{}))
	}
	if len(in) > maxTestFrame {
		in = in[:maxTestFrame]
	}
	return raw, in
}

// encodeFuzzProgram is fuzzProgram's inverse for seeds (programs of at
// most 64 instructions with jumps below 256).
func encodeFuzzProgram(raw []bpf.RawInstruction) []byte {
	b := []byte{byte(len(raw) - 1)}
	for _, r := range raw {
		b = append(b, byte(slices.Index(fuzzOps, r.Op)), r.Jt, r.Jf)
		if r.K < 0xf0 {
			b = append(b, byte(r.K))
		} else {
			b = append(b, 0xff)
			b = binary.BigEndian.AppendUint32(b, r.K)
		}
	}
	return b
}

func TestEncodeFuzzProgram(t *testing.T) {
	for _, c := range corners() {
		raw, _ := bpf.Assemble(c.prog)
		back, rest := fuzzProgram(append(encodeFuzzProgram(raw), 1, 2, 3))
		if !Equal(back, raw) || string(rest) != "\x01\x02\x03" {
			t.Fatalf("%s: %v, %v", c.name, back, rest)
		}
	}
}

// tcpdump -ddd 'udp port 53' and 'tcp[tcpflags] & tcp-syn != 0' (tcpdump
// 4.99), for seeds and benchmarks without tcpdump.
const (
	udpPort53 = "20;40 0 0 12;21 0 6 34525;48 0 0 20;21 0 15 17;40 0 0 54;21 12 0 53;40 0 0 56;21 10 11 53;21 0 10 2048;48 0 0 23;21 0 8 17;40 0 0 20;69 6 0 8191;177 0 0 14;72 0 0 14;21 2 0 53;72 0 0 16;21 0 1 53;6 0 0 262144;6 0 0 0"
	tcpSYN    = "11;40 0 0 12;21 0 8 2048;48 0 0 23;21 0 6 6;40 0 0 20;69 4 0 8191;177 0 0 14;80 0 0 27;69 0 1 2;6 0 0 262144;6 0 0 0"
)

// benchProgram is tcpdump's "udp port 53" on an IPv4 UDP frame to port 53
// (it runs its longest path: the EtherType, IPv4, UDP, not a fragment, the
// header length, both ports).
func benchProgram(b *testing.B) (*Program, []byte) {
	raw, err := ParseText(udpPort53)
	if err != nil {
		b.Fatal(err)
	}
	p, err := New(raw)
	if err != nil {
		b.Fatal(err)
	}
	f := testFrames()[2] // UDP 40000 -> 53
	if keep, _ := p.Match(f); !keep {
		b.Fatal("the frame is not to port 53")
	}
	return p, f
}

// BenchmarkEBPFFrame: the translated program per frame, BPF_PROG_TEST_RUN
// repeating it in the kernel (the kernel's average per run, which includes
// the test wrapper and setting up the xdp_buff).
func BenchmarkEBPFFrame(b *testing.B) {
	p, f := benchProgram(b)
	prog := loadXDP(b, translate(b, p))
	b.ResetTimer()
	ret, per, err := prog.Benchmark(f, b.N, b.ResetTimer)
	if err != nil || ret != xdpPass {
		b.Fatalf("%d %v", ret, err)
	}
	b.ReportMetric(float64(per.Nanoseconds()), "ns/frame")
}

// BenchmarkVMFrame: the same program in x/net's VM.
func BenchmarkVMFrame(b *testing.B) {
	p, f := benchProgram(b)
	b.ResetTimer()
	for b.Loop() {
		if keep, err := p.Match(f); !keep || err != nil {
			b.Fatal(keep, err)
		}
	}
}

// TestEBPFManyPaths: programs near MaxInstructions that count matches (in
// X, in A, in M[0]) or prove different lengths of the frame on each path
// have a number of paths exponential in their length; unless the block
// makes the verifier's states the same where paths join, it walks more
// than its million instructions. They must load and agree with the VM.
func TestEBPFManyPaths(t *testing.T) {
	const n = 800 // steps of 5 instructions
	zeros, ones := make([]byte, n), make([]byte, n)
	for i := range ones {
		ones[i] = 1
	}
	half := testFrame(n) // bytes 1..255, 0, 1..: a few zeros
	step := func(i int) []bpf.Instruction {
		return []bpf.Instruction{
			bpf.LoadAbsolute{Off: uint32(i), Size: 1},
			bpf.JumpIf{Cond: bpf.JumpEqual, Val: 0, SkipFalse: 3},
		}
	}
	for _, c := range []struct {
		name      string
		inc, tail []bpf.Instruction
	}{
		{"count in X",
			[]bpf.Instruction{bpf.TXA{}, bpf.ALUOpConstant{Op: bpf.ALUOpAdd, Val: 1}, bpf.TAX{}},
			[]bpf.Instruction{bpf.TXA{}}},
		{"count in M[0]",
			[]bpf.Instruction{bpf.LoadScratch{Dst: bpf.RegA, N: 0}, bpf.ALUOpConstant{Op: bpf.ALUOpAdd, Val: 1}, bpf.StoreScratch{Src: bpf.RegA, N: 0}},
			[]bpf.Instruction{bpf.LoadScratch{Dst: bpf.RegA, N: 0}}},
	} {
		prog := []bpf.Instruction{bpf.LoadConstant{Dst: bpf.RegX, Val: 0}}
		for i := range n {
			prog = append(prog, step(i)...)
			prog = append(prog, c.inc...)
		}
		prog = append(prog, c.tail...)
		prog = append(prog, bpf.JumpIf{Cond: bpf.JumpEqual, Val: 3, SkipTrue: 1}, bpf.RetConstant{}, ret1())
		raw, err := bpf.Assemble(prog)
		if err != nil {
			t.Fatal(err)
		}
		p, err := New(raw)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		kept := agree(t, c.name, p, [][]byte{zeros, ones, half})
		if !slices.Equal(kept, []bool{false, false, true}) {
			t.Errorf("%s: the VM keeps %v", c.name, kept)
		}
	}
	// A counts the bytes equal to it: ldx 4*([i]&0xf); jeq x, add #1.
	prog := []bpf.Instruction{}
	for i := range 1300 {
		prog = append(prog,
			bpf.LoadMemShift{Off: uint32(i)},
			bpf.JumpIfX{Cond: bpf.JumpEqual, SkipFalse: 1},
			bpf.ALUOpConstant{Op: bpf.ALUOpAdd, Val: 4})
	}
	prog = append(prog, bpf.JumpIf{Cond: bpf.JumpEqual, Val: 8, SkipTrue: 1}, bpf.RetConstant{}, ret1())
	raw, err := bpf.Assemble(prog)
	if err != nil {
		t.Fatal(err)
	}
	p, err := New(raw)
	if err != nil {
		t.Fatal(err)
	}
	f := make([]byte, 1300)
	f[0], f[1], f[2] = 0, 1, 2 // A: 0 -> 4 -> 8 -> 8 (2*4 is not 8)
	agree(t, "count in A", p, [][]byte{zeros, f, testFrame(1300)})
	// Each path proves a different length of the frame: ldb [i%64]; jeq
	// #0, 0, 1; ldb [100+i].
	prog = nil
	for i := range 1300 {
		prog = append(prog,
			bpf.LoadAbsolute{Off: uint32(i % 64), Size: 1},
			bpf.JumpIf{Cond: bpf.JumpEqual, Val: 0, SkipFalse: 1},
			bpf.LoadAbsolute{Off: uint32(100 + i), Size: 1})
	}
	prog = append(prog, bpf.RetA{})
	if raw, err = bpf.Assemble(prog); err != nil {
		t.Fatal(err)
	}
	if p, err = New(raw); err != nil {
		t.Fatal(err)
	}
	agree(t, "lengths proven", p, [][]byte{make([]byte, 1500), testFrame(1500), testFrame(1399), testFrame(1400)})
}
