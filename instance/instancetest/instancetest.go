// Package instancetest runs an instance for the tests of the packages
// around it (instance, api, the ctl command).
package instancetest

import (
	"context"
	"testing"

	"github.com/umlswitch/umlswitch/configs"
	"github.com/umlswitch/umlswitch/instance"
	"github.com/umlswitch/umlswitch/transports/porttest"
)

// Start parses doc, runs it with a quiet logger (and the API, if api is
// not nil) and stops it when the test ends.
func Start(t testing.TB, doc string, cfg instance.Config) *instance.Instance {
	t.Helper()
	plan, err := configs.Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Logger == nil {
		cfg.Logger = porttest.Quiet()
	}
	in, err := instance.New(plan, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { in.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done; in.Close() })
	return in
}
