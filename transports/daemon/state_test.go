package daemon

import (
	"encoding/hex"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/umlswitch/umlswitch/fabric"
	"github.com/umlswitch/umlswitch/frame"
	"github.com/umlswitch/umlswitch/internal/unixsock"
	"github.com/umlswitch/umlswitch/transports/porttest"
)

func TestStateRoundTrip(t *testing.T) {
	uml := unixsock.Abstract("\x00\x00\x01\x02")
	vde, _ := unixsock.FromPath("/tmp/vde.sock")
	in := []savedClient{
		{Addr: hex.EncodeToString(uml[:]), Local: "umlswitch-1-ab", UID: 1000, GID: 100, Groups: []uint32{100, 27}, Label: "pid=513"},
		{Addr: hex.EncodeToString(vde[:]), Local: "umlswitch-1-cd", UID: 0, Number: 3, Label: "vde_plug user=root"},
	}
	out, err := parseState(encodeState("/run/a.ctl", in), "/run/a.ctl")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(out, in) {
		t.Fatalf("%+v", out)
	}
	if got, _ := parseState(encodeState("/run/a.ctl", nil), "/run/a.ctl"); len(got) != 0 {
		t.Fatalf("empty: %+v", got)
	}
	good := string(encodeState("/run/a.ctl", in))
	for name, doc := range map[string]string{
		"another socket's": strings.Replace(good, "/run/a.ctl", "/run/b.ctl", 1),
		"another format":   strings.Replace(good, stateFormat, "umlswitch-daemon-state/2", 1),
		"not JSON":         good[:len(good)/2],
		"a short address":  strings.Replace(good, in[0].Addr, in[0].Addr[:20], 1),
		"not a unix one":   strings.Replace(good, in[0].Addr, "0200"+in[0].Addr[4:], 1),
		"a foreign name":   strings.Replace(good, "umlswitch-1-ab", "systemd-private", 1),
		"a name twice":     strings.Replace(good, "umlswitch-1-cd", "umlswitch-1-ab", 1),
		"a bad number":     strings.Replace(good, `"number": 3`, `"number": 70000`, 1),
	} {
		if _, err := parseState([]byte(doc), "/run/a.ctl"); err == nil {
			t.Errorf("%s state was taken", name)
		}
	}
}

func FuzzParseState(f *testing.F) {
	uml := unixsock.Abstract("\x00\x00\x01\x02")
	f.Add(encodeState("/c", []savedClient{{Addr: hex.EncodeToString(uml[:]), Local: "umlswitch-1-ab", UID: 7}}))
	f.Add([]byte(`{"format":"umlswitch-daemon-state/1","ctl":"/c","clients":[{}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		clients, err := parseState(data, "/c")
		if err != nil {
			return
		}
		again, err := parseState(encodeState("/c", clients), "/c")
		if err != nil || len(again) != len(clients) {
			t.Fatalf("a state that parsed does not parse again: %v", err)
		}
		for _, c := range clients {
			if _, err := c.addr(); err != nil {
				t.Fatal(err)
			}
		}
	})
}

// A switch that stops and starts again takes its clients back from the
// state file: UML-style clients (which sendto the data address they were
// given, from a socket of their own name) do not handshake again, and
// frames flow between them through the new switch. A client that ended
// meanwhile is dropped, and so is a VDE-style one, which unlinked its
// socket's path once connected: nothing can reach it again by address.
func TestRestartTakesClientsBack(t *testing.T) {
	ctl := filepath.Join(t.TempDir(), "ctl")
	first := startSwitch(t, fabric.Config{}, Config{Options: Options{Path: ctl}})
	a, b := dial(t, ctl, false), dial(t, ctl, false)
	gone := dial(t, ctl, false)
	dial(t, ctl, true)
	first.WaitPorts(t, 4)
	porttest.Eventually(t, "the state file lists four clients", func() bool { return len(readState(t, ctl)) == 4 })
	first.Stop()
	gone.Close()

	second, log := startLogged(t, Config{Options: Options{Path: ctl}})
	second.WaitPorts(t, 2)
	if err := a.Send(porttest.Ether(frame.Broadcast, mac(1), 60, 1)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2048)
	if n, err := b.Recv(buf, 2*time.Second); err != nil || n != 60 {
		t.Fatalf("through the new switch: %d bytes, %v", n, err)
	}
	if n := log.Count("client not taken back"); n != 2 {
		t.Fatalf("%d clients reported as not taken back, want 2 (the one gone, the VDE one):\n%s", n, log)
	}
	porttest.Eventually(t, "the state file lists the two taken back", func() bool { return len(readState(t, ctl)) == 2 })
	// A client taken back that goes is detached when a frame for it is
	// refused.
	b.Close()
	a.Send(porttest.Ether(frame.Broadcast, mac(1), 60, 2))
	second.WaitPorts(t, 1)
	porttest.Eventually(t, "the state file lists one", func() bool { return len(readState(t, ctl)) == 1 })
}

// A state file that others could have written, or that is not a regular
// file, is not acted on.
func TestStateFileMustBeTheSwitchs(t *testing.T) {
	ctl := filepath.Join(t.TempDir(), "ctl")
	first := startSwitch(t, fabric.Config{}, Config{Options: Options{Path: ctl}})
	dial(t, ctl, false)
	first.WaitPorts(t, 1)
	porttest.Eventually(t, "the state file", func() bool { return len(readState(t, ctl)) == 1 })
	first.Stop()
	if err := os.Chmod(ctl+".state", 0o666); err != nil {
		t.Fatal(err)
	}
	sw, log := startLogged(t, Config{Options: Options{Path: ctl}})
	time.Sleep(50 * time.Millisecond)
	if n := len(sw.Stats()); n != 0 {
		t.Fatalf("%d clients taken back from a world-writable state file", n)
	}
	if !strings.Contains(log.String(), "state file ignored") {
		t.Fatalf("no warning:\n%s", log)
	}
}

func readState(t *testing.T, ctl string) []savedClient {
	t.Helper()
	data, err := os.ReadFile(ctl + ".state")
	if err != nil {
		return nil
	}
	clients, err := parseState(data, ctl)
	if err != nil {
		t.Fatal(err)
	}
	return clients
}
