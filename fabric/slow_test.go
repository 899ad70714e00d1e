package fabric

import (
	"sync"
	"testing"
	"time"

	"github.com/umlswitch/umlswitch/frame"
)

const ms = int64(time.Millisecond)

func TestSlowMeterArithmetic(t *testing.T) {
	var m slowMeter
	hold := 10 * time.Millisecond
	if d, _ := m.charge(0, 5*ms, 0, hold); d != 0 {
		t.Fatal("5 ms of waiting made the port slow")
	}
	m.charge(1*ms, 5*ms, 0, hold) // a second reader waiting at the same time
	if m.debt != 5*ms {
		t.Fatalf("debt %v after two overlapping waits, want 5ms (counted once)", time.Duration(m.debt))
	}
	m.charge(5*ms, 5*ms, 10, hold) // ten frames taken pay for 2 ms
	if m.debt != 3*ms {
		t.Fatalf("debt %v, want 3ms", time.Duration(m.debt))
	}
	m.charge(1006*ms, 1006*ms, 10, hold) // a second later the debt has leaked away
	if m.debt != 0 {
		t.Fatalf("debt %v after a second, want 0", time.Duration(m.debt))
	}
	d, episodes := m.charge(2000*ms, 2021*ms, 10, hold) // 21 ms: past twice the hold bound
	if d != time.Duration(21*ms*slowLeak) || episodes != 1 {
		t.Fatalf("slow for %v (episodes %d), want %v", d, episodes, time.Duration(21*ms*slowLeak))
	}
	if !m.slow(2021*ms) || !m.slow(2021*ms+int64(d)-1) || m.slow(2021*ms+int64(d)) {
		t.Fatal("not slow for exactly the time the debt takes to leak away")
	}
	end := 2021*ms + int64(d)
	if d, episodes := m.charge(end, end+25*ms, 10, hold); d == 0 || episodes != 0 {
		t.Fatalf("second episode within %v: slow for %v, logged %d", slowLogEvery, d, episodes)
	}
	later := end + int64(slowLogEvery) + int64(time.Minute)
	if d, episodes := m.charge(later, later+25*ms, 10, hold); d == 0 || episodes != 2 {
		t.Fatalf("third episode: slow for %v, reported %d episodes, want 2", d, episodes)
	}
}

// A port that keeps a sender of broadcasts waiting while it takes a frame
// every 15 ms stops being waited for: what it cannot take at once is
// dropped and counted as slow-receiver, and the other port gets everything.
func TestSlowReceiverIsNoLongerWaitedFor(t *testing.T) {
	r := newRig(t, 3, Config{TxHold: 10 * time.Millisecond})
	slow := r.ports[1]
	slow.room = 0
	stop, drained := make(chan struct{}), make(chan struct{})
	stopDraining := sync.OnceFunc(func() { close(stop); <-drained })
	defer stopDraining()
	go func() {
		defer close(drained)
		for {
			select {
			case <-stop:
				return
			case <-time.After(15 * time.Millisecond):
				slow.drain(1)
			}
		}
	}()
	sent := 0
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		r.send(r.from(0, frame.Broadcast, macA, byte(sent)))
		sent++
		if st, _ := r.sw.PortStats(r.ids[1]); st.Slowed > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a port taking a frame every 15 ms was never found slow")
		}
	}
	waits := slow.waited()
	for i := 0; i < 10; i++ {
		r.send(r.from(0, frame.Broadcast, macA, 0))
	}
	if slow.waited() != waits {
		t.Fatal("waited for a port found slow")
	}
	st, _ := r.sw.PortStats(r.ids[1])
	if st.Drops[DropSlowReceiver] == 0 {
		t.Fatalf("no slow-receiver drops: %v", st.Drops)
	}
	if got := len(r.ports[2].frames()); got != sent+10 {
		t.Fatalf("the other port got %d frames, want %d", got, sent+10)
	}
	// A batch for the slow port alone still waits for it: that flow keeps
	// its backpressure. From here the port reads when waited on (not on
	// a clock, which a loaded machine may not keep within the hold).
	stopDraining()
	slow.mu.Lock()
	slow.readN = 1
	slow.mu.Unlock()
	r.send(r.from(1, frame.Broadcast, macB, 0)) // learn B on port 1
	slow.drain(1)
	r.send(r.from(2, macB, macC, 0)) // port 1 takes a frame: not stalled, and full again
	st, _ = r.sw.PortStats(r.ids[1])
	waits = slow.waited()
	r.send(r.from(0, macB, macA, 1))
	if now, _ := r.sw.PortStats(r.ids[1]); now.Dropped() != st.Dropped() || now.TxFrames != st.TxFrames+1 || slow.waited() == waits {
		t.Fatalf("unicast to the slow port: drops %v, sent %d, waited %v", now.Drops, now.TxFrames-st.TxFrames, slow.waited() != waits)
	}
}

// A port that is full for a moment and then takes its queue at once keeps
// getting backpressure, however often it is full: no drops, never slow.
func TestBriefFullnessKeepsBackpressure(t *testing.T) {
	r := newRig(t, 3, Config{TxHold: 10 * time.Millisecond})
	busy := r.ports[1]
	busy.room, busy.readAfter, busy.readN = 32, time.Millisecond, 32 // the frames it takes pay for a wait 6 times over: margin for a loaded machine
	var batch []inFrame
	for i := 0; i < 64; i++ {
		batch = append(batch, r.from(0, frame.Broadcast, macA, byte(i)))
	}
	for i := 0; i < 50; i++ {
		r.send(batch...)
	}
	st, _ := r.sw.PortStats(r.ids[1])
	if st.Dropped() != 0 || st.Slowed != 0 || st.TxFrames != 50*64 {
		t.Fatalf("tx %d, drops %v, slowed %d", st.TxFrames, st.Drops, st.Slowed)
	}
}

// A full port that is the only destination of a batch holds its sender for
// as long as it drains, however slowly: that is the flow control, and it
// delays nobody else's frames.
func TestOnlyDestinationIsNeverSlow(t *testing.T) {
	r := newRig(t, 3, Config{TxHold: 10 * time.Millisecond})
	r.send(r.from(1, frame.Broadcast, macB, 0)) // learn B on port 1
	r.tags()
	trickle := r.ports[1]
	trickle.room, trickle.readAfter, trickle.readN = 0, 5*time.Millisecond, 1
	for i := 0; i < 20; i++ {
		r.send(r.from(0, macB, macA, byte(i)))
	}
	st, _ := r.sw.PortStats(r.ids[1])
	if st.Dropped() != 0 || st.Slowed != 0 || st.TxFrames != 20 {
		t.Fatalf("tx %d, drops %v, slowed %d", st.TxFrames, st.Drops, st.Slowed)
	}
}
