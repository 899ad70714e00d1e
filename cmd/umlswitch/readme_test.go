package main

import (
	"os"
	"strings"
	"testing"
)

// The README documents every flag by quoting -h; this keeps the quotes
// current. `make readme` rewrites them.
func TestReadmeQuotesHelp(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ marker, cmd string }{
		{"<!-- umlswitch -h -->", "-h"},
	} {
		_, _, help := runArgs(strings.Fields(c.cmd)...)
		flags := help[strings.Index(help, "Flags:\n")+len("Flags:\n"):]
		want := c.marker + "\n```\n" + flags + "```\n<!-- end -->"
		if !strings.Contains(string(readme), want) {
			t.Errorf("README's quote of umlswitch %s is out of date: run make readme", c.cmd)
		}
	}
}
