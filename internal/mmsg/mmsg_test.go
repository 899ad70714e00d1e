package mmsg

import (
	"bytes"
	"errors"
	"testing"

	"golang.org/x/sys/unix"
)

func socketpair(t *testing.T, typ int) (int, int) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, typ|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fds[0]); unix.Close(fds[1]) })
	return fds[0], fds[1]
}

func TestSendRecvBatch(t *testing.T) {
	for _, typ := range []int{unix.SOCK_DGRAM, unix.SOCK_SEQPACKET} {
		a, b := socketpair(t, typ)
		const n = 8
		tx := NewBatch(n, 2)
		hdr := []byte("HDR:")
		var payloads [n][]byte
		for i := 0; i < n; i++ {
			payloads[i] = bytes.Repeat([]byte{byte(i)}, 10+i)
			tx.SetBuf(i, 0, hdr)
			tx.SetBuf(i, 1, payloads[i])
		}
		sent, err := tx.Send(a, 0, n, unix.MSG_DONTWAIT)
		if err != nil || sent != n {
			t.Fatalf("Send = %d, %v", sent, err)
		}
		rx := NewBatch(n, 1)
		bufs := make([][]byte, n)
		for i := range bufs {
			bufs[i] = make([]byte, 64)
			rx.SetBuf(i, 0, bufs[i])
		}
		got, err := rx.Recv(b, n, unix.MSG_DONTWAIT)
		if err != nil || got != n {
			t.Fatalf("Recv = %d, %v", got, err)
		}
		for i := 0; i < n; i++ {
			want := append(append([]byte{}, hdr...), payloads[i]...)
			if l := int(rx.Hdrs[i].Len); !bytes.Equal(bufs[i][:l], want) {
				t.Errorf("message %d = %x, want %x", i, bufs[i][:l], want)
			}
		}
		if _, err := rx.Recv(b, n, unix.MSG_DONTWAIT); !errors.Is(err, unix.EAGAIN) {
			t.Fatalf("empty socket: %v, want EAGAIN", err)
		}
	}
}

// MSG_TRUNC makes recvmmsg report a datagram's true length, which is how
// ports detect oversize frames instead of passing them on cut short.
func TestRecvTruncReportsTrueLength(t *testing.T) {
	a, b := socketpair(t, unix.SOCK_DGRAM)
	if _, err := unix.Write(a, make([]byte, 100)); err != nil {
		t.Fatal(err)
	}
	rx := NewBatch(1, 1)
	rx.SetBuf(0, 0, make([]byte, 40))
	n, err := rx.Recv(b, 1, unix.MSG_DONTWAIT|unix.MSG_TRUNC)
	if err != nil || n != 1 {
		t.Fatal(n, err)
	}
	if rx.Hdrs[0].Len != 100 || rx.Hdrs[0].Msg.Flags&unix.MSG_TRUNC == 0 {
		t.Fatalf("len %d flags %#x, want 100 with MSG_TRUNC", rx.Hdrs[0].Len, rx.Hdrs[0].Msg.Flags)
	}
}

func TestNoAllocs(t *testing.T) {
	a, b := socketpair(t, unix.SOCK_DGRAM)
	tx, rx := NewBatch(4, 1), NewBatch(4, 1)
	buf := make([]byte, 64)
	for i := 0; i < 4; i++ {
		rx.SetBuf(i, 0, make([]byte, 64))
	}
	allocs := testing.AllocsPerRun(100, func() {
		for i := 0; i < 4; i++ {
			tx.SetBuf(i, 0, buf)
		}
		if _, err := tx.Send(a, 0, 4, unix.MSG_DONTWAIT); err != nil {
			t.Fatal(err)
		}
		if _, err := rx.Recv(b, 4, unix.MSG_DONTWAIT); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per batch", allocs)
	}
}

// Writev sends only the first n pieces of a message: one datagram of
// their bytes.
func TestWritev(t *testing.T) {
	a, b := socketpair(t, unix.SOCK_DGRAM)
	tx := NewBatch(1, 4)
	for j, s := range []string{"ab", "cd", "ef", "gh"} {
		tx.SetBuf(0, j, []byte(s))
	}
	if n, err := tx.Writev(a, 0, 3); n != 6 || err != nil {
		t.Fatalf("Writev = %d, %v", n, err)
	}
	buf := make([]byte, 16)
	n, err := unix.Read(b, buf)
	if err != nil || string(buf[:n]) != "abcdef" {
		t.Fatalf("read %q, %v", buf[:n], err)
	}
}
