package vxlan

import (
	"fmt"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/umlswitch/umlswitch/frame"
	"github.com/umlswitch/umlswitch/internal/nstest"
	"github.com/umlswitch/umlswitch/transports/porttest"
)

// BenchmarkFloodToVTEPs: what a flood costs a switch whose VXLAN ports lead
// to N remote VTEPs, with its GSO and GRO off and on. One peer sends
// broadcast frames one datagram each, as a UML behind the switch does, and
// the switch sends a copy of each to the N other peers. Each op is 64
// frames of 64 bytes; ns/copy is ns/frame shared among the N copies. The
// time includes the peers' receiving, as BenchmarkOffload's does.
func BenchmarkFloodToVTEPs(b *testing.B) {
	for _, vteps := range []int{1, 10, 100} {
		for _, offload := range []bool{false, true} {
			name := fmt.Sprintf("vteps=%d/switch=plain", vteps)
			if offload {
				name = fmt.Sprintf("vteps=%d/switch=offload", vteps)
			}
			b.Run(name, func(b *testing.B) { benchFlood(b, vteps, offload) })
		}
	}
}

func benchFlood(b *testing.B, vteps int, offload bool) {
	const depth, size = 64, 64
	ns := nstest.New(b)
	sw, tb := porttest.NewTunnelSwitch(b)
	tb.SetOffload(offload)
	// The sender, then the VTEPs, on 127.0.0.3 onwards: all of 127/8 is
	// local in the namespace, so each peer has an address of its own (the
	// switch tells its ports apart by the peer's address).
	addrs := []netip.Addr{peer3}
	for len(addrs) <= vteps {
		addrs = append(addrs, addrs[len(addrs)-1].Next())
	}
	// GRO on the VTEPs, as the kernel's VXLAN sockets have: with it, lo
	// hands over a GSO message whole instead of segmenting it.
	peers := benchPeers(b, ns, tb, sw, true, addrs...)
	from, last, others := peers[0], peers[vteps], peers[1:vteps]

	tx := from.plain(porttest.Ether(frame.Broadcast, mac(1), size, 1), depth)
	rx := newBenchRx(b, depth, true)
	// The last VTEP's first copy comes after the switch has sent the
	// batch to all the others: tens of ms with 100 and the CPU shared.
	rx.wait = time.Second
	const per = HeaderLen + size
	flood := func() int { // one op; returns the bytes the VTEPs received
		sendAll(b, tx, from.fd, depth)
		// The switch writes each batch's copies port by port, in the
		// order the ports were attached, and lo delivers them as it
		// sends: when the last VTEP has all, the others have theirs.
		// Draining them keeps their sockets from overflowing.
		got := rx.await(last.fd, depth*per)
		for _, p := range others {
			got += rx.drain(p.fd)
		}
		return got
	}
	// The switch allocates scratch for each port in its first floods:
	// once per P, as it keeps it in sync.Pools. Warm them up.
	for range 4 * runtime.GOMAXPROCS(0) {
		flood()
	}
	var sent, got int // frames sent; bytes the VTEPs received
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		got += flood()
		sent += depth
	}
	b.StopTimer()
	for _, p := range peers[1:] {
		got += rx.drain(p.fd) // copies that came after their op's wait
	}
	// drop-ratio is the share of copies lost.
	porttest.ReportFrames(b, depth, sent*vteps, sent*vteps-got/per)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*depth*vteps), "ns/copy")
}
