package bench

import (
	"context"
	"io"
	"log/slog"
	"math"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/umlswitch/umlswitch/configs"
	"github.com/umlswitch/umlswitch/instance"
	"github.com/umlswitch/umlswitch/instance/instancetest"
)

func TestLastGC(t *testing.T) {
	log := `time=... level=WARN msg="evpn: neighbour down"
gc 1 @0.011s 2%: 0.012+0.91+0.003 ms clock, 0.024+0.16/0.51/0.20+0.007 ms cpu, 3->4->1 MB, 4 MB goal, 0 MB stacks, 0 MB globals, 2 P
gc 2 @0.120s 1%: 0.01+2.1+0.004 ms clock, 0.02+0/1.1/2.0+0.009 ms cpu, 25->25->12 MB, 30 MB goal, 0 MB stacks, 5 MB globals, 2 P
gc 14 @28.221s 1%: 1.7+452+0.005 ms clock, 3.5+0/243/521+0.011 ms cpu, 423->453->246 MB, 497 MB goal, 0 MB stacks, 5 MB globals, 2 P
gc 3 @0.2s 0%: not a line that counts
gc 15 @29s 1%: 1+2+3 ms clock, 1+2/3/4+5 ms cpu, 5->3->2 MB, 8 MB goal, 0 MB stacks, 5 MB globals, 2 P (forced)
`
	// gc 14: 30 MB were allocated while it marked, and count as marked.
	if n, live := lastGC([]byte(log[:strings.Index(log, "gc 3 ")])); n != 14 || live != 216<<20 {
		t.Fatalf("gc %d, live %d MB; want gc 14, 216 MB", n, live>>20)
	}
	// A heap that shrank while the collection ran (5->3) allocated nothing.
	if n, live := lastGC([]byte(log)); n != 15 || live != 2<<20 {
		t.Fatalf("gc %d, live %d MB; want gc 15, 2 MB", n, live>>20)
	}
	if n, _ := lastGC([]byte("no trace here\n")); n != 0 {
		t.Fatalf("gc %d in a log without any", n)
	}
}

func TestEVPNScaleCheck(t *testing.T) {
	for _, s := range []EVPNScale{{100, 1000, 100000}, {1, 1, 1}, {2, 4, 40}} {
		if err := s.Check(); err != nil {
			t.Errorf("%+v: %v", s, err)
		}
	}
	for _, s := range []EVPNScale{{0, 1, 1}, {5000, 5000, 5000}, {10, 5, 10}, {1, 60000, 60000}, {2, 4, 41}, {2, 4, 0}, {1, 1, 70000}} {
		if err := s.Check(); err == nil {
			t.Errorf("%+v: no error", s)
		}
	}
}

// The plan is a configuration umlswitch takes: a switch per VNI, the
// generator's listener on the first, and the speaker waiting for the
// injector.
func TestEVPNPlan(t *testing.T) {
	ctl := filepath.Join(t.TempDir(), "sw.ctl")
	f, err := configs.Parse([]byte(evpnPlan(EVPNScale{VNIs: 3, VTEPs: 6, MACs: 60}, ctl, evpnBGPPort)))
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Switches) != 3 || f.Switches[2].Name != "v3" || f.Switches[2].VNI != 3 || len(f.Switches[0].Ports) != 1 || len(f.Switches[1].Ports) != 0 {
		t.Fatalf("switches %+v", f.Switches)
	}
	e := f.EVPN
	if e == nil || e.VTEP != switchVTEP || e.ListenPort != evpnBGPPort || len(e.Neighbors) != 1 || !e.Neighbors[0].Passive ||
		e.Neighbors[0].Address != netip.MustParseAddr("127.0.0.1") || e.Neighbors[0].ASN != evpnASN || e.ASN != evpnASN {
		t.Fatalf("evpn %+v", e)
	}
}

func TestReportEVPN(t *testing.T) {
	g := func(mpps float64) GenResult {
		return GenResult{Window: time.Second, Delivered: uint64(mpps * 1e6), Offered: uint64(mpps * 1e6), SentAll: 10, RecvAll: 10,
			Copies: 1, SwitchCPU: time.Second}
	}
	r := EVPNRun{Load: 2 * time.Second, Withdraw: time.Second, LoadCPU: 3 * time.Second, WithdrawCPU: time.Second, InjectorCPU: time.Second,
		Idle: [moments]time.Duration{0, 150 * time.Millisecond, 30 * time.Millisecond}, IdleWindow: 3 * time.Second, Heap: [moments]uint64{10e6, 212e6, 10e6},
		RSS: [moments]uint64{50e6, 600e6, 400e6}, Empty: g(0.5), TwinEmpty: g(0.4), Loaded: []GenResult{g(0.45), g(0.45)},
		Twin: []GenResult{g(0.5), g(0.4)}, APILoaded: make([]time.Duration, len(evpnAPICalls)),
		Remote: []GenResult{g(0.3), g(0.5)}, Hand: []GenResult{g(0.5), g(0.5)}, Churned: []GenResult{g(0.36), g(0.36)},
		Churn: 3000, ChurnTime: 2 * time.Second}
	if loaded, empty := r.ratios(GenResult.deliveredMpps); loaded != 1 || empty != 1.25 {
		t.Fatalf("ratios %v, %v: 0.45 against 0.5 and 0.4 is 1, 0.5 against 0.4 is 1.25", loaded, empty)
	}
	if remote, churned := r.remoteRatios(GenResult.deliveredMpps); math.Abs(remote-0.8) > 1e-9 || math.Abs(churned-0.9) > 1e-9 {
		t.Fatalf("remote ratios %v, %v: 0.4 against 0.5 is 0.8, 0.36 against 0.4 is 0.9", remote, churned)
	}
	var b strings.Builder
	ReportEVPN(&b, EVPNScale{VNIs: 10, VTEPs: 100, MACs: 100000}, GenConfig{Size: 64}, []EVPNRun{r, r})
	out := b.String()
	for _, want := range []string{
		"100 VTEPs (10 per VNI), 100000 MACs (1000 per VTEP) over 10 VNIs: 100100 routes",
		"| 1 | 2.00 s | 50050 | 3.00 s | 1.00 s | 1.00 s | 1.00 s | 0.0 / 5.0 / 1.0 % | 1.00x, 1.00x | 1.25x, 1.25x |",
		"| median | 2.00 s |",
		"| 1 | 10 / 212 / 10 MB | 50 / 600 / 400 MB | 2018 bytes | 0 bytes |",
		"| loaded | 2 | 64 | uml | 0.450 |",
		"| twin | 2 | 64 | uml | 0.450 (0.400-0.500) |",
		"| empty | 2 | 64 | uml | 0.500 |",
		"loaded / twin: 1.00x delivered frames per second",
		"| EVPN | 2 | 64 | uml | 0.400 (0.300-0.500) |",
		"| hand-written | 2 | 64 | uml | 0.500 |",
		"| 1 | 0.80x, 0.80x | 0.90x, 0.90x | 1500 |",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in\n%s", want, out)
		}
	}
}

// -mode evpn measures one umlswitch of its own between two local ports;
// the rest is refused before anything starts.
func TestMainRefusesEVPNRuns(t *testing.T) {
	for _, args := range [][]string{
		{"-compare", "relay"}, {"-switch", "uml_switch"}, {"-switch", "vlan-access"}, {"-ctl", "/tmp/x.ctl"},
		{"-transport", "bess"}, {"-ports", "3"}, {"-hub"}, {"-vnis", "0"}, {"-vteps", "10", "-vnis", "20"},
		{"-vteps", "10", "-macs", "15"}, {"-churn", "0"},
	} {
		var errb strings.Builder
		if code := Main(append([]string{"-mode", "evpn"}, args...), io.Discard, &errb); code != 2 || !strings.Contains(errb.String(), "-mode evpn: ") {
			t.Errorf("%v: exit %d: %s", args, code, errb.String())
		}
	}
}

// The injector against the EVPN speaker of an instance in this process,
// in a namespace of its own: every route it plays is installed as what it
// means (a tunnel per VTEP, a remote entry per address), the marker comes
// last (when its tunnel is there, everything is), and ending the session
// takes everything away; then a second session does it all again.
func TestInjectorLoadsAnInstance(t *testing.T) {
	if !instancetest.Isolate(t, switchVTEP.String()) {
		return
	}
	scale := EVPNScale{VNIs: 3, VTEPs: 12, MACs: 600}
	if err := setupEVPNNetns(scale); err != nil {
		t.Fatal(err)
	}
	plan, err := configs.Parse([]byte(evpnPlan(scale, filepath.Join(t.TempDir(), "sw.ctl"), evpnBGPPort)))
	if err != nil {
		t.Fatal(err)
	}
	in, err := instance.New(plan, instance.Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { in.Run(ctx); close(done) }()
	defer func() { cancel(); <-done; in.Close() }()
	j, err := startInjector(scale)
	if err != nil {
		t.Fatal(err)
	}
	defer j.close()
	ports := func() int {
		n := 0
		for _, s := range in.Switches() {
			n += s.Ports
		}
		return n
	}
	wait := func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); !ok(); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("no %s within 30s: %+v, %d ports", what, in.EVPN().Stats(), ports())
			}
		}
	}
	for session := range 2 {
		if _, err := j.connect(netip.MustParseAddr("127.0.0.2"), evpnBGPPort, 30*time.Second); err != nil {
			t.Fatal(err)
		}
		wait("marker", func() bool { return ports() == scale.VTEPs+1 })
		// Under load (make test) the marker's tunnel has been seen with a
		// few dozen routes still on their way: the bench then waits for
		// the counters too.
		if st := in.EVPN().Stats(); st.Received != scale.VTEPs+1+scale.MACs {
			t.Logf("session %d: the marker's tunnel is there, and the speaker has %+v", session, st)
		}
		wait("every route", func() bool { return in.EVPN().Stats().Received == scale.VTEPs+1+scale.MACs })
		st := in.EVPN().Stats()
		if st.RemoteMACs != scale.MACs || st.VTEPs != scale.VTEPs+1 || st.Failures != 0 || len(st.Ignored) != 0 {
			t.Fatalf("session %d: every route is in, and the speaker has %+v", session, st)
		}
		fdb, err := in.FDB("v2")
		if err != nil {
			t.Fatal(err)
		}
		remote := 0
		for _, e := range fdb {
			if e.Remote {
				remote++
				// v2 is VNI 2: VTEPs 1, 4, 7, ... (k%3+1 == 2).
				k := int(netip.MustParseAddr(e.VTEP).As4()[3]) - 1
				if scale.vni(k) != 2 || !strings.HasPrefix(e.MAC, evpnMAC(k, 0).String()[:12]) {
					t.Fatalf("v2 holds %s behind VTEP %s", e.MAC, e.VTEP)
				}
			}
		}
		if remote != scale.MACs/scale.VNIs {
			t.Fatalf("v2 holds %d remote entries, want %d", remote, scale.MACs/scale.VNIs)
		}
		if session == 0 {
			genAndChurn(t, in, j, scale, wait)
		}
		if err := j.disconnect(); err != nil {
			t.Fatal(err)
		}
		wait("withdrawal", func() bool {
			st := in.EVPN().Stats()
			return st.Received == 0 && st.RemoteMACs == 0 && st.VTEPs == 0 && ports() == 0
		})
	}
}

// genAndChurn: the generator's VTEP and address arrive in v1, churn
// changes routes, and once it stops every route is back. The session
// after it finds neither the generator's routes nor the marker (disconnect
// takes them out of the injector's table).
func genAndChurn(t *testing.T, in *instance.Instance, j *injector, scale EVPNScale, wait func(string, func() bool)) {
	t.Helper()
	if err := j.announceGen(); err != nil {
		t.Fatal(err)
	}
	all := func() bool {
		st := in.EVPN().Stats()
		return st.Received == scale.VTEPs+1+scale.MACs+2 && st.RemoteMACs == scale.MACs+1 && st.VTEPs == scale.VTEPs+2
	}
	wait("generator's routes", all)
	fdb, err := in.FDB("v1")
	if err != nil {
		t.Fatal(err)
	}
	if i := slices.IndexFunc(fdb, func(e instance.MACInfo) bool { return e.MAC == portMAC(1).String() }); i < 0 || fdb[i].VTEP != genVTEP.String() {
		t.Fatalf("v1 has no entry of the generator's port 1 behind %s: %+v", genVTEP, fdb)
	}
	stop := make(chan struct{})
	time.AfterFunc(300*time.Millisecond, func() { close(stop) })
	n, took, err := j.churn(5000, stop)
	if err != nil || n < 100 || took < 250*time.Millisecond {
		t.Fatalf("churn: %d changes in %v, %v", n, took, err)
	}
	wait("every route back after the churn", all)
}
