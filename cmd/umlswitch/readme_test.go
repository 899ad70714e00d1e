package main

import (
	"fmt"
	"os"
	"regexp"
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

// TestReadmeCodeBlocksHoldNoProse keeps the README's examples and prose
// apart: a paragraph run into a code block renders as a command nobody can
// paste.
func TestReadmeCodeBlocksHoldNoProse(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range proseInCode(string(readme)) {
		t.Errorf("README.md:%s", p)
	}
}

func TestProseInCode(t *testing.T) {
	cases := []struct {
		name, md string
		want     int // problems found
	}{
		{"command then paragraph", "Run:\n\n    tcpdump -n -i span0\n\nFrames are copied.\n", 0},
		{"paragraph run into the command", "Run:\n\n    tcpdump -n -i span0 Frames are copied into a bounded\nbuffer that one writer drains.\n", 2},
		{"sentence as a code line", "Run:\n\n    ip link set span0 up\n    Frames are copied into a bounded buffer.\n\nMore.\n", 1},
		{"comments and quotes are not prose", "Run:\n\n    # Frames are copied into a bounded buffer.\n    echo \"Frames are copied into it\" # Then read them back.\n\nMore.\n", 0},
		{"fenced help text may hold sentences", "```\n  -hub\n        Act as a hub, as uml_switch does.\n```\n", 0},
		{"fenced shell is checked", "```sh\nls Frames are copied into a bounded\n```\n", 1},
		{"unclosed fence", "Run:\n\n```\nls\n\nFrames are copied.\n", 1},
		{"list continuation is not code", "- item\n    that goes on\n- next\n", 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := proseInCode(c.md); len(got) != c.want {
				t.Errorf("found %d problems %q, want %d", len(got), got, c.want)
			}
		})
	}
}

// sentence matches prose: a capitalised word and three more words, or a
// capitalised word that starts a line ending in a full stop.
var sentence = regexp.MustCompile(`(^|\s)[A-Z][a-z]+(\s+[a-z][a-z,;]*){3,}|^[A-Z][a-z]+\s.*\.$`)

// proseInCode returns "LINE: problem" for each place where README prose and
// code run together: a fence left open, a code block that a paragraph
// follows with no blank line between, and a line of shell (an indented
// block, or a fence marked sh, bash, shell or console) that reads as a
// sentence once comments and quoted strings are taken out. Unmarked fences
// hold quoted -h text, whose sentences belong there.
func proseInCode(md string) []string {
	var problems []string
	fence, fenceAt, shell := false, 0, false
	// inCode: within an indented code block (blank lines may continue it);
	// prev: the line before, "blank", "code" or "text".
	inCode, inList, prev := false, false, "blank"
	for i, l := range strings.Split(md, "\n") {
		n := i + 1
		trimmed := strings.TrimSpace(l)
		indent := len(l) - len(strings.TrimLeft(l, " "))
		if indent < 4 && strings.HasPrefix(trimmed, "```") {
			if !fence {
				info := strings.TrimPrefix(trimmed, "```")
				fence, fenceAt = true, n
				shell = info == "sh" || info == "bash" || info == "shell" || info == "console"
			} else {
				fence = false
			}
			inCode, prev = false, "text"
			continue
		}
		if fence {
			if shell && reads(trimmed) {
				problems = append(problems, fmt.Sprintf("%d: prose in a shell code block: %q", n, trimmed))
			}
			continue
		}
		switch {
		case trimmed == "":
			if !inCode {
				inList = false
			}
			prev = "blank"
		case (indent >= 4 || strings.HasPrefix(l, "\t")) && (inCode || (prev == "blank" && !inList)):
			inCode, prev = true, "code"
			if reads(trimmed) {
				problems = append(problems, fmt.Sprintf("%d: prose in a code block: %q", n, trimmed))
			}
		default:
			if prev == "code" {
				problems = append(problems, fmt.Sprintf("%d: prose runs on from a code block with no blank line: %q", n, trimmed))
			}
			inCode, prev = false, "text"
			if listItem.MatchString(l) {
				inList = true
			}
		}
	}
	if fence {
		problems = append(problems, fmt.Sprintf("%d: a code fence that is never closed", fenceAt))
	}
	return problems
}

// listItem matches the first line of a list item, whose indented lines
// continue it rather than start a code block.
var listItem = regexp.MustCompile(`^\s*([-*+]|\d+[.)])\s`)

// reads reports whether a line of shell holds a sentence outside its
// comments and quoted strings.
func reads(line string) bool {
	if strings.HasPrefix(line, "#") {
		return false
	}
	if i := strings.Index(line, " #"); i >= 0 {
		line = line[:i]
	}
	return sentence.MatchString(quoted.ReplaceAllString(line, `""`))
}

var quoted = regexp.MustCompile(`"[^"]*"|'[^']*'`)
