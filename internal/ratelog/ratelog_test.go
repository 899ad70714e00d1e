package ratelog

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestEvery(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	e := Every{Period: time.Hour}
	for i := 0; i < 100; i++ {
		e.Log(log, slog.LevelWarn, "refused", "i", i)
	}
	if n := strings.Count(buf.String(), "\n"); n != 1 {
		t.Fatalf("%d lines:\n%s", n, buf.String())
	}
	e.mu.Lock()
	e.last = time.Now().Add(-2 * time.Hour)
	e.mu.Unlock()
	e.Log(log, slog.LevelWarn, "refused")
	if !strings.Contains(buf.String(), "suppressed=99") {
		t.Fatalf("no count of the lines left out:\n%s", buf.String())
	}
}
