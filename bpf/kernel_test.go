package bpf

import (
	"encoding/binary"
	"maps"
	"math/rand/v2"
	"net"
	"os/exec"
	"slices"
	"testing"
	"time"

	"github.com/mdlayher/packet"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"

	"github.com/umlswitch/umlswitch/frame"
	"github.com/umlswitch/umlswitch/internal/nstest"
	"github.com/umlswitch/umlswitch/internal/pollfd"
)

// The kernel and the x/net VM must keep exactly the same frames. A sender
// transmits a mixed set of frames on one end of a veth; a second socket on
// the same end, carrying the program, sees the transmitted copies (on that
// path VLAN tags are still in the frame, as the VM sees them). Each frame
// ends in a unique 4-byte number, so what the kernel kept is compared frame
// by frame with the VM's verdicts.
func TestKernelAndVMAgree(t *testing.T) {
	ns := nstest.New(t)
	ns.MustRun(t, "ip", "link", "add", "bpfa", "type", "veth", "peer", "name", "bpfb")
	for _, dev := range []string{"bpfa", "bpfb"} {
		ns.MustRun(t, "sysctl", "-qw", "net.ipv6.conf."+dev+".disable_ipv6=1")
		ns.MustRun(t, "ip", "link", "set", dev, "up")
	}
	ns.WaitUp(t, "bpfa", "bpfb") // a veth drops what it sends before its carrier is on
	var ifi *net.Interface
	if err := ns.Do(func() (err error) { ifi, err = net.InterfaceByName("bpfa"); return err }); err != nil {
		t.Fatal(err)
	}
	frames := testFrames()

	programs := agreePrograms(t)
	for name, p := range programs {
		var want []uint32
		for _, f := range frames {
			keep, err := p.Match(f)
			if err != nil {
				t.Fatalf("%s: the VM cannot run it: %v", name, err)
			}
			if keep {
				want = append(want, frameID(f))
			}
		}
		got := kernelKeeps(t, ns, ifi, p, frames)
		if !slices.Equal(got, want) {
			t.Errorf("%s: kernel kept %d frames %v,\n VM kept %d: %v", name, len(got), got, len(want), want)
		}
		if len(want) == 0 || len(want) == len(frames) {
			t.Errorf("%s keeps %d of %d frames: the set does not exercise it", name, len(want), len(frames))
		}
	}
}

// agreePrograms are the programs whose verdicts must agree between the
// kernel, the VM and their eBPF translations: the builders, tcpdump's
// compilations of a few expressions, and the inversions of all of them.
func agreePrograms(t *testing.T) map[string]*Program {
	t.Helper()
	programs := map[string]*Program{}
	add := func(name string, p *Program, err error) {
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		programs[name] = p
	}
	p, err := EtherTypes(unix.ETH_P_ARP, unix.ETH_P_IPV6)
	add("ethertypes arp ipv6", p, err)
	p, err = VLAN(10)
	add("vlan 10", p, err)
	p, err = NotFrom(srcMACs[1])
	add("not from mac 1", p, err)
	p, err = New(mustText(t, icmpOrARP))
	add("stored tcpdump icmp or arp", p, err)
	for _, expr := range []string{"icmp or arp", "udp port 53", "tcp[tcpflags] & tcp-syn != 0", "ip and not ether src fe:fd:00:00:00:02"} {
		p, err = New(mustText(t, tcpdump(t, expr)))
		add("tcpdump "+expr, p, err)
	}
	// The inversion used to count refused frames must keep exactly the rest.
	// It keeps one byte of a frame; here it keeps them whole, so the ids
	// can be read.
	for name, p := range maps.Clone(programs) {
		inv := p.Inverted()
		for i, ins := range inv {
			if r, ok := ins.Disassemble().(bpf.RetConstant); ok && r.Val == 1 {
				inv[i], _ = bpf.RetConstant{Val: 0xffff}.Assemble()
			}
		}
		p, err := New(inv)
		add("inverted "+name, p, err)
	}

	return programs
}

func mustText(t *testing.T, s string) []bpf.RawInstruction {
	t.Helper()
	raw, err := ParseText(s)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// tcpdump compiles expr for Ethernet with the real tcpdump.
func tcpdump(t *testing.T, expr string) string {
	t.Helper()
	out, err := exec.Command("tcpdump", "-ddd", expr).Output()
	if err != nil {
		t.Fatalf("tcpdump -ddd %q (install tcpdump): %v", expr, err)
	}
	return string(out)
}

// kernelKeeps sends frames out of ifi and returns the ids of those a socket
// with p attached received, in order.
func kernelKeeps(t *testing.T, ns *nstest.NS, ifi *net.Interface, p *Program, frames [][]byte) []uint32 {
	t.Helper()
	var rx, all, tx *packet.Conn
	err := ns.Do(func() (err error) {
		if rx, err = packet.Listen(ifi, packet.Raw, unix.ETH_P_ALL, &packet.Config{Filter: p.Raw()}); err != nil {
			return err
		}
		if all, err = packet.Listen(ifi, packet.Raw, unix.ETH_P_ALL, nil); err != nil {
			return err
		}
		tx, err = packet.Listen(ifi, packet.Raw, unix.ETH_P_ALL, nil)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer rx.Close()
	defer all.Close()
	defer tx.Close()
	for _, f := range frames {
		if _, err := tx.WriteTo(f, &packet.Addr{HardwareAddr: f[:6]}); err != nil {
			t.Fatal(err)
		}
	}
	buf := make([]byte, 2048)
	read := func(c *packet.Conn, timeout time.Duration) (int, error) {
		rc, err := c.SyscallConn()
		if err != nil {
			return 0, err
		}
		var n int
		var rerr error
		rc.Control(func(fd uintptr) { n, rerr = pollfd.ReadTimeout(int(fd), buf, timeout) })
		return n, rerr
	}
	// The unfiltered socket sees every frame go out; the kernel hands each
	// copy to every socket on the device in one pass, so once the last one
	// is in, the filtered socket holds all it will ever get.
	for seen := 0; seen < len(frames); {
		n, err := read(all, 10*time.Second)
		if err != nil {
			t.Fatalf("%d of %d frames seen going out: %v", seen, len(frames), err)
		}
		if n >= 4 && frameID(buf[:n]) == frameID(frames[len(frames)-1]) {
			break
		}
		seen++
	}
	var got []uint32
	for {
		n, err := read(rx, 50*time.Millisecond)
		if err != nil {
			break // nothing left queued
		}
		if n >= 4 {
			got = append(got, frameID(buf[:n]))
		}
	}
	return got
}

var srcMACs = []frame.MAC{{0xfe, 0xfd, 0, 0, 0, 1}, {0xfe, 0xfd, 0, 0, 0, 2}, {0xfe, 0xfd, 0, 0, 0, 3}}

func frameID(f []byte) uint32 { return binary.BigEndian.Uint32(f[len(f)-4:]) }

// testFrames is a deterministic mix: ARP, IPv4 (ICMP, UDP to and from port
// 53 and others, TCP with and without SYN), IPv6, an unknown EtherType, and
// the same behind 802.1Q tags of VLAN 10 and 11, from three source MACs.
func testFrames() [][]byte {
	rng := rand.New(rand.NewPCG(1, 2))
	var out [][]byte
	id := uint32(0)
	for _, vlan := range []uint16{0, 10, 11} {
		for _, src := range srcMACs {
			for kind := 0; kind < 8; kind++ {
				f := make([]byte, 0, 128)
				f = append(f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)
				f = append(f, src[:]...)
				if vlan != 0 {
					f = binary.BigEndian.AppendUint16(f, unix.ETH_P_8021Q)
					f = binary.BigEndian.AppendUint16(f, vlan)
				}
				f = appendPayload(f, kind, rng)
				id++
				f = binary.BigEndian.AppendUint32(f, id)
				out = append(out, f)
			}
		}
	}
	return out
}

func appendPayload(f []byte, kind int, rng *rand.Rand) []byte {
	ipv4 := func(proto byte, l4 []byte) []byte {
		f = binary.BigEndian.AppendUint16(f, unix.ETH_P_IP)
		f = append(f, 0x45, 0, 0, byte(20+len(l4)), 0, 0, 0, 0, 64, proto, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2)
		return append(f, l4...)
	}
	ports := func(src, dst uint16, rest ...byte) []byte {
		b := binary.BigEndian.AppendUint16(nil, src)
		b = binary.BigEndian.AppendUint16(b, dst)
		return append(b, rest...)
	}
	switch kind {
	case 0:
		f = binary.BigEndian.AppendUint16(f, unix.ETH_P_ARP)
		return append(f, make([]byte, 28)...)
	case 1:
		return ipv4(unix.IPPROTO_ICMP, []byte{8, 0, 0, 0, 0, 1, 0, 1})
	case 2:
		return ipv4(unix.IPPROTO_UDP, ports(40000, 53, 0, 8, 0, 0))
	case 3:
		return ipv4(unix.IPPROTO_UDP, ports(53, 40000, 0, 8, 0, 0))
	case 4:
		return ipv4(unix.IPPROTO_UDP, ports(40000, 9, 0, 8, 0, 0))
	case 5: // TCP SYN
		return ipv4(unix.IPPROTO_TCP, ports(40000, 80, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0))
	case 6: // TCP ACK
		return ipv4(unix.IPPROTO_TCP, ports(80, 40000, 0, 0, 0, 1, 0, 0, 0, 1, 0x50, 0x10, 0xff, 0xff, 0, 0, 0, 0))
	default:
		if rng.IntN(2) == 0 {
			f = binary.BigEndian.AppendUint16(f, unix.ETH_P_IPV6)
		} else {
			f = binary.BigEndian.AppendUint16(f, 0x88b5)
		}
		for range 40 {
			f = append(f, byte(rng.IntN(256)))
		}
		return f
	}
}
