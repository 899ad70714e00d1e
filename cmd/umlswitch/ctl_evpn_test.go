package main

import (
	"encoding/json"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/umlswitch/umlswitch/api"
	"github.com/umlswitch/umlswitch/frame"
	"github.com/umlswitch/umlswitch/instance"
	"github.com/umlswitch/umlswitch/instance/instancetest"
	"github.com/umlswitch/umlswitch/transports/daemon"
	"github.com/umlswitch/umlswitch/transports/porttest"
)

// Without an evpn: block, ctl bgp and ctl evpn say so and exit 1.
func TestCtlEVPNNotConfigured(t *testing.T) {
	ctl := ctlSwitch(t)
	for _, cmd := range []string{"bgp", "evpn"} {
		if code, _, errs := ctlArgs("-s", ctl, cmd); code != 1 || !strings.Contains(errs, "EVPN is not configured") {
			t.Errorf("ctl %s without evpn: exit %d: %s", cmd, code, errs)
		}
		if code, _, errs := ctlArgs("-s", ctl, cmd, "extra"); code != 2 {
			t.Errorf("ctl %s extra: exit %d: %s", cmd, code, errs)
		}
	}
}

// Switch red (VNI 100) peers with a second speaker: ctl bgp shows the
// established neighbour, ctl evpn the VNI with the peer's VTEP and the
// routes both ways, ctl fdb and ctl ports the remote address and the
// tunnel with their VTEP.
func TestCtlBGPAndEVPN(t *testing.T) {
	if !instancetest.IsolateEVPN(t) {
		return
	}
	peer := instancetest.NewEVPNPeer(t, 100)
	ctl := filepath.Join(t.TempDir(), "red.ctl")
	log := porttest.Quiet()
	instancetest.Start(t, "switches:\n  - {name: red, vni: 100, ports: [{transport: daemon, path: "+ctl+", name: red}]}\n"+peer.EVPNBlock(),
		instance.Config{Logger: log, API: func(in *instance.Instance) instance.APIServer { return api.New(in, log) }})
	peer.Start(t)
	c, err := daemon.Dial(daemon.ClientConfig{Ctl: ctl})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	local := frame.MAC{2, 0, 0, 0, 0, 1}
	c.Send(porttest.Ether(frame.Broadcast, local, 60, 1))

	instancetest.WaitFor(t, "the session up and routes both ways", func() bool {
		var e instance.EVPNInfo
		_, out, _ := ctlArgs("-s", ctl, "-json", "evpn")
		json.Unmarshal([]byte(out), &e)
		return len(e.VNIs) == 1 && e.VNIs[0].RemoteMACs == 1 && e.VNIs[0].LocalMACs == 1
	})
	vtep := instancetest.PeerVTEP.String()
	for _, tt := range []struct {
		args []string
		want string // a regular expression
	}{
		{[]string{"bgp"}, `(?m)^NEIGHBOR\s+ASN\s+STATE\s+UPTIME\s+RECEIVED\s+ACCEPTED\s+SENT$`},
		{[]string{"bgp"}, `(?m)^127\.0\.0\.2\s+65000\s+established\s+\d+s\s+2\s+2\s+2$`},
		{[]string{"bgp"}, `(?m)^AS 65000, router id 10\.0\.0\.1, VTEP 192\.0\.2\.1, not listening: 1 of 1 neighbours established, ` +
			`2 routes received, 2 sent, 1 remote MACs, 1 VTEPs; routes ignored: none; data plane failures: 0$`},
		{[]string{"evpn"}, `(?m)^red\s+100\s+10\.0\.0\.1:1\s+65000:100\s+\*:100\s+1\s+1\s+192\.0\.2\.3$`},
		{[]string{"evpn"}, `(?m)^2 routes received \(this VTEP 192\.0\.2\.1\)$`},
		{[]string{"evpn"}, `(?m)^3\s+10\.0\.0\.2:1\s+100\s+192\.0\.2\.3\s+-\s+0\s+red\s+127\.0\.0\.2$`},
		{[]string{"evpn"}, `(?m)^2\s+10\.0\.0\.2:1\s+100\s+192\.0\.2\.3\s+02:00:00:00:00:0b\s+0\s+red\s+127\.0\.0\.2$`},
		{[]string{"evpn"}, `(?m)^2 routes sent \(this VTEP 192\.0\.2\.1\)$`},
		{[]string{"evpn"}, `(?m)^2\s+10\.0\.0\.1:1\s+100\s+192\.0\.2\.1\s+02:00:00:00:00:01\s+0\s+red\s+-$`},
		{[]string{"fdb"}, `(?m)^red\s+02:00:00:00:00:0b\s+evpn-100-192\.0\.2\.3\s+-\s+-\s+evpn 192\.0\.2\.3$`},
		{[]string{"fdb"}, `(?m)^red\s+02:00:00:00:00:01\s+red\.1\s+-\s+\d+s\s*$`},
		{[]string{"ports"}, `(?m)^red\s+evpn-100-192\.0\.2\.3\s+vxlan\s.*evpn VTEP 192\.0\.2\.3 \(vxlan `},
	} {
		code, out, errs := ctlArgs(append([]string{"-s", ctl}, tt.args...)...)
		if code != 0 || !regexp.MustCompile(tt.want).MatchString(out) {
			t.Errorf("ctl %s: exit %d, want /%s/ in:\n%s%s", strings.Join(tt.args, " "), code, tt.want, out, errs)
		}
	}
	// -json is the API's JSON.
	_, out, _ := ctlArgs("-s", ctl, "-json", "bgp")
	var b instance.BGPInfo
	if err := json.Unmarshal([]byte(out), &b); err != nil || len(b.Neighbors) != 1 || b.Neighbors[0].State != "established" {
		t.Errorf("bgp -json: %v\n%s", err, out)
	}
	_, out, _ = ctlArgs("-s", ctl, "-json", "fdb")
	var fdb []instance.MACInfo
	json.Unmarshal([]byte(out), &fdb)
	remote := 0
	for _, e := range fdb {
		if e.Remote {
			remote++
			if e.VTEP != vtep || e.MAC != instancetest.PeerMAC.String() {
				t.Errorf("remote entry %+v", e)
			}
		} else if e.VTEP != "" {
			t.Errorf("local entry with a VTEP: %+v", e)
		}
	}
	if remote != 1 || !strings.Contains(out, `"remote": true`) || !strings.Contains(out, `"vtep": "`+vtep+`"`) {
		t.Errorf("fdb -json: %d remote entries:\n%s", remote, out)
	}
	_, out, _ = ctlArgs("-s", ctl, "-json", "ports")
	if !strings.Contains(out, `"vtep": "`+vtep+`"`) {
		t.Errorf("ports -json without the tunnel's VTEP:\n%s", out)
	}
}

func TestEventLineEVPN(t *testing.T) {
	at := time.Date(2024, 1, 2, 3, 4, 5, 0, time.Local)
	for _, c := range []struct {
		ev   instance.Event
		want string
	}{
		{instance.Event{Time: at, Type: "bgp-up", Peer: "172.31.0.2", Detail: "established"}, "03:04:05.000 bgp-up neighbor=172.31.0.2 state=established"},
		{instance.Event{Time: at, Type: "bgp-down", Peer: "172.31.0.2", Detail: "idle"}, "03:04:05.000 bgp-down neighbor=172.31.0.2 state=idle"},
		{instance.Event{Time: at, Type: "vtep-joined", Switch: "red", Port: "evpn-100-172.31.0.2", Peer: "172.31.0.2", Detail: "vni 100"},
			"03:04:05.000 vtep-joined switch=red port=evpn-100-172.31.0.2 vtep=172.31.0.2 vni=100"},
		{instance.Event{Time: at, Type: "reload", Detail: "1 port added"}, "03:04:05.000 reload changes=1 port added"},
	} {
		if got := eventLine(c.ev); got != c.want {
			t.Errorf("eventLine(%s) = %q, want %q", c.ev.Type, got, c.want)
		}
	}
}

// The summary of a speaker that failed to start says so.
func TestBGPSummaryNotRunning(t *testing.T) {
	got := bgpSummary(instance.BGPInfo{ASN: 65000, RouterID: "10.0.0.1", VTEP: "192.0.2.1"})
	if !strings.Contains(got, "not running") {
		t.Errorf("summary %q", got)
	}
}
