package bpf

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf/asm"
	"golang.org/x/net/bpf"
)

// Labels the block from EBPF jumps to; the embedding program defines both
// (see /work/notes/xdp-convention.md).
const (
	// AcceptLabel: the classic program returned non-zero.
	AcceptLabel = "cbpf_accept"
	// RefuseLabel: it returned 0, or it would have aborted (a load past
	// the frame's end, a division by a zero X).
	RefuseLabel = "cbpf_refuse"
)

// ErrNotTranslatable is wrapped by EBPF's errors for programs it cannot
// translate (the kernel's ancillary loads, negative offsets, programs too
// long for eBPF's 16-bit jumps); the caller runs those in the VM instead.
var ErrNotTranslatable = errors.New("not translatable to eBPF")

// Registers of the block. A and X hold 32-bit values in 64-bit registers,
// zero-extended: every write to them is a 32-bit operation, a
// zero-extending load, or the frame's length.
const (
	regA    = asm.R0
	regX    = asm.R1
	regTmp  = asm.R2
	regZero = asm.R3 // 0, which the verifier takes for 0 or 2
	regOne  = asm.R9 // 1, which the verifier takes for any number
	regData = asm.R6 // the frame's first byte, set by the embedding program
	regEnd  = asm.R7 // the frame's end
)

// scratchOff is the stack offset of M[0]; M[n] is the 32-bit word at
// R10+scratchOff+4n.
const scratchOff = -64

// maxLoadEnd bounds the end of a load the block checks against the frame's
// end: a packet pointer's offset (here up to maxLoadEnd plus 2 for
// regZero) must stay within the verifier's MAX_PACKET_OFF, 0xffff, for a
// bounds check to count. No frame XDP sees is that long (its linear data
// is at most a page less headroom), so a load reaching past it is out of
// bounds on every frame.
const maxLoadEnd = 0xff00

// MaxBlock bounds the block's length: jumps are 16-bit, so the labels, set
// after the block by the embedding program, must stay within 32767
// instructions of every jump. The embedding program must define both labels
// within 32767-MaxBlock (2767) instructions after the block's end.
const MaxBlock = 30000

// EBPF translates the program into an eBPF block for an XDP program, with
// the semantics of x/net/bpf's VM on the same bytes: the block jumps to
// AcceptLabel where the VM returns non-zero, and to RefuseLabel where it
// returns 0 or stops (a load past the frame's end, a division by a zero X).
//
// The block expects R6 = the frame's first byte (xdp_md->data) and R7 = its
// end (xdp_md->data_end). It may clobber R0-R5, R9 and the 64 bytes below
// R10 (the scratch words M[0..15]); it leaves R6, R7 and R8 alone, has no
// exit and calls no helper, and never falls through its end. It jumps to
// both labels (where a program never accepts, or never refuses, through a
// jump the verifier sees is never taken), so the verifier finds no dead
// code after either. Reading the frame's length (ld len) subtracts two
// packet pointers, which the verifier allows only with CAP_PERFMON.
//
// It returns an error wrapping ErrNotTranslatable for what it cannot
// translate: the kernel's ancillary loads (SKF_AD_*), loads at negative
// offsets (SKF_NET_OFF, SKF_LL_OFF), and blocks longer than MaxBlock.
// Instructions no path reaches are left out (the verifier refuses dead
// code), so they may be anything.
func (p *Program) EBPF() (asm.Instructions, error) {
	n := len(p.raw)
	insts := make([]bpf.Instruction, n)
	for i, r := range p.raw {
		insts[i] = r.Disassemble()
	}
	reach := make([]bool, n+1)
	preds := make([]int, n+1)
	reach[0] = true
	var readsM [16]bool
	for i, ins := range insts {
		if !reach[i] {
			continue
		}
		for _, j := range successors(i, ins) {
			reach[j] = true
			preds[j]++
		}
		if in, ok := ins.(bpf.LoadScratch); ok {
			readsM[in.N] = true
		}
	}
	live := liveness(insts)

	t := translator{labelled: make([]bool, n)}
	for i, ins := range insts {
		if !reach[i] {
			continue
		}
		start := len(t.out)
		// Where paths join, the verifier's states of A, X and M[] (exact
		// values where the program computed constants) differ from path to
		// path, so it cannot prune them: a program counting matches makes it
		// walk a number of paths quadratic in its length, over its limit of
		// a million instructions. Dividing by R9 = 1 keeps a value and
		// leaves the verifier an unknown scalar, the same on every path.
		// (Linux 6.18's verifier follows constants through everything but
		// division; should a later one follow that too, only programs with
		// very many paths suffer, as TestEBPFManyPaths would show.)
		if preds[i] > 1 {
			t.widen(live[i])
		}
		if err := t.translate(i, ins, p.raw[i]); err != nil {
			return nil, fmt.Errorf("bpf: instruction %d (%v): %w", i, ins, err)
		}
		if t.labelled[i] {
			t.out[start] = t.out[start].WithSymbol(label(i))
		}
	}

	// The VM starts with A, X and M[] at 0; the verifier refuses reading
	// registers or stack never written.
	pro := asm.Instructions{asm.Mov.Imm32(regA, 0), asm.Mov.Imm32(regX, 0)}
	for m, read := range readsM {
		if read {
			pro = append(pro, asm.StoreImm(asm.R10, scratch(m), 0, asm.Word))
		}
	}
	// Numbers the verifier does not know: it tracks constants through
	// every operation but division (see widen and loadAbs).
	pro = append(pro,
		asm.Mov.Imm32(regOne, 1),
		asm.Div.Reg32(regOne, regOne),
		asm.Mov.Reg32(regZero, regOne),
		asm.And.Imm32(regZero, 2))
	// The verifier refuses code no path reaches, judged by the jumps alone:
	// the embedding program's code after a label the block never jumps to
	// would be that. A jump the verifier sees is never taken (A is 0 here)
	// makes both labels reachable for every program.
	refs := map[string]bool{}
	for _, ins := range t.out {
		refs[ins.Reference()] = true
	}
	for _, l := range []string{AcceptLabel, RefuseLabel} {
		if !refs[l] {
			pro = append(pro, asm.JNE.Imm32(regA, 0, l))
		}
	}
	out := append(pro, t.out...)
	if len(out) > MaxBlock {
		return nil, fmt.Errorf("bpf: %d eBPF instructions, more than %d: %w", len(out), MaxBlock, ErrNotTranslatable)
	}
	return out, nil
}

// successors are the instructions that may run after instruction i.
func successors(i int, ins bpf.Instruction) []int {
	switch in := ins.(type) {
	case bpf.Jump:
		return []int{i + 1 + int(in.Skip)}
	case bpf.JumpIf:
		return []int{i + 1 + int(in.SkipTrue), i + 1 + int(in.SkipFalse)}
	case bpf.JumpIfX:
		return []int{i + 1 + int(in.SkipTrue), i + 1 + int(in.SkipFalse)}
	case bpf.RetA, bpf.RetConstant:
		return nil
	case bpf.LoadAbsolute:
		if alwaysOut(in.Off, in.Size) {
			return nil
		}
	case bpf.LoadIndirect:
		if alwaysOut(in.Off, in.Size) {
			return nil
		}
	case bpf.LoadMemShift:
		if alwaysOut(in.Off, 1) {
			return nil
		}
	}
	return []int{i + 1}
}

// vars is a set of the classic machine's variables: A, X and M[0..15].
type vars uint32

const (
	varA vars = 1 << iota
	varX
	varM0 // M[n] is varM0<<n
)

func varOf(r bpf.Register) vars {
	if r == bpf.RegX {
		return varX
	}
	return varA
}

// liveness returns, for each instruction, the variables read before they
// are written on some path from it (jumps only go forward: one backward
// pass does).
func liveness(insts []bpf.Instruction) []vars {
	live := make([]vars, len(insts)+1)
	for i := len(insts) - 1; i >= 0; i-- {
		var out vars
		for _, j := range successors(i, insts[i]) {
			out |= live[j]
		}
		var use, def vars
		switch in := insts[i].(type) {
		case bpf.LoadConstant:
			def = varOf(in.Dst)
		case bpf.LoadScratch:
			use, def = varM0<<in.N, varOf(in.Dst)
		case bpf.StoreScratch:
			use, def = varOf(in.Src), varM0<<in.N
		case bpf.LoadAbsolute, bpf.LoadExtension:
			def = varA
		case bpf.LoadIndirect:
			use, def = varX, varA
		case bpf.LoadMemShift:
			def = varX
		case bpf.ALUOpConstant, bpf.NegateA, bpf.JumpIf, bpf.RetA:
			use = varA
		case bpf.ALUOpX, bpf.JumpIfX:
			use = varA | varX
		case bpf.TAX:
			use, def = varA, varX
		case bpf.TXA:
			use, def = varX, varA
		}
		live[i] = use | out&^def
	}
	return live
}

// widen hides the values of the live variables from the verifier (see
// EBPF).
func (t *translator) widen(live vars) {
	if live&varA != 0 {
		t.emit(asm.Div.Reg32(regA, regOne))
	}
	if live&varX != 0 {
		t.emit(asm.Div.Reg32(regX, regOne))
	}
	for m := range 16 {
		if live&(varM0<<m) != 0 {
			t.emit(asm.LoadMem(regTmp, asm.R10, scratch(m), asm.Word),
				asm.Div.Reg32(regTmp, regOne),
				asm.StoreMem(asm.R10, scratch(m), regTmp, asm.Word))
		}
	}
}

// alwaysOut reports whether a load of size bytes at off (plus X, which is
// never negative) is past the end of every frame. Negative offsets (the
// kernel's SKF_* areas) are not decided here: EBPF refuses them.
func alwaysOut(off uint32, size int) bool {
	return off < 0x80000000 && uint64(off)+uint64(size) > maxLoadEnd
}

func label(i int) string { return fmt.Sprintf("cbpf_%d", i) }

func scratch(m int) int16 { return int16(scratchOff + 4*m) }

type translator struct {
	out      asm.Instructions
	labelled []bool // classic instructions some jump refers to
}

func (t *translator) emit(ins ...asm.Instruction) { t.out = append(t.out, ins...) }

// to returns the label of classic instruction j, which a jump refers to.
func (t *translator) to(j int) string {
	t.labelled[j] = true
	return label(j)
}

func reg(r bpf.Register) asm.Register {
	if r == bpf.RegX {
		return regX
	}
	return regA
}

var aluOps = map[bpf.ALUOp]asm.ALUOp{
	bpf.ALUOpAdd: asm.Add, bpf.ALUOpSub: asm.Sub, bpf.ALUOpMul: asm.Mul, bpf.ALUOpDiv: asm.Div,
	bpf.ALUOpOr: asm.Or, bpf.ALUOpAnd: asm.And, bpf.ALUOpShiftLeft: asm.LSh,
	bpf.ALUOpShiftRight: asm.RSh, bpf.ALUOpMod: asm.Mod, bpf.ALUOpXor: asm.Xor,
}

// translate emits classic instruction i, decoded as the VM decodes it.
func (t *translator) translate(i int, ins bpf.Instruction, raw bpf.RawInstruction) error {
	switch in := ins.(type) {
	case bpf.LoadConstant:
		t.emit(asm.Mov.Imm32(reg(in.Dst), int32(in.Val)))
	case bpf.LoadScratch:
		t.emit(asm.LoadMem(reg(in.Dst), asm.R10, scratch(in.N), asm.Word))
	case bpf.StoreScratch:
		t.emit(asm.StoreMem(asm.R10, scratch(in.N), reg(in.Src), asm.Word))
	case bpf.LoadAbsolute:
		return t.loadAbs(regA, in.Off, in.Size)
	case bpf.LoadIndirect:
		return t.loadInd(in.Off, in.Size)
	case bpf.LoadMemShift:
		if err := t.loadAbs(regX, in.Off, 1); err != nil || alwaysOut(in.Off, 1) {
			return err // nothing after an unconditional refuse: dead code
		}
		t.emit(asm.And.Imm32(regX, 0xf), asm.LSh.Imm32(regX, 2))
	case bpf.LoadExtension:
		// The VM knows one extension, the length, which it also decodes
		// from ld [SKF_AD_OFF+1]; only the real "ld len" is that.
		if in.Num != bpf.ExtLen || raw.Op&0xe0 != 0x80 {
			return fmt.Errorf("the kernel's ancillary load %d: %w", in.Num, ErrNotTranslatable)
		}
		t.emit(asm.Mov.Reg(regA, regEnd), asm.Sub.Reg(regA, regData))
	case bpf.ALUOpConstant:
		op, ok := aluOps[in.Op]
		if !ok {
			return fmt.Errorf("unknown ALU operation")
		}
		// eBPF refuses 32-bit shifts by 32 or more; Go's give 0.
		if (op == asm.LSh || op == asm.RSh) && in.Val >= 32 {
			t.emit(asm.Mov.Imm32(regA, 0))
			break
		}
		t.emit(op.Imm32(regA, int32(in.Val))) // New refused division by a zero K
	case bpf.ALUOpX:
		op, ok := aluOps[in.Op]
		if !ok {
			return fmt.Errorf("unknown ALU operation")
		}
		switch op {
		case asm.Div, asm.Mod:
			// eBPF gives 0 or A; the VM stops the program.
			t.emit(asm.JEq.Imm32(regX, 0, RefuseLabel), op.Reg32(regA, regX))
		case asm.LSh, asm.RSh:
			// eBPF's result for shifts by 32 or more is undefined.
			zero := label(i) + "_zero"
			t.emit(asm.JGT.Imm32(regX, 31, zero),
				op.Reg32(regA, regX),
				asm.Ja.Label(t.to(i+1)),
				asm.Mov.Imm32(regA, 0).WithSymbol(zero))
		default:
			t.emit(op.Reg32(regA, regX))
		}
	case bpf.NegateA:
		t.emit(asm.Neg.Imm32(regA, 0))
	case bpf.Jump:
		t.emit(asm.Ja.Label(t.to(i + 1 + int(in.Skip))))
	case bpf.JumpIf:
		t.jump(i, in.Cond, in.SkipTrue, in.SkipFalse, func(op asm.JumpOp, l string) asm.Instruction {
			return op.Imm32(regA, int32(in.Val), l)
		})
	case bpf.JumpIfX:
		t.jump(i, in.Cond, in.SkipTrue, in.SkipFalse, func(op asm.JumpOp, l string) asm.Instruction {
			return op.Reg32(regA, regX, l)
		})
	case bpf.TAX:
		t.emit(asm.Mov.Reg32(regX, regA))
	case bpf.TXA:
		t.emit(asm.Mov.Reg32(regA, regX))
	case bpf.RetConstant:
		if in.Val == 0 {
			t.emit(asm.Ja.Label(RefuseLabel))
		} else {
			t.emit(asm.Ja.Label(AcceptLabel))
		}
	case bpf.RetA:
		t.emit(asm.JEq.Imm32(regA, 0, RefuseLabel), asm.Ja.Label(AcceptLabel))
	default:
		return fmt.Errorf("not a classic BPF instruction") // New refused these
	}
	return nil
}

var jumpOps = map[bpf.JumpTest]asm.JumpOp{
	bpf.JumpEqual: asm.JEq, bpf.JumpNotEqual: asm.JNE, bpf.JumpGreaterThan: asm.JGT,
	bpf.JumpLessThan: asm.JLT, bpf.JumpGreaterOrEqual: asm.JGE, bpf.JumpLessOrEqual: asm.JLE,
	bpf.JumpBitsSet: asm.JSet,
}

// jump emits a conditional jump; cmp builds the 32-bit comparison.
func (t *translator) jump(i int, cond bpf.JumpTest, skipTrue, skipFalse uint8, cmp func(asm.JumpOp, string) asm.Instruction) {
	yes, no := i+1+int(skipTrue), i+1+int(skipFalse)
	op, ok := jumpOps[cond]
	if cond == bpf.JumpBitsNotSet {
		op, ok, yes, no = asm.JSet, true, no, yes
	}
	if !ok || yes == no {
		// Both ways lead to the same place (x/net decodes every condition
		// a classic jump can hold, so !ok does not happen).
		t.emit(asm.Ja.Label(t.to(no)))
		return
	}
	t.emit(cmp(op, t.to(yes)))
	if no != i+1 {
		t.emit(asm.Ja.Label(t.to(no)))
	}
}

// loadAbs loads size bytes at the frame's offset off into dst (big-endian,
// as classic BPF reads the frame), or refuses the frame if they are past
// its end.
func (t *translator) loadAbs(dst asm.Register, off uint32, size int) error {
	if off >= 0x80000000 {
		return fmt.Errorf("negative offset: %w", ErrNotTranslatable)
	}
	if alwaysOut(off, size) {
		t.emit(asm.Ja.Label(RefuseLabel))
		return nil
	}
	// tmp = data+off+size <= data_end proves the bytes to the verifier;
	// the load reads back from tmp, within the 16-bit offset. Adding
	// regZero makes tmp a pointer of its own to the verifier, so the
	// bytes proven stay with it, not with R6: paths that joined after
	// proving different lengths look the same to it (see widen).
	t.emit(asm.Mov.Reg(regTmp, regZero),
		asm.Add.Reg(regTmp, regData),
		asm.Add.Imm(regTmp, int32(off)+int32(size)),
		asm.JGT.Reg(regTmp, regEnd, RefuseLabel),
		asm.LoadMem(dst, regTmp, int16(-size), sizeOf(size)))
	t.swap(dst, size)
	return nil
}

// loadInd loads size bytes at X+off into A.
func (t *translator) loadInd(off uint32, size int) error {
	if off >= 0x80000000 {
		return fmt.Errorf("negative offset: %w", ErrNotTranslatable)
	}
	if alwaysOut(off, size) {
		t.emit(asm.Ja.Label(RefuseLabel))
		return nil
	}
	// X+off is bounded before it goes into the packet pointer, so that
	// the verifier can follow the bounds check after it.
	t.emit(asm.Mov.Reg(regTmp, regX)) // X is zero-extended: X+off does not wrap
	if off != 0 {
		t.emit(asm.Add.Imm(regTmp, int32(off)))
	}
	t.emit(asm.JGT.Imm(regTmp, int32(maxLoadEnd-size), RefuseLabel),
		asm.Add.Reg(regTmp, regData),
		asm.Add.Imm(regTmp, int32(size)),
		asm.JGT.Reg(regTmp, regEnd, RefuseLabel),
		asm.LoadMem(regA, regTmp, int16(-size), sizeOf(size)))
	t.swap(regA, size)
	return nil
}

func sizeOf(size int) asm.Size {
	switch size {
	case 4:
		return asm.Word
	case 2:
		return asm.Half
	}
	return asm.Byte
}

// swap turns a loaded big-endian value into the host's order (a no-op for
// bytes; be16 and be32 also zero the upper bits).
func (t *translator) swap(dst asm.Register, size int) {
	if size > 1 {
		t.emit(asm.HostTo(asm.BE, dst, sizeOf(size)))
	}
}
