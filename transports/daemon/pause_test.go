package daemon

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/umlswitch/umlswitch/fabric"
	"github.com/umlswitch/umlswitch/internal/accept"
)

// While accepting is paused (a hot upgrade lists the ports), no client
// becomes a port: the clients connecting all the while, each attaching and
// leaving in a loop, wait for the pause to end. Whatever attached before
// the pause had settled by the time Pause returned.
func TestPauseHoldsChurningClients(t *testing.T) {
	sw := startSwitch(t, fabric.Config{}, Config{})
	ctl := sw.tr.Path()
	var stop atomic.Bool
	var wg sync.WaitGroup
	var attached atomic.Int64
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				c, err := Dial(ClientConfig{Ctl: ctl})
				if err != nil {
					t.Errorf("dial: %v", err)
					return
				}
				attached.Add(1)
				c.Close()
			}
		}()
	}
	for round := range 20 {
		time.Sleep(5 * time.Millisecond) // churning
		if !accept.Pause(5 * time.Second) {
			t.Fatalf("round %d: clients accepted before the pause did not settle", round)
		}
		before, _ := sw.tr.Counts()
		time.Sleep(20 * time.Millisecond)
		after, _ := sw.tr.Counts()
		accept.Resume()
		if after != before {
			t.Fatalf("round %d: %d clients attached while paused", round, after-before)
		}
	}
	stop.Store(true)
	wg.Wait()
	// A dial is answered just before its client is counted.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		n, _ := sw.tr.Counts()
		if n >= 20 && int64(n) == attached.Load() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d clients attached, %d dials answered", n, attached.Load())
		}
	}
}
