package main

import (
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/umlswitch/umlswitch/transports/porttest"
)

type countReloads struct{ n atomic.Int32 }

func (c *countReloads) Reload() error { c.n.Add(1); return nil }

// SIGHUP reloads (SIGUSR2 upgrades the same way), and stopping the loop leaves no goroutine of it behind.
func TestHangupLoopEnds(t *testing.T) {
	onSignal(syscall.SIGHUP, new(countReloads).Reload)() // the runtime's signal goroutine starts once, and stays
	porttest.NoLeaks(t, func() {
		var c countReloads
		stop := onSignal(syscall.SIGHUP, c.Reload)
		if err := syscall.Kill(syscall.Getpid(), syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		porttest.Eventually(t, "a reload", func() bool { return c.n.Load() == 1 })
		stop()
	})
}
