// Package porttest checks that a transport's ports keep the fabric.Port and
// fabric.ReceiveFunc contracts, over the transport's real sockets. Every
// transport's tests call Run.
package porttest

import (
	"bytes"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/umlswitch/umlswitch/fabric"
	"github.com/umlswitch/umlswitch/frame"
)

// Harness is one port under test and the peer at its far end.
type Harness struct {
	Port     fabric.Port
	Receiver fabric.Receiver
	ID       frame.PortID // the id the Receiver marks frames with

	// PeerSend makes the peer send one datagram to the port. PeerRecv reads
	// one datagram the port sent, waiting up to timeout. Neither may allocate,
	// so that allocation checks see only the port's own work.
	PeerSend func(b []byte) error
	PeerRecv func(b []byte, timeout time.Duration) (int, error)

	// Blocks says the peer's queue is bounded, so Write can return
	// ErrWouldBlock when the peer does not read.
	Blocks bool
	// EmptyAndOversize says the peer can send empty and oversize datagrams.
	EmptyAndOversize bool
}

// Run runs the conformance checks; open makes a fresh harness per check and
// registers its cleanup with t.
func Run(t *testing.T, open func(t *testing.T) *Harness) {
	t.Run("WriteDeliversInOrder", func(t *testing.T) { writeDelivers(t, open(t)) })
	t.Run("ReceiveReportsFramesAndIngress", func(t *testing.T) { receiveFrames(t, open(t)) })
	t.Run("ConcurrentWriters", func(t *testing.T) { concurrentWrites(t, open(t)) })
	t.Run("CloseUnblocksReceive", func(t *testing.T) { closeUnblocks(t, open(t)) })
	t.Run("NoAllocations", func(t *testing.T) { noAllocs(t, open(t)) })
	t.Run("FullPortBlocksThenDrains", func(t *testing.T) {
		h := open(t)
		if !h.Blocks {
			t.Log("peer queue is unbounded for this transport: nothing to check")
			return
		}
		fullThenDrain(t, h)
	})
}

// Frame builds a distinguishable Ethernet frame of size bytes.
func Frame(size int, tag byte) []byte {
	f := make([]byte, size)
	copy(f, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe, 0xfd, 0, 0, 0, tag, 0x88, 0xb5})
	for i := frame.HeaderLen; i < size; i++ {
		f[i] = tag + byte(i)
	}
	return f
}

func writeDelivers(t *testing.T, h *Harness) {
	sizes := []int{14, 60, 64, 500, h.Port.MaxFrame()}
	var frames [][]byte
	for i, s := range sizes {
		frames = append(frames, Frame(s, byte(i)))
	}
	n, err := h.Port.Write(frames)
	if err != nil || n != len(frames) {
		t.Fatalf("Write = %d, %v", n, err)
	}
	buf := make([]byte, frame.MaxFrameLimit)
	for i, want := range frames {
		m, err := h.PeerRecv(buf, 2*time.Second)
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if !bytes.Equal(buf[:m], want) {
			t.Fatalf("frame %d: got %d bytes, want %d (whole, unchanged)", i, m, len(want))
		}
	}
}

func receiveAll(t *testing.T, h *Harness, v *frame.Vector, want int) (sizes []int, data [][]byte) {
	t.Helper()
	type result struct {
		n   int
		err error
	}
	// Receive blocks; it runs on a goroutine so that a lost frame fails the
	// test at the deadline instead of hanging it (the goroutine ends when
	// the test's cleanup closes the port).
	done := make(chan result, 1)
	deadline := time.After(5 * time.Second)
	for len(sizes) < want {
		go func() {
			n, err := h.Receiver.Receive(v)
			done <- result{n, err}
		}()
		var r result
		select {
		case r = <-done:
		case <-deadline:
			t.Fatalf("received %d of %d", len(sizes), want)
		}
		n, err := r.n, r.err
		if err != nil {
			t.Fatalf("Receive: %v", err)
		}
		for i := 0; i < n; i++ {
			if v.Ports[i] != h.ID {
				t.Fatalf("frame marked with port %d, want %d", v.Ports[i], h.ID)
			}
			sizes = append(sizes, v.Sizes[i])
			if v.Sizes[i] <= v.MaxFrame {
				data = append(data, append([]byte(nil), v.Frame(i)...))
			} else {
				data = append(data, nil)
			}
		}
	}
	return sizes, data
}

func receiveFrames(t *testing.T, h *Harness) {
	v := frame.NewVector(h.Receiver.Depth, h.Receiver.MaxFrame)
	var sent [][]byte
	for i := 0; i < 5; i++ {
		f := Frame(60+i, byte(i))
		sent = append(sent, f)
		if err := h.PeerSend(f); err != nil {
			t.Fatal(err)
		}
	}
	_, data := receiveAll(t, h, v, len(sent))
	for i := range sent {
		if !bytes.Equal(data[i], sent[i]) {
			t.Fatalf("frame %d differs", i)
		}
	}
	if !h.EmptyAndOversize {
		return
	}
	// An empty datagram is reported as size 0 and an oversize one with its
	// true length, so the switch counts them instead of forwarding them.
	big := Frame(h.Receiver.MaxFrame+1, 9)
	for _, f := range [][]byte{{}, big, Frame(60, 10)} {
		if err := h.PeerSend(f); err != nil {
			t.Fatal(err)
		}
	}
	sizes, _ := receiveAll(t, h, v, 3)
	if sizes[0] != 0 || sizes[1] != len(big) || sizes[2] != 60 {
		t.Fatalf("sizes %v, want [0 %d 60]", sizes, len(big))
	}
}

// writeAll writes frames, waiting while the port is full.
func writeAll(h *Harness, frames [][]byte) error {
	for len(frames) > 0 {
		n, err := h.Port.Write(frames)
		frames = frames[n:]
		switch {
		case err == nil:
		case errors.Is(err, fabric.ErrWouldBlock):
			h.Port.WaitWritable(time.Second)
		default:
			return err
		}
	}
	return nil
}

func concurrentWrites(t *testing.T, h *Harness) {
	const writers, each = 4, 50
	var wg sync.WaitGroup
	var failed atomic.Value
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < each; i += 10 {
				var batch [][]byte
				for j := 0; j < 10; j++ {
					batch = append(batch, Frame(64, byte(w)))
				}
				if err := writeAll(h, batch); err != nil {
					failed.Store(err)
					return
				}
			}
		}(w)
	}
	got := make(map[byte]int)
	buf := make([]byte, frame.MaxFrameLimit)
	for n := 0; n < writers*each; n++ {
		m, err := h.PeerRecv(buf, 5*time.Second)
		if err != nil {
			t.Fatalf("after %d frames: %v", n, err)
		}
		if m != 64 {
			t.Fatalf("frame of %d bytes", m)
		}
		got[buf[11]]++
	}
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		t.Fatal(err)
	}
	for w := 0; w < writers; w++ {
		if got[byte(w)] != each {
			t.Fatalf("writer %d: %d frames arrived, want %d", w, got[byte(w)], each)
		}
	}
}

func closeUnblocks(t *testing.T, h *Harness) {
	v := frame.NewVector(h.Receiver.Depth, h.Receiver.MaxFrame)
	done := make(chan error, 1)
	go func() {
		for {
			if _, err := h.Receiver.Receive(v); err != nil {
				done <- err
				return
			}
		}
	}()
	time.Sleep(20 * time.Millisecond) // let it park
	if err := h.Port.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Receive after Close: %v, want net.ErrClosed", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Close did not unblock Receive")
	}
	if _, err := h.Port.Write([][]byte{Frame(60, 0)}); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Write after Close: %v, want net.ErrClosed", err)
	}
}

func noAllocs(t *testing.T, h *Harness) {
	if raceEnabled {
		t.Log("allocation counts are not meaningful under -race")
		return
	}
	v := frame.NewVector(h.Receiver.Depth, h.Receiver.MaxFrame)
	batch := make([][]byte, 8)
	for i := range batch {
		batch[i] = Frame(64, byte(i))
	}
	buf := make([]byte, frame.MaxFrameLimit)
	one := Frame(64, 1)
	round := func() {
		if _, err := h.Port.Write(batch); err != nil {
			t.Fatal(err)
		}
		for range batch {
			if _, err := h.PeerRecv(buf, time.Second); err != nil {
				t.Fatal(err)
			}
		}
		for range 8 {
			if err := h.PeerSend(one); err != nil {
				t.Fatal(err)
			}
		}
		for got := 0; got < 8; {
			n, err := h.Receiver.Receive(v)
			if err != nil {
				t.Fatal(err)
			}
			got += n
		}
	}
	round() // first round sizes the receive batch
	if a := testing.AllocsPerRun(50, round); a != 0 {
		t.Fatalf("%v allocations per round trip of 8 frames each way", a)
	}
}

func fullThenDrain(t *testing.T, h *Harness) {
	f := [][]byte{Frame(64, 0)}
	sent := 0
	for ; sent < 100000; sent++ {
		_, err := h.Port.Write(f)
		if errors.Is(err, fabric.ErrWouldBlock) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if sent == 100000 {
		t.Fatal("port never became full")
	}
	start := time.Now()
	if h.Port.WaitWritable(50 * time.Millisecond) {
		t.Fatal("WaitWritable reported room while the peer read nothing")
	}
	if d := time.Since(start); d < 40*time.Millisecond {
		t.Fatalf("WaitWritable returned after %v, before its timeout", d)
	}
	drained := make(chan struct{})
	go func() { // drain everything: some sockets report room only below a quarter full
		defer close(drained)
		time.Sleep(20 * time.Millisecond)
		buf := make([]byte, 2048)
		for {
			if _, err := h.PeerRecv(buf, 100*time.Millisecond); err != nil {
				return
			}
		}
	}()
	defer func() { <-drained }() // the peer is closed at cleanup: stop using it first
	if !h.Port.WaitWritable(5 * time.Second) {
		t.Fatal("WaitWritable did not see the peer drain")
	}
	if n, err := h.Port.Write(f); n != 1 || err != nil {
		t.Fatalf("Write after drain = %d, %v", n, err)
	}
}
