// Package nstest gives tests a network namespace of their own: created with
// `ip netns add` (so commands can run in it with `ip netns exec`), entered by
// a locked OS thread for in-process work, and deleted at cleanup. Traffic in
// it never reaches the host's interfaces.
package nstest

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vishvananda/netns"

	"github.com/umlswitch/umlswitch/internal/linkwatch"
)

var seq atomic.Uint64

// NS is a named network namespace owned by one test.
type NS struct {
	Name   string
	handle netns.NsHandle
}

// New creates a namespace with its loopback up. It fails the test, never
// skips it, when the machine does not allow namespaces.
func New(t testing.TB) *NS {
	t.Helper()
	name := fmt.Sprintf("umlsw-%d-%d", os.Getpid(), seq.Add(1))
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v: %s (network namespaces need root or CAP_SYS_ADMIN and iproute2)", name, err, out)
	}
	ns := &NS{Name: name}
	t.Cleanup(func() {
		if ns.handle.IsOpen() {
			ns.handle.Close()
		}
		exec.Command("ip", "netns", "del", name).Run()
	})
	h, err := netns.GetFromName(name)
	if err != nil {
		t.Fatalf("open netns %s: %v", name, err)
	}
	ns.handle = h
	ns.MustRun(t, "ip", "link", "set", "lo", "up")
	return ns
}

// Do runs f on an OS thread inside the namespace. Sockets and devices that f
// opens stay in the namespace and can be used from any goroutine afterwards.
func (ns *NS) Do(f func() error) error { return linkwatch.InNamespace(ns.handle, f) }

// Cmd returns a command that runs inside the namespace.
func (ns *NS) Cmd(name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", ns.Name, name}, args...)...)
}

// MustRun runs a command inside the namespace and fails the test on error.
func (ns *NS) MustRun(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := ns.Cmd(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("in %s: %s %s: %v: %s", ns.Name, name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// AddLocal6 gives the namespace's loopback the IPv6 addresses addrs (/128,
// no duplicate address detection) and waits until each is local. The
// kernel installs an address's local route from a work queue, even with
// nodad: on a loaded machine a packet sent to the address at once can find
// no route and vanish.
func (ns *NS) AddLocal6(t testing.TB, addrs ...string) {
	t.Helper()
	for _, a := range addrs {
		ns.MustRun(t, "ip", "-6", "addr", "add", a+"/128", "dev", "lo", "nodad")
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, a := range addrs {
		for {
			out, _ := ns.Cmd("ip", "-6", "route", "show", "table", "local", a).CombinedOutput()
			if strings.HasPrefix(strings.TrimSpace(string(out)), "local "+a) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("in %s: %s never became local: %s", ns.Name, a, out)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// WaitUp waits until each of the namespace's interfaces devs is up with a
// carrier: the kernel sets a veth's carrier from a work queue after "ip
// link set up", and a frame sent before then is dropped.
func (ns *NS) WaitUp(t testing.TB, devs ...string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for _, dev := range devs {
		for {
			out, _ := ns.Cmd("cat", "/sys/class/net/"+dev+"/operstate").CombinedOutput()
			if strings.TrimSpace(string(out)) == "up" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("in %s: %s is not up: %s", ns.Name, dev, out)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}
