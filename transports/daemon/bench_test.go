package daemon

import (
	"fmt"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/umlswitch/umlswitch/fabric"
	"github.com/umlswitch/umlswitch/frame"
	"github.com/umlswitch/umlswitch/internal/mmsg"
)

// BenchmarkSwitchOverSockets sends batches of 64 frames from one client
// through a real switch (fabric plus this transport) to another, over unix
// datagram sockets, with the client kinds UML and libvdeplug are. One op is
// one batch sent and received; allocs/op counts the switch's goroutines too.
func BenchmarkSwitchOverSockets(b *testing.B) {
	for _, vde := range []bool{false, true} {
		b.Run(map[bool]string{false: "uml-clients", true: "vde-clients"}[vde], func(b *testing.B) {
			s := benchSwitch(b)
			from, to := benchClient(b, s.tr.Path(), vde), benchClient(b, s.tr.Path(), vde)
			deadline := time.Now().Add(5 * time.Second)
			for len(s.sw.Stats()) < 2 && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
			const depth = 64
			// Learning: each sends one broadcast; both are then known.
			learn := func(c *Client, m frame.MAC) {
				c.Send(ether(frame.Broadcast, m, 60, 0))
			}
			learn(from, mac(1))
			learn(to, mac(2))
			buf := make([]byte, 2048)
			to.Recv(buf, time.Second)
			from.Recv(buf, time.Second)

			tx, rx := mmsg.NewBatch(depth, 1), mmsg.NewBatch(depth, 1)
			f := ether(mac(2), mac(1), 64, 1)
			for i := 0; i < depth; i++ {
				tx.SetBuf(i, 0, f)
				if !vde {
					tx.SetName(i, from.Remote[:])
				}
				rx.SetBuf(i, 0, make([]byte, 2048))
			}
			pfd := [1]unix.PollFd{{Fd: int32(to.Fd), Events: unix.POLLIN}}
			var lost, sentAll int
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				for sent := 0; sent < depth; {
					n, err := tx.Send(from.Fd, sent, depth, unix.MSG_DONTWAIT)
					if err != nil && err != unix.EAGAIN {
						b.Fatal(err)
					}
					sent += n
				}
				for got := 0; got < depth; {
					n, err := rx.Recv(to.Fd, depth, unix.MSG_DONTWAIT)
					if err == unix.EAGAIN {
						if m, _ := unix.Poll(pfd[:], 100); m == 0 {
							lost += depth - got // dropped by the switch: counted, not waited for
							break
						}
						continue
					}
					if err != nil {
						b.Fatal(err)
					}
					got += n
				}
				sentAll += depth
			}
			b.StopTimer()
			nsPerFrame := float64(b.Elapsed().Nanoseconds()) / float64(b.N*depth)
			b.ReportMetric(nsPerFrame, "ns/frame")
			b.ReportMetric(1e3/nsPerFrame, "Mpps")
			b.ReportMetric(float64(lost)/float64(sentAll), "drop-ratio")
		})
	}
}

type benchSwitchT struct {
	sw *fabric.Switch
	tr *Transport
}

func benchSwitch(b *testing.B) *benchSwitchT {
	sw := fabric.New(fabric.Config{Logger: quiet()})
	tr, err := Listen(Config{Path: fmt.Sprintf("%s/ctl", b.TempDir()), Logger: quiet()})
	if err != nil {
		b.Fatal(err)
	}
	tr.Start(sw)
	b.Cleanup(func() { tr.Close(); sw.Close() })
	return &benchSwitchT{sw: sw, tr: tr}
}

func benchClient(b *testing.B, ctl string, vde bool) *Client {
	c, err := Dial(ClientConfig{Ctl: ctl, ConnectBack: vde})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(c.Close)
	return c
}
