package e2e

import (
	"bytes"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/umlswitch/umlswitch/frame"
	"github.com/umlswitch/umlswitch/internal/nstest"
	"github.com/umlswitch/umlswitch/transports/daemon"
	"github.com/umlswitch/umlswitch/transports/porttest"
)

// absentPort is what `ctl ports -json` says of a port that may be absent.
type absentPort struct {
	Name   string            `json:"name"`
	ID     int               `json:"id"`
	State  string            `json:"state"`
	Reason string            `json:"reason"`
	Drops  map[string]uint64 `json:"drops"`
}

func portNamed(t *testing.T, ctl, name string) absentPort {
	t.Helper()
	var ps []absentPort
	ctlJSON(t, ctl, &ps, "ports")
	for _, p := range ps {
		if p.Name == name {
			return p
		}
	}
	t.Fatalf("no port %s in %+v", name, ps)
	return absentPort{}
}

// within waits up to 10 s (a shared, loaded machine) for cond.
func within(t *testing.T, what string, cond func() bool) {
	t.Helper()
	withinFor(t, 10*time.Second, what, cond)
}

// withinFor waits up to limit for cond.
func withinFor(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, limit)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// receives reports whether recv brings want within 200 ms of each frame.
func receives(recv func([]byte, time.Duration) (int, error), b, want []byte) bool {
	for {
		n, err := recv(b, 200*time.Millisecond)
		if err != nil {
			return false
		}
		if bytes.Equal(b[:n], want) {
			return true
		}
	}
}

// A host interface deleted under its port leaves the port configured and
// absent (listed so, one warning, nothing written to it), and an
// interface of the same name created again is attached: frames cross both
// ways. A tap someone else created, and a raw port on a veth.
func TestVanishedInterfaceComesBack(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	quiet := func(ns *nstest.NS, devs ...string) {
		for _, dev := range devs {
			ns.MustRun(t, "sysctl", "-qw", "net.ipv6.conf."+dev+".disable_ipv6=1")
			ns.MustRun(t, "ip", "link", "set", dev, "up")
		}
	}
	for _, c := range []struct {
		name, port  string
		create, del func(ns *nstest.NS)
	}{
		{"tap", "transport=tap,ifname=host0,name=up1",
			func(ns *nstest.NS) {
				ns.MustRun(t, "ip", "tuntap", "add", "dev", "host0", "mode", "tap")
				quiet(ns, "host0")
			},
			func(ns *nstest.NS) { ns.MustRun(t, "ip", "link", "del", "host0") }},
		{"raw-veth", "transport=raw,ifname=sw0,name=up1",
			func(ns *nstest.NS) {
				ns.MustRun(t, "ip", "link", "add", "sw0", "type", "veth", "peer", "name", "host0")
				quiet(ns, "sw0", "host0")
				ns.WaitUp(t, "sw0", "host0")
			},
			func(ns *nstest.NS) { ns.MustRun(t, "ip", "link", "del", "sw0") }},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			ns := nstest.New(t)
			c.create(ns)
			ctl := filepath.Join(scratch(t), "sw.ctl")
			sw := startSwitch(t, ns, []string{ctl}, "-unix", ctl, "-port", c.port)
			var cl *daemon.Client
			if err := ns.Do(func() (err error) { // its abstract data socket must be in the switch's namespace
				cl, err = daemon.Dial(daemon.ClientConfig{Ctl: ctl})
				return err
			}); err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			macC, macH := frame.MAC{2, 0, 0, 0, 0, 0xc}, frame.MAC{2, 0, 0, 0, 0, 0xd}
			crosses := func(host *porttest.PacketSocket) {
				t.Helper()
				b := make([]byte, 2048)
				within(t, "a frame from the client reaches the host", func() bool {
					out := porttest.Ether(frame.Broadcast, macC, 60, 0x5a)
					cl.Send(out)
					return receives(host.Recv, b, out)
				})
				within(t, "a frame from the host reaches the client", func() bool {
					in := porttest.Ether(macC, macH, 60, 0xa5)
					host.Send(in)
					return receives(cl.Recv, b, in)
				})
			}
			crosses(porttest.OpenPacketSocket(t, ns, "host0"))

			c.del(ns)
			within(t, "the port listed as absent", func() bool {
				return portNamed(t, ctl, "up1").State == "absent"
			})
			// Nothing is written to it now: its counts stay as they are
			// while the client floods.
			before := portNamed(t, ctl, "up1")
			for range 100 {
				cl.Send(porttest.Ether(frame.Broadcast, macC, 60, 1))
				time.Sleep(10 * time.Millisecond)
			}
			after := portNamed(t, ctl, "up1")
			if after.State != "absent" || after.ID != -1 || after.Drops["tx-error"] != before.Drops["tx-error"] || after.Reason == "" {
				t.Fatalf("an absent port: before %+v, after a second of floods %+v", before, after)
			}
			warned := regexp.MustCompile(`level=WARN msg="port absent: its interface is gone`)
			if n := len(warned.FindAllString(sw.log.text(), -1)); n != 1 {
				t.Fatalf("%d warnings that the port is absent, want 1:\n%s", n, sw.log.text())
			}

			c.create(ns)
			within(t, "the port attached again", func() bool {
				p := portNamed(t, ctl, "up1")
				return p.State == "" && p.ID >= 0
			})
			crosses(porttest.OpenPacketSocket(t, ns, "host0"))
			if !strings.Contains(sw.log.text(), `msg="port present again"`) {
				t.Fatalf("no line says the port is back:\n%s", sw.log.text())
			}
		})
	}
}
