package raw

import (
	"encoding/binary"
	"errors"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/umlswitch/umlswitch/fabric"
	"github.com/umlswitch/umlswitch/frame"
	"github.com/umlswitch/umlswitch/internal/pktring"
	"github.com/umlswitch/umlswitch/transports/portkind"
	"github.com/umlswitch/umlswitch/transports/porttest"
)

// packetKinds runs f for the two ways an AF_PACKET port reads: recvmmsg
// and the ring.
func packetKinds(t *testing.T, f func(t *testing.T, k kind)) {
	t.Run("recvmmsg", func(t *testing.T) { f(t, kind{XDPOff, RingOff}) })
	t.Run("blocks", func(t *testing.T) { f(t, kind{XDPOff, RingBlocks}) })
	t.Run("frames", func(t *testing.T) { f(t, kind{XDPOff, RingFrames}) })
}

// numberedFrame is frame n of a flood: its number after the header.
func numberedFrame(n, size int) []byte {
	f := ethertype(1, 0x88b5, size)
	binary.BigEndian.PutUint32(f[14:], uint32(n))
	return f
}

// numbers reads r on a goroutine of its own until the port closes, and
// passes on the number of every frame (-1 for one of the wrong size).
func numbers(t *testing.T, r fabric.Receiver, maxFrame int) <-chan int {
	out := make(chan int, 1<<20)
	go func() {
		v := frame.NewVector(64, maxFrame)
		for {
			n, err := r.Receive(v)
			if err != nil {
				return // closed
			}
			for i := range n {
				if v.Sizes[i] < 18 || v.Sizes[i] > v.MaxFrame {
					out <- -1
					continue
				}
				out <- int(binary.BigEndian.Uint32(v.Frame(i)[14:]))
			}
		}
	}()
	return out
}

// drain collects frame numbers from c until none came for quiet.
func drain(t *testing.T, c <-chan int, quiet time.Duration) []int {
	t.Helper()
	var got []int
	for {
		select {
		case n := <-c:
			if n < 0 {
				t.Fatal("a frame of the wrong size")
			}
			got = append(got, n)
		case <-time.After(quiet):
			return got
		}
	}
}

// A flood of more frames than the port's ring (or socket buffer) holds,
// sent while the port reads nothing: every frame arrives, in order, or is
// counted as an rx-overrun, and the port reads all that comes after. On
// the ring that is many blocks, each handed back and filled again.
func TestFloodArrivesOrIsCounted(t *testing.T) { packetKinds(t, testFloodArrivesOrIsCounted) }

func testFloodArrivesOrIsCounted(t *testing.T, k kind) {
	ns := vethPair(t)
	p := openIn(t, ns, Config{Options: k.options("port"), Common: portkind.Common{Depth: 64}})
	peer := porttest.OpenPacketSocket(t, ns, "peer")
	// The ring holds about 860 of these a block.
	flood := 2 * pktring.DefaultBlocks * pktring.DefaultBlockSize / 150
	for i := range flood {
		if err := peer.Send(numberedFrame(i, 60)); err != nil {
			t.Fatal(err)
		}
	}
	c := numbers(t, p.Receivers(1)[0], p.MaxFrame())
	got := drain(t, c, 200*time.Millisecond)
	var d [fabric.NumDropReasons]uint64
	p.(fabric.KernelDropper).KernelDrops(&d)
	overrun := int(d[fabric.DropRxOverrun])
	if len(got)+overrun != flood || overrun == 0 || !slices.IsSorted(got) || d[fabric.DropDecap] != 0 {
		t.Fatalf("%d of %d frames arrived (in order: %v), %d counted as rx-overrun, %d decap",
			len(got), flood, slices.IsSorted(got), overrun, d[fabric.DropDecap])
	}
	t.Logf("%d of %d arrived, %d rx-overrun", len(got), flood, overrun)
	// The reader keeps up with a stream sent while it reads.
	for i := range 5000 {
		if err := peer.Send(numberedFrame(flood+i, 60+i%1400)); err != nil {
			t.Fatal(err)
		}
		if i%64 == 0 {
			time.Sleep(50 * time.Microsecond)
		}
	}
	got = drain(t, c, 200*time.Millisecond)
	var after [fabric.NumDropReasons]uint64
	p.(fabric.KernelDropper).KernelDrops(&after)
	more := int(after[fabric.DropRxOverrun]) - overrun
	if len(got)+more != 5000 || !slices.IsSorted(got) || len(got) == 0 || got[0] < flood {
		t.Fatalf("after the flood: %d of 5000 arrived, %d more overruns", len(got), more)
	}
	if more > 0 {
		t.Logf("%d overruns while reading", more)
	}
}

// A 64 KiB segmentation-offload frame, the largest a host hands a veth,
// fits a block whole and is cut into segments.
func TestLargestOffloadFrameIsCut(t *testing.T) { packetKinds(t, testLargestOffloadFrameIsCut) }

func testLargestOffloadFrameIsCut(t *testing.T, k kind) {
	ns := vethPair(t)
	p := openIn(t, ns, Config{Options: k.options("port"), Common: portkind.Common{Depth: 8}})
	payload := make([]byte, 65535-20-32) // an IPv4 packet of 64 KiB less one byte, TCP with timestamps
	for i := range payload {
		payload[i] = byte(i % 251)
	}
	porttest.SendTSO(t, ns, "peer", payload, 1448)
	porttest.ReceiveTSO(t, p.Receivers(1)[0], frame.NewVector(8, p.MaxFrame()), payload)
}

// On a quiet link a lone frame arrives within milliseconds: in its slot
// at once, or in the block the kernel hands over after the retire timeout.
func TestRingHandsOverALoneFrame(t *testing.T) {
	t.Run("blocks", func(t *testing.T) { testRingHandsOverALoneFrame(t, RingBlocks) })
	t.Run("frames", func(t *testing.T) { testRingHandsOverALoneFrame(t, RingFrames) })
}

func testRingHandsOverALoneFrame(t *testing.T, ring RingMode) {
	ns := vethPair(t)
	p := openIn(t, ns, Config{Options: Options{Ifname: "port", Ring: ring}})
	if !strings.Contains(p.Name(), "(ring of "+ring.String()+")") {
		t.Fatalf("name %q does not say the port reads a ring of %s", p.Name(), ring)
	}
	peer := porttest.OpenPacketSocket(t, ns, "peer")
	r := p.Receivers(1)[0]
	v := frame.NewVector(16, p.MaxFrame())
	var waits []time.Duration
	for i := range 9 {
		start := time.Now()
		if err := peer.Send(numberedFrame(i, 60)); err != nil {
			t.Fatal(err)
		}
		n, err := receiveTimeout(r, v, time.Second)
		if err != nil || n != 1 || binary.BigEndian.Uint32(v.Frame(0)[14:]) != uint32(i) {
			t.Fatalf("frame %d: Receive = %d, %v", i, n, err)
		}
		waits = append(waits, time.Since(start))
	}
	slices.Sort(waits)
	t.Logf("a lone frame took %v to %v, median %v", waits[0], waits[len(waits)-1], waits[len(waits)/2])
	if waits[len(waits)/2] > 50*time.Millisecond {
		t.Fatalf("a lone frame takes %v (median) to arrive", waits[len(waits)/2])
	}
}

// An interface that goes down shows as a transient error on the reading
// side, which goes on reading once it is up again.
func TestInterfaceDownIsTransient(t *testing.T) { packetKinds(t, testInterfaceDownIsTransient) }

func testInterfaceDownIsTransient(t *testing.T, k kind) {
	ns := vethPair(t)
	p := openIn(t, ns, Config{Options: k.options("port")})
	peer := porttest.OpenPacketSocket(t, ns, "peer")
	type result struct {
		n   int
		err error
	}
	results := make(chan result, 100)
	go func() {
		r := p.Receivers(1)[0]
		v := frame.NewVector(16, p.MaxFrame())
		for {
			n, err := r.Receive(v)
			results <- result{n, err}
			if errors.Is(err, net.ErrClosed) {
				return
			}
		}
	}()
	expect := func(what string, ok func(result) bool) {
		t.Helper()
		deadline := time.After(2 * time.Second)
		for {
			select {
			case res := <-results:
				if ok(res) {
					return
				}
			case <-deadline:
				t.Fatalf("no %s", what)
			}
		}
	}
	if err := peer.Send(numberedFrame(1, 60)); err != nil {
		t.Fatal(err)
	}
	expect("frame", func(r result) bool { return r.n == 1 })
	ns.MustRun(t, "ip", "link", "set", "port", "down")
	expect("error with the interface down", func(r result) bool {
		return r.err != nil && !errors.Is(r.err, net.ErrClosed)
	})
	ns.MustRun(t, "ip", "link", "set", "port", "up")
	ns.WaitUp(t, "port", "peer")
	if err := peer.Send(numberedFrame(2, 60)); err != nil {
		t.Fatal(err)
	}
	expect("frame after the interface came back", func(r result) bool { return r.n == 1 })
}
