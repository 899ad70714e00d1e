package e2e

import (
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
	"time"
)

// QEMU's socket backends (transports/stream and transports/dgram). QEMU
// needs no guest: its user network (10.0.2.2) joins the backend through a
// hub, and a UML on the daemon transport pings it through the switch.

// startQEMU runs QEMU with the backend netdev (whose id must be v) behind a
// hub with the user network.
func startQEMU(t *testing.T, netdev string) *output {
	t.Helper()
	needTool(t, "qemu-system-x86_64", "qemu-system-x86")
	return startBackground(t, exec.Command("qemu-system-x86_64", "-nographic", "-nodefaults", "-display", "none", "-m", "64",
		"-netdev", netdev, "-netdev", "user,id=u",
		"-netdev", "hubport,id=h1,hubid=0,netdev=v", "-netdev", "hubport,id=h2,hubid=0,netdev=u"))
}

// pingQEMU boots a UML on the switch's control socket and has it reach
// QEMU's user network.
func pingQEMU(t *testing.T, ctl string) {
	t.Helper()
	u := bootUML(t, umlConfig{net: daemonNet(1, ctl), ip: "10.0.2.15", peers: []string{"10.0.2.2"}})
	expectAllOK(t, []*uml{u}, [][]string{{"10.0.2.2"}})
	u.release(t)
}

func waitLog(t *testing.T, sw *switchProc, re, what string) string {
	t.Helper()
	line, ok := sw.log.wait(regexp.MustCompile(re), 10*time.Second)
	if !ok {
		t.Fatalf("%s:\n%s", what, sw.log.text())
	}
	return line
}

// QEMU connects (-netdev stream,server=off) to the switch's listener.
func TestQEMUStreamClient(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	dir := scratch(t)
	ctl, sock := filepath.Join(dir, "sw.ctl"), filepath.Join(dir, "q.sock")
	sw := startSwitch(t, nil, []string{ctl, sock}, "-unix", ctl, "-port", "transport=stream,path="+sock)
	startQEMU(t, "stream,id=v,server=off,addr.type=unix,addr.path="+sock)
	waitLog(t, sw, `msg="port attached" .*peer="stream#\d+ `, "QEMU did not attach")
	pingQEMU(t, ctl)
}

// The switch connects (connect=1) to a QEMU that listens
// (-netdev stream,server=on), started after the switch: it keeps trying.
func TestQEMUStreamServer(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	dir := scratch(t)
	ctl, sock := filepath.Join(dir, "sw.ctl"), filepath.Join(dir, "q.sock")
	sw := startSwitch(t, nil, []string{ctl}, "-unix", ctl, "-port", "transport=stream,path="+sock+",connect=1")
	time.Sleep(300 * time.Millisecond) // a few refused attempts first
	startQEMU(t, "stream,id=v,server=on,addr.type=unix,addr.path="+sock)
	waitLog(t, sw, `msg="stream connected"`, "the switch did not connect to QEMU")
	pingQEMU(t, ctl)
}

// freeTCPPort is a loopback TCP port nothing listens on now.
func freeTCPPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// QEMU's legacy -netdev socket speaks the same framing over TCP: QEMU
// connects to the switch's listener (connect=), and the switch connects to
// a QEMU that listens (listen=).
func TestQEMUSocketOverTCP(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	t.Run("qemu connects", func(t *testing.T) {
		t.Parallel()
		ctl, port := filepath.Join(scratch(t), "sw.ctl"), freeTCPPort(t)
		sw := startSwitch(t, nil, []string{ctl}, "-unix", ctl, "-port", fmt.Sprintf("transport=stream,port=%d", port))
		startQEMU(t, fmt.Sprintf("socket,id=v,connect=127.0.0.1:%d", port))
		waitLog(t, sw, `msg="port attached" .*peer="stream#\d+ `, "QEMU did not attach")
		pingQEMU(t, ctl)
	})
	t.Run("qemu listens", func(t *testing.T) {
		t.Parallel()
		ctl, port := filepath.Join(scratch(t), "sw.ctl"), freeTCPPort(t)
		sw := startSwitch(t, nil, []string{ctl}, "-unix", ctl, "-port", fmt.Sprintf("transport=stream,port=%d,connect=1", port))
		startQEMU(t, fmt.Sprintf("socket,id=v,listen=127.0.0.1:%d", port))
		waitLog(t, sw, `msg="stream connected"`, "the switch did not connect to QEMU")
		pingQEMU(t, ctl)
	})
}

// -netdev dgram over unix sockets.
func TestQEMUDgram(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	dir := scratch(t)
	ctl, swSock, qSock := filepath.Join(dir, "sw.ctl"), filepath.Join(dir, "sw.dgram"), filepath.Join(dir, "q.dgram")
	startSwitch(t, nil, []string{ctl, swSock}, "-unix", ctl, "-port", "transport=dgram,path="+swSock+",peer="+qSock)
	startQEMU(t, "dgram,id=v,local.type=unix,local.path="+qSock+",remote.type=unix,remote.path="+swSock)
	pingQEMU(t, ctl)
}

// fakeQEMU is a stream client that writes raw bytes.
type fakeQEMU struct{ c net.Conn }

func dialStream(t *testing.T, path string) *fakeQEMU {
	t.Helper()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &fakeQEMU{c}
}

func (q *fakeQEMU) write(t *testing.T, b []byte) {
	t.Helper()
	if _, err := q.c.Write(b); err != nil {
		t.Fatal(err)
	}
}

func record(f []byte) []byte { return append(binary.BigEndian.AppendUint32(nil, uint32(len(f))), f...) }

// frameTo is a broadcast frame from src whose byte 14 is tag.
func frameTo(src byte, size int, tag byte) []byte {
	f := make([]byte, size)
	copy(f, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe, 0xfd, 0x0d, 0, 0, src, 0x88, 0xb5, tag})
	return f
}

// expectTag reads frames until one with tag arrives.
func (q *fakeQEMU) expectTag(t *testing.T, tag byte) {
	t.Helper()
	q.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var hdr [4]byte
	for {
		if _, err := readFull(q.c, hdr[:]); err != nil {
			t.Fatalf("waiting for frame %d: %v", tag, err)
		}
		f := make([]byte, binary.BigEndian.Uint32(hdr[:]))
		if _, err := readFull(q.c, f); err != nil {
			t.Fatalf("waiting for frame %d: %v", tag, err)
		}
		if len(f) > 14 && f[14] == tag {
			return
		}
	}
}

func readFull(c net.Conn, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, err := c.Read(b[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// A client that splits frames across writes, sends an empty frame and then
// a length no frame has: the frames arrive, the empty one and the bad
// length are counted, the bad length ends that connection, and the next
// client's frames arrive.
func TestQEMUStreamBadInput(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	dir := scratch(t)
	sock := filepath.Join(dir, "q.sock")
	sw := startSwitch(t, nil, []string{sock}, "-port", "transport=stream,path="+sock)
	rx := dialStream(t, sock)
	waitLog(t, sw, `msg="port attached" .*peer="stream#1 `, "the receiver did not attach")
	tx := dialStream(t, sock)
	waitLog(t, sw, `msg="port attached" .*peer="stream#2 `, "the sender did not attach")

	r := record(frameTo(2, 300, 1))
	for _, piece := range [][]byte{r[:2], r[2:3], r[3:100], r[100:]} { // the prefix split, then the frame
		tx.write(t, piece)
		time.Sleep(20 * time.Millisecond)
	}
	rx.expectTag(t, 1)
	tx.write(t, append(record(nil), record(frameTo(2, 60, 2))...))
	rx.expectTag(t, 2)
	tx.write(t, []byte{0x7f, 0, 0, 0}) // 2 GiB
	line := waitLog(t, sw, `msg="port detached" .*peer="stream#2 `, "the connection with a bad length was not dropped")
	if dropCount(line, "oversize") != 1 || dropCount(line, "empty") != 1 {
		t.Fatalf("drops not counted: %s", line)
	}
	again := dialStream(t, sock)
	waitLog(t, sw, `msg="port attached" .*peer="stream#3 `, "the next client did not attach")
	again.write(t, record(frameTo(3, 60, 3)))
	rx.expectTag(t, 3)
	if _, err := os.Stat(sock); err != nil {
		t.Fatal(err)
	}
}
