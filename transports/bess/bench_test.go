package bess

import (
	"testing"
	"time"

	"github.com/umlswitch/umlswitch/fabric"
	"github.com/umlswitch/umlswitch/transports/porttest"
)

// BenchmarkSwitchOverBESS: two UML-like clients on one listener, through a
// real switch.
func BenchmarkSwitchOverBESS(b *testing.B) {
	sw := porttest.NewSwitch(b, fabric.Config{})
	tr, err := Listen(Config{Path: b.TempDir() + "/sw.bess", Logger: porttest.Quiet()})
	if err != nil {
		b.Fatal(err)
	}
	tr.Start(sw)
	sw.OnStop(func() { tr.Close() })
	from, to := dial(b, tr.Path()), dial(b, tr.Path())
	for deadline := time.Now().Add(5 * time.Second); len(sw.Stats()) < 2 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	porttest.BenchSwitch(b, porttest.BenchPeer{Fd: from.fd, Send: porttest.Plain, Per: 1},
		porttest.BenchPeer{Fd: to.fd, Send: porttest.Plain, Per: 1}, mac(1), mac(2))
}
