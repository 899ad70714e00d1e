package extcap

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"

	"github.com/google/gopacket/pcapgo"
)

// ng builds pcapng streams for the tests, in either byte order.
type ng struct {
	o order
	b []byte
}

type order interface {
	binary.ByteOrder
	binary.AppendByteOrder
}

func (n *ng) block(typ uint32, body []byte) *ng {
	l := uint32(12 + len(body))
	n.b = n.o.AppendUint32(n.b, typ)
	n.b = n.o.AppendUint32(n.b, l)
	n.b = append(n.b, body...)
	n.b = n.o.AppendUint32(n.b, l)
	return n
}

func (n *ng) opt(b []byte, code uint16, v []byte) []byte {
	b = n.o.AppendUint16(b, code)
	b = n.o.AppendUint16(b, uint16(len(v)))
	b = append(b, v...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

func (n *ng) shb() *ng {
	b := n.o.AppendUint32(nil, byteOrderMagic)
	b = n.o.AppendUint16(b, 1)
	b = n.o.AppendUint16(b, 0)
	b = n.o.AppendUint64(b, ^uint64(0))
	return n.block(blockSHB, n.o.AppendUint32(b, 0))
}

func (n *ng) idb(name string) *ng {
	b := n.o.AppendUint16(nil, 1)
	b = n.o.AppendUint16(b, 0)
	b = n.o.AppendUint32(b, 65535)
	b = n.opt(b, optIfName, []byte(name))
	return n.block(blockIDB, n.o.AppendUint32(b, 0))
}

func (n *ng) epb(id uint32, data []byte, dir uint32) *ng {
	b := n.o.AppendUint32(nil, id)
	b = n.o.AppendUint32(b, 0)
	b = n.o.AppendUint32(b, 1)
	b = n.o.AppendUint32(b, uint32(len(data)))
	b = n.o.AppendUint32(b, uint32(len(data)))
	b = append(b, data...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	b = n.opt(b, optEPBFlags, n.o.AppendUint32(nil, dir))
	return n.block(blockEPB, n.o.AppendUint32(b, 0))
}

func (n *ng) isb(id uint32) *ng {
	b := n.o.AppendUint32(nil, id)
	b = n.o.AppendUint64(b, 0)
	return n.block(0x00000005, n.o.AppendUint32(b, 0))
}

// stream is a switch's capture: ports a.1 and vx0; a ping goes in on a.1
// and out on vx0, an ARP request in on vx0 and out on a.1; statistics.
func stream(o order) []byte {
	n := &ng{o: o}
	n.shb().idb("a.1").epb(0, icmpFrame, 1).idb("vx0").epb(1, icmpFrame, 2).epb(1, arpFrame, 1).epb(0, arpFrame, 2).isb(0)
	return n.b
}

// packets reads a pcapng stream back with gopacket: each packet as
// "interface name/direction/ICMP or ARP".
func packets(t *testing.T, b []byte) []string {
	t.Helper()
	r, err := pcapgo.NewNgReader(bytes.NewReader(b), pcapgo.DefaultNgReaderOptions)
	if err != nil {
		t.Fatalf("pcapgo: %v", err)
	}
	var out []string
	for {
		data, ci, err := r.ReadPacketData()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("pcapgo: %v", err)
		}
		ifc, _ := r.Interface(ci.InterfaceIndex)
		what := "ARP"
		if bytes.Equal(data, icmpFrame) {
			what = "ICMP"
		}
		out = append(out, ifc.Name+"/"+what)
	}
}

func TestCopy(t *testing.T) {
	icmp, err := FilterFromText("icmp", icmpProgram)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range []order{binary.LittleEndian, binary.BigEndian} {
		in := stream(o)
		for _, tt := range []struct {
			name string
			sel  Select
			want []string
		}{
			{"all", Select{}, []string{"a.1/ICMP", "vx0/ICMP", "vx0/ARP", "a.1/ARP"}},
			{"icmp", Select{Filter: icmp}, []string{"a.1/ICMP", "vx0/ICMP"}},
			{"port", Select{Port: "vx0"}, []string{"vx0/ICMP", "vx0/ARP"}},
			{"in", Select{Direction: In}, []string{"a.1/ICMP", "vx0/ARP"}},
			{"out", Select{Direction: Out}, []string{"vx0/ICMP", "a.1/ARP"}},
			{"icmp out of a.1", Select{Filter: icmp, Port: "a.1", Direction: Out}, nil},
			{"no such port", Select{Port: "b.1"}, nil},
		} {
			var out bytes.Buffer
			if err := Copy(&out, bytes.NewReader(in), tt.sel); err != nil {
				t.Fatalf("%v %s: %v", o, tt.name, err)
			}
			got := packets(t, out.Bytes())
			if len(got) != len(tt.want) || (len(got) > 0 && !equal(got, tt.want)) {
				t.Errorf("%v %s: %q, want %q", o, tt.name, got, tt.want)
			}
			if tt.name == "all" && !bytes.Equal(out.Bytes(), in) {
				t.Errorf("%v: the whole stream was not copied as it is", o)
			}
		}
	}
	// A second section starts its interfaces again.
	n := &ng{o: binary.LittleEndian}
	n.shb().idb("a.1").epb(0, icmpFrame, 1)
	n.shb().idb("b.1").epb(0, icmpFrame, 1)
	var out bytes.Buffer
	if err := Copy(&out, bytes.NewReader(n.b), Select{Port: "b.1"}); err != nil {
		t.Fatal(err)
	}
	if got := packets(t, out.Bytes()); !equal(got, []string{"b.1/ICMP"}) {
		t.Errorf("two sections, port b.1: %q", got)
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestCopyBadStreams(t *testing.T) {
	good := stream(binary.LittleEndian)
	huge := (&ng{o: binary.LittleEndian}).shb().b
	huge = binary.LittleEndian.AppendUint32(huge, blockEPB)
	huge = binary.LittleEndian.AppendUint32(huge, 1<<30)
	huge = append(huge, make([]byte, 8)...)
	for _, tt := range []struct {
		name string
		in   []byte
		want string
	}{
		{"cut inside a block", good[:len(good)-5], io.ErrUnexpectedEOF.Error()},
		{"cut inside a header", good[:len(good)-int(binary.LittleEndian.Uint32(good[len(good)-4:]))+6], io.ErrUnexpectedEOF.Error()},
		{"no section header", good[28:], "does not start with a section header"},
		{"no magic", append(append([]byte{}, good[:8]...), make([]byte, 20)...), "byte-order magic"},
		{"a huge block", huge, "a block of 1073741824 bytes"},
		{"lengths differ", append(append([]byte{}, good[:28]...), 0, 0, 0, 0), "lengths differ"},
	} {
		err := Copy(io.Discard, bytes.NewReader(tt.in), Select{})
		if err == nil || !bytes.Contains([]byte(err.Error()), []byte(tt.want)) {
			t.Errorf("%s: %v, want an error with %q", tt.name, err, tt.want)
		}
	}
	if err := Copy(io.Discard, bytes.NewReader(nil), Select{}); err != nil {
		t.Errorf("an empty stream: %v", err)
	}
	// The writer's error comes back as it is.
	boom := errors.New("boom")
	if err := Copy(failWriter{boom}, bytes.NewReader(good), Select{}); !errors.Is(err, boom) {
		t.Errorf("a failing writer: %v", err)
	}
}

type failWriter struct{ err error }

func (w failWriter) Write([]byte) (int, error) { return 0, w.err }

// FuzzCopy: no stream makes Copy panic or keep a packet block the
// selection refuses; what it copies reads back as pcapng.
func FuzzCopy(f *testing.F) {
	f.Add(stream(binary.LittleEndian), "", uint8(0))
	f.Add(stream(binary.BigEndian), "vx0", uint8(1))
	f.Add([]byte{0x0a, 0x0d, 0x0d, 0x0a, 28, 0, 0, 0}, "a", uint8(2))
	icmp, err := FilterFromText("icmp", icmpProgram)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, in []byte, port string, how uint8) {
		sel := Select{Port: port, Direction: []Direction{Both, In, Out, ""}[how%4]}
		if how&4 != 0 {
			sel.Filter = icmp
		}
		var out bytes.Buffer
		Copy(&out, bytes.NewReader(in), sel)
		if out.Len() > len(in) {
			t.Fatalf("copied %d bytes of %d", out.Len(), len(in))
		}
	})
}
