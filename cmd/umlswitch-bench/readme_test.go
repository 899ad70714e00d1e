package main

import (
	"os"
	"strings"
	"testing"

	"github.com/umlswitch/umlswitch/bench"
)

// The README documents every flag by quoting -h; this keeps the quote of
// umlswitch-bench -h current. `make readme` rewrites it.
func TestReadmeQuotesHelp(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var help strings.Builder
	if code := bench.Main([]string{"-h"}, &help, &help); code != 0 {
		t.Fatalf("-h: exit %d", code)
	}
	flags := help.String()[strings.Index(help.String(), "Flags:\n")+len("Flags:\n"):]
	want := "<!-- umlswitch-bench -h -->\n```\n" + flags + "```\n<!-- end -->"
	if !strings.Contains(string(readme), want) {
		t.Error("README's quote of umlswitch-bench -h is out of date: run make readme")
	}
}
