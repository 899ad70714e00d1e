package topology

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// Formats are the formats Write takes.
var Formats = []string{"json", "dot", "mermaid"}

// Write writes g as format: json, dot or mermaid.
func (g *Graph) Write(w io.Writer, format string) error {
	switch format {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(g)
	case "dot":
		return g.dot(w)
	case "mermaid":
		return g.mermaid(w)
	}
	return fmt.Errorf("topology: format %q: want json, dot or mermaid", format)
}

// switchLabel is a switch's box: its name, hub or not, and its socket.
func switchLabel(s Switch) string {
	kind := "switch"
	if s.Hub {
		kind = "hub"
	}
	return fmt.Sprintf("%s %s\n%s", kind, s.Name, s.Socket)
}

// dotQuote writes s as a dot quoted string: a backslash and a quote are
// escaped, and a line break becomes dot's \n.
func dotQuote(s string) string {
	s = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\r", "", "\n", `\n`).Replace(s)
	return `"` + s + `"`
}

var dotShapes = map[string]string{
	"machine":   `shape=ellipse, style=filled, fillcolor="#fff2cc"`,
	"mac":       `shape=ellipse, fontname="monospace"`,
	"port":      `shape=ellipse, style=dashed`,
	"interface": `shape=hexagon`,
	"remote":    `shape=diamond`,
}

// dot writes g for Graphviz: an undirected graph, switches as boxes.
func (g *Graph) dot(w io.Writer) error {
	bw := bufio.NewWriter(w)
	bw.WriteString("graph umlswitch {\n\trankdir=LR;\n\tnode [fontsize=10];\n\tedge [fontsize=9];\n")
	for _, s := range g.Switches {
		fmt.Fprintf(bw, "\t%s [shape=box, style=\"rounded,filled\", fillcolor=\"#dae8fc\", label=%s];\n", dotQuote(s.ID), dotQuote(switchLabel(s)))
	}
	for _, n := range g.Nodes {
		shape := dotShapes[n.Kind]
		if shape == "" {
			shape = "shape=ellipse"
		}
		fmt.Fprintf(bw, "\t%s [%s, label=%s];\n", dotQuote(n.ID), shape, dotQuote(n.Label))
	}
	for _, l := range g.Links {
		style := ""
		if l.B.Switch != "" {
			style = ", style=bold"
		}
		fmt.Fprintf(bw, "\t%s -- %s [label=%s%s];\n", dotQuote(l.A.Switch), dotQuote(end(l.B)), dotQuote(l.Label), style)
	}
	bw.WriteString("}\n")
	return bw.Flush()
}

func end(e End) string {
	if e.Switch != "" {
		return e.Switch
	}
	return e.Node
}

// mermaidText escapes s for a quoted Mermaid label: entity codes for what
// Mermaid or its HTML would read (quotes, #, <, >, |, backquote), <br/>
// for a line break.
func mermaidText(s string) string {
	s = strings.NewReplacer("#", "#35;", `"`, "#quot;", "<", "#lt;", ">", "#gt;", "|", "#124;", "`", "#96;",
		"\r", "", "\n", "<br/>").Replace(s)
	return `"` + s + `"`
}

var mermaidShapes = map[string][2]string{
	"machine":   {"([", "])"},
	"mac":       {"(", ")"},
	"port":      {"(", ")"},
	"interface": {"{{", "}}"},
	"remote":    {"{", "}"},
}

// mermaid writes g as a Mermaid flowchart (graph LR); node ids are g's
// own (s0, n0), so names never need escaping there.
func (g *Graph) mermaid(w io.Writer) error {
	bw := bufio.NewWriter(w)
	bw.WriteString("graph LR\n")
	for _, s := range g.Switches {
		fmt.Fprintf(bw, "  %s[%s]\n", s.ID, mermaidText(switchLabel(s)))
	}
	for _, n := range g.Nodes {
		sh, ok := mermaidShapes[n.Kind]
		if !ok {
			sh = [2]string{"(", ")"}
		}
		fmt.Fprintf(bw, "  %s%s%s%s\n", n.ID, sh[0], mermaidText(n.Label), sh[1])
	}
	for _, l := range g.Links {
		arrow := "---"
		if l.B.Switch != "" {
			arrow = "==="
		}
		fmt.Fprintf(bw, "  %s %s|%s| %s\n", l.A.Switch, arrow, mermaidText(l.Label), end(l.B))
	}
	return bw.Flush()
}
