package raw

import (
	"fmt"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/umlswitch/umlswitch/fabric"
	"github.com/umlswitch/umlswitch/frame"
	"github.com/umlswitch/umlswitch/internal/mmsg"
	"github.com/umlswitch/umlswitch/internal/packetsock"
	"github.com/umlswitch/umlswitch/transports/portkind"
)

var benchSizes = []int{64, 1500}

// BenchmarkReceive measures what a port's receive side costs the switch,
// with recvmmsg and with the TPACKET_V3 ring, on a veth. Each op, with the
// timer stopped, the far end sends rxBurst frames (fewer than either the
// socket buffer or the ring holds) and the kernel delivers them; then the
// timer runs while the port reads them all, batches of 64 at a time, as
// the switch would. ns/frame is the reading alone: system calls, copies
// and the walk of the ring, none of them on the sender's side.
func BenchmarkReceive(b *testing.B) {
	for _, k := range []struct {
		name string
		kind
	}{{"recvmmsg", kind{XDPOff, RingOff}}, {"ring_v3", kind{XDPOff, RingBlocks}}, {"ring_v2", kind{XDPOff, RingFrames}}} {
		for _, size := range benchSizes {
			b.Run(fmt.Sprintf("%s/%d", k.name, size), func(b *testing.B) { benchReceive(b, k.kind, size) })
		}
	}
}

// rxBurst frames fit the port's socket buffer (4 MiB) and its ring (32
// blocks of 128 KiB) at either size.
const rxBurst = 1024

func benchReceive(b *testing.B, k kind, size int) {
	ns := vethPair(b)
	p := openIn(b, ns, Config{Options: k.options("port"), Common: portkind.Common{Depth: 64}})
	var peer int
	if err := ns.Do(func() (err error) { peer, err = packetsock.Open("peer"); return err }); err != nil {
		b.Fatal(err)
	}
	defer unix.Close(peer)
	tx := mmsg.NewBatch(64, 1)
	f := ethertype(1, 0x88b5, size)
	for i := range 64 {
		tx.SetBuf(i, 0, f)
	}
	r := p.Receivers(1)[0]
	v := frame.NewVector(64, p.MaxFrame())
	kd := p.(fabric.KernelDropper)
	var before, after [fabric.NumDropReasons]uint64
	kd.KernelDrops(&before)
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		for sent := 0; sent < rxBurst; {
			n, err := tx.Send(peer, 0, 64, unix.MSG_DONTWAIT)
			if err != nil {
				b.Fatal(err)
			}
			sent += n
		}
		// Long enough for the ring's retire timeout to hand over the
		// last block, part full.
		time.Sleep(3 * time.Millisecond)
		b.StartTimer()
		for got := 0; got < rxBurst; {
			n, err := r.Receive(v)
			if err != nil {
				b.Fatal(err)
			}
			if v.Sizes[0] != size {
				b.Fatalf("a frame of %d bytes", v.Sizes[0])
			}
			got += n
		}
	}
	b.StopTimer()
	kd.KernelDrops(&after)
	if d := after[fabric.DropRxOverrun] - before[fabric.DropRxOverrun]; d != 0 {
		b.Fatalf("%d frames dropped: the burst does not fit", d)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*rxBurst), "ns/frame")
}
