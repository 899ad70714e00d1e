package bpf

import (
	"golang.org/x/net/bpf"

	"github.com/umlswitch/umlswitch/frame"
)

// EtherTypes keeps untagged frames whose EtherType is one of types.
func EtherTypes(types ...uint16) (*Program, error) {
	prog := []bpf.Instruction{bpf.LoadAbsolute{Off: 12, Size: 2}}
	for i, t := range types {
		// On a match jump to the accept at the end; the last miss falls
		// through to the reject before it.
		prog = append(prog, bpf.JumpIf{Cond: bpf.JumpEqual, Val: uint32(t), SkipTrue: uint8(len(types) - i)})
	}
	return assemble(append(prog, bpf.RetConstant{Val: 0}, bpf.RetConstant{Val: acceptAll}))
}

// VLAN keeps frames that carry an 802.1Q tag with id in their bytes. (On a
// Linux receive path the kernel moves the tag out of the frame before a
// socket filter runs; tcpdump's "vlan" uses extensions for that.)
func VLAN(id uint16) (*Program, error) {
	return assemble([]bpf.Instruction{
		bpf.LoadAbsolute{Off: 12, Size: 2},
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: 0x8100, SkipTrue: 3},
		bpf.LoadAbsolute{Off: 14, Size: 2},
		bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: 0x0fff},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: uint32(id), SkipTrue: 1},
		bpf.RetConstant{Val: 0},
		bpf.RetConstant{Val: acceptAll},
	})
}

// NotFrom drops frames whose source address is mac, as UML's default raw
// filter does for its own frames echoed back.
func NotFrom(mac frame.MAC) (*Program, error) {
	hi := uint32(mac[0])<<8 | uint32(mac[1])
	lo := uint32(mac[2])<<24 | uint32(mac[3])<<16 | uint32(mac[4])<<8 | uint32(mac[5])
	return assemble([]bpf.Instruction{
		bpf.LoadAbsolute{Off: 8, Size: 4},
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: lo, SkipTrue: 2},
		bpf.LoadAbsolute{Off: 6, Size: 2},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: hi, SkipTrue: 1},
		bpf.RetConstant{Val: acceptAll},
		bpf.RetConstant{Val: 0},
	})
}

func assemble(prog []bpf.Instruction) (*Program, error) {
	raw, err := bpf.Assemble(prog)
	if err != nil {
		return nil, err
	}
	return New(raw)
}
