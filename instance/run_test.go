package instance

import (
	"context"
	"testing"

	"github.com/umlswitch/umlswitch/configs"
	"github.com/umlswitch/umlswitch/transports/porttest"
)

// runForTest runs the configuration doc for this package's own tests
// (instancetest serves the tests outside it) and stops it when the test
// ends.
func runForTest(t *testing.T, doc string) *Instance {
	t.Helper()
	plan, err := configs.Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	in, err := New(plan, Config{Logger: porttest.Quiet()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() { in.Run(ctx); close(ran) }()
	t.Cleanup(func() { cancel(); <-ran; in.Close() })
	return in
}
