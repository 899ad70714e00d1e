// Package ratelog keeps a line that can repeat many times a second (a
// refused client, an accept error) to one per period, saying how many were
// left out, so that a flooding peer cannot flood the log too.
package ratelog

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Every passes one line per period. The zero value passes one a second.
type Every struct {
	Period time.Duration

	mu         sync.Mutex
	last       time.Time // guarded by mu
	suppressed int       // guarded by mu
}

// Log writes msg unless a line went through less than a period ago; the
// line that does go through carries suppressed=N, the lines left out since.
func (e *Every) Log(log *slog.Logger, level slog.Level, msg string, args ...any) {
	if !log.Enabled(context.Background(), level) {
		return
	}
	period := e.Period
	if period <= 0 {
		period = time.Second
	}
	now := time.Now()
	e.mu.Lock()
	if !e.last.IsZero() && now.Sub(e.last) < period {
		e.suppressed++
		e.mu.Unlock()
		return
	}
	n := e.suppressed
	e.last, e.suppressed = now, 0
	e.mu.Unlock()
	if n > 0 {
		args = append(args, "suppressed", n)
	}
	log.Log(context.Background(), level, msg, args...)
}
