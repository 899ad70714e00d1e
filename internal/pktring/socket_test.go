package pktring

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/umlswitch/umlswitch/internal/nstest"
	"github.com/umlswitch/umlswitch/internal/packetsock"
)

// vethRing makes a namespace with a veth pair, ring0 and peer0, opens a socket
// on ring0 with the rings cfg describes, and a plain packet socket on peer0.
func vethRing(t *testing.T, cfg Config) (fd int, r *Ring, peer int) {
	return vethRingMTU(t, cfg, 1500)
}

func vethRingMTU(t *testing.T, cfg Config, mtu int) (fd int, r *Ring, peer int) {
	t.Helper()
	ns := nstest.New(t)
	ns.MustRun(t, "ip", "link", "add", "ring0", "mtu", fmt.Sprint(mtu), "type", "veth", "peer", "name", "peer0", "mtu", fmt.Sprint(mtu))
	for _, dev := range []string{"ring0", "peer0"} {
		ns.MustRun(t, "sysctl", "-qw", "net.ipv6.conf."+dev+".disable_ipv6=1")
		ns.MustRun(t, "ip", "link", "set", dev, "up")
	}
	ns.WaitUp(t, "ring0", "peer0")
	err := ns.Do(func() error {
		ifi, err := net.InterfaceByName("ring0")
		if err != nil {
			return err
		}
		if fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0); err != nil {
			return err
		}
		if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_IGNORE_OUTGOING, 1); err != nil {
			return err
		}
		if r, err = Open(fd, cfg); err != nil {
			return err
		}
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: packetsock.AllProtocols, Ifindex: ifi.Index}); err != nil {
			return err
		}
		peer, err = packetsock.Open("peer0")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		r.Close()
		unix.Close(fd)
		unix.Close(peer)
	})
	return fd, r, peer
}

// waitReady polls fd until the ring has a block for the reader, up to d.
func waitReady(fd int, rx *RX, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for !rx.Ready() {
		left := time.Until(deadline)
		if left <= 0 {
			return false
		}
		unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, int(left.Milliseconds())+1)
	}
	return true
}

func ether(n, size int) []byte {
	f := make([]byte, size)
	copy(f, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe, 0xfd, 0, 0, 0, 1, 0x88, 0xb5})
	binary.BigEndian.PutUint32(f[14:], uint32(n))
	return f
}

// readAll reads frames until none came for quiet, and returns their
// numbers.
func readAll(t *testing.T, fd int, rx *RX, quiet time.Duration) []int {
	t.Helper()
	var got []int
	for waitReady(fd, rx, quiet) {
		for {
			f, ok := rx.Next()
			if !ok {
				break
			}
			if len(f.Data) < 18 || f.Len != len(f.Data) && !f.Copied || len(f.Vnet) != vnetLen {
				t.Fatalf("frame of %d bytes (%d true), vnet %d", len(f.Data), f.Len, len(f.Vnet))
			}
			got = append(got, int(binary.BigEndian.Uint32(f.Data[14:])))
		}
	}
	return got
}

func stats(t *testing.T, fd int) *unix.TpacketStatsV3 {
	t.Helper()
	st, err := unix.GetsockoptTpacketStatsV3(fd, unix.SOL_PACKET, unix.PACKET_STATISTICS)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// A flood of many times what the ring holds, with nobody reading: every
// frame either arrives, in order, or is counted as dropped, the kernel
// freezes the ring while it is full, and it takes frames again once the
// reader has handed the blocks back.
func TestRingOverrunIsCountedAndRecovers(t *testing.T) {
	fd, r, peer := vethRing(t, Config{BlockSize: 4096, Blocks: 4, VnetHdr: true})
	const flood = 500
	for i := range flood {
		if _, err := unix.Write(peer, ether(i, 64)); err != nil {
			t.Fatal(err)
		}
	}
	got := readAll(t, fd, r.RX, 100*time.Millisecond)
	st := stats(t, fd)
	if len(got)+int(st.Drops) != flood || st.Drops == 0 || st.Freeze_q_cnt == 0 || !slices.IsSorted(got) {
		t.Fatalf("%d frames arrived (in order: %v), %d dropped, %d freezes, of %d sent",
			len(got), slices.IsSorted(got), st.Drops, st.Freeze_q_cnt, flood)
	}
	t.Logf("%d of %d arrived (%d blocks of 4 KiB), %d dropped", len(got), flood, 4, st.Drops)
	for i := range 50 {
		if _, err := unix.Write(peer, ether(flood+i, 64)); err != nil {
			t.Fatal(err)
		}
	}
	got = readAll(t, fd, r.RX, 100*time.Millisecond)
	if len(got) != 50 || got[0] != flood || got[49] != flood+49 {
		t.Fatalf("after the flood: %d frames arrived: %v", len(got), got)
	}
	if st := stats(t, fd); st.Drops != 0 {
		t.Fatalf("%d dropped after the flood", st.Drops)
	}
}

// loneFrameWait sends nine frames one at a time into a ring made with cfg,
// each read before the next is sent, and returns the median time each
// waited to be handed over.
func loneFrameWait(t *testing.T, cfg Config) time.Duration {
	t.Helper()
	fd, r, peer := vethRing(t, cfg)
	var waits []time.Duration
	for i := range 9 {
		start := time.Now()
		if _, err := unix.Write(peer, ether(i, 64)); err != nil {
			t.Fatal(err)
		}
		if !waitReady(fd, r.RX, time.Second) {
			t.Fatalf("frame %d not handed over after a second", i)
		}
		waits = append(waits, time.Since(start))
		if got := readAll(t, fd, r.RX, 0); len(got) != 1 || got[0] != i {
			t.Fatalf("read %v, want frame %d", got, i)
		}
	}
	slices.Sort(waits)
	t.Logf("a lone frame waited %v to %v, median %v", waits[0], waits[len(waits)-1], waits[len(waits)/2])
	return waits[len(waits)/2]
}

// A block the kernel only began is handed over when the retire timeout
// passes: a lone frame on a quiet link arrives within milliseconds (50 ms
// is a bound only a timer that never fires misses).
func TestRingRetiresAPartBlock(t *testing.T) {
	if w := loneFrameWait(t, Config{VnetHdr: true}); w > 50*time.Millisecond {
		t.Fatalf("a lone frame waits %v (median): the retire timeout is not working", w)
	}
}

// A slot ring hands each frame over as soon as it is in its slot.
func TestSlotRingHandsOverAtOnce(t *testing.T) {
	loneFrameWait(t, Config{VnetHdr: true, SlotSize: 2048})
}

// A flood into a ring of 8 slots: every frame arrives in order or is
// counted as dropped, and frames come again once the slots are back.
func TestSlotRingOverrunIsCounted(t *testing.T) {
	fd, r, peer := vethRing(t, Config{VnetHdr: true, SlotSize: 2048, BlockSize: 4096, Blocks: 4})
	const flood = 200
	for i := range flood {
		if _, err := unix.Write(peer, ether(i, 64)); err != nil {
			t.Fatal(err)
		}
	}
	got := readAll(t, fd, r.RX, 100*time.Millisecond)
	st, err := unix.GetsockoptTpacketStats(fd, unix.SOL_PACKET, unix.PACKET_STATISTICS)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 8 || len(got)+int(st.Drops) != flood || !slices.IsSorted(got) {
		t.Fatalf("%d frames arrived (in order: %v), %d dropped, of %d", len(got), slices.IsSorted(got), st.Drops, flood)
	}
	for i := range 5 {
		if _, err := unix.Write(peer, ether(flood+i, 64)); err != nil {
			t.Fatal(err)
		}
	}
	if got := readAll(t, fd, r.RX, 100*time.Millisecond); len(got) != 5 || got[0] != flood {
		t.Fatalf("after the flood: %v", got)
	}
}

// A frame longer than a slot comes cut, marked as copied, and whole from
// the socket's queue, in its place among the others.
func TestSlotRingCopiesLongFrames(t *testing.T) {
	fd, r, peer := vethRingMTU(t, Config{VnetHdr: true, SlotSize: 2048}, 9000)
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 1<<20); err != nil {
		t.Fatal(err)
	}
	sizes := []int{64, 5000, 1500, 9014, 64}
	for i, size := range sizes {
		if _, err := unix.Write(peer, ether(i, size)); err != nil {
			t.Fatal(err)
		}
	}
	buf := make([]byte, 10000)
	for i, size := range sizes {
		if !waitReady(fd, r.RX, time.Second) {
			t.Fatalf("frame %d not handed over", i)
		}
		f, ok := r.RX.Next()
		if !ok || f.Len != size || f.Copied != (size > r.RX.MaxFrame()) {
			t.Fatalf("frame %d: %v, %d of %d bytes, copied %v", i, ok, len(f.Data), f.Len, f.Copied)
		}
		data := f.Data
		if f.Copied {
			n, err := unix.Read(fd, buf)
			if err != nil || n != vnetLen+size {
				t.Fatalf("frame %d from the queue: %d bytes, %v", i, n, err)
			}
			data = buf[vnetLen:n]
		}
		if !bytes.Equal(data, ether(i, size)) {
			t.Fatalf("frame %d differs", i)
		}
	}
}
