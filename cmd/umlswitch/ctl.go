package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/umlswitch/umlswitch/api"
	"github.com/umlswitch/umlswitch/evpn"
	"github.com/umlswitch/umlswitch/frame"
	"github.com/umlswitch/umlswitch/instance"
)

const ctlUsage = `Usage: umlswitch ctl [-s CONTROL] [-json] [-all] COMMAND [ARGS]

Shows and changes a running umlswitch through its control API, which it
serves on its own control sockets: CONTROL is any of them (the path UMLs
are given, or a VDE directory). Without a SWITCH, a command means the switch
that owns CONTROL; -all means every switch. The same API answers curl:
  curl --unix-socket CONTROL http://x/v1/ports
Anyone who can connect may read; changing the switch and capturing are for
root, the switch's own user and its -api-uid/-api-gid (ctl info says what
you may do).

Commands:
  switches                        switches and their MAC tables
  switch add NAME [KEY=VALUE...]  add a switch (hub=1, mac_age=60s, mac_table_size=N)
  switch del NAME                 remove a switch and its ports
  ports [SWITCH]                  ports with counters, drops by reason and link state (EVPN tunnels: their VTEP)
  rates [SWITCH]                  frames and bits a second per port, over -interval
  port add [-switch NAME] SPEC    add a port (a -port spec)
  port del NAME                   remove a port, a listener or one client
  port set NAME KEY=VALUE...      change a port's policy keys while it runs: VLANs (vlan, trunk, native,
                                  qinq), split_horizon, flood, broadcast, isolated, mac_limit, storm,
                                  link_local, link (up or down), and its link's impairment (delay, jitter,
                                  loss, rate, ...); KEY= takes a key back to its default (on a listener:
                                  every client, and later ones)
  link NAME down|up               break a port's link or mend it (port set NAME link=down): nothing passes
                                  either way, a tap's interface shows NO-CARRIER
  fdb [SWITCH]                    the MAC table: learned, static, and remote VTEPs' (evpn VTEP)
  fdb flush [SWITCH|PORT]         forget learned addresses (static ones stay)
  fdb add SWITCH MAC PORT [VLAN]  pin MAC (in VLAN) to PORT (a static entry)
  fdb del SWITCH MAC [VLAN]       remove a static entry
  mirrors                         captures and their counts
  mirror add [-switch NAME] SPEC  add a capture (a -mirror spec)
  mirror del NAME                 stop a capture
  bgp                             the EVPN control plane's BGP neighbours (state, uptime, routes) and counters
  evpn                            each VNI (switch, RD, route targets, remote VTEPs), the routes received and sent
  events                          follow events (attach, detach, links down and up, MAC changes, drops, reloads,
                                  BGP sessions, VTEPs joining and leaving) until interrupted
  reload                          read the configuration file again and apply what changed (as SIGHUP)
  upgrade                         start the umlswitch binary on disk and hand it every socket (as SIGUSR2):
                                  clients stay attached; answers once the new switch serves
  info                            which switch CONTROL belongs to, and what you may do through it
  topology [-format F] [-lab FILE] [CONTROL...]
                                  switches, ports, the machines and MACs behind them, and the tunnels and
                                  streams between switches, as dot (Graphviz), mermaid or json
                                  (umlswitch ctl topology -h)

Examples:
  umlswitch ctl -s /tmp/uml.ctl ports
  umlswitch ctl -s /tmp/uml.ctl -json fdb | jq '.[] | select(.port == "daemon0.1")'
  umlswitch ctl -s /tmp/uml.ctl port add transport=tap,ifname=tap1,create=1,up=1
  umlswitch ctl -s /tmp/uml.ctl port set daemon0.1 delay=50ms loss=1%
  umlswitch ctl -s /tmp/uml.ctl link daemon0.1 down
  umlswitch ctl -s /tmp/uml.ctl fdb flush
  umlswitch ctl -s /tmp/lab/A.ctl -all switches
  umlswitch ctl -s /tmp/uml.ctl bgp
  umlswitch ctl -s /tmp/uml.ctl -json evpn | jq '.received[] | select(.type == 2)'
  umlswitch ctl -s /tmp/uml.ctl -json fdb | jq '.[] | select(.remote) | {mac, vtep}'
  umlswitch ctl -s /tmp/lab/A.ctl topology -format dot | dot -Tsvg > lab.svg

Flags:
`

// ctl is one invocation: the API client and how to print.
type ctl struct {
	client *http.Client
	json   bool
	all    bool
	out    io.Writer
	here   string // the switch that owns CONTROL, once asked

	socket  string        // CONTROL, absolute
	timeout time.Duration // -timeout

	interval time.Duration // rates
}

func ctlMain(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("umlswitch ctl", flag.ContinueOnError)
	fs.SetOutput(stderr)
	sock := fs.String("s", debianCtl, "the switch's control socket `PATH` (any of them: the -unix or a daemon port's path).\nExample: -s /tmp/uml.ctl")
	asJSON := fs.Bool("json", false, "print JSON (stable snake_case names) instead of tables.\nExample: -json")
	all := fs.Bool("all", false, "mean every switch, not the one that owns CONTROL.\nExample: -all")
	timeout := fs.Duration("timeout", 10*time.Second, "give up on a request after this long (events: on connecting); while the switch\nasks to come again (an upgrade under way), it is asked again until then.\nExample: -timeout 2s")
	interval := fs.Duration("interval", time.Second, "rates: the time between the two samples.\nExample: -interval 5s")
	fs.Usage = func() { fmt.Fprint(stderr, ctlUsage); fs.PrintDefaults() }
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return 2
	}
	c := &ctl{json: *asJSON, all: *all, out: stdout, client: apiClient(controlPath(*sock), *timeout), interval: *interval,
		socket: absControl(*sock), timeout: *timeout}
	err := c.run(fs.Args())
	var usage usageError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &usage):
		fmt.Fprintf(stderr, "umlswitch ctl: %v\nRun umlswitch ctl -h for the commands.\n", err)
		return 2
	}
	fmt.Fprintf(stderr, "umlswitch ctl: %v\n", err)
	return 1
}

type usageError struct{ error }

func usagef(format string, a ...any) error { return usageError{fmt.Errorf(format, a...)} }

// controlPath is the socket for a -s: VDE's directory layout has DIR/ctl.
func controlPath(p string) string {
	if fi, err := os.Stat(p); err == nil && fi.IsDir() {
		return filepath.Join(p, "ctl")
	}
	return p
}

// send makes a request, and makes it again while the switch answers that
// it cannot now but will soon (503 with Retry-After: an upgrade under way),
// until -timeout has passed. The next connection waits in the socket's
// backlog until the new switch of the upgrade takes it.
func (c *ctl) send(method, path string, payload []byte) (*http.Response, error) {
	deadline := time.Now().Add(c.timeout)
	for {
		var rd io.Reader
		if payload != nil {
			rd = bytes.NewReader(payload)
		}
		req, err := http.NewRequest(method, "http://umlswitch"+path, rd)
		if err != nil {
			return nil, err
		}
		if payload != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := c.client.Do(req)
		if err != nil || resp.StatusCode != http.StatusServiceUnavailable {
			return resp, err
		}
		wait, perr := strconv.Atoi(resp.Header.Get("Retry-After"))
		left := time.Until(deadline)
		if perr != nil || wait < 0 || left <= 0 {
			return resp, nil
		}
		resp.Body.Close()
		time.Sleep(min(time.Duration(wait)*time.Second, left))
	}
}

// apiClient speaks HTTP over the control socket. The timeout bounds
// connecting and the response's header; a stream's body may take forever.
func apiClient(sock string, timeout time.Duration) *http.Client {
	d := net.Dialer{Timeout: timeout}
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			c, err := d.DialContext(ctx, "unix", sock)
			if err != nil {
				return nil, fmt.Errorf("%w (is a switch running with that control socket?)", err)
			}
			return c, nil
		},
		ResponseHeaderTimeout: timeout,
		DisableKeepAlives:     true,
	}}
}

func (c *ctl) run(args []string) error {
	cmd, rest := args[0], args[1:]
	sub := ""
	if len(rest) > 0 {
		sub = rest[0]
	}
	switch {
	case cmd == "info":
		return c.info()
	case cmd == "topology":
		return c.topology(rest)
	case cmd == "switches" && len(rest) == 0:
		return c.switches()
	case cmd == "switch" && sub == "add" && len(rest) >= 2:
		return c.switchAdd(rest[1], rest[2:])
	case cmd == "switch" && sub == "del" && len(rest) == 2:
		return c.do("DELETE", "/v1/switches/"+url.PathEscape(rest[1]), nil, nil)
	case cmd == "ports" && len(rest) <= 1:
		return c.ports(rest)
	case cmd == "rates" && len(rest) <= 1:
		return c.rates(rest)
	case cmd == "port" && sub == "add":
		return c.add("/v1/ports", rest[1:])
	case cmd == "port" && sub == "set" && len(rest) >= 3:
		return c.do("PATCH", "/v1/ports/"+url.PathEscape(rest[1]), api.SetRequest{Set: strings.Join(rest[2:], ",")}, nil)
	case cmd == "link":
		return c.link(rest)
	case cmd == "port" && sub == "del" && len(rest) == 2:
		return c.do("DELETE", "/v1/ports/"+url.PathEscape(rest[1]), nil, nil)
	case cmd == "fdb" && sub == "flush" && len(rest) <= 2:
		return c.flush(rest[1:])
	case cmd == "fdb" && sub == "add" && (len(rest) == 4 || len(rest) == 5):
		req := api.StaticRequest{Switch: rest[1], MAC: rest[2], Port: rest[3]}
		if len(rest) == 5 {
			vlan, err := frame.ParseVLAN(rest[4])
			if err != nil {
				return usageError{err}
			}
			req.VLAN = int(vlan)
		}
		return c.do("POST", "/v1/fdb", req, nil)
	case cmd == "fdb" && sub == "del" && (len(rest) == 3 || len(rest) == 4):
		path := "/v1/fdb/" + url.PathEscape(rest[1]) + "/" + url.PathEscape(rest[2])
		if len(rest) == 4 {
			if _, err := frame.ParseVLAN(rest[3]); err != nil {
				return usageError{err}
			}
			path += "?vlan=" + rest[3]
		}
		return c.do("DELETE", path, nil, nil)
	case cmd == "fdb" && len(rest) <= 1:
		return c.fdb(rest)
	case cmd == "mirrors" && len(rest) == 0:
		return c.mirrors()
	case cmd == "mirror" && sub == "add":
		return c.add("/v1/mirrors", rest[1:])
	case cmd == "mirror" && sub == "del" && len(rest) == 2:
		return c.do("DELETE", "/v1/mirrors/"+url.PathEscape(rest[1]), nil, nil)
	case cmd == "bgp" && len(rest) == 0:
		return c.bgp()
	case cmd == "evpn" && len(rest) == 0:
		return c.evpn()
	case cmd == "events" && len(rest) == 0:
		return c.events()
	case cmd == "reload" && len(rest) == 0:
		return c.do("POST", "/v1/reload", nil, nil)
	case cmd == "upgrade" && len(rest) == 0:
		return c.do("POST", "/v1/upgrade", nil, nil)
	}
	return usagef("%q is not a command, or has the wrong arguments", strings.Join(args, " "))
}

// link is `port set NAME link=STATE` for `link NAME STATE`.
func (c *ctl) link(args []string) error {
	if len(args) != 2 {
		return usagef("link takes a port and a state: link NAME down|up")
	}
	if state := args[1]; state != "down" && state != "up" {
		return usagef("link %s %s: the state is down or up", args[0], state)
	}
	return c.do("PATCH", "/v1/ports/"+url.PathEscape(args[0]), api.SetRequest{Set: "link=" + args[1]}, nil)
}

// do sends a request and decodes the JSON answer into out, or prints it
// with -json (and "ok" otherwise) when out is nil.
func (c *ctl) do(method, path string, body, out any) error {
	var payload []byte
	if body != nil {
		var err error
		if payload, err = json.Marshal(body); err != nil {
			return err
		}
	}
	resp, err := c.send(method, path, payload)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		var e struct{ Error string }
		if json.Unmarshal(data, &e) == nil && e.Error != "" {
			return errors.New(e.Error)
		}
		return fmt.Errorf("%s %s: %s", method, path, resp.Status)
	}
	if out != nil {
		return json.Unmarshal(data, out)
	}
	if c.json {
		_, err = c.out.Write(data)
		return err
	}
	var names map[string]any
	if json.Unmarshal(data, &names) == nil && names["name"] != nil {
		fmt.Fprintf(c.out, "%v\n", names["name"])
		return nil
	}
	if n, ok := names["flushed"]; ok {
		fmt.Fprintf(c.out, "flushed %v\n", n)
		return nil
	}
	fmt.Fprintln(c.out, "ok")
	return nil
}

// show prints v as JSON with -json, else with table.
func (c *ctl) show(v any, table func(w *tabwriter.Writer)) error {
	if c.json {
		enc := json.NewEncoder(c.out)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	w := tabwriter.NewWriter(c.out, 0, 0, 2, ' ', 0)
	table(w)
	return w.Flush()
}

// self is the switch that owns the control socket.
func (c *ctl) self() (string, error) {
	if c.here == "" {
		var info api.Info
		if err := c.do("GET", "/v1/info", nil, &info); err != nil {
			return "", err
		}
		c.here = info.Switch
	}
	return c.here, nil
}

// target is the switch a command means: given, every one (-all: ""), or
// the socket's own.
func (c *ctl) target(args []string) (string, error) {
	switch {
	case len(args) > 0 && c.all:
		return "", usagef("give a SWITCH or -all, not both")
	case len(args) > 0:
		return args[0], nil
	case c.all:
		return "", nil
	}
	return c.self()
}

func (c *ctl) info() error {
	var info api.Info
	if err := c.do("GET", "/v1/info", nil, &info); err != nil {
		return err
	}
	return c.show(info, func(w *tabwriter.Writer) {
		fmt.Fprintf(w, "switch\t%s\nlistener\t%s\npath\t%s\nread only\t%v\npid\t%d\nswitches\t%d\n",
			info.Switch, info.Listener, info.Path, info.ReadOnly, info.PID, info.Switches)
		fmt.Fprintf(w, "you\tuid %s gid %s\nmay read\t%v\nmay change\t%v\nmay capture\t%v\n",
			knownID(info.PeerUID), knownID(info.PeerGID), info.MayRead, info.MayChange, info.MayCapture)
		fmt.Fprintf(w, "refused\t%d API requests, %d API connections, %d clients over a limit, %d peers not allowed\n",
			info.Security.APIRefused, info.Security.APIOverLimit, info.Security.ClientsRefused, info.Security.NotAllowed)
	})
}

func (c *ctl) switches() error {
	var sws []instance.SwitchInfo
	if err := c.do("GET", "/v1/switches", nil, &sws); err != nil {
		return err
	}
	return c.show(sws, func(w *tabwriter.Writer) {
		fmt.Fprintln(w, "SWITCH\tMODE\tPORTS\tMACS\tTABLE\tMAC AGE\tLEARNED\tMOVED\tEVICTED\tMIRRORS")
		for _, s := range sws {
			mode := "learning"
			if s.Hub {
				mode = "hub"
			}
			fmt.Fprintf(w, "%s\t%s\t%d\t%d\t%d\t%s\t%s\t%s\t%s\t%d\n", s.Name, mode, s.Ports, s.MACs, s.MACTableSize,
				time.Duration(s.MACAgeS*float64(time.Second)), count(s.MACLearned), count(s.MACMoved), count(s.MACEvicted), s.Mirrors)
		}
	})
}

func (c *ctl) switchAdd(name string, kvs []string) error {
	req := map[string]any{"name": name}
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return usagef("%q is not KEY=VALUE", kv)
		}
		switch k {
		case "hub":
			req[k] = v == "1" || v == "true" || v == "yes" || v == "on"
		case "mac_table_size":
			var n int
			if _, err := fmt.Sscan(v, &n); err != nil {
				return usagef("mac_table_size=%s is not a number", v)
			}
			req[k] = n
		case "mac_age":
			req[k] = v
		default:
			return usagef("unknown switch setting %q (hub, mac_age, mac_table_size)", k)
		}
	}
	return c.do("POST", "/v1/switches", req, nil)
}

func (c *ctl) ports(args []string) error {
	sw, err := c.target(args)
	if err != nil {
		return err
	}
	var ps []instance.PortInfo
	if err := c.do("GET", "/v1/ports?switch="+url.QueryEscape(sw), nil, &ps); err != nil {
		return err
	}
	return c.show(ps, func(w *tabwriter.Writer) {
		fmt.Fprintln(w, "SWITCH\tPORT\tKIND\tRX\tRX BYTES\tTX\tTX BYTES\tDROPS\tLINK\tPEER")
		for _, p := range ps {
			if p.Listening != "" {
				fmt.Fprintf(w, "%s\t%s\t%s\t-\t-\t-\t-\t-\t%s\tlistening on %s, %d clients\n", p.Switch, p.Name, p.Kind, p.LinkState,
					p.Listening, p.Clients)
				continue
			}
			if p.State != "" {
				fmt.Fprintf(w, "%s\t%s\t%s\t-\t-\t-\t-\t-\t%s\t%s: %s\n", p.Switch, p.Name, p.Kind, p.LinkState, p.State, p.Reason)
				continue
			}
			peer := p.Peer
			if p.VTEP != "" { // a fabric tunnel: the VTEP is what an operator looks for
				peer = "evpn VTEP " + p.VTEP + " (" + p.Peer + ")"
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", p.Switch, p.Name, p.Kind, count(p.RxFrames), bytesOf(p.RxBytes),
				count(p.TxFrames), bytesOf(p.TxBytes), drops(p.Drops), p.LinkState, peer)
		}
	})
}

// Rate is one port's traffic over an interval, as `ctl rates -json` shows it.
type Rate struct {
	Switch       string  `json:"switch"`
	Port         string  `json:"port"`
	RxFramesPerS float64 `json:"rx_frames_per_s"`
	RxBitsPerS   float64 `json:"rx_bits_per_s"`
	TxFramesPerS float64 `json:"tx_frames_per_s"`
	TxBitsPerS   float64 `json:"tx_bits_per_s"`
	DropsPerS    float64 `json:"drops_per_s"`
}

// rates samples the ports twice and prints what each moved in between.
func (c *ctl) rates(args []string) error {
	sw, err := c.target(args)
	if err != nil {
		return err
	}
	sample := func() (map[string]instance.PortInfo, time.Time, error) {
		var ps []instance.PortInfo
		err := c.do("GET", "/v1/ports?switch="+url.QueryEscape(sw), nil, &ps)
		m := make(map[string]instance.PortInfo, len(ps))
		for _, p := range ps {
			if p.Listening == "" {
				m[p.Switch+"/"+p.Name] = p
			}
		}
		return m, time.Now(), err
	}
	before, t0, err := sample()
	if err != nil {
		return err
	}
	time.Sleep(c.interval)
	after, t1, err := sample()
	if err != nil {
		return err
	}
	secs := t1.Sub(t0).Seconds()
	rates := []Rate{}
	for _, k := range slices.Sorted(maps.Keys(after)) {
		a, b := after[k], before[k] // a port new since the first sample counts from zero
		var da, db uint64
		for _, n := range a.Drops {
			da += n
		}
		for _, n := range b.Drops {
			db += n
		}
		per := func(x, y uint64) float64 { return float64(x-min(x, y)) / secs }
		rates = append(rates, Rate{Switch: a.Switch, Port: a.Name,
			RxFramesPerS: per(a.RxFrames, b.RxFrames), RxBitsPerS: 8 * per(a.RxBytes, b.RxBytes),
			TxFramesPerS: per(a.TxFrames, b.TxFrames), TxBitsPerS: 8 * per(a.TxBytes, b.TxBytes), DropsPerS: per(da, db)})
	}
	return c.show(rates, func(w *tabwriter.Writer) {
		fmt.Fprintln(w, "SWITCH\tPORT\tRX/S\tRX BIT/S\tTX/S\tTX BIT/S\tDROPS/S")
		for _, r := range rates {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Switch, r.Port, count(uint64(r.RxFramesPerS)), bits(r.RxBitsPerS),
				count(uint64(r.TxFramesPerS)), bits(r.TxBitsPerS), count(uint64(r.DropsPerS)))
		}
	})
}

// bits writes a bit rate in SI units, as link speeds are written.
func bits(b float64) string {
	switch {
	case b < 1e3:
		return fmt.Sprintf("%.0f", b)
	case b < 1e6:
		return fmt.Sprintf("%.1fk", b/1e3)
	case b < 1e9:
		return fmt.Sprintf("%.1fM", b/1e6)
	}
	return fmt.Sprintf("%.2fG", b/1e9)
}

func (c *ctl) fdb(args []string) error {
	sw, err := c.target(args)
	if err != nil {
		return err
	}
	var es []instance.MACInfo
	if err := c.do("GET", "/v1/fdb?switch="+url.QueryEscape(sw), nil, &es); err != nil {
		return err
	}
	return c.show(es, func(w *tabwriter.Writer) {
		fmt.Fprintln(w, "SWITCH\tMAC\tPORT\tVLAN\tAGE\tTYPE") // TYPE: static, evpn VTEP, or nothing for a learned address
		for _, e := range es {
			age, st, port, vlan := fmt.Sprintf("%.0fs", e.AgeS), "", e.Port, "-"
			switch {
			case e.Static:
				age, st = "-", "static"
			case e.Remote: // from a remote VTEP's route: it does not age here
				age, st = "-", "evpn "+e.VTEP
			}
			if port == "" {
				port = "(gone)"
			}
			if e.VLAN != 0 {
				vlan = fmt.Sprint(e.VLAN)
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", e.Switch, e.MAC, port, vlan, age, st)
		}
	})
}

func (c *ctl) flush(args []string) error {
	if c.all && len(args) == 0 {
		return c.do("POST", "/v1/fdb/flush", api.FlushRequest{All: true}, nil)
	}
	t, err := c.target(args)
	if err != nil {
		return err
	}
	return c.do("POST", "/v1/fdb/flush", api.FlushRequest{Target: t}, nil)
}

func (c *ctl) mirrors() error {
	var ms []instance.MirrorInfo
	if err := c.do("GET", "/v1/mirrors", nil, &ms); err != nil {
		return err
	}
	return c.show(ms, func(w *tabwriter.Writer) {
		fmt.Fprintln(w, "SWITCH\tMIRROR\tCAPTURED\tDROPPED\tSPEC")
		for _, m := range ms {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", m.Switch, m.Name, count(m.Captured), count(m.Dropped), m.Spec)
		}
	})
}

// bgp prints the EVPN speaker's neighbours and a summary of its counters.
func (c *ctl) bgp() error {
	var b instance.BGPInfo
	if err := c.do("GET", "/v1/bgp", nil, &b); err != nil {
		return err
	}
	return c.show(b, func(w *tabwriter.Writer) {
		fmt.Fprintln(w, "NEIGHBOR\tASN\tSTATE\tUPTIME\tRECEIVED\tACCEPTED\tSENT")
		for _, n := range b.Neighbors {
			fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%d\t%d\t%d\n", n.Address, n.ASN, n.State, or(n.Uptime, "-"), n.Received, n.Accepted, n.Sent)
		}
		fmt.Fprintln(w, bgpSummary(b))
	})
}

// bgpSummary is ctl bgp's last line: who this speaker is and its counters.
func bgpSummary(b instance.BGPInfo) string {
	st := b.Stats
	listen := "not listening"
	if b.ListenPort != 0 {
		listen = fmt.Sprintf("listening on port %d", b.ListenPort)
	}
	if !st.Running {
		return fmt.Sprintf("AS %d, router id %s, VTEP %s: the speaker is not running (see the switch's log)", b.ASN, b.RouterID, b.VTEP)
	}
	ignored := "none"
	if len(st.Ignored) > 0 {
		ignored = drops(st.Ignored)
	}
	return fmt.Sprintf("AS %d, router id %s, VTEP %s, %s: %d of %d neighbours established, %d routes received, %d sent, "+
		"%d remote MACs, %d VTEPs; routes ignored: %s; data plane failures: %d", b.ASN, b.RouterID, b.VTEP, listen, st.Up, st.Neighbors,
		st.Received, st.Sent, st.RemoteMACs, st.VTEPs, ignored, st.Failures)
}

// evpn prints the fabric's VNIs, then the routes received and sent.
func (c *ctl) evpn() error {
	var e instance.EVPNInfo
	if err := c.do("GET", "/v1/evpn", nil, &e); err != nil {
		return err
	}
	return c.show(e, func(w *tabwriter.Writer) {
		fmt.Fprintln(w, "SWITCH\tVNI\tRD\tEXPORT RT\tIMPORT RT\tLOCAL MACS\tREMOTE MACS\tREMOTE VTEPS")
		for _, v := range e.VNIs {
			imports := strings.Join(v.Import, ",")
			if imports == "" {
				imports = fmt.Sprintf("*:%d", v.VNI) // the default: the VNI's number from any AS
			}
			vteps := make([]string, len(v.VTEPs))
			for i, a := range v.VTEPs {
				vteps[i] = a.String()
			}
			fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%s\t%d\t%d\t%s\n", v.Switch, v.VNI, v.RD, or(strings.Join(v.Export, ","), "-"), imports,
				v.LocalMACs, v.RemoteMACs, or(strings.Join(vteps, ","), "-"))
		}
		fmt.Fprintf(w, "\nVXLAN packets from unknown VTEPs (dropped): %d\n", e.Unknown)
		for _, part := range []struct {
			title  string
			routes []evpn.RouteInfo
		}{{"received", e.Received}, {"sent", e.Sent}} {
			fmt.Fprintf(w, "\n%d routes %s (this VTEP %s)\n", len(part.routes), part.title, e.VTEP)
			if len(part.routes) == 0 {
				continue
			}
			fmt.Fprintln(w, "TYPE\tRD\tVNI\tVTEP\tMAC\tSEQ\tSWITCH\tPEER")
			for _, r := range part.routes {
				fmt.Fprintf(w, "%d\t%s\t%d\t%s\t%s\t%d\t%s\t%s\n", r.Type, r.RD, r.VNI, r.VTEP, or(r.MAC, "-"), r.Seq,
					or(r.Switch, "(none)"), or(r.Peer, "-"))
			}
		}
	})
}

// or is s, or def when s is empty.
func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// add posts a port or mirror spec, to -switch NAME or the socket's switch.
func (c *ctl) add(path string, args []string) error {
	fs := flag.NewFlagSet("add", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	sw := fs.String("switch", "", "")
	if err := fs.Parse(args); err != nil {
		return usagef("%v", err)
	}
	if fs.NArg() != 1 {
		return usagef("give one SPEC (quote it if it holds spaces)")
	}
	return c.do("POST", path, map[string]string{"switch": *sw, "spec": fs.Arg(0)}, nil)
}

// events follows the event stream until interrupted or the switch stops.
func (c *ctl) events() error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://umlswitch/v1/events", nil)
	resp, err := c.client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("events: %s", resp.Status)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if c.json {
			fmt.Fprintf(c.out, "%s\n", sc.Bytes())
			continue
		}
		var ev instance.Event
		if json.Unmarshal(sc.Bytes(), &ev) != nil {
			continue
		}
		fmt.Fprintln(c.out, eventLine(ev))
	}
	if ctx.Err() != nil {
		return nil
	}
	return sc.Err()
}

// eventLine is an event for people: time, type, then what it is about.
func eventLine(ev instance.Event) string {
	parts := []string{ev.Time.Local().Format("15:04:05.000"), ev.Type}
	add := func(k, v string) {
		if v != "" {
			parts = append(parts, k+"="+v)
		}
	}
	add("switch", ev.Switch)
	add("port", ev.Port)
	add("kind", ev.Kind)
	add("mac", ev.MAC)
	detail := "changes"
	switch ev.Type {
	case "bgp-up", "bgp-down": // the neighbour and its session's state
		add("neighbor", ev.Peer)
		detail = "state"
	case "vtep-joined", "vtep-left": // the VTEP and "vni N"
		add("vtep", ev.Peer)
		add("vni", strings.TrimPrefix(ev.Detail, "vni "))
		detail = ""
	default:
		add("peer", ev.Peer)
	}
	add("path", ev.Path)
	if ev.Count > 0 {
		add("count", fmt.Sprint(ev.Count))
	}
	if len(ev.Drops) > 0 {
		add("drops", drops(ev.Drops))
	}
	if detail != "" {
		add(detail, ev.Detail)
	}
	add("error", ev.Error)
	return strings.Join(parts, " ")
}

// count writes a number of frames or events short: 1234567 is 1.2M.
func count(n uint64) string {
	switch {
	case n < 10000:
		return fmt.Sprint(n)
	case n < 1e6:
		return fmt.Sprintf("%.1fk", float64(n)/1e3)
	case n < 1e9:
		return fmt.Sprintf("%.1fM", float64(n)/1e6)
	}
	return fmt.Sprintf("%.1fG", float64(n)/1e9)
}

// bytesOf writes a byte count in binary units.
func bytesOf(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// drops lists drops by reason, or "-".
func drops(d map[string]uint64) string {
	if len(d) == 0 {
		return "-"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(d)) {
		parts = append(parts, fmt.Sprintf("%s=%s", k, count(d[k])))
	}
	return strings.Join(parts, ",")
}

// knownID is a uid or gid for ctl info: -1 is a peer the kernel could not
// name.
func knownID(id int64) string {
	if id < 0 {
		return "unknown"
	}
	return strconv.FormatInt(id, 10)
}
