package fabric

import (
	"fmt"
	"testing"
	"time"

	"github.com/umlswitch/umlswitch/frame"
)

// loadBatch fills r's vector with 64 frames entering on ingress, addressed
// to dst (or to the broadcast address), as a reader would see them.
func loadBatch(r *rig, ingress int, dst frame.MAC, src frame.MAC) int {
	var batch []inFrame
	for i := 0; i < 64; i++ {
		batch = append(batch, inFrame{port: r.ids[ingress], data: mkFrame(dst, src, 64, 0)})
	}
	return load(r.v, batch)
}

func reportRate(b *testing.B, framesPerOp int) {
	b.ReportAllocs()
	nsPerFrame := float64(b.Elapsed().Nanoseconds()) / float64(b.N*framesPerOp)
	b.ReportMetric(nsPerFrame, "ns/frame")
	b.ReportMetric(1e3/nsPerFrame, "Mpps")
}

// BenchmarkForward measures the switching step alone: a 64-frame batch from
// one port, learned and looked up, handed to in-memory ports that discard
// it. One op is one batch.
func BenchmarkForward(b *testing.B) {
	cases := []struct {
		name  string
		ports int
		hub   bool
		flood bool
	}{
		{"unicast/2ports", 2, false, false},
		{"unicast/8ports", 8, false, false},
		{"unicast/64ports", 64, false, false},
		{"broadcast/8ports", 8, false, true},
		{"hub/8ports", 8, true, false},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			r := newNullRig(b, c.ports, Config{Hub: c.hub})
			src, dst := frame.MAC{2, 0, 0, 0, 0, 1}, frame.MAC{2, 0, 0, 0, 0, 2}
			// Teach the switch where dst is.
			r.fw.forward(r.v, loadBatch(r, 1, frame.Broadcast, dst))
			if c.flood {
				dst = frame.Broadcast
			}
			n := loadBatch(r, 0, dst, src)
			copies := 1
			if c.hub || c.flood {
				copies = c.ports - 1
			}
			b.ResetTimer()
			for b.Loop() {
				r.fw.forward(r.v, n)
			}
			reportRate(b, n)
			b.ReportMetric(float64(copies), "copies/frame")
		})
	}
}

// BenchmarkForwardParallel runs one reader per goroutine, each with its own
// port pair, as a switch with several busy port pairs does: run it with
// -cpu 1,2,4 to see the switching step use more cores.
func BenchmarkForwardParallel(b *testing.B) {
	const pairs = 16
	r := newNullRig(b, 2*pairs, Config{})
	macs := func(i int) frame.MAC { return frame.MAC{2, 0, 0, 0, byte(i >> 8), byte(i)} }
	for i := 0; i < 2*pairs; i++ { // every port learns its address
		r.fw.forward(r.v, loadBatch(r, i, frame.Broadcast, macs(i)))
	}
	var next int64
	var mu = make(chan struct{}, 1)
	mu <- struct{}{}
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		<-mu
		pair := int(next % pairs)
		next++
		mu <- struct{}{}
		fw, v := newForwarder(r.sw, 64), frame.NewVector(64, 1518)
		var batch []inFrame
		for i := 0; i < 64; i++ {
			batch = append(batch, inFrame{port: r.ids[2*pair], data: mkFrame(macs(2*pair+1), macs(2*pair), 64, 0)})
		}
		n := load(v, batch)
		for pb.Next() {
			fw.forward(v, n)
		}
	})
	reportRate(b, 64)
}

func ExampleDropReason() {
	for r := DropEmpty; r < NumDropReasons; r++ {
		fmt.Print(r, " ")
	}
	// Output: empty runt oversize tx-oversize hairpin tx-full tx-error decap bad-key filtered rx-overrun slow-receiver split-horizon isolated mac-limit storm link-local loss rate vlan-mismatch vlan-filtered unreachable link-down
}

// BenchmarkForwardScraped is BenchmarkForward's 8-port unicast case while
// an operator reads the switch every 10 ms as the control API and the
// metrics do (every port's counters, the MAC table's size and entries):
// readers take no lock forwarding takes, so the two cases should match.
func BenchmarkForwardScraped(b *testing.B) {
	for _, scraped := range []bool{false, true} {
		b.Run(map[bool]string{false: "quiet", true: "scraped-every-10ms"}[scraped], func(b *testing.B) {
			r := newNullRig(b, 8, Config{})
			src, dst := frame.MAC{2, 0, 0, 0, 0, 1}, frame.MAC{2, 0, 0, 0, 0, 2}
			r.fw.forward(r.v, loadBatch(r, 1, frame.Broadcast, dst))
			n := loadBatch(r, 0, dst, src)
			stop, done := make(chan struct{}), make(chan int)
			go func() {
				scrapes := 0
				t := time.NewTicker(10 * time.Millisecond)
				defer t.Stop()
				for {
					select {
					case <-stop:
						done <- scrapes
						return
					case <-t.C:
						if scraped {
							r.sw.Stats()
							r.sw.Default().Entries()
							r.sw.Default().Table().Len()
							scrapes++
						}
					}
				}
			}()
			b.ResetTimer()
			for b.Loop() {
				r.fw.forward(r.v, n)
			}
			b.StopTimer()
			close(stop)
			scrapes := <-done
			reportRate(b, n)
			b.ReportMetric(float64(scrapes), "scrapes")
		})
	}
}
