package impair

import (
	"sync"
	"testing"
	"time"

	"github.com/umlswitch/umlswitch/fabric"
	"github.com/umlswitch/umlswitch/frame"
)

// sink is a port that records when each frame arrived.
type sink struct {
	mu    sync.Mutex
	got   [][]byte
	at    []time.Time
	full  bool // refuse everything with ErrWouldBlock
	close bool
}

func (s *sink) Write(frames [][]byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.full {
		return 0, fabric.ErrWouldBlock
	}
	for _, f := range frames {
		s.got = append(s.got, append([]byte(nil), f...))
		s.at = append(s.at, time.Now())
	}
	return len(frames), nil
}
func (s *sink) WaitWritable(time.Duration) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return !s.full
}
func (s *sink) MaxFrame() int { return 1518 }
func (s *sink) Name() string  { return "sink" }
func (s *sink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.close = true
	return nil
}

func (s *sink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.got)
}

func waitFor(t *testing.T, s *sink, n int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for s.count() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d frames arrived", s.count(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

func frameN(i int) []byte {
	f := make([]byte, 60)
	f[14], f[15] = byte(i>>8), byte(i)
	return f
}

func TestDelayKeepsOrderAndTakesNoTimeFromTheSender(t *testing.T) {
	s := &sink{}
	p := Wrap(s, Config{Delay: 50 * time.Millisecond, Jitter: 20 * time.Millisecond, Seed: 1})
	defer p.Close()
	start := time.Now()
	for i := 0; i < 100; i++ {
		if n, err := p.Write([][]byte{frameN(i)}); n != 1 || err != nil {
			t.Fatal(n, err)
		}
	}
	if d := time.Since(start); d > 20*time.Millisecond {
		t.Fatalf("writing 100 frames took %v: the sender waited", d)
	}
	waitFor(t, s, 100, 2*time.Second)
	for i, f := range s.got {
		if int(f[14])<<8|int(f[15]) != i {
			t.Fatalf("frame %d arrived as %d: jitter reordered without reorder=1", i, int(f[14])<<8|int(f[15]))
		}
	}
	if d := s.at[0].Sub(start); d < 30*time.Millisecond {
		t.Fatalf("first frame after %v, want about 50 ms (30 at least)", d)
	}
}

func TestReorder(t *testing.T) {
	s := &sink{}
	p := Wrap(s, Config{Delay: 20 * time.Millisecond, Jitter: 15 * time.Millisecond, Reorder: true, Seed: 3})
	defer p.Close()
	for i := 0; i < 200; i++ {
		p.Write([][]byte{frameN(i)})
		time.Sleep(100 * time.Microsecond)
	}
	waitFor(t, s, 200, 2*time.Second)
	out, seen := 0, map[int]int{}
	for i, f := range s.got {
		n := int(f[14])<<8 | int(f[15])
		seen[n]++
		if n != i {
			out++
		}
	}
	if len(seen) != 200 {
		t.Fatalf("%d distinct frames of 200 arrived: reordering lost or repeated some", len(seen))
	}
	if out == 0 {
		t.Fatal("reorder=1 with 15 ms of jitter never reordered 200 frames 0.1 ms apart")
	}
}

func TestLossIsSeededAndNearTheRate(t *testing.T) {
	run := func(c Config) (int, Stats) {
		s := &sink{}
		p := Wrap(s, c)
		for i := 0; i < 5000; i++ {
			p.Write([][]byte{frameN(i)})
		}
		st := p.Stats()
		waitFor(t, s, 5000-int(st.Lost), time.Second)
		p.Close()
		return s.count(), st
	}
	a, st := run(Config{Loss: 0.2, Seed: 1, Queue: 5000})
	b, _ := run(Config{Loss: 0.2, Seed: 1, Queue: 5000})
	if a != b {
		t.Fatalf("seed 1 delivered %d then %d", a, b)
	}
	if lost := 5000 - a; lost < 900 || lost > 1100 || uint64(lost) != st.Lost {
		t.Fatalf("lost %d of 5000 at 20%% (counted %d)", lost, st.Lost)
	}
	// Bursts: the same rate, in runs.
	s := &sink{}
	p := Wrap(s, Config{Loss: 0.2, LossBurst: 10, Seed: 2, Queue: 20000})
	for i := 0; i < 20000; i++ {
		p.Write([][]byte{frameN(i)})
	}
	st = p.Stats()
	waitFor(t, s, 20000-int(st.Lost), time.Second)
	p.Close()
	runs, prev := 0, -1
	for _, f := range s.got {
		i := int(f[14])<<8 | int(f[15])
		if i != (prev+1)&0xffff {
			runs++
		}
		prev = i
	}
	if st.Lost < 3000 || st.Lost > 5000 || float64(st.Lost)/float64(runs) < 5 {
		t.Fatalf("bursty loss: %d lost in %d runs", st.Lost, runs)
	}
}

func TestDupAndCorrupt(t *testing.T) {
	s := &sink{}
	p := Wrap(s, Config{Dup: 0.5, Corrupt: 1, Seed: 4})
	defer p.Close()
	for i := 0; i < 100; i++ {
		p.Write([][]byte{frameN(i)})
	}
	st := p.Stats()
	waitFor(t, s, 100+int(st.Duplicated), time.Second)
	if st.Duplicated < 30 || st.Duplicated > 70 || st.Corrupted != 100+st.Duplicated {
		t.Fatalf("stats %+v", st)
	}
	for _, f := range s.got {
		diff := 0
		want := frameN(int(f[14])<<8 | int(f[15])) // bytes 14-15 may be the flipped ones: count bits elsewhere too
		for i := range f {
			for x := f[i] ^ want[i]; x != 0; x &= x - 1 {
				diff++
			}
		}
		if diff > 2 || string(f[:frame.HeaderLen]) != string(make([]byte, frame.HeaderLen)) {
			t.Fatalf("corrupted frame % x", f)
		}
	}
}

func TestRateAndQueue(t *testing.T) {
	s := &sink{}
	// 60-byte frames at 48 kbit/s: 100 frames a second.
	p := Wrap(s, Config{Rate: 48000, Queue: 20})
	defer p.Close()
	start := time.Now()
	for i := 0; i < 50; i++ {
		p.Write([][]byte{frameN(i)})
	}
	st := p.Stats() // the first frame may leave before the last comes: 30 or a few fewer
	if st.Overflowed < 27 || st.Overflowed > 30 {
		t.Fatalf("overflowed %d, want about 30 (queue of 20)", st.Overflowed)
	}
	waitFor(t, s, 20, 2*time.Second)
	if d := s.at[19].Sub(start); d < 170*time.Millisecond || d > 400*time.Millisecond {
		t.Fatalf("20 frames at 100 a second took %v", d)
	}
	var drops [fabric.NumDropReasons]uint64
	p.KernelDrops(&drops)
	if drops[fabric.DropRate] != st.Overflowed {
		t.Fatalf("drops %v", drops)
	}
}

func TestSetAtRunTimeAndAFullPort(t *testing.T) {
	s := &sink{full: true}
	p := Wrap(s, Config{})
	for i := 0; i < 10; i++ {
		p.Write([][]byte{frameN(i)})
	}
	time.Sleep(20 * time.Millisecond)
	s.mu.Lock()
	s.full = false
	s.mu.Unlock()
	waitFor(t, s, 10, time.Second) // held in the queue until the port took them
	p.Set(Config{Delay: 100 * time.Millisecond})
	start := time.Now()
	p.Write([][]byte{frameN(99)})
	waitFor(t, s, 11, time.Second)
	if d := s.at[10].Sub(start); d < 80*time.Millisecond {
		t.Fatalf("after Set, a frame took %v", d)
	}
	p.Close()
	if !s.close {
		t.Fatal("Close did not close the port underneath")
	}
	if _, err := p.Write([][]byte{frameN(1)}); err == nil {
		t.Fatal("Write after Close")
	}
}

func TestWriteAllocatesNothing(t *testing.T) {
	s := &sink{}
	p := Wrap(s, Config{Loss: 0.5, Dup: 0.1, Corrupt: 0.1, Seed: 5, Queue: 100000})
	defer p.Close()
	f := [][]byte{frameN(1), frameN(2), frameN(3), frameN(4)}
	if a := testing.AllocsPerRun(1000, func() { p.Write(f) }); a != 0 && !raceEnabled {
		t.Fatalf("%.1f allocations per Write", a)
	}
}
