package instance_test

import (
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/umlswitch/umlswitch/configs"
	"github.com/umlswitch/umlswitch/frame"
	"github.com/umlswitch/umlswitch/instance"
	"github.com/umlswitch/umlswitch/instance/instancetest"
	"github.com/umlswitch/umlswitch/transports/daemon"
	"github.com/umlswitch/umlswitch/transports/porttest"
	"github.com/umlswitch/umlswitch/transports/vxlan"
)

func start(t *testing.T, doc string, cfg instance.Config) *instance.Instance {
	t.Helper()
	return instancetest.Start(t, doc, cfg)
}

func dial(t *testing.T, ctl string) *daemon.Client {
	t.Helper()
	c, err := daemon.Dial(daemon.ClientConfig{Ctl: ctl})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

var (
	macA = frame.MAC{2, 0, 0, 0, 0, 0xa}
	macB = frame.MAC{2, 0, 0, 0, 0, 0xb}
)

// recv reports whether c receives a frame within d.
func recv(c *daemon.Client, d time.Duration) bool {
	b := make([]byte, 2048)
	n, err := c.Recv(b, d)
	return err == nil && n > 0
}

func TestSwitchesAreIsolatedAndNamed(t *testing.T) {
	dir := t.TempDir()
	red, blue := filepath.Join(dir, "red.ctl"), filepath.Join(dir, "blue.ctl")
	in := start(t, `
switches:
  - {name: red, ports: [{transport: daemon, path: `+red+`, name: uml}]}
  - {name: blue, ports: [{transport: daemon, path: `+blue+`}]}
`, instance.Config{})
	r1, r2, b1 := dial(t, red), dial(t, red), dial(t, blue)
	porttest.Eventually(t, "three clients attached", func() bool {
		return len(in.Ports("red")) == 3 && len(in.Ports("blue")) == 2
	})
	if err := r1.Send(porttest.Ether(frame.Broadcast, macA, 60, 1)); err != nil {
		t.Fatal(err)
	}
	if !recv(r2, time.Second) {
		t.Fatal("red's broadcast did not reach red")
	}
	if recv(b1, 100*time.Millisecond) {
		t.Fatal("red's broadcast reached blue")
	}
	ports := in.Ports("red")
	names := []string{ports[0].Name, ports[1].Name, ports[2].Name}
	if strings.Join(names, " ") != "uml uml.1 uml.2" || ports[0].Listening != red || ports[0].Clients != 2 {
		t.Fatalf("red's ports: %+v", ports)
	}
	if ports[1].RxFrames != 1 || ports[2].TxFrames != 1 || ports[1].Listener != "uml" || ports[1].Kind != "daemon" {
		t.Fatalf("counters: %+v", ports[1:])
	}
	if bp := in.Ports("blue"); bp[0].Name != "daemon0" || bp[1].Name != "daemon0.1" {
		t.Fatalf("blue's ports: %+v", bp)
	}
	fdb, err := in.FDB("red")
	if err != nil || len(fdb) != 1 || fdb[0].MAC != macA.String() || fdb[0].Port != "uml.1" {
		t.Fatalf("fdb %+v %v", fdb, err)
	}
	if fdb, _ := in.FDB("blue"); len(fdb) != 0 {
		t.Fatalf("blue learned %+v", fdb)
	}
	if _, err := in.FDB("green"); !errors.Is(err, instance.ErrNotFound) {
		t.Fatalf("unknown switch: %v", err)
	}
	// Static entries, flushing.
	if err := in.AddStatic("red", macB.String(), "uml.2", 0); err != nil {
		t.Fatal(err)
	}
	if err := in.AddStatic("red", macB.String(), "daemon0.1", 0); err == nil {
		t.Fatal("a static entry on another switch's port was taken")
	}
	if n, err := in.FlushFDB("red"); n != 1 || err != nil {
		t.Fatalf("flushed %d, %v", n, err)
	}
	if fdb, _ := in.FDB("red"); len(fdb) != 1 || !fdb[0].Static {
		t.Fatalf("after the flush: %+v", fdb)
	}
	// Removing a client closes its control connection.
	if err := in.RemovePort("uml.1"); err != nil {
		t.Fatal(err)
	}
	if len(in.Ports("red")) != 2 {
		t.Fatalf("ports after removing a client: %+v", in.Ports("red"))
	}
	// Removing a switch removes its listener and clients.
	if err := in.RemoveSwitch("blue"); err != nil {
		t.Fatal(err)
	}
	if len(in.Ports("")) != 2 || len(in.Switches()) != 1 {
		t.Fatalf("after removing blue: %+v", in.Ports(""))
	}
	if _, err := daemon.Dial(daemon.ClientConfig{Ctl: blue, Timeout: time.Second}); err == nil {
		t.Fatal("blue's socket still answers")
	}
}

func TestAddRemoveErrors(t *testing.T) {
	dir := t.TempDir()
	in := start(t, "ports: [{transport: daemon, path: "+filepath.Join(dir, "a.ctl")+"}]", instance.Config{})
	spec, _ := configs.ParsePort("transport=bess,path=" + filepath.Join(dir, "b.bess") + ",name=b")
	if _, err := in.AddPort("nosuch", spec); !errors.Is(err, instance.ErrNotFound) {
		t.Fatalf("unknown switch: %v", err)
	}
	if name, err := in.AddPort("default", spec); err != nil || name != "b" {
		t.Fatalf("%q %v", name, err)
	}
	if _, err := in.AddPort("default", spec); !errors.Is(err, instance.ErrExists) {
		t.Fatalf("duplicate name: %v", err)
	}
	spec.Name = "c" // the same path again: the bind fails, and the name is free again
	if _, err := in.AddPort("default", spec); err == nil || errors.Is(err, instance.ErrExists) {
		t.Fatalf("second listener on one path: %v", err)
	}
	if err := in.RemovePort("c"); !errors.Is(err, instance.ErrNotFound) {
		t.Fatalf("a failed port left a name behind: %v", err)
	}
	if err := in.AddSwitch(configs.Switch{Name: "default"}); !errors.Is(err, instance.ErrExists) {
		t.Fatalf("duplicate switch: %v", err)
	}
	bad, _ := configs.ParsePort("transport=daemon,path=/nonexistent/dir/x.ctl")
	if err := in.AddSwitch(configs.Switch{Name: "s2", Ports: []configs.Port{bad}}); err == nil {
		t.Fatal("a switch whose port cannot open was added")
	}
	if len(in.Switches()) != 1 {
		t.Fatalf("the failed switch stayed: %+v", in.Switches())
	}
}

func TestReloadKeepsUnchangedPorts(t *testing.T) {
	dir := t.TempDir()
	a, b, c := filepath.Join(dir, "a.ctl"), filepath.Join(dir, "b.ctl"), filepath.Join(dir, "c.ctl")
	doc := "ports: [{transport: daemon, path: " + a + "}, {transport: daemon, path: " + b + "}]"
	next := doc
	in := start(t, doc, instance.Config{Reload: func() (*configs.File, error) { return configs.Parse([]byte(next)) }})
	sub := in.Events().Subscribe()
	defer sub.Cancel()
	c1, c2 := dial(t, a), dial(t, a)
	porttest.Eventually(t, "clients", func() bool { return len(in.Ports("")) == 4 })
	next = "hub: true\nports: [{transport: daemon, path: " + a + "}, {transport: daemon, path: " + c + "}]\nswitches: [{name: new}]"
	if err := in.Reload(); err != nil {
		t.Fatal(err)
	}
	if len(in.Switches()) != 2 || !in.Switches()[0].Hub {
		t.Fatalf("switches %+v", in.Switches())
	}
	c1.Send(porttest.Ether(frame.Broadcast, macA, 60, 1))
	if !recv(c2, time.Second) {
		t.Fatal("a client of the unchanged port lost its link")
	}
	dial(t, c)
	if _, err := daemon.Dial(daemon.ClientConfig{Ctl: b, Timeout: time.Second}); err == nil {
		t.Fatal("the removed port still answers")
	}
	next = "ports: ["
	if err := in.Reload(); err == nil {
		t.Fatal("a broken file was applied")
	}
	var types []string
	for len(sub.C) > 0 {
		ev := <-sub.C
		types = append(types, ev.Type)
		if ev.Type == "reload" && !strings.Contains(ev.Detail, "ports +1 -1 (1 unchanged)") {
			t.Errorf("reload event %+v", ev)
		}
	}
	got := strings.Join(types, " ")
	for _, want := range []string{"port-attached", "listener-removed", "listener-added", "switch-added", "reload", "reload-failed"} {
		if !strings.Contains(got, want) {
			t.Errorf("no %s event in %s", want, got)
		}
	}
}

func TestMACEventsAreLimited(t *testing.T) {
	dir := t.TempDir()
	ctl := filepath.Join(dir, "a.ctl")
	in := start(t, "ports: [{transport: daemon, path: "+ctl+"}]", instance.Config{})
	sub := in.Events().Subscribe()
	defer sub.Cancel()
	c := dial(t, ctl)
	for i := 0; i < 500; i++ {
		for c.Send(porttest.Ether(frame.Broadcast, frame.MAC{2, 0, 0, 0, byte(i >> 8), byte(i)}, 60, 1)) != nil {
			time.Sleep(time.Millisecond) // the switch's receive queue is full for a moment
		}
	}
	porttest.Eventually(t, "the frames", func() bool { return in.Switches()[0].MACLearned == 500 })
	learned, suppressed := 0, uint64(0)
	deadline := time.After(3 * time.Second)
	for suppressed == 0 {
		select {
		case ev := <-sub.C:
			switch ev.Type {
			case "mac-learned":
				learned++
			case "mac-suppressed":
				suppressed += ev.Count
			}
		case <-deadline:
			t.Fatalf("no mac-suppressed event; %d learned events", learned)
		}
	}
	if learned > 200 || uint64(learned)+suppressed < 500 {
		t.Fatalf("%d learned events, %d suppressed", learned, suppressed)
	}
}

// A port that keeps dropping is reported once per episode, not once a
// second.
func TestDropsEventOncePerEpisode(t *testing.T) {
	dir := t.TempDir()
	ctl := filepath.Join(dir, "a.ctl")
	in := start(t, "ports: [{transport: daemon, path: "+ctl+", name: uml}]", instance.Config{})
	sub := in.Events().Subscribe()
	defer sub.Cancel()
	sender, deaf := dial(t, ctl), dial(t, ctl) // deaf never reads: its queue fills
	porttest.Eventually(t, "clients", func() bool { return len(in.Ports("")) == 3 })
	stop := time.After(3500 * time.Millisecond)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	events := 0
	for done := false; !done; {
		select {
		case <-tick.C:
			for i := 0; i < 20; i++ {
				sender.Send(porttest.Ether(frame.Broadcast, macA, 60, 1))
			}
		case ev := <-sub.C:
			if ev.Type == "drops" {
				events++
				if ev.Port != "uml.2" || ev.Drops["tx-full"] == 0 {
					t.Errorf("drops event %+v", ev)
				}
			}
		case <-stop:
			done = true
		}
	}
	_ = deaf
	if events != 1 {
		t.Fatalf("%d drops events in 3.5 s of steady drops, want 1", events)
	}
}

// A VDE client's port request (vde://DIR[N]) makes it port N of its
// listener; a second request for N is refused; clients that ask for no
// number are numbered around it.
func TestVDEPortNumbers(t *testing.T) {
	dir := t.TempDir()
	ctl := filepath.Join(dir, "a.ctl")
	in := start(t, "ports: [{transport: daemon, path: "+ctl+", name: vde}]", instance.Config{})
	c, err := daemon.Dial(daemon.ClientConfig{Ctl: ctl, Port: 2, Description: "vde_plug"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := daemon.Dial(daemon.ClientConfig{Ctl: ctl, Port: 2, Timeout: time.Second}); err == nil {
		t.Fatal("a second client got port 2")
	}
	dial(t, ctl)
	dial(t, ctl)
	var names []string
	for _, p := range in.Ports("") {
		names = append(names, p.Name)
	}
	if got := strings.Join(names, " "); got != "vde vde.1 vde.2 vde.3" {
		t.Fatalf("ports %s", got)
	}
}

// Two switches with VXLAN ports on one local address and UDP port (VNIs 1
// and 2) share one socket, and a packet for VNI 1 reaches switch one only.
func TestSwitchesShareTunnelSockets(t *testing.T) {
	dir := t.TempDir()
	one, two := filepath.Join(dir, "one.ctl"), filepath.Join(dir, "two.ctl")
	const udp = 47891 // not 4789: other tests may hold it
	in := start(t, fmt.Sprintf(`
switches:
  - name: one
    ports: [{transport: daemon, path: %s}, {transport: vxlan, src: 127.0.0.2, dst: 127.0.0.3, vni: 1, dstport: %d}]
  - name: two
    ports: [{transport: daemon, path: %s}, {transport: vxlan, src: 127.0.0.2, dst: 127.0.0.3, vni: 2, dstport: %d}]
`, one, udp, two, udp), instance.Config{})
	c1, c2 := dial(t, one), dial(t, two)
	porttest.Eventually(t, "clients", func() bool { return len(in.Ports("")) == 6 })
	peer, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 3), Port: udp})
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	hdr := vxlan.Encode(1)
	pkt := append(hdr[:], porttest.Ether(frame.Broadcast, macA, 60, 1)...)
	if _, err := peer.WriteToUDP(pkt, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 2), Port: udp}); err != nil {
		t.Fatal(err)
	}
	if !recv(c1, time.Second) {
		t.Fatal("VNI 1 did not reach switch one")
	}
	if recv(c2, 200*time.Millisecond) {
		t.Fatal("VNI 1 reached switch two")
	}
	// And back: switch two's client sends; only VNI 2 leaves.
	c2.Send(porttest.Ether(frame.Broadcast, macB, 60, 2))
	b := make([]byte, 2048)
	peer.SetReadDeadline(time.Now().Add(time.Second))
	n, _, err := peer.ReadFromUDP(b)
	if err != nil || n < vxlan.HeaderLen {
		t.Fatalf("nothing from switch two: %v", err)
	}
	if got, _ := vxlan.Decode(b[:n]); got != 2 {
		t.Fatalf("switch two sent VNI %d", got)
	}
}

// A port with delay= holds frames for it; ctl port set changes the delay
// of a running port (and impairs one that was not); loss= drops and
// counts; keys that do not change at run time are refused.
func TestImpairedPorts(t *testing.T) {
	dir := t.TempDir()
	ctl := filepath.Join(dir, "a.ctl")
	in := start(t, "ports: [{transport: daemon, path: "+ctl+", name: lab, delay: 40ms}]", instance.Config{})
	a, b := dial(t, ctl), dial(t, ctl)
	porttest.Eventually(t, "clients", func() bool { return len(in.Ports("")) == 3 })
	took := func(from, to *daemon.Client) time.Duration {
		t.Helper()
		start := time.Now()
		from.Send(porttest.Ether(frame.Broadcast, macA, 60, 1))
		if !recv(to, 2*time.Second) {
			t.Fatal("nothing arrived")
		}
		return time.Since(start)
	}
	if d := took(a, b); d < 35*time.Millisecond {
		t.Fatalf("a frame through a 40 ms link took %v", d)
	}
	if err := in.SetPort("lab.2", [][2]string{{"delay", "0s"}}); err != nil {
		t.Fatal(err)
	}
	if d := took(a, b); d > 30*time.Millisecond {
		t.Fatalf("after delay=0s on the client, a frame took %v", d)
	}
	if err := in.SetPort("lab", [][2]string{{"delay", "0s"}, {"loss", "100%"}}); err != nil {
		t.Fatal(err)
	}
	a.Send(porttest.Ether(frame.Broadcast, macA, 60, 2))
	if recv(b, 200*time.Millisecond) {
		t.Fatal("a frame got through loss=100%")
	}
	ports := in.Ports("")
	if p := ports[2]; p.Link == nil || p.Link.Loss != 1 || p.Link.Lost != 1 || p.Drops["loss"] != 1 {
		t.Fatalf("port %s link %+v drops %v", p.Name, p.Link, p.Drops)
	}
	if err := in.SetPort("lab", [][2]string{{"path", "/x"}}); err == nil || !instance.IsBadInput(err) {
		t.Fatalf("path= at run time: %v", err)
	}
	if err := in.SetPort("lab", [][2]string{{"loss", "150%"}}); err == nil {
		t.Fatal("loss=150% was taken")
	}
	if err := in.SetPort("nosuch", [][2]string{{"delay", "1ms"}}); !errors.Is(err, instance.ErrNotFound) {
		t.Fatalf("unknown port: %v", err)
	}

	// A port that was not impaired at all becomes one.
	ctl2 := filepath.Join(dir, "b.ctl")
	if _, err := in.AddPort("default", mustPort(t, "transport=daemon,path="+ctl2+",name=plain")); err != nil {
		t.Fatal(err)
	}
	c, d := dial(t, ctl2), dial(t, ctl2)
	porttest.Eventually(t, "clients", func() bool { return len(in.Ports("")) == 6 })
	if err := in.SetPort("plain.2", [][2]string{{"delay", "40ms"}}); err != nil {
		t.Fatal(err)
	}
	if dd := took(c, d); dd < 35*time.Millisecond {
		t.Fatalf("after delay=40ms on a plain port, a frame took %v", dd)
	}
	d.Close() // detaching an impaired client closes it through the impairment
	porttest.Eventually(t, "the detach", func() bool { return len(in.Ports("")) == 5 })
}

func mustPort(t *testing.T, spec string) configs.Port {
	t.Helper()
	p, err := configs.ParsePort(spec)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// VLAN keys change while a port runs, for every client of a listener and
// for clients that come later; KEY= takes a key back to its default; a
// combination that makes no sense is refused and changes nothing.
func TestVLANChangesAtRunTime(t *testing.T) {
	dir := t.TempDir()
	ctl10, ctl20 := filepath.Join(dir, "10.ctl"), filepath.Join(dir, "20.ctl")
	in := start(t, fmt.Sprintf("ports: [{transport: daemon, path: %s, name: ten, vlan: 10}, {transport: daemon, path: %s, name: twenty, vlan: 20}]",
		ctl10, ctl20), instance.Config{})
	a, b := dial(t, ctl10), dial(t, ctl20)
	porttest.Eventually(t, "clients", func() bool { return len(in.Ports("")) == 4 })
	a.Send(porttest.Ether(frame.Broadcast, macA, 60, 1))
	if recv(b, 200*time.Millisecond) {
		t.Fatal("VLAN 10 reached VLAN 20")
	}
	if err := in.SetPort("twenty", [][2]string{{"vlan", "10"}}); err != nil {
		t.Fatal(err)
	}
	a.Send(porttest.Ether(frame.Broadcast, macA, 60, 2))
	if !recv(b, time.Second) {
		t.Fatal("after vlan=10 on the listener, its client is not in VLAN 10")
	}
	c := dial(t, ctl20) // a later client follows the change
	porttest.Eventually(t, "the third client", func() bool { return len(in.Ports("")) == 5 })
	a.Send(porttest.Ether(frame.Broadcast, macA, 60, 3))
	if !recv(c, time.Second) || !recv(b, time.Second) {
		t.Fatal("a client that came after the change is not in VLAN 10")
	}
	if err := in.SetPort("twenty", [][2]string{{"trunk", "10"}}); err == nil || !instance.IsBadInput(err) {
		t.Fatalf("trunk= on an access port: %v", err)
	}
	if err := in.SetPort("twenty", [][2]string{{"vlan", ""}, {"trunk", "10;20"}}); err != nil {
		t.Fatal(err)
	}
	a.Send(porttest.Ether(frame.Broadcast, macA, 60, 4))
	buf := make([]byte, 2048)
	n, err := b.Recv(buf, time.Second)
	if err != nil || n != 64 || frame.EtherType(buf[:n]) != frame.TPID8021Q {
		t.Fatalf("on a trunk now: %d bytes %x, %v", n, buf[:min(n, 18)], err)
	}
	if vid, _ := frame.OuterVLAN(buf[:n]); vid != 10 {
		t.Fatalf("tagged %d, want 10", vid)
	}
}
