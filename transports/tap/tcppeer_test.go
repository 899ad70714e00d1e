package tap

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/umlswitch/umlswitch/frame"
	"github.com/umlswitch/umlswitch/internal/nstest"
	"github.com/umlswitch/umlswitch/transports/portkind"
)

// The switch's side of a TCP connection to the host's stack through a
// vnet_hdr tap: the test plays the far end (10.0.0.1) by writing crafted
// segments to the port and reading the host's replies from it, and the
// host's end is an ordinary accepted socket (10.0.0.254:5001). Only what
// the host's stack accepts reaches that socket, so it proves that
// super-frames went in whole and right.

var (
	peerMAC = net.HardwareAddr{2, 0, 0, 0, 0, 1}
	peerIP  = net.IP{10, 0, 0, 1}
	hostIP  = net.IP{10, 0, 0, 254}
)

const (
	peerPort, hostPort = 40000, 5001
	tcpFIN, tcpSYN     = 0x01, 0x02
	tcpPSH, tcpACK     = 0x08, 0x10
)

type tcpPeer struct {
	t       testing.TB
	p       *Port
	ns      *nstest.NS
	ifname  string
	hostMAC net.HardwareAddr
	conn    net.Conn // the host's end

	seq, rcvNxt uint32 // our next byte, the host's next byte
	id          uint16 // our next IPv4 id

	mu     sync.Mutex
	cond   *sync.Cond
	acked  uint32 // the host has acknowledged up to here
	window uint32 // bytes past acked it will take
	wscale uint8
	synack chan uint32
}

// openPeer creates a vnet_hdr tap named ifname in a fresh namespace, with
// the host's address on it, and connects through it to a listening socket
// of the host (a handshake the test crafts).
func openPeer(t testing.TB, ifname string, noCoalesce bool) *tcpPeer {
	t.Helper()
	ns := nstest.New(t)
	pr := &tcpPeer{t: t, ns: ns, ifname: ifname, seq: 1000, synack: make(chan uint32, 1)}
	pr.cond = sync.NewCond(&pr.mu)
	if err := ns.Do(func() (err error) {
		pr.p, err = Open(Config{Options: Options{Ifname: ifname, Create: true, VnetHdr: true},
			Common: portkind.Common{Depth: 64, MaxFrame: frame.MaxFrameForMTU(1500)}})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	pr.p.noCoalesce = noCoalesce
	t.Cleanup(func() { pr.p.Close() })
	ns.MustRun(t, "sysctl", "-qw", "net.ipv6.conf."+ifname+".disable_ipv6=1")
	ns.MustRun(t, "ip", "link", "set", ifname, "up")
	ns.MustRun(t, "ip", "addr", "add", "10.0.0.254/24", "dev", ifname)
	ns.MustRun(t, "ip", "neigh", "replace", "10.0.0.1", "lladdr", peerMAC.String(), "dev", ifname, "nud", "permanent")
	if err := ns.Do(func() error {
		l, err := netlink.LinkByName(ifname)
		if err == nil {
			pr.hostMAC = l.Attrs().HardwareAddr
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	var ln net.Listener
	if err := ns.Do(func() (err error) { ln, err = net.Listen("tcp", "10.0.0.254:5001"); return }); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go pr.read()

	// SYN with MSS 1460 and window scale 7; no timestamps.
	pr.send(pr.segment(tcpSYN, 0, []byte{2, 4, 0x05, 0xb4, 1, 3, 3, 7}, nil))
	pr.seq++
	select {
	case pr.rcvNxt = <-pr.synack:
	case <-time.After(5 * time.Second):
		t.Fatal("no SYN-ACK from the host")
	}
	pr.send(pr.segment(tcpACK, pr.rcvNxt, nil, nil))
	ln.(*net.TCPListener).SetDeadline(time.Now().Add(5 * time.Second))
	c, err := ln.Accept()
	if err != nil {
		t.Fatalf("the host accepted no connection: %v", err)
	}
	pr.conn = c
	t.Cleanup(func() { c.Close() })
	return pr
}

// read follows the host's side of the connection: its SYN-ACK, then what
// it acknowledges and the window it offers.
func (pr *tcpPeer) read() {
	r := pr.p.Receiver(1)
	v := frame.NewVector(64, pr.p.MaxFrame())
	for {
		n, err := r.Receive(v)
		if err != nil {
			return
		}
		for i := range n {
			if v.Sizes[i] <= 0 {
				continue
			}
			f := v.Frame(i)
			if len(f) < 54 || binary.BigEndian.Uint16(f[12:]) != 0x0800 || f[23] != 6 {
				continue
			}
			tcp := f[14+int(f[14]&0xf)*4:]
			if len(tcp) < 20 || binary.BigEndian.Uint16(tcp[0:]) != hostPort || binary.BigEndian.Uint16(tcp[2:]) != peerPort {
				continue
			}
			flags, wnd := tcp[13], uint32(binary.BigEndian.Uint16(tcp[14:]))
			pr.mu.Lock()
			if flags&tcpSYN != 0 {
				opts := tcp[20 : int(tcp[12]>>4)*4]
				for len(opts) >= 3 && opts[0] != 0 {
					if opts[0] == 1 {
						opts = opts[1:]
						continue
					}
					if opts[0] == 3 {
						pr.wscale = opts[2]
					}
					if opts[1] < 2 || int(opts[1]) > len(opts) {
						break
					}
					opts = opts[opts[1]:]
				}
				pr.acked, pr.window = binary.BigEndian.Uint32(tcp[8:]), wnd
				select {
				case pr.synack <- binary.BigEndian.Uint32(tcp[4:]) + 1:
				default:
				}
			} else if ack := binary.BigEndian.Uint32(tcp[8:]); int32(ack-pr.acked) >= 0 {
				pr.acked, pr.window = ack, wnd<<pr.wscale
			}
			pr.cond.Broadcast()
			pr.mu.Unlock()
		}
	}
}

// waitWindow waits until the host takes n more bytes.
func (pr *tcpPeer) waitWindow(n int) {
	deadline := time.Now().Add(10 * time.Second)
	pr.mu.Lock()
	defer pr.mu.Unlock()
	for int64(int32(pr.acked+pr.window-pr.seq)) < int64(n) {
		if time.Now().After(deadline) {
			pr.t.Fatalf("the host's window stayed shut: acked %d window %d next %d", pr.acked, pr.window, pr.seq)
		}
		timer := time.AfterFunc(100*time.Millisecond, pr.cond.Broadcast)
		pr.cond.Wait()
		timer.Stop()
	}
}

// open is how many bytes more the host takes now.
func (pr *tcpPeer) open() int {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	return int(int32(pr.acked + pr.window - pr.seq))
}

// segment builds a segment from the peer to the host at pr.seq with the
// IPv4 id pr.id (and takes it), flags, ack, TCP options and payload.
func (pr *tcpPeer) segment(flags byte, ack uint32, opts, payload []byte) []byte {
	f := make([]byte, 54+len(opts)+len(payload))
	copy(f, pr.hostMAC)
	copy(f[6:], peerMAC)
	binary.BigEndian.PutUint16(f[12:], 0x0800)
	ip := f[14:34]
	ip[0], ip[8], ip[9] = 0x45, 64, 6
	binary.BigEndian.PutUint16(ip[2:], uint16(len(f)-14))
	binary.BigEndian.PutUint16(ip[4:], pr.id)
	pr.id++
	binary.BigEndian.PutUint16(ip[6:], 0x4000) // DF
	copy(ip[12:], peerIP.To4())
	copy(ip[16:], hostIP.To4())
	binary.BigEndian.PutUint16(ip[10:], ^fold16(sum16(ip, 0)))
	tcp := f[34:]
	binary.BigEndian.PutUint16(tcp[0:], peerPort)
	binary.BigEndian.PutUint16(tcp[2:], hostPort)
	binary.BigEndian.PutUint32(tcp[4:], pr.seq)
	binary.BigEndian.PutUint32(tcp[8:], ack)
	tcp[12], tcp[13] = byte((20+len(opts))/4)<<4, flags
	binary.BigEndian.PutUint16(tcp[14:], 0xffff)
	copy(tcp[20:], opts)
	copy(tcp[20+len(opts):], payload)
	binary.BigEndian.PutUint16(tcp[16:], ^fold16(sum16(tcp, pseudo(len(tcp)))))
	return f
}

// stream builds n segments of size bytes of data each, following on from
// pr.seq (which it advances), the last with PSH.
func (pr *tcpPeer) stream(n, size int, data func(off int) byte) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		payload := make([]byte, size)
		for j := range payload {
			payload[j] = data(i*size + j)
		}
		flags := byte(tcpACK)
		if i == n-1 {
			flags |= tcpPSH
		}
		out[i] = pr.segment(flags, pr.rcvNxt, nil, payload)
		pr.seq += uint32(size)
	}
	return out
}

func (pr *tcpPeer) send(f []byte) {
	pr.t.Helper()
	if n, err := pr.p.Write([][]byte{f}); n != 1 || err != nil {
		pr.t.Fatalf("Write = %d, %v", n, err)
	}
}

// rx is the tap's receive counters: what the port wrote to the host.
func (pr *tcpPeer) rx() (packets, bytes uint64) { return rxCounters(pr.t, pr.ns, pr.ifname) }

// rxCounters reads the receive counters of ifname in ns.
func rxCounters(t testing.TB, ns *nstest.NS, ifname string) (packets, bytes uint64) {
	t.Helper()
	var s *netlink.LinkStatistics
	if err := ns.Do(func() error {
		l, err := netlink.LinkByName(ifname)
		if err == nil {
			s = l.Attrs().Statistics
		}
		return err
	}); err != nil || s == nil {
		t.Fatalf("statistics of %s: %v", ifname, err)
	}
	return s.RxPackets, s.RxBytes
}

// readAll reads n bytes from the host's socket.
func (pr *tcpPeer) readAll(n int) ([]byte, error) {
	pr.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	b := make([]byte, n)
	_, err := io.ReadFull(pr.conn, b)
	if err != nil {
		return b, fmt.Errorf("the host's socket: %w", err)
	}
	return b, nil
}

func pseudo(l4len int) uint64 {
	return sum16(peerIP.To4(), sum16(hostIP.To4(), 6+uint64(l4len)))
}

func sum16(b []byte, s uint64) uint64 {
	for ; len(b) >= 2; b = b[2:] {
		s += uint64(binary.BigEndian.Uint16(b))
	}
	if len(b) == 1 {
		s += uint64(b[0]) << 8
	}
	return s
}

func fold16(s uint64) uint16 {
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return uint16(s)
}
