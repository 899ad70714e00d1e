package policy

import (
	"testing"
	"time"
)

func TestParsers(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int64
	}{{"10mbit", 10e6}, {"1gbit", 1e9}, {"64kbit", 64e3}, {"1.5Mbit", 1.5e6}, {"64000", 64000}} {
		got, err := parseRate(c.in)
		if err != nil || got != c.want {
			t.Errorf("rate %q: %d, %v", c.in, got, err)
		}
		if back, _ := parseRate(formatRate(got)); back != got {
			t.Errorf("rate %q renders as %q", c.in, formatRate(got))
		}
	}
	for _, bad := range []string{"", "fast", "10", "-1mbit", "5000gbit", "NaN"} {
		if _, err := parseRate(bad); err == nil {
			t.Errorf("rate %q taken", bad)
		}
	}
	for in, want := range map[string]float64{"20%": 0.2, "20": 0.2, "0.5%": 0.005, "100%": 1, "0": 0} {
		if got, err := parsePercent(in); err != nil || got != want {
			t.Errorf("percent %q: %v, %v", in, got, err)
		}
	}
	for _, bad := range []string{"101%", "-1%", "x%", "NaN", ""} {
		if _, err := parsePercent(bad); err == nil {
			t.Errorf("percent %q taken", bad)
		}
	}
	if d, err := parseDelay("50ms"); err != nil || d != 50*time.Millisecond {
		t.Errorf("delay: %v %v", d, err)
	}
	for _, bad := range []string{"-1ms", "2h", "soon"} {
		if _, err := parseDelay(bad); err == nil {
			t.Errorf("delay %q taken", bad)
		}
	}
	if _, err := parseBurst("0.5"); err == nil {
		t.Error("loss_burst below 1 taken")
	}
	if _, err := parseSeed("0"); err == nil {
		t.Error("seed 0 taken")
	}
}

// FuzzParseLink: link= takes up and down alone, and what it takes renders
// back to itself.
func FuzzParseLink(f *testing.F) {
	for _, s := range []string{"up", "down", "", "Down", "1", "0", "up ", "downn"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		down, err := parseLink(v)
		if err != nil {
			if v == "up" || v == "down" {
				t.Fatalf("%q refused: %v", v, err)
			}
			return
		}
		if v != "up" && v != "down" {
			t.Fatalf("%q taken", v)
		}
		if formatLink(down) != v {
			t.Fatalf("%q renders as %q", v, formatLink(down))
		}
	})
}
