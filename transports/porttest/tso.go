package porttest

import (
	"bytes"
	"encoding/binary"
	"net"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"golang.org/x/sys/unix"

	"github.com/umlswitch/umlswitch/fabric"
	"github.com/umlswitch/umlswitch/frame"
	"github.com/umlswitch/umlswitch/internal/nstest"
	"github.com/umlswitch/umlswitch/internal/offload"
)

// TSOSeq is the first sequence number of SendTSO's stream.
const TSOSeq = 1000

// SendTSO transmits one TCP segmentation-offload frame carrying payload out
// of ifname in ns, cut at mss, as a host's TCP stack hands a large send to
// a device with TSO: a packet socket with a virtio-net header sends it, so
// the kernel neither cuts it nor fills in its checksum.
func SendTSO(t testing.TB, ns *nstest.NS, ifname string, payload []byte, mss int) {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2},
		EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolTCP,
		SrcIP: net.IP{10, 0, 0, 1}, DstIP: net.IP{10, 0, 0, 2}}
	tcp := &layers.TCP{SrcPort: 1, DstPort: 2, Seq: TSOSeq, ACK: true, PSH: true, Window: 100,
		Options: []layers.TCPOption{{OptionType: layers.TCPOptionKindNop}, {OptionType: layers.TCPOptionKindNop},
			{OptionType: layers.TCPOptionKindTimestamps, OptionLength: 10, OptionData: make([]byte, 8)}}}
	tcp.SetNetworkLayerForChecksum(ip)
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
		eth, ip, tcp, gopacket.Payload(payload)); err != nil {
		t.Fatal(err)
	}
	// A stack that leaves the checksum to offload writes the pseudo-header's
	// sum into the field; whoever cuts the frame (the kernel, or the port
	// from the header below) completes each segment from there.
	f := buf.Bytes()
	pseudo := uint32(6 + len(f) - 34)
	for i := 26; i < 34; i += 2 {
		pseudo += uint32(binary.BigEndian.Uint16(f[i:]))
	}
	for pseudo > 0xffff {
		pseudo = pseudo>>16 + pseudo&0xffff
	}
	binary.BigEndian.PutUint16(f[34+16:], uint16(pseudo))
	hdr := make([]byte, offload.HdrLen)
	hdr[0], hdr[1] = offload.FlagNeedsCsum, offload.GSOTCPv4
	binary.NativeEndian.PutUint16(hdr[2:], 66)
	binary.NativeEndian.PutUint16(hdr[4:], uint16(mss))
	binary.NativeEndian.PutUint16(hdr[6:], 34)
	binary.NativeEndian.PutUint16(hdr[8:], 16)
	err := ns.Do(func() error {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VNET_HDR, 1); err != nil {
			return err
		}
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Ifindex: ifi.Index}); err != nil {
			return err
		}
		_, err = unix.Write(fd, append(hdr, buf.Bytes()...))
		return err
	})
	if err != nil {
		t.Fatalf("sending a TSO frame on %s: %v", ifname, err)
	}
}

// ReceiveTSO reads from r until the payload SendTSO sent has arrived, and
// checks that it came as valid segments no longer than maxFrame, in order,
// over at least two batches of v.
func ReceiveTSO(t testing.TB, r fabric.Receiver, v *frame.Vector, payload []byte) {
	t.Helper()
	var got []byte
	batches := 0
	for len(got) < len(payload) {
		n, err := r.Receive(v)
		if err != nil {
			t.Fatal(err)
		}
		batches++
		for i := 0; i < n; i++ {
			if v.Sizes[i] < 0 || v.Sizes[i] > v.MaxFrame {
				t.Fatalf("a segment of size %d", v.Sizes[i])
			}
			pkt := gopacket.NewPacket(v.Frame(i), layers.LayerTypeEthernet, gopacket.Default)
			tcp, _ := pkt.Layer(layers.LayerTypeTCP).(*layers.TCP)
			if tcp == nil {
				continue // something else the kernel sent
			}
			if tcp.Seq != TSOSeq+uint32(len(got)) {
				t.Fatalf("segment seq %d after %d bytes", tcp.Seq, len(got))
			}
			ip := pkt.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
			if err := tcp.SetNetworkLayerForChecksum(ip); err != nil {
				t.Fatal(err)
			}
			want := tcp.Checksum
			b := gopacket.NewSerializeBuffer()
			gopacket.SerializeLayers(b, gopacket.SerializeOptions{ComputeChecksums: true}, tcp, gopacket.Payload(tcp.Payload))
			if got := binary.BigEndian.Uint16(b.Bytes()[16:]); got != want {
				t.Fatalf("segment checksum %#04x, want %#04x", want, got)
			}
			got = append(got, tcp.Payload...)
		}
	}
	if !bytes.Equal(got, payload) || batches < 2 {
		t.Fatalf("reassembled %d bytes in %d batches", len(got), batches)
	}
}
