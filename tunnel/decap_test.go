package tunnel

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/umlswitch/umlswitch/fabric"
	"github.com/umlswitch/umlswitch/frame"
	"github.com/umlswitch/umlswitch/internal/mmsg"
)

// fixedRouter sends every packet whose first byte is odd to its one port.
type fixedRouter struct{ p *Port }

func (r fixedRouter) Route(pkt []byte, _ netip.Addr) *Port {
	if len(pkt) > 0 && pkt[0]&1 == 1 {
		return r.p
	}
	return nil
}

// FuzzDecap feeds arbitrary packets through an endpoint's receive path, as
// recvmmsg would leave them, and checks what reaches the switch: a frame
// only for a packet its port accepted, exactly the bytes after the header,
// at the headroom; everything else marked, counted, never forwarded.
func FuzzDecap(f *testing.F) {
	f.Add([]byte{0x01, 0xaa, 0xbb, 0xcc}, uint8(4), uint8(8), false, uint16(0))
	f.Add(append([]byte{0x45, 0, 0, 0, 0, 0, 0, 0, 64, 47, 0, 0, 127, 0, 0, 3, 127, 0, 0, 2, 0x01, 0, 0, 0}, make([]byte, 60)...),
		uint8(4), uint8(4), true, uint16(0))
	f.Add([]byte{0x47, 0x01}, uint8(2), uint8(24), true, uint16(900))
	f.Fuzz(func(t *testing.T, pkt []byte, hdrLen, hint uint8, ip4 bool, extra uint16) {
		const maxFrame = 200
		e := &Endpoint{ip4Hdr: ip4, rxHint: min(int(hint), frame.Headroom), depth: 1, maxFrame: maxFrame}
		p := &Port{id: 5}
		h := int(hdrLen % 40)
		p.check = func(b []byte) (int, fabric.DropReason) {
			if len(b) < h {
				return 0, fabric.DropDecap
			}
			return h, 0
		}
		e.router = fixedRouter{p}
		v := frame.NewVector(1, maxFrame+slack)
		e.rx, e.names, e.rxVec = mmsg.NewBatch(1, 1), make([][sockaddrLen]byte, 1), v
		binary.LittleEndian.PutUint16(e.names[0][:], unix.AF_INET)
		e.rx.Hdrs[0].Msg.Namelen = unix.SizeofSockaddrInet4

		// What recvmmsg leaves: the datagram (pkt, then extra zero bytes)
		// from rxHint before the headroom, cut at the buffer's end, and its
		// true length.
		full := append(append([]byte(nil), pkt...), make([]byte, int(extra)%3000)...)
		buf := v.Bufs[0][frame.Headroom-e.rxHint:]
		seen := full[:copy(buf, full)]
		e.rx.Hdrs[0].Len = uint32(len(full))
		e.decap(v, 0)

		payload := seen
		if ip4 {
			n, ok := ipv4HeaderLen(seen)
			if !ok {
				if v.Ports[0] != frame.NoPort || e.malformed.Load() != 1 {
					t.Fatal("a broken IPv4 header was not set aside")
				}
				return
			}
			payload = seen[n:]
		}
		if len(payload) == 0 || payload[0]&1 == 0 {
			if v.Ports[0] != frame.NoPort || e.unknown.Load() != 1 {
				t.Fatal("a packet for no port was not set aside")
			}
			return
		}
		if v.Ports[0] != 5 {
			t.Fatalf("port %d", v.Ports[0])
		}
		size := v.Sizes[0]
		switch {
		case size < 0:
			return // rejected, counted by the switch
		case len(payload) < h:
			t.Fatal("accepted a packet shorter than its header")
		}
		if want := len(full) - (len(seen) - len(payload)) - h; size != want {
			t.Fatalf("size %d, want the datagram's %d bytes after its headers", size, want)
		}
		if size <= maxFrame {
			want := payload[h:]
			if !bytes.Equal(v.Frame(0), want) {
				t.Fatalf("frame of %d bytes %x, want %x", size, v.Frame(0), want)
			}
		}
	})
}
