package stream

import (
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/umlswitch/umlswitch/fabric"
	"github.com/umlswitch/umlswitch/frame"
	"github.com/umlswitch/umlswitch/transports/portkind"
	"github.com/umlswitch/umlswitch/transports/porttest"
)

// BenchmarkStream: one QEMU sends batches of 64 frames of 64 bytes to
// another, each op one batch end to end; through a real switch with both on
// one stream listener, and through a bare relay that copies bytes from one
// socket pair to another (the ceiling of a stream hop: no framing, no
// switching).
func BenchmarkStream(b *testing.B) {
	b.Run("switch", func(b *testing.B) {
		sw := porttest.NewSwitch(b, fabric.Config{})
		tr := open(b, Config{Options: Options{Path: unixPath(b)}, Common: portkind.Common{Logger: porttest.Quiet()}})
		tr.Start(sw)
		sw.OnStop(func() { tr.Close() })
		from, to := dialUnix(b, tr.Path()), dialUnix(b, tr.Path())
		for deadline := time.Now().Add(5 * time.Second); len(sw.Stats()) < 2 && time.Now().Before(deadline); {
			time.Sleep(time.Millisecond)
		}
		// Teach the switch where both are.
		buf := make([]byte, 4096)
		from.send(porttest.Ether(frame.Broadcast, mac(1), 64, 0))
		to.recv(buf, time.Second)
		to.send(porttest.Ether(frame.Broadcast, mac(2), 64, 0))
		from.recv(buf, time.Second)
		benchStream(b, from, to)
	})
	b.Run("bare-relay", func(b *testing.B) {
		a, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			b.Fatal(err)
		}
		c, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			b.Fatal(err)
		}
		go func() { // a[1] -> c[0], until a[1] ends
			buf := make([]byte, 64<<10)
			for {
				n, err := unix.Read(a[1], buf)
				if n <= 0 || err != nil {
					unix.Close(c[0])
					return
				}
				for w := buf[:n]; len(w) > 0; {
					m, err := unix.Write(c[0], w)
					if err != nil {
						return
					}
					w = w[m:]
				}
			}
		}()
		b.Cleanup(func() { unix.Close(a[1]) })
		unix.SetNonblock(a[0], true)
		unix.SetNonblock(c[1], true)
		benchStream(b, newQEMU(b, a[0]), newQEMU(b, c[1]))
	})
}

func benchStream(b *testing.B, from, to *qemu) {
	const depth = 64
	f := porttest.Ether(mac(2), mac(1), 64, 1)
	batch := make([]byte, 0, depth*(prefixLen+len(f)))
	for range depth {
		batch = append(batch, record(f)...)
	}
	buf := make([]byte, 4096)
	lost, sent := 0, 0
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if err := from.writeRaw(batch); err != nil {
			b.Fatal(err)
		}
		for got := 0; got < depth; got++ {
			if _, err := to.recv(buf, 100*time.Millisecond); err != nil {
				lost += depth - got
				break
			}
		}
		sent += depth
	}
	b.StopTimer()
	porttest.ReportFrames(b, depth, sent, lost)
}
