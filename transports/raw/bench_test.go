package raw

import (
	"errors"
	"fmt"
	"runtime"
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

// threadCPU is the calling thread's CPU time so far.
func threadCPU() time.Duration {
	var ru unix.Rusage
	unix.Getrusage(unix.RUSAGE_THREAD, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkReceive measures a port's receive side on a veth, with
// recvmmsg and with the TPACKET_V3 ring: a goroutine floods the far end
// with sendmmsg (the kernel delivers to the port's socket on that
// goroutine's CPU) while the benchmark reads batches of 64. It reports
// ns/frame of wall time (the reader's pace), cpu-ns/frame of the reading
// thread (system calls and copies included) and the share of sent frames
// the port's socket dropped.
func BenchmarkReceive(b *testing.B) {
	for _, k := range []struct {
		name string
		kind
	}{{"recvmmsg", kind{XDPOff, RingOff}}, {"ring", kind{XDPOff, RingOn}}} {
		for _, size := range benchSizes {
			b.Run(fmt.Sprintf("%s/%d", k.name, size), func(b *testing.B) { benchReceive(b, k.kind, size) })
		}
	}
}

func benchReceive(b *testing.B, k kind, size int) {
	ns := vethPair(b)
	p := openIn(b, ns, Config{Options: k.options("port"), Common: portkind.Common{Depth: 64}})
	var peer int
	if err := ns.Do(func() (err error) { peer, err = packetsock.Open("peer"); return err }); err != nil {
		b.Fatal(err)
	}
	defer unix.Close(peer)
	stop, sentc := make(chan struct{}), make(chan int)
	go func() {
		tx := mmsg.NewBatch(64, 1)
		f := ethertype(1, 0x88b5, size)
		for i := range 64 {
			tx.SetBuf(i, 0, f)
		}
		sent := 0
		for {
			select {
			case <-stop:
				sentc <- sent
				return
			default:
			}
			if n, err := tx.Send(peer, 0, 64, unix.MSG_DONTWAIT); err == nil {
				sent += n
			}
		}
	}()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	r := p.Receivers(1)[0]
	v := frame.NewVector(64, p.MaxFrame())
	for range 100 { // warm up, and check the frames
		n, err := r.Receive(v)
		if err != nil || n == 0 || v.Sizes[0] != size {
			b.Fatalf("Receive = %d, %v (size %d)", n, err, v.Sizes[0])
		}
	}
	var before [fabric.NumDropReasons]uint64
	p.(fabric.KernelDropper).KernelDrops(&before)
	got, cpu := 0, threadCPU()
	b.ResetTimer()
	for b.Loop() {
		n, err := r.Receive(v)
		if err != nil {
			b.Fatal(err)
		}
		got += n
	}
	b.StopTimer()
	cpu = threadCPU() - cpu
	var after [fabric.NumDropReasons]uint64
	p.(fabric.KernelDropper).KernelDrops(&after)
	close(stop)
	sent := <-sentc
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(got), "ns/frame")
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(got), "cpu-ns/frame")
	b.ReportMetric(float64(after[fabric.DropRxOverrun]-before[fabric.DropRxOverrun])/float64(max(sent, 1)), "drop-ratio")
}

// BenchmarkWrite measures a port's transmit side on a veth, with sendmmsg
// and with the transmit ring: batches of 64 frames go out, and the
// kernel's work on them (the veth's receive side, where the far end's
// stack drops them) is done on the writing thread, as it is in the
// switch. It reports ns/frame and cpu-ns/frame of the writing thread.
func BenchmarkWrite(b *testing.B) {
	for _, k := range []struct {
		name string
		kind
		tx string
	}{{"sendmmsg", kind{XDPOff, RingOff}, "0"}, {"txring", kind{XDPOff, RingOn}, "1"}} {
		for _, size := range benchSizes {
			b.Run(fmt.Sprintf("%s/%d", k.name, size), func(b *testing.B) {
				old := txRing
				txRing = k.tx
				defer func() { txRing = old }()
				benchWrite(b, k.kind, size)
			})
		}
	}
}

func benchWrite(b *testing.B, k kind, size int) {
	ns := vethPair(b)
	p := openIn(b, ns, Config{Options: k.options("port"), Common: portkind.Common{Depth: 64}})
	if pp, ok := p.(*Port); !ok || (txRing == "1") != (pp.tx != nil) {
		b.Fatalf("the port does not use the transmit ring as asked (%q)", txRing)
	}
	batch := make([][]byte, 64)
	for i := range batch {
		batch[i] = ethertype(1, 0x88b5, size)
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	ops, waits, cpu := 0, 0, threadCPU()
	b.ResetTimer()
	for b.Loop() {
		ops++
		for done := 0; done < len(batch); {
			n, err := p.Write(batch[done:])
			done += n
			if errors.Is(err, fabric.ErrWouldBlock) {
				waits++
				p.WaitWritable(time.Second)
			} else if err != nil {
				b.Fatal(err)
			}
		}
	}
	b.StopTimer()
	cpu = threadCPU() - cpu
	frames := float64(ops * len(batch))
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/frames, "ns/frame")
	b.ReportMetric(float64(cpu.Nanoseconds())/frames, "cpu-ns/frame")
	b.ReportMetric(float64(waits)/float64(ops), "waits/op")
}
