package xsk

import (
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/umlswitch/umlswitch/internal/mmsg"
	"github.com/umlswitch/umlswitch/internal/packetsock"
)

// The benchmarks move batches of depth 60-byte frames across a veth
// between the peer's packet socket and "port", read or written either
// through AF_XDP or, for comparison, through an AF_PACKET socket with
// recvmmsg/sendmmsg as the raw port does. Each op is one batch; ns/frame
// includes the peer's half of the work (both halves share the CPUs), and
// port-ns/frame is the time spent in the port's own calls. Where the
// kernel does its part differs: the XDP program and the copy into the
// UMEM run in the peer's send (veth's NAPI runs there), while AF_PACKET's
// copy out of the skb runs in the port's recvmmsg.
const depth = 64

// benchPort is one way to read and write "port".
type benchPort struct {
	receive func() (int, error) // one non-blocking batch
	wait    func() bool         // false: nothing arrived for 100ms
	send    func([][]byte) int  // as many as it takes without waiting
	close   func()
}

func xdpPort(b *testing.B, e *env) benchPort {
	_, s := e.socket(b, Config{})
	bufs := make([][]byte, depth)
	for i := range bufs {
		bufs[i] = make([]byte, 2048)
	}
	sizes := make([]int, depth)
	return benchPort{
		receive: func() (int, error) { return s.Receive(bufs, 0, sizes), nil },
		wait:    func() bool { return s.Wait(100*time.Millisecond) == nil },
		send: func(f [][]byte) int {
			n, err := s.Transmit(f)
			if err != nil {
				b.Fatal(err)
			}
			if n == 0 {
				s.WaitWritable(100 * time.Millisecond)
			}
			return n
		},
		close: func() { s.Close() },
	}
}

// xdpGenericPort is xdpPort with the program in generic mode, as on an
// interface without native XDP.
func xdpGenericPort(b *testing.B, e *env) benchPort {
	saved := attachModes
	defer func() { attachModes = saved }()
	attachModes = saved[len(saved)-1:]
	return xdpPort(b, e)
}

func packetPort(b *testing.B, e *env) benchPort {
	var fd int
	if err := e.ns.Do(func() (err error) { fd, err = packetsock.Open("port"); return err }); err != nil {
		b.Fatal(err)
	}
	rx, tx := mmsg.NewBatch(depth, 1), mmsg.NewBatch(depth, 1)
	for i := 0; i < depth; i++ {
		rx.SetBuf(i, 0, make([]byte, 2048))
	}
	pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	return benchPort{
		receive: func() (int, error) {
			n, err := rx.Recv(fd, depth, unix.MSG_DONTWAIT)
			if err == unix.EAGAIN {
				return 0, nil
			}
			return n, err
		},
		wait: func() bool { n, _ := unix.Poll(pfd, 100); return n > 0 },
		send: func(f [][]byte) int {
			for i := range f {
				tx.SetBuf(i, 0, f[i])
			}
			n, err := tx.Send(fd, 0, len(f), unix.MSG_DONTWAIT)
			if err != nil && err != unix.EAGAIN && err != unix.ENOBUFS {
				b.Fatal(err)
			}
			return n
		},
		close: func() { unix.Close(fd) },
	}
}

func benchFrames() [][]byte {
	f := make([][]byte, depth)
	for i := range f {
		f[i] = testFrame(uint32(i), 0x88b5, 60)
	}
	return f
}

// BenchmarkReceive: the peer sends a batch, the port reads it.
func BenchmarkReceive(b *testing.B) {
	for _, kind := range []struct {
		name string
		open func(*testing.B, *env) benchPort
	}{{"xdp", xdpPort}, {"xdp-generic", xdpGenericPort}, {"afpacket", packetPort}} {
		b.Run(kind.name, func(b *testing.B) {
			e := newEnv(b, 0, 0)
			p := kind.open(b, e)
			defer p.close()
			frames := benchFrames()
			tx := mmsg.NewBatch(depth, 1)
			for i, f := range frames {
				tx.SetBuf(i, 0, f)
			}
			var sent, lost int
			var inPort time.Duration
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				for n := 0; n < depth; {
					m, err := tx.Send(e.peer, n, depth, unix.MSG_DONTWAIT)
					if err != nil && err != unix.EAGAIN && err != unix.ENOBUFS {
						b.Fatal(err)
					}
					n += m
				}
				for got := 0; got < depth; {
					start := time.Now()
					m, err := p.receive()
					inPort += time.Since(start)
					if err != nil {
						b.Fatal(err)
					}
					if m == 0 && !p.wait() {
						lost += depth - got
						break
					}
					got += m
				}
				sent += depth
			}
			reportFrames(b, sent, lost, inPort)
		})
	}
}

// BenchmarkTransmit: the port sends a batch, the peer reads it.
func BenchmarkTransmit(b *testing.B) {
	for _, kind := range []struct {
		name string
		open func(*testing.B, *env) benchPort
	}{{"xdp", xdpPort}, {"afpacket", packetPort}} {
		b.Run(kind.name, func(b *testing.B) {
			e := newEnv(b, 0, 0)
			p := kind.open(b, e)
			defer p.close()
			frames := benchFrames()
			rx := mmsg.NewBatch(depth, 1)
			for i := 0; i < depth; i++ {
				rx.SetBuf(i, 0, make([]byte, 2048))
			}
			pfd := []unix.PollFd{{Fd: int32(e.peer), Events: unix.POLLIN}}
			var sent, lost int
			var inPort time.Duration
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				start := time.Now()
				for n := 0; n < depth; {
					n += p.send(frames[n:])
				}
				inPort += time.Since(start)
				for got := 0; got < depth; {
					m, err := rx.Recv(e.peer, depth, unix.MSG_DONTWAIT)
					if err == unix.EAGAIN {
						if k, _ := unix.Poll(pfd, 100); k == 0 {
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
			reportFrames(b, sent, lost, inPort)
		})
	}
}

func reportFrames(b *testing.B, sent, lost int, inPort time.Duration) {
	b.StopTimer()
	ns := float64(b.Elapsed().Nanoseconds()) / float64(max(sent, 1))
	b.ReportMetric(ns, "ns/frame")
	b.ReportMetric(1e3/ns, "Mpps")
	b.ReportMetric(float64(lost)/float64(max(sent, 1)), "drop-ratio")
	b.ReportMetric(float64(inPort.Nanoseconds())/float64(max(sent, 1)), "port-ns/frame")
}
