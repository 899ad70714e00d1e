package accept

import (
	"bytes"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/umlswitch/umlswitch/internal/ratelog"
)

// lockedBuffer collects log lines from the accept goroutine.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *lockedBuffer) lines() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Count(l.b.String(), "\n")
}

// Out of descriptors (a low RLIMIT_NOFILE), a listener closes the clients
// waiting in its backlog at once with its spare descriptor instead of
// leaving them to time out, logs about it once a second at most, and
// serves again once descriptors are free.
func TestOutOfDescriptors(t *testing.T) {
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: filepath.Join(t.TempDir(), "s"), Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	var logs lockedBuffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	var failLog ratelog.Every
	done := make(chan struct{})
	go func() {
		defer close(done)
		// Each connection is greeted, then held until its client closes.
		Loop(ln.AcceptUnix, ShedFrom(ln), func(err error) { failLog.Log(log, slog.LevelWarn, "accept", "err", err) },
			func(c *net.UnixConn) {
				c.Write([]byte("hi"))
				go func() {
					c.Read(make([]byte, 1))
					c.Close()
				}()
			})
	}()
	defer func() { ln.Close(); <-done }()

	// The clients' sockets are made before the limit is lowered: only the
	// listener's side runs out.
	const clients = 24
	var fds [clients]int
	for i := range fds {
		if fds[i], err = unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0); err != nil {
			t.Fatal(err)
		}
		defer unix.Close(fds[i])
		tv := unix.Timeval{Sec: 10} // for connect (a full backlog) and read alike
		unix.SetsockoptTimeval(fds[i], unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
		unix.SetsockoptTimeval(fds[i], unix.SOL_SOCKET, unix.SO_SNDTIMEO, &tv)
	}
	for deadline := time.Now().Add(2 * time.Second); !holdsSpare() && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond) // Loop takes it as it starts
	}
	open, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	var old unix.Rlimit
	unix.Getrlimit(unix.RLIMIT_NOFILE, &old)
	low := old
	low.Cur = uint64(len(open) + 4) // room for about four connections
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &low); err != nil {
		t.Skip(err)
	}
	restored := false
	restore := func() {
		if !restored {
			restored = true
			unix.Setrlimit(unix.RLIMIT_NOFILE, &old)
		}
	}
	defer restore()

	to := &unix.SockaddrUnix{Name: ln.Addr().String()}
	// The calls block with SO_RCVTIMEO and SO_SNDTIMEO set, and the
	// kernel never restarts those after a signal: the Go runtime's
	// preemption (SIGURG) makes them fail with EINTR now and then. Again,
	// then: a connect goes on meanwhile (EALREADY, then EISCONN).
	greet := func(fd int) string {
		t.Helper()
		err := unix.Connect(fd, to)
		for err == unix.EINTR || err == unix.EALREADY {
			time.Sleep(time.Millisecond)
			err = unix.Connect(fd, to)
		}
		if err == unix.EAGAIN {
			return "hanging in connect"
		} else if err != nil && err != unix.EISCONN {
			t.Fatal(err)
		}
		buf := make([]byte, 8)
		n, err := unix.Read(fd, buf)
		for err == unix.EINTR {
			n, err = unix.Read(fd, buf)
		}
		switch {
		case err == unix.EAGAIN:
			return "hanging"
		case err != nil:
			return err.Error()
		case n == 0:
			return "closed"
		}
		return string(buf[:n])
	}
	start := time.Now()
	served, shed := 0, 0
	for i := 0; i < clients-4; i++ {
		switch got := greet(fds[i]); got {
		case "hi":
			served++
		case "closed", unix.ECONNRESET.Error():
			shed++
		default:
			t.Fatalf("client %d: %s; want a greeting or its connection closed at once", i, got)
		}
	}
	if served == 0 || shed < clients-4-served || shed < 8 {
		t.Fatalf("%d served, %d closed of %d", served, shed, clients-4)
	}
	if n, most := logs.lines(), int(time.Since(start)/time.Second)+2; n > most {
		t.Fatalf("%d log lines in %v:\n%s", n, time.Since(start), logs.String())
	}
	// A line a second at most: the next one counts the closed connections.
	time.Sleep(1100 * time.Millisecond)
	if got := greet(fds[clients-4]); got != "closed" && got != unix.ECONNRESET.Error() {
		t.Fatalf("one more client: %s; want its connection closed", got)
	}
	// The accept loop logs after it closed the connection: the line may
	// come a moment after the client saw the close.
	closedLine := regexp.MustCompile(`closed [1-9][0-9]* waiting connections`)
	for deadline := time.Now().Add(2 * time.Second); !closedLine.MatchString(logs.String()) && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if !closedLine.MatchString(logs.String()) {
		t.Errorf("the log does not say connections were closed:\n%s", logs.String())
	}

	// The served clients leave: their descriptors are the listener's again.
	for i := 0; i <= clients-4; i++ {
		unix.Close(fds[i])
		fds[i] = -1
	}
	time.Sleep(100 * time.Millisecond)
	if got := greet(fds[clients-1]); got != "hi" {
		t.Fatalf("after the clients left: %s; want a greeting", got)
	}
	restore()
}

func holdsSpare() bool {
	spare.Lock()
	defer spare.Unlock()
	return spare.fd >= 0
}
