package instance

import (
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"testing"
	"time"
)

// Narrowed live captures handed a reader are not idle, even before their
// mirror has taken the reader in (on its own goroutine): a seventeenth
// selection is refused at once, not given one of theirs; once a reader
// has gone, its capture makes room.
func TestLiveCapturesJoiningAreNotIdle(t *testing.T) {
	in := runForTest(t, "ports: [{transport: daemon, path: "+filepath.Join(t.TempDir(), "a.ctl")+"}]")
	var readers []net.Conn
	for i := range maxLiveSelections {
		ours, theirs := net.Pipe()
		readers = append(readers, theirs)
		t.Cleanup(func() { ours.Close(); theirs.Close() })
		if err := in.CaptureSelected("default", LiveSelect{Ports: []string{fmt.Sprint("p", i)}}, ours); err != nil {
			t.Fatal(err)
		}
	}
	extra := LiveSelect{Ports: []string{"p99"}}
	if err := in.CaptureRoom("default", extra); !errors.Is(err, ErrBusy) {
		t.Fatalf("a seventeenth selection with sixteen joining: %v", err)
	}
	readers[0].Close()
	deadline := time.Now().Add(10 * time.Second)
	for in.CaptureRoom("default", extra) != nil {
		if time.Now().After(deadline) {
			t.Fatal("no room once a reader has gone")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
