package e2e

import (
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/umlswitch/umlswitch/internal/nstest"
)

// rate=10mbit on the host's tap caps a TCP stream from a UML to the host:
// the host receives it at 9.0-10.5 Mbit/s (frames' payload, so a little
// under the rate on the wire).
func TestRateCapsATCPStream(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	ns := nstest.New(t)
	ctl := filepath.Join(scratch(t), "sw.ctl")
	startSwitch(t, ns, []string{ctl}, "-unix", ctl, "-port", "transport=tap,ifname=host0,create=1,up=1,name=host,rate=10mbit")
	ns.MustRun(t, "ip", "addr", "add", "10.0.0.254/24", "dev", "host0")
	const total = 5 << 20 // 4 s at 10 Mbit/s
	got := tcpSink(t, ns, "10.0.0.254:5002", total, 60*time.Second)
	u := bootUML(t, umlConfig{ns: ns, net: daemonNet(1, ctl), ip: ip(1), peers: []string{"10.0.0.254"},
		vars: map[string]string{"send": "10.0.0.254:5002:" + strconv.Itoa(total)}})
	expectAllOK(t, []*uml{u}, [][]string{{"10.0.0.254"}})
	r := <-got
	if r.err != nil || r.n != total {
		t.Fatalf("received %d of %d bytes: %v", r.n, total, r.err)
	}
	mbit := float64(r.n-1) * 8 / r.elapsed.Seconds() / 1e6
	t.Logf("rate=10mbit: %d bytes in %v, %.2f Mbit/s", r.n, r.elapsed.Round(time.Millisecond), mbit)
	if mbit < 9.0 || mbit > 10.5 {
		t.Errorf("a TCP stream through rate=10mbit ran at %.2f Mbit/s, want 9.0-10.5", mbit)
	}
	u.waiting(t)
	u.release(t)
}
