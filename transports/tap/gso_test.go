package tap

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"golang.org/x/sys/unix"

	"github.com/umlswitch/umlswitch/fabric"
	"github.com/umlswitch/umlswitch/internal/offload"
	"github.com/umlswitch/umlswitch/internal/pollfd"
	"github.com/umlswitch/umlswitch/transports/porttest"
)

// With vnet_hdr=1, 40 segments of one TCP stream written as one batch go
// to the host as one segmentation-offload frame (the tap's receive
// counters rise by one packet of all their bytes), and the host's TCP
// stack takes it: its socket reads the stream intact. Written alone (the
// baseline), they are 40 packets. A frame of another kind in the batch
// cuts the run in two and goes out alone, in order.
func TestVnetHdrMergesATCPStream(t *testing.T) {
	data := func(off int) byte { return byte(off % 251) }
	for _, c := range []struct {
		name       string
		noCoalesce bool
		between    bool   // a non-TCP frame in the middle of the batch
		packets    uint64 // written to the tap
		headers    uint64 // sets of headers among them
	}{
		{"merged", false, false, 1, 1},
		{"alone", true, false, 40, 40},
		{"cut by another frame", false, true, 3, 2},
	} {
		t.Run(c.name, func(t *testing.T) {
			pr := openPeer(t, "gso0", c.noCoalesce)
			segs := pr.stream(40, 1448, data)
			var head [offload.MaxHeaders]byte
			if r := offload.Coalesce(segs, maxRun, &head); r.Count != 40 {
				t.Fatalf("the test's segments merge %d of 40", r.Count)
			}
			batch, want := segs, 40*1448+c.headers*54
			if c.between {
				other := porttest.Frame(60, 7)
				batch = append(append(append([][]byte(nil), segs[:20]...), other), segs[20:]...)
				want += 60
			}
			packets, bytesIn := pr.rx()
			if n, err := pr.p.Write(batch); n != len(batch) || err != nil {
				t.Fatalf("Write = %d, %v; want %d", n, err, len(batch))
			}
			got, err := pr.readAll(40 * 1448)
			if err != nil {
				t.Fatal(err)
			}
			for i, b := range got {
				if b != data(i) {
					t.Fatalf("byte %d of the stream is %d, want %d", i, b, data(i))
				}
			}
			packets2, bytes2 := pr.rx()
			if packets2-packets != c.packets || bytes2-bytesIn != want {
				t.Fatalf("the tap received %d packets of %d bytes, want %d of %d", packets2-packets, bytes2-bytesIn, c.packets, want)
			}
			if bytes.Equal(got[:10], got[1448:1458]) {
				t.Fatal("the data does not tell segments apart")
			}
			// Merging works in the port's own buffers. (The host drops these
			// segments as duplicates.)
			if a := testing.AllocsPerRun(20, func() { pr.p.Write(batch) }); a != 0 && !raceEnabled {
				t.Fatalf("%v allocations per Write", a)
			}
		})
	}
}

// The gain of merging: batches of 64 segments of one TCP stream (1448
// bytes of payload each, as behind a 1500-byte MTU with timestamps)
// written to a vnet_hdr tap whose host end is a TCP socket that reads
// them, merged or each alone. The host's stack receives in the writing
// thread (a tap write hands the packet to it at once), so ns/seg is the
// switch's and the host's work together; cpu-ns/seg and sys-ns/seg are
// this process's CPU time per segment (the reader of the host's socket and
// of its ACKs included).
func BenchmarkVnetHdrWriteTCP(b *testing.B) {
	const batch, size = 64, 1448
	for _, c := range []struct {
		name       string
		noCoalesce bool
	}{{"merged", false}, {"alone", true}} {
		b.Run(c.name, func(b *testing.B) {
			pr := openPeer(b, "gsob0", c.noCoalesce)
			seq0, id0 := pr.seq, pr.id
			segs := pr.stream(batch, size, func(off int) byte { return byte(off) })
			pr.seq, pr.id = seq0, id0
			// Sums of each segment but for its sequence number and IPv4 id,
			// so that a segment is readdressed in a few instructions.
			tcpBase, ipBase := make([]uint64, batch), make([]uint64, batch)
			for j, f := range segs {
				tcp, ip := f[34:], f[14:34]
				binary.BigEndian.PutUint32(tcp[4:], 0)
				tcp[16], tcp[17] = 0, 0
				tcpBase[j] = sum16(tcp, pseudo(len(tcp)))
				ip[4], ip[5], ip[10], ip[11] = 0, 0, 0, 0
				ipBase[j] = sum16(ip, 0)
			}
			var read atomic.Int64
			go func() {
				buf := make([]byte, 1<<20)
				for {
					n, err := pr.conn.Read(buf)
					read.Add(int64(n))
					if err != nil {
						return
					}
				}
			}()
			sent := 0
			send := func(k int) {
				for j, f := range segs[:k] {
					seq, id := pr.seq+uint32(j*size), pr.id+uint16(j)
					binary.BigEndian.PutUint32(f[34+4:], seq)
					binary.BigEndian.PutUint16(f[34+16:], ^fold16(tcpBase[j]+uint64(seq>>16)+uint64(seq&0xffff)))
					binary.BigEndian.PutUint16(f[14+4:], id)
					binary.BigEndian.PutUint16(f[14+10:], ^fold16(ipBase[j]+uint64(id)))
				}
				if n, err := pr.p.Write(segs[:k]); n != k || err != nil {
					b.Fatalf("Write = %d, %v", n, err)
				}
				pr.seq += uint32(k * size)
				pr.id += uint16(k)
				sent += k * size
			}
			// Open the host's window (it grows as its reader keeps up) to
			// whole batches.
			for deadline := time.Now().Add(10 * time.Second); pr.open() < 4*batch*size; {
				if time.Now().After(deadline) {
					b.Fatalf("the host's window stayed under %d bytes: %d", 4*batch*size, pr.open())
				}
				pr.waitWindow(size)
				send(min(batch, pr.open()/size))
			}
			var ru0, ru1 unix.Rusage
			unix.Getrusage(unix.RUSAGE_SELF, &ru0)
			b.ResetTimer()
			for range b.N {
				pr.waitWindow(batch * size)
				send(batch)
			}
			for deadline := time.Now().Add(10 * time.Second); read.Load() < int64(sent); time.Sleep(100 * time.Microsecond) {
				if time.Now().After(deadline) {
					b.Fatalf("the host read %d of %d bytes", read.Load(), sent)
				}
			}
			b.StopTimer()
			unix.Getrusage(unix.RUSAGE_SELF, &ru1)
			segsSent := float64(b.N * batch)
			cpu := time.Duration(ru1.Utime.Nano()-ru0.Utime.Nano()) + time.Duration(ru1.Stime.Nano()-ru0.Stime.Nano())
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/segsSent, "ns/seg")
			b.ReportMetric(float64(cpu.Nanoseconds())/segsSent, "cpu-ns/seg")
			b.ReportMetric(float64(ru1.Stime.Nano()-ru0.Stime.Nano())/segsSent, "sys-ns/seg")
			b.SetBytes(batch * size)
		})
	}
}

// The host's kernel takes IPv6 super-frames, and those of frames with a
// VLAN tag, whole (one packet on the tap's counters, not a refusal and
// then each segment alone), and receives the bytes written: a packet
// socket on the tap sees the super-frame (with its tag taken off).
func TestVnetHdrSuperFramesAccepted(t *testing.T) {
	for _, c := range []struct{ v6, vlan bool }{{false, false}, {true, false}, {false, true}, {true, true}} {
		t.Run(fmt.Sprintf("v6=%v vlan=%v", c.v6, c.vlan), func(t *testing.T) {
			p, host, ns := openTapWith(t, 1500, true)
			segs := tcpSegments(t, c.v6, c.vlan, 20, 1448)
			var head [offload.MaxHeaders]byte
			r := offload.Coalesce(segs, maxRun, &head)
			if r.Count != 20 {
				t.Fatalf("the test's segments merge %d of 20", r.Count)
			}
			super := r.Append(nil, &head, segs)
			packets, bytesIn := rxCounters(t, ns, p.Ifname())
			if n, err := p.Write(segs); n != 20 || err != nil {
				t.Fatalf("Write = %d, %v", n, err)
			}
			packets2, bytes2 := rxCounters(t, ns, p.Ifname())
			if packets2-packets != 1 || bytes2-bytesIn != uint64(len(super)) {
				t.Fatalf("the tap received %d packets of %d bytes, want one of %d", packets2-packets, bytes2-bytesIn, len(super))
			}
			want := super
			if c.vlan {
				want = append(bytes.Clone(super[:12]), super[16:]...)
			}
			buf := make([]byte, 70000)
			for {
				n, err := host.Recv(buf, 2*time.Second)
				if err != nil {
					t.Fatalf("the packet socket got no super-frame: %v", err)
				}
				if n == len(want) {
					if !bytes.Equal(buf[:n], want) {
						t.Fatal("the host received other bytes than the super-frame's")
					}
					return
				}
			}
		})
	}
}

// tcpSegments builds n segments of one TCP stream, size bytes of payload
// each.
func tcpSegments(t *testing.T, v6, vlan bool, n, size int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		payload := make([]byte, size)
		for j := range payload {
			payload[j] = byte(i + j)
		}
		eth := &layers.Ethernet{SrcMAC: net.HardwareAddr(peerMAC), DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2}, EthernetType: layers.EthernetTypeIPv4}
		tcp := &layers.TCP{SrcPort: peerPort, DstPort: hostPort, Seq: uint32(i * size), Ack: 1, Window: 1000, ACK: true}
		var ip gopacket.SerializableLayer
		if v6 {
			eth.EthernetType = layers.EthernetTypeIPv6
			ip6 := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolTCP, SrcIP: net.ParseIP("fd00::1"), DstIP: net.ParseIP("fd00::2")}
			tcp.SetNetworkLayerForChecksum(ip6)
			ip = ip6
		} else {
			ip4 := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Id: uint16(i), Protocol: layers.IPProtocolTCP, SrcIP: peerIP, DstIP: hostIP}
			tcp.SetNetworkLayerForChecksum(ip4)
			ip = ip4
		}
		stack := []gopacket.SerializableLayer{eth}
		if vlan {
			stack = append(stack, &layers.Dot1Q{VLANIdentifier: 10, Type: eth.EthernetType})
			eth.EthernetType = layers.EthernetTypeDot1Q
		}
		stack = append(stack, ip, tcp, gopacket.Payload(payload))
		buf := gopacket.NewSerializeBuffer()
		if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, stack...); err != nil {
			t.Fatal(err)
		}
		out[i] = bytes.Clone(buf.Bytes())
	}
	return out
}

// A super-frame the descriptor refuses (here a datagram socket's
// EMSGSIZE; a tap's would be EINVAL) loses nothing: its segments go one by
// one, in order, and count as written.
func TestVnetHdrWriteFallsBackWhenRefused(t *testing.T) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fds[1])
	if err := unix.SetsockoptInt(fds[0], unix.SOL_SOCKET, unix.SO_SNDBUF, 4096); err != nil {
		t.Fatal(err)
	}
	fd, err := pollfd.New(fds[0], "test")
	if err != nil {
		t.Fatal(err)
	}
	p := &Port{cfg: Config{Options: Options{VnetHdr: true}}}
	p.queues = []*queue{{p: p, fd: fd}}
	p.txPool.New = newVnetTx
	defer p.Close()
	segs := tcpSegments(t, false, false, 10, 1448)
	batch := append([][]byte{porttest.Frame(60, 1)}, segs...)
	got := make(chan []byte, len(batch))
	go func() {
		buf := make([]byte, 70000)
		for range batch {
			n, err := pollfd.ReadTimeout(fds[1], buf, 5*time.Second)
			if err != nil {
				close(got)
				return
			}
			got <- bytes.Clone(buf[:n])
		}
	}()
	// The socket holds a few frames at a time: write as the switch does,
	// waiting while it is full.
	for rest := batch; len(rest) > 0; {
		n, err := p.Write(rest)
		rest = rest[n:]
		if errors.Is(err, fabric.ErrWouldBlock) {
			p.WaitWritable(time.Second)
		} else if err != nil {
			t.Fatalf("Write: %v", err)
		}
	}
	// What came, cut up again where it was merged, is the batch in order;
	// the first segment went alone (refused in a super-frame of all ten).
	var frames [][]byte
	for len(frames) < len(batch) {
		d, ok := <-got
		if !ok {
			t.Fatalf("%d of %d frames came", len(frames), len(batch))
		}
		h, f := offload.ParseHdr(d), d[offload.HdrLen:]
		if len(frames) == 1 && h.IsGSO() {
			t.Fatal("the first segment was merged into a super-frame the socket could not take")
		}
		if !h.IsGSO() {
			frames = append(frames, f)
			continue
		}
		plan, err := offload.NewPlan(h, f)
		if err != nil {
			t.Fatal(err)
		}
		for i := range plan.Count {
			seg := make([]byte, plan.Size(i))
			plan.Segment(f, i, seg)
			frames = append(frames, seg)
		}
	}
	for i, f := range batch {
		if !bytes.Equal(frames[i], f) {
			t.Fatalf("frame %d differs", i)
		}
	}
}
