package porttest

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/umlswitch/umlswitch/fabric"
	"github.com/umlswitch/umlswitch/frame"
	"github.com/umlswitch/umlswitch/tunnel"
)

// Quiet is a logger that drops everything, for switches under test.
func Quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// Capture is a fabric.Registry that hands what a transport attaches and
// serves to the test instead of a switch, marking ports with ID.
type Capture struct {
	ID        frame.PortID
	Ports     chan fabric.Port
	Receivers chan fabric.Receiver
}

// NewCapture returns a registry with room for a few ports.
func NewCapture(id frame.PortID) *Capture {
	return &Capture{ID: id, Ports: make(chan fabric.Port, 8), Receivers: make(chan fabric.Receiver, 8)}
}

func (c *Capture) Attach(p fabric.Port) (frame.PortID, error) { c.Ports <- p; return c.ID, nil }
func (c *Capture) Detach(p fabric.Port)                       { p.Close() }
func (c *Capture) Serve(r fabric.Receiver)                    { c.Receivers <- r }

// Switch is a real switch for a test, running until Stop or the test's end.
type Switch struct {
	*fabric.Fabric
	before []func() // run by Stop before the switch closes: transports' Close
	once   sync.Once
	cancel context.CancelFunc
}

// NewSwitch starts a switch; its logger is quiet unless cfg has one.
func NewSwitch(t testing.TB, cfg fabric.Config) *Switch {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = Quiet()
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Switch{Fabric: fabric.New(cfg), cancel: cancel}
	go s.Run(ctx)
	t.Cleanup(s.Stop)
	return s
}

// OnStop runs f when the switch stops, before it closes (last added first).
func (s *Switch) OnStop(f func()) { s.before = append(s.before, f) }

// Stop closes what OnStop registered, then the switch. It is idempotent.
func (s *Switch) Stop() {
	s.once.Do(func() {
		for i := len(s.before) - 1; i >= 0; i-- {
			s.before[i]()
		}
		s.cancel()
		s.Close()
	})
}

// WaitPorts waits until the switch has n ports.
func (s *Switch) WaitPorts(t testing.TB, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for len(s.Stats()) != n {
		if time.Now().After(deadline) {
			t.Fatalf("switch has %d ports, want %d", len(s.Stats()), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// StatsOf returns the counters of the port named name (zero if none).
func (s *Switch) StatsOf(name string) fabric.PortStats {
	for _, st := range s.Stats() {
		if st.Name == name {
			return st
		}
	}
	return fabric.PortStats{}
}

// Eventually polls cond for up to two seconds (counters are added after a
// send returns, so a peer can see a frame before its count).
func Eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after 2s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Ether builds a frame of size bytes from src to dst; byte 14 is tag.
func Ether(dst, src frame.MAC, size int, tag byte) []byte {
	f := make([]byte, size)
	copy(f, dst[:])
	copy(f[6:], src[:])
	f[12], f[13] = 0x88, 0xb5
	if size > 14 {
		f[14] = tag
	}
	return f
}

// TunnelSwitchWithoutLeaks runs f with a switch and a tunnel table of its
// own, in a subtest whose cleanups close them, and then checks that every
// goroutine and socket they used is gone.
func TunnelSwitchWithoutLeaks(t *testing.T, f func(t *testing.T, sw *Switch, tb *tunnel.Table)) {
	NoLeaks(t, func() {
		t.Run("body", func(t *testing.T) {
			sw := NewSwitch(t, fabric.Config{})
			f(t, sw, tunnel.NewTable(sw, Quiet()))
		})
	})
}

// LogBuffer collects a logger's lines for a test to read back; safe for
// the goroutines that log.
type LogBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write implements io.Writer.
func (l *LogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String is every line so far.
func (l *LogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Count is how many lines so far have msg as their message.
func (l *LogBuffer) Count(msg string) int { return strings.Count(l.String(), `msg="`+msg+`"`) }
