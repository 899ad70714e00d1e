package bench

import (
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/umlswitch/umlswitch/internal/unixsock"
	"github.com/umlswitch/umlswitch/transports/stream"
)

// QEMU's stream framing (-netdev stream): generator ports are connections
// to one unix stream listener of the switch, and every frame goes behind its
// length, 4 bytes big-endian. A port sends many records in one write and
// reads what is there in one large read, as the switch's own stream ports
// do; a record cut by a short write is finished before anything else goes.

// streamPrefix is the length in front of every frame.
const streamPrefix = 4

// errStreamEnded: the switch closed a generator port's connection.
var errStreamEnded = errors.New("bench: the switch closed the stream")

func streamSocket(dir string) string { return filepath.Join(dir, "sw.stream") }

func streamPorts(dir string, _, _ int) []string {
	return []string{"-port", "transport=stream,path=" + streamSocket(dir)}
}

// dialStream connects generator port i to the switch's stream listener,
// as QEMU's -netdev stream,server=off does. Every connection is a port.
func dialStream(cfg GenConfig, i int) (*client, error) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	dst, err := unixsock.FromPath(streamSocket(cfg.Dir))
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	// A full listen backlog says EAGAIN to a non-blocking connect: the
	// switch accepts a moment later.
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		err = unixsock.Connect(fd, &dst)
		if err == nil || (err != unix.EAGAIN && err != unix.EINTR) || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("bench: stream port %d: connect %s: %w", i, dst.FilesystemPath(), err)
	}
	return &client{fd: fd, framer: stream.NewFramer(cfg.Size + 128), close: func() { unix.Close(fd) }}, nil
}

// record is f behind its length.
func record(f []byte) []byte {
	r := make([]byte, streamPrefix+len(f))
	binary.BigEndian.PutUint32(r, uint32(len(f)))
	copy(r[streamPrefix:], f)
	return r
}

// rawSend and rawRecv never block (MSG_DONTWAIT) and are issued raw, as
// the generator's sendmmsg and recvmmsg are; MSG_NOSIGNAL: a closed peer
// is EPIPE, not a signal.
func rawSend(fd int, b []byte) (int, error) {
	r, _, e := unix.RawSyscall6(unix.SYS_SENDTO, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)),
		unix.MSG_DONTWAIT|unix.MSG_NOSIGNAL, 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(r), nil
}

func rawRecv(fd int, b []byte) (int, error) {
	r, _, e := unix.RawSyscall6(unix.SYS_RECVFROM, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)),
		unix.MSG_DONTWAIT, 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(r), nil
}

// sendAll writes b whole, waiting for room up to a second: a stream must
// never carry part of a record followed by something else.
func sendAll(fd int, b []byte) error {
	deadline := time.Now().Add(time.Second)
	for len(b) > 0 {
		n, err := rawSend(fd, b)
		switch {
		case err == nil:
			b = b[n:]
			continue
		case err == unix.EINTR:
			continue
		case err != unix.EAGAIN:
			return fmt.Errorf("bench: stream send: %w", err)
		case time.Now().After(deadline):
			return errors.New("bench: stream send: the switch took nothing for a second")
		}
		pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
		unix.Poll(pfd, 10)
	}
	return nil
}

// nextRecord takes the next whole record out of f: ok false when none is
// buffered. A length beyond the largest frame means the stream is out of
// step, and nothing after it can be followed.
func nextRecord(f *stream.Framer) (fr []byte, ok bool, err error) {
	for {
		fr, size, ok := f.Next()
		switch {
		case !ok:
			return nil, false, nil
		case fr == nil && size > 0:
			return nil, false, fmt.Errorf("bench: stream out of step: a record of %d bytes", size)
		case size == 0:
			continue // an empty record: skipped, as QEMU does
		}
		return fr, true, nil
	}
}

// streamIO is a stream port's side of the generator's loop.
type streamIO struct {
	fd     int
	rx     *stream.Framer
	recs   []byte // depth records of the port's frame, back to back
	recLen int
	pend   int // bytes of a record cut by a short write, still to go
	want   int // the size of the frames it should receive
}

func newStreamIO(c *client, f []byte, depth, want int) *streamIO {
	rec := record(f)
	recs := make([]byte, 0, depth*len(rec))
	for range depth {
		recs = append(recs, rec...)
	}
	return &streamIO{fd: c.fd, rx: c.framer, recs: recs, recLen: len(rec), want: want}
}

// send writes up to k records in one send, first finishing one that a
// short write cut; a record counts as sent once it is whole on the stream.
// EAGAIN: the socket took less than offered.
func (s *streamIO) send(k int) (int, error) {
	done := 0
	if s.pend > 0 {
		n, err := rawSend(s.fd, s.recs[s.recLen-s.pend:s.recLen])
		if err != nil {
			return 0, err
		}
		if s.pend -= n; s.pend > 0 {
			return 0, unix.EAGAIN
		}
		done, k = 1, k-1
		if k == 0 {
			return done, nil
		}
	}
	n, err := rawSend(s.fd, s.recs[:k*s.recLen])
	if err != nil {
		return done, err
	}
	done += n / s.recLen
	if rem := n % s.recLen; rem > 0 {
		s.pend = s.recLen - rem
	}
	if n < k*s.recLen {
		return done, unix.EAGAIN
	}
	return done, nil
}

// recv reads what is there in one read and counts the whole records.
func (s *streamIO) recv() (got, short int, err error) {
	if space := s.rx.Space(); len(space) > 0 {
		n, err := rawRecv(s.fd, space)
		switch {
		case err == unix.EAGAIN, err == unix.EINTR:
		case err != nil:
			return 0, 0, err
		case n == 0:
			return 0, 0, errStreamEnded
		default:
			s.rx.Fill(n)
		}
	}
	for {
		fr, ok, err := nextRecord(s.rx)
		if err != nil || !ok {
			return got, short, err
		}
		if len(fr) < s.want {
			short++
		} else {
			got++
		}
	}
}
