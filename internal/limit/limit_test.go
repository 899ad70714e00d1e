package limit

import (
	"errors"
	"os"
	"sync"
	"testing"
)

func TestBounds(t *testing.T) {
	l := New("clients", 5, 2)
	l.self = 4242 // as if the switch ran as 4242, so that the test's uid is not exempt
	for i := 0; i < 2; i++ {
		if err := l.Acquire(1000); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Acquire(1000); !errors.Is(err, ErrLimit) {
		t.Fatalf("third slot of uid 1000: %v", err)
	}
	for _, u := range []uint32{1001, 1001, 1002} {
		if err := l.Acquire(u); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Acquire(1003); !errors.Is(err, ErrLimit) {
		t.Fatalf("sixth slot: %v", err)
	}
	// Root and the switch's own user always get in.
	for _, u := range []uint32{0, 4242, 0} {
		if err := l.Acquire(u); err != nil {
			t.Fatalf("uid %d refused: %v", u, err)
		}
	}
	if l.Refused() != 2 || l.InUse() != 8 {
		t.Fatalf("refused %d in use %d", l.Refused(), l.InUse())
	}
	l.Release(1000)
	l.Release(0)
	l.Release(0)
	l.Release(4242)
	if err := l.Acquire(1000); err != nil {
		t.Fatalf("after a release: %v", err)
	}
	l.Release(77) // never held: ignored
	if l.InUse() != 5 {
		t.Fatalf("in use %d", l.InUse())
	}
	var nilL *Limiter
	if nilL.Acquire(1) != nil || nilL.InUse() != 0 {
		t.Fatal("nil limiter bounds something")
	}
	nilL.Release(1)
}

func TestConcurrent(t *testing.T) {
	l := New("x", 0, 10)
	l.self = uint32(os.Geteuid()) + 1
	var wg sync.WaitGroup
	var mu sync.Mutex
	got := 0
	for i := 0; i < 100; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if l.Acquire(7) == nil {
				mu.Lock()
				got++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if got != 10 {
		t.Fatalf("%d slots granted, want 10", got)
	}
}
