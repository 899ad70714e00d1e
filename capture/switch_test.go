package capture

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/umlswitch/umlswitch/fabric"
	"github.com/umlswitch/umlswitch/frame"
	"github.com/umlswitch/umlswitch/transports/daemon"
	"github.com/umlswitch/umlswitch/transports/portkind"
	"github.com/umlswitch/umlswitch/transports/porttest"
)

// A mirror whose disk is slow does not slow the switch: every frame one
// client sends reaches the other, while the mirror drops and counts what
// its writer could not keep up with.
func TestSlowMirrorDoesNotStallForwarding(t *testing.T) {
	sw := porttest.NewSwitch(t, fabric.Config{})
	tr, err := daemon.Listen(daemon.Config{Options: daemon.Options{Path: filepath.Join(t.TempDir(), "sw.ctl")}, Common: portkind.Common{Logger: porttest.Quiet()}})
	if err != nil {
		t.Fatal(err)
	}
	tr.Start(sw)
	sw.OnStop(func() { tr.Close() })
	m, err := newMirror(Config{Ring: 64 << 10, Logger: porttest.Quiet()}, &slowOutput{})
	if err != nil {
		t.Fatal(err)
	}
	sw.AddMirror(m)
	defer m.Close()
	a, err := daemon.Dial(daemon.ClientConfig{Ctl: tr.Path()})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := daemon.Dial(daemon.ClientConfig{Ctl: tr.Path()})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	sw.WaitPorts(t, 2)
	macA, macB := frame.MAC{2, 0, 0, 0, 0, 0xa}, frame.MAC{2, 0, 0, 0, 0, 0xb}
	buf := make([]byte, 2048)
	b.Send(porttest.Ether(frame.Broadcast, macB, 60, 0)) // the switch learns b
	if _, err := a.Recv(buf, 2*time.Second); err != nil {
		t.Fatal(err)
	}

	const total = 5000
	received := make(chan int)
	go func() {
		n := 0
		for n < total {
			if _, err := b.Recv(buf, 2*time.Second); err != nil {
				break
			}
			n++
		}
		received <- n
	}()
	start := time.Now()
	f := porttest.Ether(macB, macA, 1000, 1)
	for sent := 0; sent < total; {
		if err := a.Send(f); err != nil {
			if errors.Is(err, unix.EAGAIN) {
				time.Sleep(100 * time.Microsecond) // b's queue is full: the switch holds a back
				continue
			}
			t.Fatal(err)
		}
		sent++
	}
	if n := <-received; n != total {
		t.Fatalf("b received %d of %d frames", n, total)
	}
	elapsed := time.Since(start)
	st := m.Stats()
	if st.Dropped == 0 {
		t.Fatalf("the slow mirror dropped nothing (%+v): the test did not slow it", st)
	}
	if elapsed > 10*time.Second {
		t.Fatalf("%d frames took %v", total, elapsed)
	}
	t.Logf("%d frames in %v; mirror captured %d, dropped %d", total, elapsed, st.Captured, st.Dropped)
}
