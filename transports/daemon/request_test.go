package daemon

import (
	"encoding/binary"
	"errors"
	"strings"
	"testing"

	"github.com/umlswitch/umlswitch/internal/unixsock"
)

func testAddr() unixsock.Addr {
	a := unixsock.Abstract("")
	binary.LittleEndian.PutUint32(a[6:], 4242) // pid, as UML writes it
	a[64] = 0x7f                               // an uninitialised byte further in
	return a
}

func v1(typ uint32, a *unixsock.Addr) []byte {
	b := binary.LittleEndian.AppendUint32(nil, magic)
	b = binary.LittleEndian.AppendUint32(b, typ)
	b = append(b, 0xfe, 0xfd, 1, 2, 3, 4)
	return append(b, a[:]...)
}

func v0(typ uint32, a *unixsock.Addr) []byte {
	b := binary.LittleEndian.AppendUint32(nil, typ)
	b = append(b, 0xfe, 0xfd, 1, 2, 3, 4)
	return append(b, a[:]...)
}

func TestParseRequest(t *testing.T) {
	a := testAddr()
	path, _ := unixsock.FromPath("/tmp/vde.ctl/.01234-00001")
	tests := []struct {
		name     string
		in       []byte
		v0       bool
		version  int
		kind     uint8
		wantPort int
		addr     unixsock.Addr
		descr    string
		err      string
	}{
		{name: "UML v3, 124 bytes", in: appendV3(nil, 0, &a, ""), version: 3, addr: a},
		{name: "vde_plug v3 with description", in: appendV3(nil, 0, &path, "vdeplug: user=root pid=533"),
			version: 3, addr: path, descr: "vdeplug: user=root pid=533"},
		{name: "v3 port request", in: appendV3(nil, 5<<8, &path, "QEMU"), version: 3, wantPort: 5, addr: path, descr: "QEMU"},
		{name: "v3 port 0", in: appendV3(nil, 1, &path, ""), version: 3, kind: 1, addr: path},
		{name: "v1", in: v1(0, &a), version: 1, addr: a},
		{name: "v0 with compat", in: v0(0, &a), v0: true, version: 0, addr: a},
		{name: "v0 without compat", in: v0(0, &a), err: "bad magic"},
		{name: "version 2", in: append(binary.LittleEndian.AppendUint32(nil, magic), 2, 0, 0, 0), err: "unsupported version 2"},
		{name: "version 4", in: append(binary.LittleEndian.AppendUint32(nil, magic), 4, 0, 0, 0), err: "unsupported version 4"},
		{name: "unknown type", in: appendV3(nil, 7, &a, ""), err: "unknown request type 7"},
		{name: "bad family", in: func() []byte { b := appendV3(nil, 0, &a, ""); b[12] = 2; return b }(), err: "family 2"},
		{name: "description stops at NUL and drops control bytes",
			in: appendV3(nil, 0, &path, "ok\x01 text\x00junk"), version: 3, addr: path, descr: "ok text"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := ParseRequest(tt.in, tt.v0)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if r.Version != tt.version || r.Kind != tt.kind || r.WantPort != tt.wantPort || r.Addr != tt.addr || r.Description != tt.descr {
				t.Fatalf("got %+v", r)
			}
		})
	}
}

func TestShortRequests(t *testing.T) {
	a := testAddr()
	full := appendV3(nil, 0, &a, "")
	for n := 0; n < v3Fixed; n++ {
		if _, err := ParseRequest(full[:n], false); !errors.Is(err, ErrShortRequest) {
			t.Fatalf("%d bytes: %v, want ErrShortRequest", n, err)
		}
	}
	if _, err := ParseRequest(full[:v3Fixed], false); err != nil {
		t.Fatalf("fixed part alone: %v", err)
	}
}

// FuzzParseRequest: any bytes either decode or fail; never a panic, and a
// decoded request's address is the bytes at its version's offset.
func FuzzParseRequest(f *testing.F) {
	a := testAddr()
	f.Add(appendV3(nil, 0, &a, ""), false)
	f.Add(appendV3(nil, 3<<8, &a, "vdeplug: user=root pid=1"), false)
	f.Add(v1(1, &a), false)
	f.Add(v0(0, &a), true)
	f.Add([]byte{0xce, 0xfa, 0xed, 0xfe, 2, 0, 0, 0}, false)
	f.Fuzz(func(t *testing.T, b []byte, allowV0 bool) {
		r, err := ParseRequest(b, allowV0)
		if err != nil {
			return
		}
		off := map[int]int{3: 12, 1: 14, 0: 10}[r.Version]
		if string(b[off:off+unixsock.AddrLen]) != string(r.Addr[:]) {
			t.Fatalf("address not taken verbatim")
		}
		if len(r.Description) > maxDescription {
			t.Fatalf("description of %d bytes", len(r.Description))
		}
		if r.Version == 0 && !allowV0 {
			t.Fatal("v0 decoded without compat")
		}
	})
}
