package instance_test

import (
	"encoding/binary"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/umlswitch/umlswitch/frame"
	"github.com/umlswitch/umlswitch/instance"
	"github.com/umlswitch/umlswitch/transports/porttest"
)

// portNames lists the instance's ports, sorted.
func portNames(in *instance.Instance) []string {
	var names []string
	for _, p := range in.Ports("") {
		names = append(names, p.Name)
	}
	slices.Sort(names)
	return names
}

// fdbPorts maps each learned MAC to the port it was learned on.
func fdbPorts(t *testing.T, in *instance.Instance) map[string]string {
	t.Helper()
	entries, err := in.FDB("")
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, e := range entries {
		m[e.MAC] = e.Port
	}
	return m
}

// waitFor fails the test unless cond holds within a few seconds, showing
// the ports as they are then.
func waitFor(t *testing.T, in *instance.Instance, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("%s: ports %v, fdb %v", what, portNames(in), fdbPorts(t, in))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Every client of a listener is a port of its own (stream0.1, stream0.2),
// listed with its own counters, learned on by its own MAC and detached
// when it goes, impaired (delay=) or not: QEMUs on a stream listener, UMLs
// on a BESS socket, UMLs and VDE clients on a daemon socket. Before the
// stream kind said that it listens, both QEMUs were "stream0", one was
// listed, and with delay= the first stayed attached until the switch
// exited.
func TestListenerClientsArePortsOfTheirOwn(t *testing.T) {
	type client struct {
		send  func(f []byte)
		close func()
	}
	kinds := map[string]func(t *testing.T, path string) client{
		"stream": func(t *testing.T, path string) client {
			c, err := net.Dial("unix", path)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
			return client{func(f []byte) { sendStream(t, c, f) }, func() { c.Close() }}
		},
		"bess": func(t *testing.T, path string) client {
			c, err := net.Dial("unixpacket", path)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
			return client{func(f []byte) { c.Write(f) }, func() { c.Close() }}
		},
		"daemon": func(t *testing.T, path string) client {
			c := dial(t, path)
			return client{func(f []byte) { c.Send(f) }, c.Close}
		},
	}
	for kind, dialKind := range kinds {
		for name, extra := range map[string]string{"plain": "", "delay": ", delay: 1ms"} {
			t.Run(kind+"/"+name, func(t *testing.T) {
				path := filepath.Join(t.TempDir(), "sock")
				in := start(t, "ports: [{transport: "+kind+", path: "+path+extra+"}]", instance.Config{})
				l := kind + "0"
				a := dialKind(t, path)
				waitFor(t, in, "first client", func() bool { return slices.Equal(portNames(in), []string{l, l + ".1"}) })
				b := dialKind(t, path)
				waitFor(t, in, "second client", func() bool { return slices.Equal(portNames(in), []string{l, l + ".1", l + ".2"}) })
				a.send(porttest.Ether(frame.Broadcast, macA, 60, 1))
				b.send(porttest.Ether(frame.Broadcast, macB, 60, 2))
				waitFor(t, in, "both MACs", func() bool {
					m := fdbPorts(t, in)
					return m[macA.String()] == l+".1" && m[macB.String()] == l+".2"
				})
				for _, p := range in.Ports("") {
					if p.Name != l && p.RxFrames != 1 {
						t.Errorf("%s received %d frames from its client, want 1", p.Name, p.RxFrames)
					}
				}
				a.close()
				waitFor(t, in, "the first client's detach", func() bool {
					return slices.Equal(portNames(in), []string{l, l + ".2"}) && fdbPorts(t, in)[macA.String()] == ""
				})
				b.close()
				waitFor(t, in, "the second client's detach", func() bool { return slices.Equal(portNames(in), []string{l}) })
			})
		}
	}
}

// sendStream sends f as QEMU's stream netdev does: a 4-byte big-endian
// length, then the frame.
func sendStream(t *testing.T, c net.Conn, f []byte) {
	t.Helper()
	b := binary.BigEndian.AppendUint32(nil, uint32(len(f)))
	if _, err := c.Write(append(b, f...)); err != nil {
		t.Fatal(fmt.Errorf("stream client: %w", err))
	}
}
