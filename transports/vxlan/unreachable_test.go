package vxlan

import (
	"errors"
	"log/slog"
	"net/netip"
	"testing"

	"github.com/umlswitch/umlswitch/fabric"
	"github.com/umlswitch/umlswitch/frame"
	"github.com/umlswitch/umlswitch/internal/nstest"
	"github.com/umlswitch/umlswitch/transports/portkind"
	"github.com/umlswitch/umlswitch/transports/porttest"
	"github.com/umlswitch/umlswitch/tunnel"
)

// A port whose peer has no route (a namespace with only lo) loses what is
// sent to it a batch at a time: one send finds the route missing, the rest
// of the batch is dropped with it and counted as unreachable, not tried
// frame by frame as tx errors. The warning is said once for the episode.
func TestUnreachablePeer(t *testing.T) {
	ns := nstest.New(t)
	var logs porttest.LogBuffer
	sw := porttest.NewSwitch(t, fabric.Config{})
	tb := tunnel.NewTable(sw, slog.New(slog.NewTextHandler(&logs, nil)))
	common := portkind.Common{Depth: 64, MaxFrame: 1518}
	cfgA := Config{Options: Options{Addrs: tunnel.Addrs{Src: swAddr, Dst: netip.MustParseAddr("10.99.0.1")}, VNI: 7}, Common: common}
	cfgB := Config{Options: Options{Addrs: tunnel.Addrs{Src: swAddr, Dst: peer3}, VNI: 7}, Common: common}
	pa := openIn(t, ns, tb, sw, cfgA)
	pb := openIn(t, ns, tb, sw, cfgB)
	b := openRemote(t, ns, cfgB, false)

	// Straight to the port: the whole batch goes in one call.
	frames := make([][]byte, 64)
	for i := range frames {
		frames[i] = ether(frame.Broadcast, mac(9), byte(i))
	}
	if n, err := pa.Write(frames); n != 0 || !errors.Is(err, fabric.ErrUnreachable) {
		t.Fatalf("Write to an unreachable peer = %d, %v; want 0, ErrUnreachable", n, err)
	}

	// Through the switch: every frame flooded to A is counted unreachable.
	const sent = 200
	for i := 0; i < sent; i++ {
		b.Send(ether(frame.Broadcast, mac(2), byte(i)))
	}
	porttest.Eventually(t, "B's frames read", func() bool { return sw.StatsOf(pb.Name()).RxFrames == sent })
	porttest.Eventually(t, "A's drops counted", func() bool {
		return sw.StatsOf(pa.Name()).Drops[fabric.DropUnreachable] == sent
	})
	st := sw.StatsOf(pa.Name())
	if st.TxFrames != 0 || st.Drops[fabric.DropTxError] != 0 {
		t.Fatalf("tx %d, tx-error %d; want 0 and 0 (drops %v)", st.TxFrames, st.Drops[fabric.DropTxError], st.Drops)
	}
	if n := logs.Count("tunnel peer unreachable: dropping what is sent to it"); n != 1 {
		t.Fatalf("%d warnings for one episode:\n%s", n, logs.String())
	}
}
