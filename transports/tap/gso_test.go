package tap

import (
	"bytes"
	"testing"

	"github.com/umlswitch/umlswitch/internal/offload"
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
