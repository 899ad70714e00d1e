package porttest

import (
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/umlswitch/umlswitch/frame"
	"github.com/umlswitch/umlswitch/internal/mmsg"
	"github.com/umlswitch/umlswitch/internal/pollfd"
)

// BenchPeer is one client of a switch under benchmark: a non-blocking
// socket and how it sends a frame (any header or address). Learn sends one
// frame to teach the switch where the peer is.
type BenchPeer struct {
	Fd   int
	Send func(b *mmsg.Batch, i int, f []byte) // point message i of b at f, as this peer sends it
	Per  int                                  // iovecs per message Send needs
}

// BenchSwitch measures a switch between two peers: each op sends a batch
// of depth 64-byte frames from one and receives them at the other. It
// reports Mpps, ns/frame, the share lost (counted, not waited for) and,
// with the switch in this process, allocations per batch, its goroutines'
// included.
func BenchSwitch(b *testing.B, from, to BenchPeer, fromMAC, toMAC frame.MAC) {
	const depth = 64
	learn := func(p BenchPeer, m frame.MAC) {
		lb := mmsg.NewBatch(1, p.Per)
		p.Send(lb, 0, ether(frame.Broadcast, m))
		lb.Send(p.Fd, 0, 1, unix.MSG_DONTWAIT)
	}
	learn(from, fromMAC)
	learn(to, toMAC)
	buf := make([]byte, 4096)
	pollfd.ReadTimeout(to.Fd, buf, time.Second)
	pollfd.ReadTimeout(from.Fd, buf, time.Second)

	f := ether(toMAC, fromMAC)
	tx, rx := mmsg.NewBatch(depth, from.Per), mmsg.NewBatch(depth, 1)
	for i := 0; i < depth; i++ {
		from.Send(tx, i, f)
		rx.SetBuf(i, 0, make([]byte, 4096))
	}
	pfd := [1]unix.PollFd{{Fd: int32(to.Fd), Events: unix.POLLIN}}
	var lost, sent int
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		for n := 0; n < depth; {
			m, err := tx.Send(from.Fd, n, depth, unix.MSG_DONTWAIT)
			if err != nil && err != unix.EAGAIN {
				b.Fatal(err)
			}
			n += m
		}
		for got := 0; got < depth; {
			m, err := rx.Recv(to.Fd, depth, unix.MSG_DONTWAIT)
			if err == unix.EAGAIN {
				if k, _ := unix.Poll(pfd[:], 100); k == 0 {
					lost += depth - got
					break
				}
				continue
			}
			if err != nil {
				b.Fatal(err)
			}
			got += m
		}
		sent += depth
	}
	b.StopTimer()
	ReportFrames(b, depth, sent, lost)
}

// ReportFrames reports a switch benchmark's ns/frame and Mpps for depth
// frames per op, and the share of the sent frames that were lost.
func ReportFrames(b *testing.B, depth, sent, lost int) {
	nsPerFrame := float64(b.Elapsed().Nanoseconds()) / float64(b.N*depth)
	b.ReportMetric(nsPerFrame, "ns/frame")
	b.ReportMetric(1e3/nsPerFrame, "Mpps")
	b.ReportMetric(float64(lost)/float64(max(sent, 1)), "drop-ratio")
}

func ether(dst, src frame.MAC) []byte {
	f := make([]byte, 64)
	copy(f, dst[:])
	copy(f[6:], src[:])
	f[12], f[13] = 0x88, 0xb5
	return f
}

// Plain is how a peer sends that needs no header: one iovec, the frame.
func Plain(b *mmsg.Batch, i int, f []byte) { b.SetBuf(i, 0, f) }

// WithHeader is how a tunnel peer sends: its header, then the frame.
func WithHeader(hdr []byte) func(b *mmsg.Batch, i int, f []byte) {
	return func(b *mmsg.Batch, i int, f []byte) { b.SetBuf(i, 0, hdr); b.SetBuf(i, 1, f) }
}
