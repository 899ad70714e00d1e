package e2e

import (
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/umlswitch/umlswitch/internal/nstest"
)

var watchRE = regexp.MustCompile(`^WATCH (\d+) (ok|no)$`)

// watched is what a UML's watch= loop printed so far: each attempt's
// result by number, and the last number.
func (u *uml) watched() (results map[int]string, last int) {
	results = make(map[int]string)
	for _, line := range strings.Split(u.out.text(), "\n") {
		if m := watchRE.FindStringSubmatch(strings.TrimSpace(line)); m != nil {
			n, _ := strconv.Atoi(m[1])
			results[n] = m[2]
			last = max(last, n)
		}
	}
	return results, last
}

// waitWatch polls until ok says yes to what u's watch loop printed, or
// fails the test after timeout.
func (u *uml) waitWatch(t *testing.T, what string, timeout time.Duration, ok func(results map[int]string, last int) bool) {
	t.Helper()
	for deadline := time.Now().Add(timeout); ; time.Sleep(50 * time.Millisecond) {
		if r, last := u.watched(); ok(r, last) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("UML %s: %s: not within %v", u.name, what, timeout)
		}
	}
}

// expectUnansweredSince checks that u's watch loop gets no answer to the
// attempts it starts from now on (what: the change just made), watching
// five of them.
func (u *uml) expectUnansweredSince(t *testing.T, what string) {
	t.Helper()
	_, at := u.watched()
	// Attempts numbered at+2 and later began after the change (one more
	// for a line on its way to us): none may be answered.
	u.waitWatch(t, "five attempts after "+what, 60*time.Second, func(_ map[int]string, last int) bool { return last >= at+6 })
	results, last := u.watched()
	for n := at + 3; n <= last; n++ {
		if results[n] != "no" {
			t.Errorf("attempt %d, after %s (at %d), was answered: %q", n, what, at, results[n])
		}
	}
}

// waitAnsweredSince waits until u's watch loop gets an answer to an
// attempt it starts from now on (what: the change just made).
func (u *uml) waitAnsweredSince(t *testing.T, what string) {
	t.Helper()
	_, at := u.watched()
	u.waitWatch(t, "an answer after "+what, 30*time.Second, func(r map[int]string, last int) bool {
		for n := at + 1; n <= last; n++ {
			if r[n] == "ok" {
				return true
			}
		}
		return false
	})
}

// portOfMAC is the port the switch of control socket ctl learned mac on.
func portOfMAC(t *testing.T, ctl, mac string) string {
	t.Helper()
	var fdb []ctlMAC
	ctlJSON(t, ctl, &fdb, "fdb")
	for _, e := range fdb {
		if e.MAC == mac {
			return e.Port
		}
	}
	t.Fatalf("no port for %s in %+v", mac, fdb)
	return ""
}

// A failure drill: two UMLs and a host tap on a switch, the first UML
// pinging the second all along. `ctl link PORT down` on the second's port
// stops the answers at once, and `ctl link PORT up` brings them back; the
// port shows link_state down and counts link-down drops meanwhile, and the
// events say link-down, then link-up. The tap port taken down with `ctl
// port set` shows NO-CARRIER on the host, and its carrier back once up.
func TestLinkDownAndUp(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	ns := nstest.New(t)
	ctl := filepath.Join(scratch(t), "sw.ctl")
	startSwitch(t, ns, []string{ctl}, "-unix", ctl, "-port", "transport=tap,ifname=lab0,create=1,up=1,name=host")
	ns.MustRun(t, "ip", "addr", "add", "10.0.0.100/24", "dev", "lab0")
	events := startBackground(t, exec.Command(env.umlswitch, "ctl", "-s", ctl, "-json", "events"))
	u1 := bootUML(t, umlConfig{ns: ns, net: daemonNet(1, ctl), ip: ip(1), peers: []string{ip(2)},
		vars: map[string]string{"watch": ip(2)}})
	u2 := bootUML(t, umlConfig{ns: ns, net: daemonNet(2, ctl), ip: ip(2), peers: []string{ip(1)}})
	expectAllOK(t, []*uml{u1, u2}, [][]string{{ip(2)}, {ip(1)}})
	u1.waitWatch(t, "pings answered", 30*time.Second, func(r map[int]string, last int) bool { return r[last] == "ok" })

	// The second UML's port, by its address (forgotten once the link is down).
	port := portOfMAC(t, ctl, mac(2))

	ctlRun(t, ctl, "link", port, "down")
	u1.expectUnansweredSince(t, "link down")
	var ports []struct {
		Name      string            `json:"name"`
		LinkState string            `json:"link_state"`
		Drops     map[string]uint64 `json:"drops"`
	}
	ctlJSON(t, ctl, &ports, "ports")
	downDrops := uint64(0)
	for _, p := range ports {
		switch {
		case p.Name == port:
			downDrops = p.Drops["link-down"]
			if p.LinkState != "down" || downDrops == 0 {
				t.Errorf("port %s while down: link_state %q, drops %v", p.Name, p.LinkState, p.Drops)
			}
		case p.LinkState != "up":
			t.Errorf("port %s: link_state %q", p.Name, p.LinkState)
		}
	}
	if downDrops == 0 {
		t.Errorf("no link-down drops on %s: %+v", port, ports)
	}
	if out := ctlRun(t, ctl, "ports"); !regexp.MustCompile(regexp.QuoteMeta(port) + `\s.*\sdown\s`).MatchString(out) {
		t.Errorf("ctl ports does not show %s down:\n%s", port, out)
	}

	ctlRun(t, ctl, "link", port, "up")
	u1.waitAnsweredSince(t, "link up")

	// The host's tap: NO-CARRIER while down, up all along.
	ctlRun(t, ctl, "port", "set", "host", "link=down")
	if out := ns.MustRun(t, "ip", "link", "show", "lab0"); !strings.Contains(out, "NO-CARRIER") || !strings.Contains(out, ",UP") {
		t.Errorf("the tap with link=down: %s", out)
	}
	ctlRun(t, ctl, "port", "set", "host", "link=up")
	if out := ns.MustRun(t, "ip", "link", "show", "lab0"); strings.Contains(out, "NO-CARRIER") {
		t.Errorf("the tap with link=up: %s", out)
	}

	// The events: link-down, then link-up, for the UML's port and the tap.
	for _, p := range []string{port, "host"} {
		prefix := `"type":"link-%s","switch":"default","port":"` + regexp.QuoteMeta(p) + `"`
		up := regexp.MustCompile(strings.Replace(prefix, "%s", "up", 1))
		if _, ok := events.wait(up, 10*time.Second); !ok {
			t.Fatalf("no link-up event for %s:\n%s", p, events.text())
		}
		var seen []string
		for _, line := range strings.Split(events.text(), "\n") {
			if strings.Contains(line, `"port":"`+p+`"`) && strings.Contains(line, `"type":"link-`) {
				seen = append(seen, regexp.MustCompile(`link-(down|up)`).FindString(line))
			}
		}
		if strings.Join(seen, " ") != "link-down link-up" {
			t.Errorf("link events for %s: %v", p, seen)
		}
	}
	u1.waiting(t)
	u2.waiting(t)
	u1.release(t)
	u2.release(t)
}
