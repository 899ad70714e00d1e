package instance_test

import (
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/umlswitch/umlswitch/frame"
	"github.com/umlswitch/umlswitch/instance"
	"github.com/umlswitch/umlswitch/transports/porttest"
)

// linkEvents takes the link-down and link-up events sub holds now (SetPort
// publishes before it returns), as "TYPE PORT".
func linkEvents(sub *instance.Subscription) []string {
	var out []string
	for {
		select {
		case ev := <-sub.C:
			if ev.Type == "link-down" || ev.Type == "link-up" {
				out = append(out, ev.Type+" "+ev.Port+" "+ev.Switch)
			}
		default:
			return out
		}
	}
}

// linkState is the link_state of port name, "none" if there is none.
func linkState(in *instance.Instance, name string) string {
	if p := portNamed(in, name); p != nil {
		return p.LinkState
	}
	return "none"
}

// link=down at run time: the port passes nothing either way, counts
// link-down, shows link_state down, and one link-down event says so (not
// one per port set); link=up mends it with one link-up. On a listener it
// holds for every client, later ones too; a port configured down starts
// down.
func TestLinkDownAtRunTime(t *testing.T) {
	dir := t.TempDir()
	ctl, cut := filepath.Join(dir, "a.ctl"), filepath.Join(dir, "cut.ctl")
	in := start(t, fmt.Sprintf("ports: [{transport: daemon, path: %s, name: lab}, {transport: daemon, path: %s, name: cut, link: down}]",
		ctl, cut), instance.Config{})
	sub := in.Events().Subscribe()
	defer sub.Cancel()
	a, b := dial(t, ctl), dial(t, ctl)
	porttest.Eventually(t, "clients", func() bool { return len(in.Ports("")) == 4 })
	passes := func(from, to interface {
		Send([]byte) error
	}, c interface {
		Recv([]byte, time.Duration) (int, error)
	}, tag byte, d time.Duration) bool {
		from.Send(porttest.Ether(frame.Broadcast, macA, 60, tag))
		buf := make([]byte, 2048)
		n, err := c.Recv(buf, d)
		return err == nil && n > 0
	}
	if !passes(a, b, b, 1, time.Second) {
		t.Fatal("nothing passes before the link goes down")
	}

	if err := in.SetPort("lab.2", [][2]string{{"link", "down"}}); err != nil {
		t.Fatal(err)
	}
	if got := linkEvents(sub); len(got) != 1 || got[0] != "link-down lab.2 default" {
		t.Fatalf("events after link=down: %q", got)
	}
	if passes(a, b, b, 2, 200*time.Millisecond) || passes(b, a, a, 3, 200*time.Millisecond) {
		t.Fatal("a frame crossed a down link")
	}
	if p := portNamed(in, "lab.2"); p == nil || p.LinkState != "down" || p.Drops["link-down"] != 2 || linkState(in, "lab.1") != "up" {
		t.Fatalf("lab.2: %+v; lab.1 %q", p, linkState(in, "lab.1"))
	}
	for _, kv := range [][2]string{{"link", "down"}, {"delay", "0s"}, {"isolated", "1"}} {
		if err := in.SetPort("lab.2", [][2]string{kv}); err != nil {
			t.Fatal(err)
		}
	}
	if got := linkEvents(sub); len(got) != 0 {
		t.Fatalf("events when the link stayed down: %q", got)
	}
	if err := in.SetPort("lab.2", [][2]string{{"link", "up"}, {"isolated", ""}}); err != nil {
		t.Fatal(err)
	}
	if got := linkEvents(sub); len(got) != 1 || got[0] != "link-up lab.2 default" {
		t.Fatalf("events after link=up: %q", got)
	}
	if !passes(b, a, a, 4, time.Second) || linkState(in, "lab.2") != "up" {
		t.Fatal("the link did not come back")
	}

	// On the listener: every client (but one given link= of its own), one
	// event, later clients too.
	if err := in.SetPort("lab", [][2]string{{"link", "down"}}); err != nil {
		t.Fatal(err)
	}
	if got := linkEvents(sub); len(got) != 1 || got[0] != "link-down lab default" {
		t.Fatalf("events after link=down on the listener: %q", got)
	}
	c := dial(t, ctl)
	porttest.Eventually(t, "the third client", func() bool { return len(in.Ports("")) == 5 })
	for _, name := range []string{"lab", "lab.1", "lab.3"} {
		if s := linkState(in, name); s != "down" {
			t.Errorf("%s: link_state %q", name, s)
		}
	}
	if s := linkState(in, "lab.2"); s != "up" { // a key set on the client itself wins, as every key does
		t.Errorf("lab.2, set up on its own: link_state %q", s)
	}
	if passes(c, a, a, 5, 200*time.Millisecond) || passes(a, c, c, 6, 200*time.Millisecond) {
		t.Fatal("a frame crossed the listener's down links")
	}
	if err := in.SetPort("lab", [][2]string{{"link", ""}}); err != nil { // back to the default
		t.Fatal(err)
	}
	if got := linkEvents(sub); len(got) != 1 || got[0] != "link-up lab default" {
		t.Fatalf("events after link= on the listener: %q", got)
	}
	if !passes(c, a, a, 7, time.Second) {
		t.Fatal("the listener's links did not come back")
	}

	// Configured down: its clients start down.
	d := dial(t, cut)
	porttest.Eventually(t, "the cut client", func() bool { p := portNamed(in, "cut.1"); return p != nil && p.ID >= 0 })
	if s := linkState(in, "cut.1"); s != "down" {
		t.Fatalf("a client of a listener configured down: link_state %q", s)
	}
	if passes(d, a, a, 8, 200*time.Millisecond) {
		t.Fatal("a frame came in through a link configured down")
	}
}

// The carrier follows the link: a port that attaches down loses it at
// once, and it changes when link= does (not on other keys), reached
// through the impairment wrapped round the port.
func TestLinkCarrier(t *testing.T) {
	in := start(t, "ports: [{transport: memhub, hub: carrier, name: cut, link: down, delay: 1ms}]", instance.Config{})
	p := memhubs.get(t, "carrier").plug(t)
	waitFor(t, in, "the client", func() bool { return slices.Contains(portNames(in), "cut.1") })
	want := []bool{false}
	check := func(what string) {
		t.Helper()
		if got := p.carrierCalls(); !slices.Equal(got, want) {
			t.Fatalf("%s: SetCarrier calls %v, want %v", what, got, want)
		}
	}
	check("attached down")
	for _, step := range []struct {
		kv      [2]string
		carrier []bool
	}{
		{[2]string{"link", "up"}, []bool{true}},
		{[2]string{"link", "up"}, nil},
		{[2]string{"delay", "2ms"}, nil},
		{[2]string{"link", "down"}, []bool{false}},
		{[2]string{"isolated", "1"}, nil},
		{[2]string{"link", ""}, []bool{true}},
	} {
		if err := in.SetPort("cut", [][2]string{step.kv}); err != nil {
			t.Fatal(err)
		}
		want = append(want, step.carrier...)
		check(step.kv[0] + "=" + step.kv[1])
	}
}
