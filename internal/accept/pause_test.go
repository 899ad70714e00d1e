package accept

import (
	"net"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// pauseForTest pauses accepting, resuming when the test ends.
func pauseForTest(t *testing.T) {
	t.Helper()
	if !Pause(time.Second) {
		t.Fatal("Pause: connections still in flight before the test began")
	}
	t.Cleanup(Resume)
}

// A listener of ports accepts nothing while paused: a client waits in the
// backlog, and is a port once the pause ends.
func TestPausedListenerAcceptsNothing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "l.sock")
	l, sw, _ := serve(t, listening(t, unix.AF_UNIX, unix.SOCK_STREAM, &unix.SockaddrUnix{Name: path}), nil)
	pauseForTest(t)
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	time.Sleep(100 * time.Millisecond) // long enough to accept, were it not paused
	if n := l.Accepted(); n != 0 {
		t.Fatalf("accepted %d while paused", n)
	}
	Resume()
	sw.WaitPorts(t, 1)
	if n := l.Accepted(); n != 1 {
		t.Fatalf("accepted %d after the pause", n)
	}
}

// A blocking Accept (net's) is woken by a Pause, accepts nothing until it
// ends, and then takes the client that waited.
func TestPausableWakesABlockedAccept(t *testing.T) {
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: filepath.Join(t.TempDir(), "l.sock"), Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	step := Pausable(ln, ln.AcceptUnix, stop)
	got := make(chan error, 4)
	go func() {
		for {
			c, err := step()
			if err != nil {
				got <- err
				return
			}
			c.Close()
			End()
			got <- nil
		}
	}()
	time.Sleep(50 * time.Millisecond) // blocked in Accept
	pauseForTest(t)
	c, err := net.Dial("unix", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	select {
	case err := <-got:
		t.Fatalf("accepted while paused (%v)", err)
	case <-time.After(100 * time.Millisecond):
	}
	Resume()
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the client that waited was not accepted after the pause")
	}
	// Closed while paused: the step returns, and ln is forgotten.
	Pause(time.Second)
	close(stop)
	ln.Close()
	select {
	case err := <-got:
		if err == nil {
			t.Fatal("a connection after close")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the step did not return on stop")
	}
	Resume()
	pause.mu.Lock()
	_, still := pause.blocking[ln]
	pause.mu.Unlock()
	if still {
		t.Fatal("a closed listener is still woken by Pause")
	}
}

// Pause waits for the connections accepted before it to settle, at most
// its limit.
func TestPauseWaitsForConnectionsInFlight(t *testing.T) {
	if !Begin() {
		t.Fatal("Begin refused with no pause on")
	}
	if Pause(50 * time.Millisecond) {
		t.Fatal("Pause reported settled with a connection in flight")
	}
	if Begin() {
		t.Fatal("Begin let a connection in during a pause")
	}
	done := make(chan bool)
	go func() { done <- Pause(5 * time.Second) }()
	time.Sleep(20 * time.Millisecond)
	End()
	if !<-done {
		t.Fatal("Pause did not see the connection settle")
	}
	Resume()
	Resume() // twice is harmless
	if !Begin() {
		t.Fatal("Begin refused after Resume")
	}
	End()
}
