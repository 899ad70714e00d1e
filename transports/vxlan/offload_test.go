package vxlan

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/umlswitch/umlswitch/fabric"
	"github.com/umlswitch/umlswitch/frame"
	"github.com/umlswitch/umlswitch/internal/mmsg"
	"github.com/umlswitch/umlswitch/internal/nstest"
	"github.com/umlswitch/umlswitch/transports/portkind"
	"github.com/umlswitch/umlswitch/transports/porttest"
	"github.com/umlswitch/umlswitch/tunnel"
)

// linkFrames are frames as a switch writes them to a fabric link: runs of
// one size (GSO sends each run as one message), a shorter frame ending a
// run, runs too long for one message, and sizes that change.
func linkFrames() [][]byte {
	var fs [][]byte
	add := func(n, size int) {
		for i := 0; i < n; i++ {
			f := porttest.Frame(size, byte(len(fs)))
			binary.BigEndian.PutUint16(f[frame.HeaderLen:], uint16(len(fs))) // a sequence number
			fs = append(fs, f)
		}
	}
	add(30, 200)
	add(1, 100)
	add(50, 1518) // more than one message holds
	add(3, 60)
	add(1, 1000)
	add(40, 64)
	return fs
}

// Two switches' ends of a fabric link, in one namespace: frames written to
// one port arrive at the other whole and in order, whether or not the
// sockets offload segmentation; with offload, they travel coalesced (GSO
// on send, GRO on receive), more of them than a receive batch holds.
func TestLinkOffload(t *testing.T) {
	for _, c := range []struct {
		name    string
		offload bool
		mtu     string // of lo: 1500 makes the kernel refuse GSO for the 1518-byte frames
		a, b    netip.Addr
	}{
		{"offload", true, "", swAddr, peer3},
		{"offload, mtu 1500", true, "1500", swAddr, peer3},
		{"offload ipv6", true, "", sw6, peer6},
		{"plain", false, "", swAddr, peer3},
	} {
		t.Run(c.name, func(t *testing.T) {
			ns := newNS(t)
			if c.mtu != "" {
				ns.MustRun(t, "ip", "link", "set", "lo", "mtu", c.mtu)
			}
			reg := porttest.NewCapture(2)
			tb := tunnel.NewTable(reg, porttest.Quiet())
			tb.SetOffload(c.offload)
			a, b := c.a, c.b
			openIn(t, ns, tb, reg, Config{Options: Options{Addrs: tunnel.Addrs{Src: a, Dst: b}, VNI: 9}, Common: portkind.Common{Depth: 64, MaxFrame: 1518}})
			openIn(t, ns, tb, reg, Config{Options: Options{Addrs: tunnel.Addrs{Src: b, Dst: a}, VNI: 9}, Common: portkind.Common{Depth: 16, MaxFrame: 1518}})
			tx, _ := <-reg.Ports, <-reg.Receivers
			far, rx := <-reg.Ports, <-reg.Receivers

			done := make(chan struct{})
			go func() { // Receive blocks: end it if frames go missing
				select {
				case <-done:
				case <-time.After(5 * time.Second):
					far.Close()
				}
			}()
			defer close(done)
			v := frame.NewVector(rx.Depth, rx.MaxFrame)
			// cross sends frames over the link and checks what arrives.
			cross := func(sent [][]byte) {
				for rest := sent; len(rest) > 0; {
					n, err := tx.Write(rest)
					if err != nil && err != fabric.ErrWouldBlock {
						t.Fatalf("Write: %v", err)
					}
					rest = rest[n:]
				}
				for got := 0; got < len(sent); {
					n, err := rx.Receive(v)
					if err != nil {
						t.Fatalf("after %d of %d frames: %v", got, len(sent), err)
					}
					if n > rx.Depth {
						t.Fatalf("%d frames in a batch of %d", n, rx.Depth)
					}
					for i := 0; i < n; i++ {
						if v.Ports[i] != 2 || v.Sizes[i] != len(sent[got]) || !bytes.Equal(v.Frame(i), sent[got]) {
							t.Fatalf("frame %d: port %d, %d bytes, want %d bytes", got, v.Ports[i], v.Sizes[i], len(sent[got]))
						}
						got++
					}
				}
			}
			cross(linkFrames())
			if !raceEnabled {
				// 40 frames: one GSO message, one coalesced datagram, three receives.
				same := make([][]byte, 40)
				for i := range same {
					same[i] = porttest.Frame(100, byte(i))
				}
				cross(same)
				if a := testing.AllocsPerRun(20, func() { cross(same) }); a != 0 {
					t.Fatalf("%v allocations to send and receive 40 frames", a)
				}
			}
			var coalesced uint64
			for _, st := range tb.Stats() {
				coalesced += st.Coalesced
				if st.GSO != c.offload || st.GRO != c.offload {
					t.Fatalf("endpoint %s: GSO %v GRO %v", st.Local, st.GSO, st.GRO)
				}
			}
			if c.offload != (coalesced > 0) {
				t.Fatalf("%d datagrams arrived coalesced", coalesced)
			}
		})
	}
}

// gsoPeer is the far end of a fabric link that offloads as a switch does:
// it sends its frames as one GSO message and receives with GRO.
type gsoPeer struct {
	fd   int
	hdr  [HeaderLen]byte
	tx   *mmsg.Batch
	ctrl []byte
}

func (u *gsoPeer) prepare(f []byte, n int) {
	u.tx = mmsg.NewBatch(1, 2*n)
	for i := 0; i < n; i++ {
		u.tx.SetBuf(0, 2*i, u.hdr[:])
		u.tx.SetBuf(0, 2*i+1, f)
	}
	u.ctrl = make([]byte, unix.CmsgSpace(2))
	binary.NativeEndian.PutUint64(u.ctrl, uint64(unix.CmsgLen(2)))
	binary.NativeEndian.PutUint32(u.ctrl[8:], unix.SOL_UDP)
	binary.NativeEndian.PutUint32(u.ctrl[12:], unix.UDP_SEGMENT)
	binary.NativeEndian.PutUint16(u.ctrl[unix.CmsgLen(0):], uint16(HeaderLen+len(f)))
	u.tx.Hdrs[0].Msg.Control = &u.ctrl[0]
	u.tx.Hdrs[0].Msg.SetControllen(len(u.ctrl))
}

// BenchmarkOffload: a switch between two VXLAN peers, as
// BenchmarkSwitchOverVXLAN, with the switch's GSO and GRO off and on, and
// with peers that send frame by frame (as UML and QEMU do) or that offload
// as another switch on a fabric link does. Each op is 64 frames of 64
// bytes one way.
func BenchmarkOffload(b *testing.B) {
	for _, c := range []struct {
		name         string
		offload, gso bool
	}{
		{"switch=plain/peers=plain", false, false},
		{"switch=offload/peers=plain", true, false},
		{"switch=plain/peers=offload", false, true},
		{"switch=offload/peers=offload", true, true},
	} {
		b.Run(c.name, func(b *testing.B) { benchOffload(b, c.offload, c.gso) })
	}
}

func benchOffload(b *testing.B, offload, peersGSO bool) {
	const depth, size = 64, 64
	ns := nstest.New(b)
	sw, tb := porttest.NewTunnelSwitch(b)
	tb.SetOffload(offload)
	peers := benchPeers(b, ns, tb, sw, peersGSO, peer3, peer4)
	from, to := peers[0], peers[1]
	m1, m2 := mac(1), mac(2)
	// Each peer teaches the switch its MAC.
	buf := make([]byte, 1<<16)
	for _, l := range []struct {
		p   *gsoPeer
		mac frame.MAC
	}{{from, m1}, {to, m2}} {
		f := append(l.p.hdr[:], porttest.Ether(frame.Broadcast, l.mac, 60, 0)...)
		if _, err := unix.Write(l.p.fd, f); err != nil {
			b.Fatal(err)
		}
	}
	readTimeout(to.fd, buf, time.Second)
	readTimeout(from.fd, buf, time.Second)

	f := porttest.Ether(m2, m1, size, 1)
	from.prepare(f, depth)
	plain := from.plain(f, depth)
	rx := newBenchRx(b, depth, peersGSO)
	const per = HeaderLen + size
	var lost, sent int
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if peersGSO {
			sendAll(b, from.tx, from.fd, 1)
		} else {
			sendAll(b, plain, from.fd, depth)
		}
		lost += depth - rx.await(to.fd, depth*per)/per
		sent += depth
	}
	b.StopTimer()
	porttest.ReportFrames(b, depth, sent, lost)
	var coalesced uint64
	for _, st := range tb.Stats() {
		coalesced += st.Coalesced
	}
	b.ReportMetric(float64(coalesced)/float64(b.N), "coalesced/op")
	if st := sw.StatsOf(fmt.Sprintf("vxlan %s:%d->%s:%d vni 42", swAddr, DefaultPort, peer3, DefaultPort)); st.RxFrames == 0 {
		b.Fatal("no frames counted on the sending peer's port")
	}
}

// benchPeers opens a port of sw (VNI 42, batches of 64) to each of addrs
// and the peer at its far end, in order; with gro, the peers' sockets
// receive coalesced datagrams, as a switch's own do.
func benchPeers(b *testing.B, ns *nstest.NS, tb *tunnel.Table, sw fabric.Registry, gro bool, addrs ...netip.Addr) []*gsoPeer {
	b.Helper()
	peers := make([]*gsoPeer, len(addrs))
	for i, addr := range addrs {
		cfg := Config{Options: Options{Addrs: tunnel.Addrs{Src: swAddr, Dst: addr}, VNI: 42}, Common: portkind.Common{Depth: 64, MaxFrame: 1518}}
		openIn(b, ns, tb, sw, cfg)
		u := openRemote(b, ns, cfg, false)
		if gro {
			if err := unix.SetsockoptInt(u.Fd, unix.SOL_UDP, unix.UDP_GRO, 1); err != nil {
				b.Fatal(err)
			}
		}
		peers[i] = &gsoPeer{fd: u.Fd, hdr: [HeaderLen]byte(u.Hdr)}
	}
	return peers
}

// plain is n messages of the peer's header and f: one datagram per frame,
// as UML and QEMU send.
func (u *gsoPeer) plain(f []byte, n int) *mmsg.Batch {
	m := mmsg.NewBatch(n, 2)
	for i := 0; i < n; i++ {
		m.SetBuf(i, 0, u.hdr[:])
		m.SetBuf(i, 1, f)
	}
	return m
}

// sendAll sends messages [0, n) of m on fd (non-blocking), retrying while
// the socket's buffer is full.
func sendAll(b *testing.B, m *mmsg.Batch, fd, n int) {
	for i := 0; i < n; {
		k, err := m.Send(fd, i, n, unix.MSG_DONTWAIT)
		if err != nil && err != unix.EAGAIN {
			b.Fatal(err)
		}
		i += k
	}
}

// benchRx receives a benchmark's datagrams, depth at a time, each with
// room for a coalesced datagram where the peers use GRO. Frames are
// counted by bytes: a coalesced datagram holds several.
type benchRx struct {
	b     *testing.B
	m     *mmsg.Batch
	depth int
	wait  time.Duration  // without a datagram, before await counts the rest lost
	pfd   [1]unix.PollFd // here, not on await's stack: no allocation per wait
}

func newBenchRx(b *testing.B, depth int, gro bool) *benchRx {
	room := 4096 // as porttest.BenchSwitch
	if gro {
		room = 1 << 16
	}
	r := &benchRx{b: b, m: mmsg.NewBatch(depth, 1), depth: depth, wait: 100 * time.Millisecond}
	bufs := make([]byte, depth*room)
	for i := 0; i < depth; i++ {
		r.m.SetBuf(i, 0, bufs[i*room:(i+1)*room])
	}
	return r
}

// await receives from fd until want bytes have come or none for r.wait
// (lost: a benchmark counts them rather than hangs), and returns the bytes
// received.
func (r *benchRx) await(fd, want int) int {
	r.pfd[0] = unix.PollFd{Fd: int32(fd), Events: unix.POLLIN}
	got := 0
	for got < want {
		m, err := r.m.Recv(fd, r.depth, unix.MSG_DONTWAIT)
		if err == unix.EAGAIN {
			if k, _ := unix.Poll(r.pfd[:], int(r.wait/time.Millisecond)); k == 0 {
				break
			}
			continue
		}
		if err != nil {
			r.b.Fatal(err)
		}
		got += r.bytes(m)
	}
	return got
}

// drain receives what fd holds, without waiting, and returns its bytes.
func (r *benchRx) drain(fd int) int {
	got := 0
	for {
		m, err := r.m.Recv(fd, r.depth, unix.MSG_DONTWAIT)
		if err == unix.EAGAIN {
			return got
		}
		if err != nil {
			r.b.Fatal(err)
		}
		if got += r.bytes(m); m < r.depth {
			return got // short of a full batch: the queue is empty
		}
	}
}

func (r *benchRx) bytes(m int) int {
	n := 0
	for i := 0; i < m; i++ {
		n += int(r.m.Hdrs[i].Len)
	}
	return n
}

func readTimeout(fd int, b []byte, d time.Duration) {
	pfd := [1]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	unix.Poll(pfd[:], int(d/time.Millisecond))
	unix.Read(fd, b)
}
