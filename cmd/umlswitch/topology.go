package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"

	"github.com/umlswitch/umlswitch/api"
	"github.com/umlswitch/umlswitch/configs"
	"github.com/umlswitch/umlswitch/lab"
	"github.com/umlswitch/umlswitch/topology"
)

const topologyUsage = `Usage: umlswitch ctl [-s CONTROL] topology [-format json|dot|mermaid] [-lab lab.conf] [CONTROL...]

Draws the switches of the umlswitch that serves CONTROL (and of the further
CONTROL sockets given, other processes' included), their ports, the
machines or addresses behind each port (the MAC table), host interfaces,
and the links between switches: tunnels (vxlan, gre, l2tpv3) whose two ends
are both among them, stream ports connecting to a stream listener and
dgram ports facing each other. -lab names the machines behind ports by
lab.conf's MACs and vector sockets.

Formats: json (a stable schema, version 1: README "ctl topology"), dot for
Graphviz, mermaid (a graph LR block for Markdown).

Examples:
  umlswitch ctl -s /tmp/lab/A.ctl topology -format dot | dot -Tsvg > lab.svg
  umlswitch ctl -s /tmp/lab/A.ctl topology -format mermaid -lab lab.conf
  umlswitch ctl -s /tmp/a.ctl topology /tmp/b.ctl | jq '.links[] | select(.b.switch)'

Flags:
`

// topology is ctl topology: the graph of what the sockets' APIs answer.
func (c *ctl) topology(args []string) error {
	fs := flag.NewFlagSet("topology", flag.ContinueOnError)
	var usage bytes.Buffer
	fs.SetOutput(&usage)
	format := fs.String("format", "dot", "`FORMAT`: json, dot or mermaid (-json means json).\nExample: -format mermaid")
	labConf := fs.String("lab", "", "name the machines behind ports after the lab `FILE` (lab.conf).\nExample: -lab lab.conf")
	fs.Usage = func() { fmt.Fprint(&usage, topologyUsage); fs.PrintDefaults() }
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			_, err = io.Copy(c.out, &usage)
			return err
		}
		return usagef("topology: %v", err)
	}
	if c.json && !isSet(fs, "format") {
		*format = "json"
	}
	var machines []topology.Machine
	if *labConf != "" {
		var err error
		if machines, err = labMachines(*labConf); err != nil {
			return err
		}
	}
	srcs := []topology.Source{}
	src, err := c.source(c.socket)
	if err != nil {
		return err
	}
	srcs = append(srcs, src)
	for _, s := range fs.Args() {
		other := &ctl{client: apiClient(controlPath(s), c.timeout), timeout: c.timeout, socket: absControl(s)}
		src, err := other.source(other.socket)
		if err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
		srcs = append(srcs, src)
	}
	return topology.Build(srcs, machines).Write(c.out, *format)
}

// source asks the socket for what the graph needs.
func (c *ctl) source(socket string) (topology.Source, error) {
	var info api.Info
	src := topology.Source{Socket: socket}
	if err := c.do("GET", "/v1/info", nil, &info); err != nil {
		return src, err
	}
	src.PID = info.PID
	for _, q := range []struct {
		path string
		out  any
	}{{"/v1/switches", &src.Switches}, {"/v1/ports", &src.Ports}, {"/v1/fdb", &src.FDB}} {
		if err := c.do("GET", q.path, nil, q.out); err != nil {
			return src, err
		}
	}
	return src, nil
}

// labMachines are the machines' interfaces of a lab.conf.
func labMachines(path string) ([]topology.Machine, error) {
	data, err := configs.ReadFile(path)
	if err != nil {
		return nil, err
	}
	l, err := lab.Parse(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var ms []topology.Machine
	for _, m := range l.Machines {
		for _, i := range m.Interfaces {
			ms = append(ms, topology.Machine{Name: m.Name, Interface: fmt.Sprintf("eth%d", i.Index), MAC: i.MAC,
				Socket: filepath.Base(lab.MachineSocket("", m.Name, i.Index))})
		}
	}
	return ms, nil
}

func isSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}
