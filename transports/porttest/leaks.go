package porttest

import (
	"os"
	"runtime"
	"testing"
	"time"
)

// NoLeaks runs f, which must release everything it opens before it
// returns, and fails t unless the goroutines and open descriptors come back
// to where they were (they may take a moment to go).
func NoLeaks(t *testing.T, f func()) {
	t.Helper()
	goroutines, fds := runtime.NumGoroutine(), openFDs()
	f()
	settle(t, "goroutines", goroutines, runtime.NumGoroutine)
	settle(t, "open descriptors", fds, openFDs)
}

func openFDs() int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return 0
	}
	return len(ents)
}

func settle(t *testing.T, what string, want int, f func() int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for f() > want {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%s: %d, want at most %d\n%s", what, f(), want, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Goroutines is a dump of every goroutine's stack, for tests that look
// for the goroutines of one function.
func Goroutines() string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return string(buf[:n])
		}
		buf = make([]byte, 2*len(buf))
	}
}
