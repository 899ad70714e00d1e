package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/umlswitch/umlswitch/api"
	"github.com/umlswitch/umlswitch/extcap"
	"github.com/umlswitch/umlswitch/instance"
)

// The extcap's environment: more control sockets to list, and whether to
// list every port as an interface of its own.
const (
	socketsEnv = "UMLSWITCH_SOCKETS"
	portsEnv   = "UMLSWITCH_EXTCAP_PORTS"
)

// extcapVersion is what Wireshark's about box shows for the extcap.
const extcapVersion = "1.0"

// extcapMain serves Wireshark, which runs umlswitch (a link to it in its
// extcap folder) with its extcap options.
func extcapMain(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg := extcap.Config{API: httpAPI{}, Version: extcapVersion, Timeout: extcap.DefaultTimeout,
		Sockets: extcap.Sockets(debianCtl, os.Getenv(socketsEnv), absControl),
		PerPort: os.Getenv(portsEnv) != "" && os.Getenv(portsEnv) != "0"}
	return extcap.Run(ctx, cfg, args, stdout, stderr)
}

// absControl is a socket as the interface names carry it: absolute, and a
// VDE directory's ctl.
func absControl(p string) string {
	p = controlPath(p)
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}

// httpAPI is extcap.API over the control socket's HTTP API.
type httpAPI struct{}

func (httpAPI) get(ctx context.Context, socket, path string, out any) error {
	deadline, ok := ctx.Deadline()
	timeout := 10 * time.Second
	if ok {
		if timeout = time.Until(deadline); timeout <= 0 {
			return context.DeadlineExceeded
		}
	}
	c := &ctl{client: apiClient(socket, timeout)}
	c.client.Timeout = timeout
	return c.do("GET", path, nil, out)
}

func (h httpAPI) Info(ctx context.Context, socket string) (extcap.SocketInfo, error) {
	var info api.Info
	if err := h.get(ctx, socket, "/v1/info", &info); err != nil {
		return extcap.SocketInfo{}, err
	}
	var sws []instance.SwitchInfo
	if err := h.get(ctx, socket, "/v1/switches", &sws); err != nil {
		return extcap.SocketInfo{}, err
	}
	si := extcap.SocketInfo{PID: info.PID, Self: info.Switch, MayCapture: info.MayCapture}
	for _, s := range sws {
		si.Switches = append(si.Switches, s.Name)
	}
	return si, nil
}

func (h httpAPI) Ports(ctx context.Context, socket, sw string) ([]extcap.Port, error) {
	var ps []instance.PortInfo
	if err := h.get(ctx, socket, "/v1/ports?switch="+url.QueryEscape(sw), &ps); err != nil {
		return nil, err
	}
	var out []extcap.Port
	for _, p := range ps {
		if p.Listening == "" && p.ID >= 0 { // attached ports: a capture names them
			out = append(out, extcap.Port{Name: p.Name, Kind: p.Kind, Peer: p.Peer})
		}
	}
	return out, nil
}

// Capture is GET /v1/capture?switch=NAME&port=PORT&dir=DIR: the API
// refuses users its capture rules do not let in, as for umlswitch capture.
func (httpAPI) Capture(ctx context.Context, socket, sw string, sel extcap.Select) (io.ReadCloser, error) {
	q := url.Values{"switch": {sw}}
	if sel.Port != "" {
		q.Set("port", sel.Port)
	}
	if sel.Direction != "" && sel.Direction != extcap.Both {
		q.Set("dir", string(sel.Direction))
	}
	req, err := http.NewRequestWithContext(ctx, "GET", "http://umlswitch/v1/capture?"+q.Encode(), nil)
	if err != nil {
		return nil, err
	}
	resp, err := apiClient(socket, 10*time.Second).Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != 200 {
		defer resp.Body.Close()
		var e struct{ Error string }
		json.NewDecoder(io.LimitReader(resp.Body, 1<<16)).Decode(&e)
		if e.Error == "" {
			e.Error = resp.Status
		}
		return nil, errors.New(e.Error)
	}
	return resp.Body, nil
}

const extcapUsage = `Usage: umlswitch extcap install [-dir DIR]
       umlswitch extcap uninstall [-dir DIR]
       umlswitch extcap list

Makes every switch a capture interface of Wireshark and tshark. Wireshark
runs the programs in its extcap folder to list more interfaces; umlswitch
run under any name with Wireshark's extcap options (--extcap-interfaces,
--capture, ...) acts as one. install links umlswitch into the folder that
tshark -G folders names (Wireshark 4.0 reads only its system folder, which
needs root; newer versions also a personal one, which install prefers) and
says where; uninstall removes that link, and nothing that is not a link to
umlswitch. list prints the interfaces as Wireshark sees them.

The interfaces are the switches of the built-in control socket
(` + debianCtl + `) and of the sockets in ` + socketsEnv + `
(':'-separated; sockets that do not answer are left out), named
umlswitch:SWITCH@SOCKET; with ` + portsEnv + `=1, also one per attached
port, umlswitch:SWITCH/PORT@SOCKET. Capturing one streams the switch's live
capture, as umlswitch capture does, through the capture filter (compiled
with tcpdump -ddd) and the interface's options (a port, a direction).
Capturing needs what the API's capture needs: root, the switch's user, or
its -api-uid/-api-gid.

Examples:
  sudo umlswitch extcap install
  UMLSWITCH_SOCKETS=/tmp/lab/A.ctl:/tmp/lab/B.ctl wireshark
  UMLSWITCH_SOCKETS=/tmp/uml.ctl tshark -i umlswitch:default@/tmp/uml.ctl -f icmp -w pings.pcapng
  umlswitch extcap uninstall

Flags:
`

// extcapCmd is umlswitch extcap: install, uninstall and list.
func extcapCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("umlswitch extcap", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", "", "the extcap `FOLDER` to link umlswitch into or remove it from (default: the one tshark -G folders names).\n"+
		"Example: -dir ~/.local/lib/wireshark/extcap")
	fs.Usage = func() { fmt.Fprint(stderr, extcapUsage); fs.PrintDefaults() }
	if len(args) == 0 {
		fs.Usage()
		return 2
	}
	cmd := args[0]
	if cmd == "-h" || cmd == "-help" || cmd == "--help" {
		fs.Usage()
		return 0
	}
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "umlswitch extcap: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	switch cmd {
	case "list":
		return extcapMain([]string{"--extcap-interfaces"}, stdout, stderr)
	case "install", "uninstall":
	default:
		fmt.Fprintf(stderr, "umlswitch extcap: %q is not a command (install, uninstall, list)\n", cmd)
		return 2
	}
	exe, err := os.Executable()
	if err == nil {
		exe, err = filepath.EvalSymlinks(exe)
	}
	if err != nil {
		fmt.Fprintf(stderr, "umlswitch extcap: where this binary is: %v\n", err)
		return 1
	}
	folder := *dir
	if folder == "" {
		if folder, err = wiresharkExtcapFolder(); err != nil {
			fmt.Fprintf(stderr, "umlswitch extcap %s: %v\n", cmd, err)
			return 1
		}
	}
	var link string
	if cmd == "install" {
		link, err = extcap.Install(folder, exe)
	} else {
		link, err = extcap.Uninstall(folder, exe)
	}
	if err != nil {
		fmt.Fprintf(stderr, "umlswitch: %v\n", err)
		return 1
	}
	if cmd == "install" {
		fmt.Fprintf(stdout, "linked %s -> %s: Wireshark lists the switches of %s and of %s's sockets\n", link, exe, debianCtl, socketsEnv)
	} else {
		fmt.Fprintf(stdout, "removed %s\n", link)
	}
	return 0
}

// tshark is the program that names Wireshark's folders; a variable for
// tests.
var tshark = "tshark"

// wiresharkExtcapFolder asks tshark where the installed Wireshark looks
// for extcap programs.
func wiresharkExtcapFolder() (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, tshark, "-G", "folders").Output()
	if errors.Is(err, exec.ErrNotFound) || errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("%s not found: install tshark (Debian's tshark package) so that it names Wireshark's extcap folder, or give -dir", tshark)
	}
	if err != nil {
		return "", fmt.Errorf("%s -G folders: %w", tshark, err)
	}
	return extcap.ChooseFolder(string(out))
}
