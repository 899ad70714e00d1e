package instance

import (
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/umlswitch/umlswitch/frame"
	"github.com/umlswitch/umlswitch/transports/daemon"
	"github.com/umlswitch/umlswitch/transports/porttest"
)

// ctl port set of a link key wraps a listener's clients in an impairment
// while they detach: afterwards the switch holds exactly the ports the
// instance lists, and no wrapper's goroutine is left running.
func TestSetPortRacingDetaches(t *testing.T) {
	ctl := filepath.Join(t.TempDir(), "lab.ctl")
	in := runForTest(t, "ports: [{transport: daemon, path: "+ctl+", name: lab}]")
	porttest.Eventually(t, "Run's watcher", func() bool { return strings.Contains(porttest.Goroutines(), "(*Instance).watch(") })

	const rounds, clients = 40, 4
	porttest.NoLeaks(t, func() {
		for round := range rounds {
			// Clients that come now attach unimpaired: SetPort must wrap them.
			if err := in.SetPort("lab", [][2]string{{"delay", ""}}); err != nil {
				t.Fatal(err)
			}
			var cs []*daemon.Client
			for range clients {
				c, err := daemon.Dial(daemon.ClientConfig{Ctl: ctl})
				if err != nil {
					t.Fatal(err)
				}
				cs = append(cs, c)
			}
			porttest.Eventually(t, "the clients", func() bool { return len(in.attachedPorts()) == clients })
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				in.SetPort("lab", [][2]string{{"delay", "1ms"}}) // may find clients gone: that is the race
			}()
			for i, c := range cs {
				if (i+round)%2 == 0 {
					c.Close()
				} else {
					wg.Add(1)
					go func() { defer wg.Done(); c.Close() }()
				}
			}
			wg.Wait()
			porttest.Eventually(t, "the detaches", func() bool { return len(in.attachedPorts()) == 0 })
			if held := in.heldPorts(); len(held) != 0 {
				t.Fatalf("round %d: the switch still holds %v; the instance lists none", round, held)
			}
		}
	})
}

// attachedPorts are the names of the ports the instance has attached.
func (in *Instance) attachedPorts() []string {
	in.mu.Lock()
	defer in.mu.Unlock()
	var names []string
	for _, p := range in.ports {
		if p.port != nil && p.id != frame.NoPort {
			names = append(names, p.name)
		}
	}
	slices.Sort(names)
	return names
}

// heldPorts are the names of the ports the switch holds.
func (in *Instance) heldPorts() []string {
	var names []string
	for _, st := range in.fab.Stats() {
		names = append(names, st.Name)
	}
	slices.Sort(names)
	return names
}
