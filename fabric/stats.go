package fabric

import (
	"fmt"
	"sync/atomic"
	"time"

	"github.com/umlswitch/umlswitch/frame"
)

// DropReason says why a frame was not forwarded. The zero value is invalid.
type DropReason uint8

const (
	dropInvalid      DropReason = iota
	DropEmpty                   // zero-length datagram: never forwarded, it kills a UML interface
	DropRunt                    // shorter than an Ethernet header
	DropOversize                // longer than the ingress port's largest frame
	DropTxOversize              // longer than this egress port's largest frame
	DropHairpin                 // destination was learned on the ingress port
	DropTxFull                  // destination stayed full past the hold bound
	DropTxError                 // destination refused the frame (peer gone, ...)
	DropDecap                   // encapsulation malformed, truncated or not as configured
	DropAuth                    // encapsulation carried the wrong key or cookie
	DropFiltered                // the port's BPF filter refused it in the kernel
	DropRxOverrun               // the kernel's receive queue for the port was full
	DropSlowReceiver            // destination was full and slow: nobody waits for it (slow.go)
	DropSplitHorizon            // destination is in the ingress port's split horizon group
	DropIsolated                // ingress and destination ports are both isolated
	DropMACLimit                // a new source address on a port that learned its mac_limit
	DropStorm                   // a flooded frame past the port's storm= rate
	DropLinkLocal               // a link-local frame (STP, LACP, LLDP) on a port with link_local=0
	DropLoss                    // lost on purpose by the port's loss= impairment
	DropRate                    // the port's impairment queue (rate=, delay=) was full
	DropVLANMismatch            // a tagged frame on an access port, an untagged one on a trunk without native=
	DropVLANFiltered            // a frame of a VLAN the port does not carry
	DropUnreachable             // the destination had no route (a tunnel's peer): the rest of the batch went too
	DropLinkDown                // the port's link is down (link=down): nothing comes in or goes out
	NumDropReasons
)

var dropNames = [NumDropReasons]string{"invalid", "empty", "runt", "oversize", "tx-oversize", "hairpin", "tx-full", "tx-error",
	"decap", "bad-key", "filtered", "rx-overrun", "slow-receiver", "split-horizon", "isolated", "mac-limit", "storm", "link-local", "loss", "rate",
	"vlan-mismatch", "vlan-filtered", "unreachable", "link-down"}

// KernelDropper is implemented by ports whose frames can be dropped in the
// kernel before the switch reads them (a socket filter, a full queue). The
// switch adds what KernelDrops reports, as running totals per reason, to the
// port's counters whenever it takes a snapshot.
type KernelDropper interface {
	KernelDrops(totals *[NumDropReasons]uint64)
}

// Rejected is what a transport puts in Vector.Sizes for a frame it read for
// a port but would not pass on (a wrong key, a malformed header): the
// switch counts it on that port under reason r instead of forwarding it.
func Rejected(r DropReason) int { return -int(r) }

func (r DropReason) String() string {
	if r < NumDropReasons {
		return dropNames[r]
	}
	return fmt.Sprintf("DropReason(%d)", uint8(r))
}

// counters are one port's statistics, updated with atomics once per batch
// by whichever reader touched the port. Padding keeps two ports' counters off
// one cache line.
type counters struct {
	_        [64]byte
	rxFrames atomic.Uint64
	rxBytes  atomic.Uint64
	txFrames atomic.Uint64
	txBytes  atomic.Uint64
	drops    [NumDropReasons]atomic.Uint64
	stalls   atomic.Uint64 // holds that ran out: the port took nothing for TxHold
	slowed   atomic.Uint64 // times the port was found slow (slow.go)
	held     atomic.Uint64 // nanoseconds senders waited for the port to take frames
	_        [64]byte
}

func (c *counters) drop(r DropReason, n int) { c.drops[r].Add(uint64(n)) }

// PortStats is a snapshot of one port's counters.
type PortStats struct {
	ID       frame.PortID
	Name     string
	RxFrames uint64
	RxBytes  uint64
	TxFrames uint64
	TxBytes  uint64
	Drops    [NumDropReasons]uint64 // indexed by DropReason
	Stalls   uint64                 // times it took nothing for the hold bound
	Slowed   uint64                 // times it was found slow and stopped holding senders
	Held     time.Duration          // time senders waited for it (backpressure)
}

// Dropped is the total of all drop reasons.
func (s PortStats) Dropped() uint64 {
	var t uint64
	for _, d := range s.Drops {
		t += d
	}
	return t
}

func (c *counters) snapshot(id frame.PortID, name string, p Port) PortStats {
	s := PortStats{ID: id, Name: name,
		RxFrames: c.rxFrames.Load(), RxBytes: c.rxBytes.Load(),
		TxFrames: c.txFrames.Load(), TxBytes: c.txBytes.Load(),
		Stalls: c.stalls.Load(), Slowed: c.slowed.Load(), Held: time.Duration(c.held.Load())}
	for i := range c.drops {
		s.Drops[i] = c.drops[i].Load()
	}
	if k, ok := p.(KernelDropper); ok {
		var kd [NumDropReasons]uint64
		k.KernelDrops(&kd)
		for i := range kd {
			s.Drops[i] += kd[i]
		}
	}
	return s
}

// dropSummary lists the non-zero drops for a log line.
func (s PortStats) dropSummary() string {
	out := ""
	for r := DropReason(1); r < NumDropReasons; r++ {
		if s.Drops[r] != 0 {
			if out != "" {
				out += " "
			}
			out += fmt.Sprintf("%s=%d", r, s.Drops[r])
		}
	}
	if out == "" {
		return "none"
	}
	return out
}
