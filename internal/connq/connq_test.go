package connq

import (
	"errors"
	"net"
	"testing"
)

func TestDeliverAcceptClose(t *testing.T) {
	l := New("test")
	a, b := net.Pipe()
	defer b.Close()
	go func() {
		if !l.Deliver(a) {
			t.Error("delivery to an open listener failed")
		}
	}()
	c, err := l.Accept()
	if err != nil || c != a {
		t.Fatalf("accepted %v, %v", c, err)
	}
	l.Close()
	l.Close()
	if _, err := l.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("accept after close: %v", err)
	}
	if l.Deliver(b) {
		t.Fatal("delivered to a closed listener")
	}
	if l.Addr().String() != "test" {
		t.Fatal(l.Addr())
	}
}
