package instance_test

import (
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/umlswitch/umlswitch/instance"
	"github.com/umlswitch/umlswitch/instance/instancetest"
	"github.com/umlswitch/umlswitch/internal/peercred/peertest"
)

// readsPcapng connects to a capture socket as uid and reports whether it
// is given the capture (a pcapng section header) or disconnected.
func readsPcapng(t *testing.T, uid uint32, path string) bool {
	t.Helper()
	var c net.Conn
	var err error
	if uid == 0 {
		c, err = net.Dial("unix", path)
	} else {
		c, err = peertest.DialAs(t, uid, uid, nil, "unix", path)
	}
	if err != nil {
		t.Fatalf("uid %d: %v", uid, err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	hdr := make([]byte, 4)
	if _, err := io.ReadFull(c, hdr); err != nil {
		return false
	}
	return string(hdr) == "\x0a\x0d\x0d\x0a"
}

// A capture socket opened to every user by its mode still gives the lab's
// traffic only to whom the control API would (and to its own owner=):
// others are disconnected, and counted as refused.
func TestCaptureSocketReaders(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("readers of other users are tested as root")
	}
	dir := peertest.PublicDir(t, false)
	open, owned := filepath.Join(dir, "open.sock"), filepath.Join(dir, "owned.sock")
	in := instancetest.Start(t, fmt.Sprintf(`
switches:
  - name: a
    mirrors:
      - {stream: %s, mode: "0777"}
      - {stream: %s, mode: "0777", owner: "1000"}
`, open, owned), instance.Config{})
	if !readsPcapng(t, 0, open) {
		t.Error("root was refused")
	}
	if readsPcapng(t, peertest.Nobody, open) {
		t.Error("nobody read a capture socket of mode 0777")
	}
	if !readsPcapng(t, 1000, owned) {
		t.Error("the socket's owner= was refused")
	}
	if readsPcapng(t, 1001, owned) {
		t.Error("another user read the socket of owner=1000")
	}
	if n := in.Security().APIRefused; n != 2 {
		t.Errorf("%d refusals counted, want 2", n)
	}
}
