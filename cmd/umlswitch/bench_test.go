package main

import (
	"strings"
	"testing"
)

// umlswitch bench moved to its own command; the daemon says where.
func TestBenchMovedOut(t *testing.T) {
	code, _, stderr := runArgs("bench", "-h")
	if code != 2 || !strings.Contains(stderr, "umlswitch-bench") {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
}
