package bench

import (
	"strings"
	"testing"
	"time"
)

func TestWindowsPerFlow(t *testing.T) {
	w := newWindows(10, 3, false)
	if got := w.allow(0, 64); got != 10 {
		t.Fatalf("empty window allows %d, want 10", got)
	}
	w.sent(0, 10)
	if got := w.allow(0, 64); got != 0 {
		t.Fatalf("full window allows %d", got)
	}
	if got := w.allow(1, 64); got != 10 {
		t.Fatalf("port 1's flow is separate, but it may send %d", got)
	}
	w.received(1, 4) // port 1 receives what port 0 sent
	if got := w.allow(0, 64); got != 4 {
		t.Fatalf("after 4 arrived the window allows %d, want 4", got)
	}
	w.received(0, 4) // port 0 receives port 2's frames: not flow 0
	if got := w.allow(0, 64); got != 4 {
		t.Fatalf("another flow's frames freed flow 0: it allows %d", got)
	}
	if got := w.allow(0, 2); got != 2 {
		t.Fatalf("allow is capped by the batch, got %d", got)
	}
}

func TestWindowsWriteOffLostFrames(t *testing.T) {
	w := newWindows(8, 2, false)
	w.sent(0, 8)
	if w.allow(0, 64) != 0 {
		t.Fatal("full window allowed a send")
	}
	time.Sleep(lostAfter + 5*time.Millisecond)
	// A generator that was descheduled past lostAfter has not yet looked:
	// the frames may be waiting in its socket.
	if got := w.allow(0, 64); got != 0 {
		t.Fatalf("wrote frames off before reading: allows %d", got)
	}
	w.received(1, 0) // port 1 reads and finds nothing
	if got := w.allow(0, 64); got != 64 {
		t.Fatalf("after %v with nothing arriving the window allows %d, want the batch", lostAfter, got)
	}
	if f := w.flows[0]; f.lost != 8 {
		t.Fatalf("wrote off %d frames, want 8", f.lost)
	}
	// They arrive after all: the write-off shrinks instead of the count wrapping.
	w.sent(0, 8)
	w.received(1, 12)
	if f := &w.flows[0]; f.inFlight() != 0 || f.lost != 4 {
		t.Fatalf("in flight %d, lost %d after late arrivals; want 0 and 4", f.inFlight(), f.lost)
	}
	if got := w.allow(0, 64); got != 8 {
		t.Fatalf("window allows %d after late arrivals, want 8", got)
	}
}

func TestWindowsHub(t *testing.T) {
	w := newWindows(2, 4, true) // 2 per port, 4 ports, 3 copies each: 24 deliveries
	if got := w.allow(0, 64); got != 8 {
		t.Fatalf("hub window allows %d frames, want 8 (24 deliveries of 3 copies)", got)
	}
	w.sent(0, 8)
	if w.allow(3, 64) != 0 {
		t.Fatal("the hub's one flow is full, yet another port may send")
	}
	w.received(2, 3)
	if got := w.allow(3, 64); got != 1 {
		t.Fatalf("3 deliveries made room for %d frames, want 1", got)
	}
	if got := newWindows(0, 4, true).allow(0, 64); got != 64 {
		t.Fatalf("no window allows %d, want the batch", got)
	}
}

func TestReportShortFrames(t *testing.T) {
	cut := GenResult{Window: time.Second, Offered: 1000, SentAll: 1000, Short: 1000, Copies: 1, SwitchCPU: time.Second}
	ok := GenResult{Window: time.Second, Offered: 1000, Delivered: 1000, SentAll: 1000, RecvAll: 1000, Copies: 1, SwitchCPU: time.Second}
	var b strings.Builder
	Report(&b, []Row{{Switch: "umlswitch", Runs: []GenResult{ok}}, {Switch: "uml_switch", Runs: []GenResult{cut}}})
	for _, want := range []string{
		"umlswitch / uml_switch: no ratio (uml_switch delivered nothing) delivered frames per second",
		"warning: uml_switch delivered up to 1000 frames per run shorter than they were sent",
		"| uml_switch | 0 | 0 |  | 0.001 | 0.000 | 0.000 | 100.00% |",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, b.String())
		}
	}
}
