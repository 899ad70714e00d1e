package daemon

import (
	"fmt"
	"testing"
	"time"

	"github.com/umlswitch/umlswitch/fabric"
	"github.com/umlswitch/umlswitch/internal/mmsg"
	"github.com/umlswitch/umlswitch/transports/portkind"
	"github.com/umlswitch/umlswitch/transports/porttest"
)

// BenchmarkSwitchOverSockets sends batches of 64 frames from one client
// through a real switch (fabric plus this transport) to another, over unix
// datagram sockets, with the client kinds UML and libvdeplug are.
func BenchmarkSwitchOverSockets(b *testing.B) {
	for _, vde := range []bool{false, true} {
		b.Run(map[bool]string{false: "uml-clients", true: "vde-clients"}[vde], func(b *testing.B) {
			sw := fabric.New(fabric.Config{Logger: quiet()})
			tr, err := Listen(Config{Options: Options{Path: fmt.Sprintf("%s/ctl", b.TempDir())}, Common: portkind.Common{Logger: quiet()}})
			if err != nil {
				b.Fatal(err)
			}
			tr.Start(sw)
			b.Cleanup(func() { tr.Close(); sw.Close() })
			peer := func() porttest.BenchPeer {
				c, err := Dial(ClientConfig{Ctl: tr.Path(), ConnectBack: vde})
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(c.Close)
				send := porttest.Plain
				if !vde {
					send = func(bt *mmsg.Batch, i int, f []byte) { bt.SetBuf(i, 0, f); bt.SetName(i, c.Remote[:]) }
				}
				return porttest.BenchPeer{Fd: c.Fd, Send: send, Per: 1}
			}
			from, to := peer(), peer()
			for deadline := time.Now().Add(5 * time.Second); len(sw.Stats()) < 2 && time.Now().Before(deadline); {
				time.Sleep(time.Millisecond)
			}
			porttest.BenchSwitch(b, from, to, mac(1), mac(2))
		})
	}
}
