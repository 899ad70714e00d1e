package fabric

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/umlswitch/umlswitch/frame"
)

var (
	macA = frame.MAC{0xfe, 0xfd, 0x0a, 0, 0, 1}
	macB = frame.MAC{0xfe, 0xfd, 0x0a, 0, 0, 2}
	macC = frame.MAC{0xfe, 0xfd, 0x0a, 0, 0, 3}
	macX = frame.MAC{0xfe, 0xfd, 0x0a, 0, 0, 0x99} // never sends
	mcst = frame.MAC{0x01, 0x00, 0x5e, 0, 0, 1}
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// rig is a switch with n fake ports named p0..pn-1.
type rig struct {
	sw    *Fabric
	ports []*fakePort
	ids   []frame.PortID
	fw    *forwarder
	v     *frame.Vector
}

func newRig(t testing.TB, n int, cfg Config) *rig {
	t.Helper()
	cfg.Logger = quiet()
	r := &rig{sw: New(cfg), v: frame.NewVector(64, 9000)}
	for i := 0; i < n; i++ {
		p := newFake(fmt.Sprintf("p%d", i))
		id, err := r.sw.Attach(p)
		if err != nil {
			t.Fatal(err)
		}
		r.ports, r.ids = append(r.ports, p), append(r.ids, id)
	}
	r.fw = newForwarder(r.sw, 64)
	return r
}

// newNullRig is a switch with n ports that discard what they are given.
func newNullRig(t testing.TB, n int, cfg Config) *rig {
	t.Helper()
	cfg.Logger = quiet()
	r := &rig{sw: New(cfg), v: frame.NewVector(64, 1518)}
	for i := 0; i < n; i++ {
		id, err := r.sw.Attach(nullPort{name: fmt.Sprint(i)})
		if err != nil {
			t.Fatal(err)
		}
		r.ids = append(r.ids, id)
	}
	r.fw = newForwarder(r.sw, 64)
	return r
}

func (r *rig) send(frames ...inFrame) {
	r.fw.forward(r.v, load(r.v, frames))
}

func (r *rig) from(port int, dst, src frame.MAC, tag byte) inFrame {
	return inFrame{port: r.ids[port], data: mkFrame(dst, src, 60, tag)}
}

// tags lists, per port, the tags of the frames it received, then resets.
func (r *rig) tags() [][]byte {
	out := make([][]byte, len(r.ports))
	for i, p := range r.ports {
		out[i] = []byte{}
		for _, f := range p.frames() {
			out[i] = append(out[i], f[14])
		}
		p.reset()
	}
	return out
}

func TestForwardingDecisions(t *testing.T) {
	type step struct {
		port     int
		dst, src frame.MAC
		tag      byte
	}
	tests := []struct {
		name  string
		hub   bool
		learn []step // sent first; what they deliver is not checked
		send  []step
		want  [][]byte // tags per port
	}{
		{name: "unknown unicast floods to all but ingress",
			send: []step{{0, macB, macA, 1}},
			want: [][]byte{{}, {1}, {1}}},
		{name: "broadcast floods",
			send: []step{{1, frame.Broadcast, macB, 2}},
			want: [][]byte{{2}, {}, {2}}},
		{name: "multicast floods",
			send: []step{{2, mcst, macC, 3}},
			want: [][]byte{{3}, {3}, {}}},
		{name: "known unicast goes to one port",
			learn: []step{{1, frame.Broadcast, macB, 0}},
			send:  []step{{0, macB, macA, 4}},
			want:  [][]byte{{}, {4}, {}}},
		{name: "reply after learning both ways",
			learn: []step{{0, frame.Broadcast, macA, 0}, {1, macA, macB, 0}},
			send:  []step{{0, macB, macA, 5}, {1, macA, macB, 6}},
			want:  [][]byte{{6}, {5}, {}}},
		{name: "frame for the ingress port is never sent back",
			learn: []step{{0, frame.Broadcast, macA, 0}, {0, frame.Broadcast, macB, 0}},
			send:  []step{{0, macB, macA, 7}},
			want:  [][]byte{{}, {}, {}}},
		{name: "address moves to the port it appears on",
			learn: []step{{1, frame.Broadcast, macB, 0}, {2, frame.Broadcast, macB, 0}},
			send:  []step{{0, macB, macA, 8}},
			want:  [][]byte{{}, {}, {8}}},
		{name: "multicast source is not learned",
			learn: []step{{1, frame.Broadcast, mcst, 0}},
			send:  []step{{0, mcst, macA, 9}},
			want:  [][]byte{{}, {9}, {9}}},
		{name: "hub floods known unicast",
			hub:   true,
			learn: []step{{1, frame.Broadcast, macB, 0}},
			send:  []step{{0, macB, macA, 10}},
			want:  [][]byte{{}, {10}, {10}}},
		{name: "order is kept per destination within a batch",
			learn: []step{{1, frame.Broadcast, macB, 0}},
			send:  []step{{0, macB, macA, 1}, {0, macX, macA, 2}, {0, macB, macA, 3}, {2, macB, macC, 4}},
			want:  [][]byte{{}, {1, 2, 3, 4}, {2}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, 3, Config{Hub: tt.hub})
			for _, s := range tt.learn {
				r.send(r.from(s.port, s.dst, s.src, s.tag))
			}
			r.tags()
			var batch []inFrame
			for _, s := range tt.send {
				batch = append(batch, r.from(s.port, s.dst, s.src, s.tag))
			}
			r.send(batch...)
			got := r.tags()
			for i := range tt.want {
				if !bytes.Equal(got[i], tt.want[i]) {
					t.Errorf("port %d got tags %v, want %v", i, got[i], tt.want[i])
				}
			}
		})
	}
}

func TestBadFramesAreDroppedAndCounted(t *testing.T) {
	r := newRig(t, 2, Config{})
	r.ports[0].maxFrame = 1518
	r2 := newFake("small")
	r2.maxFrame = 100
	small, _ := r.sw.Attach(r2)
	r.send(
		inFrame{port: r.ids[0], data: nil},                                   // empty datagram
		inFrame{port: r.ids[0], data: make([]byte, 13)},                      // runt
		inFrame{port: r.ids[0], data: mkFrame(macB, macA, 1519, 1)},          // over 1518
		inFrame{port: small, data: mkFrame(macB, macA, 101, 2)},              // over the port's own limit
		inFrame{port: r.ids[0], data: mkFrame(frame.Broadcast, macA, 14, 3)}, // bare header: fine
		inFrame{port: r.ids[0], data: mkFrame(frame.Broadcast, macA, 1518, 4)},
	)
	st, _ := r.sw.PortStats(r.ids[0])
	want := map[DropReason]uint64{DropEmpty: 1, DropRunt: 1, DropOversize: 1}
	for reason, n := range want {
		if st.Drops[reason] != n {
			t.Errorf("%v drops = %d, want %d", reason, st.Drops[reason], n)
		}
	}
	if st.RxFrames != 2 || st.RxBytes != 14+1518 {
		t.Errorf("rx %d frames %d bytes, want 2 and %d", st.RxFrames, st.RxBytes, 14+1518)
	}
	if s2, _ := r.sw.PortStats(small); s2.Drops[DropOversize] != 1 {
		t.Errorf("small port oversize drops = %d", s2.Drops[DropOversize])
	}
	// Only the two good frames went out, whole: never truncated.
	got := r.ports[1].frames()
	if len(got) != 2 || len(got[0]) != 14 || len(got[1]) != 1518 {
		t.Fatalf("port 1 got %d frames", len(got))
	}
}

func TestTransportRejectionsAreCountedOnTheirPort(t *testing.T) {
	r := newRig(t, 2, Config{})
	n := load(r.v, []inFrame{r.from(0, frame.Broadcast, macA, 1), r.from(0, frame.Broadcast, macA, 2), r.from(0, frame.Broadcast, macA, 3)})
	r.v.Sizes[0], r.v.Sizes[1] = Rejected(DropDecap), Rejected(DropAuth)
	r.v.Sizes[2] = -200 // not a reason: dropped, not counted as anything
	r.fw.forward(r.v, n)
	st, _ := r.sw.PortStats(r.ids[0])
	if st.Drops[DropDecap] != 1 || st.Drops[DropAuth] != 1 || st.RxFrames != 0 {
		t.Fatalf("drops %v rx %d", st.Drops, st.RxFrames)
	}
	if len(r.ports[1].frames()) != 0 {
		t.Fatal("a rejected frame was forwarded")
	}
}

func TestJumboFramesWithLargeMTU(t *testing.T) {
	r := newRig(t, 2, Config{})
	for _, p := range r.ports {
		p.maxFrame = frame.MaxFrameForMTU(9000)
	}
	// Re-attach so the switch sees the new limits.
	r = &rig{sw: New(Config{Logger: quiet()}), v: frame.NewVector(4, 9018)}
	for i := 0; i < 2; i++ {
		p := newFake(fmt.Sprint(i))
		p.maxFrame = 9018
		id, _ := r.sw.Attach(p)
		r.ports, r.ids = append(r.ports, p), append(r.ids, id)
	}
	r.fw = newForwarder(r.sw, 4)
	r.send(inFrame{port: r.ids[0], data: mkFrame(frame.Broadcast, macA, 9018, 1)})
	if got := r.ports[1].frames(); len(got) != 1 || len(got[0]) != 9018 {
		t.Fatalf("jumbo frame not forwarded whole")
	}
}

func TestFrameTooLongForEgressIsDroppedThere(t *testing.T) {
	sw := New(Config{Logger: quiet()})
	big, small, other := newFake("big"), newFake("small"), newFake("other")
	big.maxFrame, small.maxFrame, other.maxFrame = 9018, 1518, 9018
	bigID, _ := sw.Attach(big)
	smallID, _ := sw.Attach(small)
	sw.Attach(other)
	fw, v := newForwarder(sw, 4), frame.NewVector(4, 9018)
	fw.forward(v, load(v, []inFrame{{port: bigID, data: mkFrame(frame.Broadcast, macA, 4000, 1)}}))
	if len(small.frames()) != 0 || len(other.frames()) != 1 {
		t.Fatalf("small got %d, other got %d", len(small.frames()), len(other.frames()))
	}
	if st, _ := sw.PortStats(smallID); st.Drops[DropTxOversize] != 1 {
		t.Fatalf("small port drops %v", st.Drops)
	}
}

func TestDetachFlushesAddresses(t *testing.T) {
	r := newRig(t, 3, Config{})
	r.send(r.from(1, frame.Broadcast, macB, 0), r.from(1, frame.Broadcast, macC, 0))
	if r.sw.Table().Len() != 2 {
		t.Fatalf("table has %d entries", r.sw.Table().Len())
	}
	r.sw.Detach(newFake("stranger")) // never attached: nothing happens
	if len(r.sw.Stats()) != 3 || r.sw.Table().Len() != 2 {
		t.Fatal("detaching an unknown port changed the switch")
	}
	r.sw.Detach(r.ports[1])
	r.sw.Detach(r.ports[1]) // twice: nothing more happens
	if r.sw.Table().Len() != 0 {
		t.Fatalf("table has %d entries after detach", r.sw.Table().Len())
	}
	if !r.ports[1].closed {
		t.Fatal("detached port not closed")
	}
	// A new port reuses the id; frames for macB must not go to it.
	p := newFake("new")
	id, _ := r.sw.Attach(p)
	if id != r.ids[1] {
		t.Fatalf("id not reused: %d", id)
	}
	r.tags()
	r.send(r.from(0, macB, macA, 1))
	if got := r.ports[2].frames(); len(got) != 1 {
		t.Fatal("unknown destination not flooded after detach")
	}
}

// A stale table entry from a port that has gone (learned after its flush)
// must not direct frames to the port that takes its id next.
func TestStaleGenerationIsIgnored(t *testing.T) {
	r := newRig(t, 3, Config{})
	old := r.sw.ports.Load().get(r.ids[1]).ref
	r.sw.Detach(r.ports[1])
	r.sw.Table().Learn(0, macB, old, 0) // as if a reader raced the detach
	p := newFake("new")
	r.sw.Attach(p)
	r.tags()
	r.send(r.from(0, macB, macA, 1))
	if got := p.frames(); len(got) != 1 {
		t.Fatalf("new port got %d frames, want 1 (flooded)", len(got))
	}
	if got := r.ports[2].frames(); len(got) != 1 {
		t.Fatalf("port 2 got %d frames, want 1 (flooded)", len(got))
	}
}

func TestSwitchAgesOutEntries(t *testing.T) {
	r := newRig(t, 2, Config{MACAge: 40 * time.Millisecond})
	ctx, cancel := contextWithCancel()
	defer cancel()
	go r.sw.Run(ctx)
	r.send(r.from(1, frame.Broadcast, macB, 0))
	deadline := time.Now().Add(2 * time.Second)
	for r.sw.Table().Len() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("entry never aged out")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestHubLearnsNothing(t *testing.T) {
	r := newRig(t, 2, Config{Hub: true})
	r.send(r.from(0, frame.Broadcast, macA, 0))
	if r.sw.Table().Len() != 0 {
		t.Fatal("hub learned an address")
	}
}

func TestHardWriteErrorDropsOneFrame(t *testing.T) {
	r := newRig(t, 2, Config{})
	r.ports[1].failAt = 1
	var batch []inFrame
	for i := 0; i < 4; i++ {
		batch = append(batch, r.from(0, frame.Broadcast, macA, byte(i)))
	}
	r.send(batch...)
	got := r.tags()[1]
	if !bytes.Equal(got, []byte{0, 2, 3}) {
		t.Fatalf("got %v, want [0 2 3]", got)
	}
	st, _ := r.sw.PortStats(r.ids[1])
	if st.Drops[DropTxError] != 1 || st.TxFrames != 3 {
		t.Fatalf("tx %d errors %d", st.TxFrames, st.Drops[DropTxError])
	}
}

// A destination without a route loses the rest of the batch at once,
// counted as unreachable, in one Write: trying frame by frame would cost a
// system call each to learn the same.
func TestUnreachableDropsRestOfBatch(t *testing.T) {
	r := newRig(t, 2, Config{})
	r.ports[1].failAt = 1
	r.ports[1].failErr = fmt.Errorf("udp: %w", ErrUnreachable)
	var batch []inFrame
	for i := 0; i < 8; i++ {
		batch = append(batch, r.from(0, frame.Broadcast, macA, byte(i)))
	}
	r.send(batch...)
	if got := r.tags()[1]; !bytes.Equal(got, []byte{0}) {
		t.Fatalf("got %v, want [0]", got)
	}
	st, _ := r.sw.PortStats(r.ids[1])
	r.ports[1].mu.Lock()
	writes := r.ports[1].writes
	r.ports[1].mu.Unlock()
	if st.Drops[DropUnreachable] != 7 || st.Drops[DropTxError] != 0 || st.TxFrames != 1 || writes != 1 {
		t.Fatalf("tx %d, unreachable %d, tx-error %d, writes %d; want 1, 7, 0, 1",
			st.TxFrames, st.Drops[DropUnreachable], st.Drops[DropTxError], writes)
	}
}

// A full destination makes the reader wait for it (the frames arrive once it
// drains) instead of dropping at once.
func TestBackpressureHoldsUntilDrained(t *testing.T) {
	r := newRig(t, 2, Config{TxHold: 5 * time.Second})
	r.ports[1].room = 2
	var batch []inFrame
	for i := 0; i < 6; i++ {
		batch = append(batch, r.from(0, frame.Broadcast, macA, byte(i)))
	}
	go func() {
		for i := 0; i < 4; i++ {
			time.Sleep(5 * time.Millisecond)
			r.ports[1].drain(1)
		}
	}()
	r.send(batch...)
	if got := r.tags()[1]; !bytes.Equal(got, []byte{0, 1, 2, 3, 4, 5}) {
		t.Fatalf("got %v", got)
	}
	if st, _ := r.sw.PortStats(r.ids[1]); st.Dropped() != 0 {
		t.Fatalf("drops %v", st.Drops)
	}
}

// A destination that never drains costs one bound, then its frames are
// dropped without waiting until it takes a frame again.
func TestBackpressureBoundAndStall(t *testing.T) {
	r := newRig(t, 3, Config{TxHold: 30 * time.Millisecond})
	r.ports[1].room = 0
	start := time.Now()
	r.send(r.from(0, frame.Broadcast, macA, 1), r.from(0, frame.Broadcast, macA, 2))
	first := time.Since(start)
	if first < 30*time.Millisecond {
		t.Fatalf("returned after %v, before the bound", first)
	}
	st, _ := r.sw.PortStats(r.ids[1])
	if st.Drops[DropTxFull] != 2 {
		t.Fatalf("tx-full drops %d, want 2", st.Drops[DropTxFull])
	}
	// Port 2 still got everything.
	if got := r.tags()[2]; !bytes.Equal(got, []byte{1, 2}) {
		t.Fatalf("port 2 got %v", got)
	}
	waits := r.ports[1].waits
	r.send(r.from(0, frame.Broadcast, macA, 3))
	if r.ports[1].waits != waits {
		t.Fatal("waited again for a stalled port")
	}
	r.ports[1].drain(5)
	r.send(r.from(0, frame.Broadcast, macA, 4))
	if got := r.tags()[1]; !bytes.Equal(got, []byte{4}) {
		t.Fatalf("recovered port got %v", got)
	}
	if r.sw.ports.Load().get(r.ids[1]).stalled.Load() {
		t.Fatal("port still marked stalled after it took frames")
	}
}

func TestForwardDoesNotAllocate(t *testing.T) {
	r := newNullRig(t, 4, Config{})
	var batch []inFrame
	for i := 0; i < 64; i++ {
		switch i % 3 {
		case 0:
			batch = append(batch, r.from(0, macB, macA, 0))
		case 1:
			batch = append(batch, r.from(1, frame.Broadcast, macB, 0))
		default:
			batch = append(batch, r.from(2, macX, macC, 0))
		}
	}
	n := load(r.v, batch)
	r.fw.forward(r.v, n) // first batch learns and sizes the staging lists
	allocs := testing.AllocsPerRun(200, func() { r.fw.forward(r.v, n) })
	if allocs != 0 && !raceEnabled {
		t.Fatalf("%v allocations per batch", allocs)
	}
}

// While one reader holds frames for a full port, another reader's traffic
// between other ports flows at once: holding pauses only its own ingress.
func TestHoldingPausesOnlyItsOwnReader(t *testing.T) {
	r := newRig(t, 4, Config{TxHold: 10 * time.Second})
	r.send(r.from(1, frame.Broadcast, macB, 0), r.from(2, frame.Broadcast, macC, 0), r.from(3, frame.Broadcast, macX, 0))
	r.tags()
	r.ports[1].mu.Lock()
	r.ports[1].room = 0 // port 1 is full and stays full until drained
	r.ports[1].mu.Unlock()

	held := make(chan struct{})
	go func() { // reader A: sends to port 1, which is full
		fw, v := newForwarder(r.sw, 4), frame.NewVector(4, 1518)
		fw.forward(v, load(v, []inFrame{r.from(0, macB, macA, 1)}))
		close(held)
	}()
	time.Sleep(20 * time.Millisecond) // A is holding now
	select {
	case <-held:
		t.Fatal("reader A did not hold for the full port")
	default:
	}
	start := time.Now()
	fw, v := newForwarder(r.sw, 4), frame.NewVector(4, 1518) // reader B: port 2 to port 3
	fw.forward(v, load(v, []inFrame{r.from(2, macX, macC, 2)}))
	if d := time.Since(start); d > time.Second {
		t.Fatalf("reader B took %v while A held", d)
	}
	if got := r.ports[3].frames(); len(got) != 1 || got[0][14] != 2 {
		t.Fatalf("port 3 got %d frames while another reader held", len(got))
	}
	r.ports[1].drain(1)
	select {
	case <-held:
	case <-time.After(5 * time.Second):
		t.Fatal("reader A did not resume when port 1 drained")
	}
	if got := r.ports[1].frames(); len(got) != 1 || got[0][14] != 1 {
		t.Fatalf("port 1 got %v after draining", got)
	}
}

func TestKernelDropsAppearInPortStats(t *testing.T) {
	sw := New(Config{Logger: quiet()})
	p := &filteringPort{nullPort: nullPort{name: "raw"}, filtered: 7, overrun: 2}
	id, _ := sw.Attach(p)
	st, _ := sw.PortStats(id)
	if st.Drops[DropFiltered] != 7 || st.Drops[DropRxOverrun] != 2 || st.Dropped() != 9 {
		t.Fatalf("drops %v", st.Drops)
	}
	if all := sw.Stats(); len(all) != 1 || all[0].Drops[DropFiltered] != 7 {
		t.Fatalf("stats %+v", all)
	}
	if DropFiltered.String() != "filtered" || DropRxOverrun.String() != "rx-overrun" {
		t.Fatal("names")
	}
}

// A batch of one flow (one port, one source and destination, one type)
// to a learned destination takes forwardFlow: the same frames reach the
// same port in order, with the same counters as frame by frame, and
// nothing is allocated. A batch where one frame differs, or whose
// destination is unknown, is forwarded frame by frame.
func TestForwardFlow(t *testing.T) {
	r := newRig(t, 3, Config{})
	r.send(r.from(1, frame.Broadcast, macB, 0))
	r.tags()
	var flow []inFrame
	for i := 0; i < 64; i++ {
		flow = append(flow, inFrame{port: r.ids[0], data: mkFrame(macB, macA, 60+i, byte(i))})
	}
	n := load(r.v, flow)
	set := r.sw.ports.Load()
	if !r.fw.forwardFlow(set, r.v, n, 0) {
		t.Fatal("a batch of one flow was not taken whole")
	}
	got := r.tags()
	if len(got[1]) != 64 || len(got[0])+len(got[2]) != 0 || got[1][63] != 63 {
		t.Fatalf("delivered %v", got)
	}
	st, _ := r.sw.PortStats(r.ids[0])
	if st.RxFrames != 64 || st.RxBytes != 64*60+63*64/2 {
		t.Errorf("rx %d frames %d bytes", st.RxFrames, st.RxBytes)
	}
	if ref, ok := r.sw.Table().Lookup(0, macA, 0); !ok || ref.id() != r.ids[0] {
		t.Error("the flow's source was not learned")
	}
	if nr := newNullRig(t, 2, Config{}); !raceEnabled {
		nr.send(inFrame{port: nr.ids[1], data: mkFrame(frame.Broadcast, macB, 60, 0)})
		n := load(nr.v, flow)
		nset := nr.sw.ports.Load()
		if a := testing.AllocsPerRun(100, func() {
			if !nr.fw.forwardFlow(nset, nr.v, n, 0) {
				t.Fatal("not taken whole")
			}
		}); a != 0 {
			t.Errorf("%v allocations per batch", a)
		}
	}
	// A mirror sees every frame of the batch, entering and leaving.
	m := &countingMirror{}
	r.sw.AddMirror(m)
	n = load(r.v, flow)
	if !r.fw.forwardFlow(set, r.v, n, 0) {
		t.Fatal("a batch of one flow with a mirror was not taken whole")
	}
	if in, out := m.counts(); in != 64 || out != 64 {
		t.Errorf("the mirror saw %d frames in and %d out, want 64 each", in, out)
	}
	r.sw.RemoveMirror(m)
	r.tags()
	flow[40].data = mkFrame(macC, macA, 60, 40) // one frame elsewhere
	n = load(r.v, flow)
	if r.fw.forwardFlow(set, r.v, n, 0) {
		t.Fatal("a batch with two destinations was taken whole")
	}
	for i := range flow {
		flow[i].data = mkFrame(macX, macA, 60, byte(i))
	}
	n = load(r.v, flow)
	if r.fw.forwardFlow(set, r.v, n, 0) {
		t.Fatal("a batch to an unknown destination was taken whole")
	}
}

// countingMirror counts the frames it is shown, by direction.
type countingMirror struct {
	mu      sync.Mutex
	in, out int
}

func (m *countingMirror) Frames(_ frame.PortID, _ string, dir Direction, frames [][]byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if dir == DirIn {
		m.in += len(frames)
	} else {
		m.out += len(frames)
	}
}

func (m *countingMirror) counts() (in, out int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.in, m.out
}

// runMirror records the runs it is shown: port, direction and the frames'
// tags.
type runMirror struct {
	mu   sync.Mutex
	runs []string
}

func (m *runMirror) Frames(port frame.PortID, name string, dir Direction, frames [][]byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := fmt.Sprintf("%s %d:", name, dir)
	for _, f := range frames {
		s += fmt.Sprint(" ", f[14])
	}
	m.runs = append(m.runs, s)
}

// Mirrors see a batch's frames in runs of one port: each run with the
// port it entered, in arrival order, and each port's Write as one run out.
func TestMirrorSeesRunsOfOnePort(t *testing.T) {
	r := newRig(t, 3, Config{})
	m := &runMirror{}
	r.sw.AddMirror(m)
	r.send(r.from(0, macB, macA, 1), r.from(0, macB, macA, 2), r.from(1, macA, macB, 3),
		inFrame{port: r.ids[0], data: make([]byte, 5)}, // a runt: not mirrored
		r.from(0, macB, macA, 4))
	want := []string{"p0 1: 1 2", "p1 1: 3", "p0 1: 4", "p1 2: 1 2 4", "p2 2: 1 2", "p0 2: 3"}
	if !slices.Equal(m.runs, want) {
		t.Errorf("runs %q, want %q", m.runs, want)
	}
}
