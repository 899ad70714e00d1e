package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/umlswitch/umlswitch/internal/unixsock"
)

const captureUsage = `Usage: umlswitch capture [-s CONTROL] [-switch NAME] [-w FILE]

Writes a live pcapng capture of a switch of a running umlswitch (every port,
both directions, one interface per port) to standard output or FILE, until
interrupted or the switch stops. It asks the control socket CONTROL (the
same path UMLs are given, or a VDE directory) for the frames of the switch
that owns it, or of -switch NAME; the switch opens no socket of its own for
this. curl does the same: curl -sN --unix-socket CONTROL http://x/v1/capture
A switch started with -capture-socket PATH is read with -socket PATH.

Examples:
  umlswitch capture -s /tmp/uml.ctl | tcpdump -n -r -
  umlswitch capture -s /tmp/uml.ctl | wireshark -k -i -
  umlswitch capture -s /tmp/lab/A.ctl -switch B -w b.pcapng
  umlswitch capture -socket /run/lab.capture -w lab.pcapng

Flags:
`

func captureMain(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("umlswitch capture", flag.ContinueOnError)
	fs.SetOutput(stderr)
	ctl := fs.String("s", debianCtl, "the switch's control socket `PATH` (its -unix).\nExample: -s /tmp/uml.ctl")
	sock := fs.String("socket", "", "the capture socket `PATH` itself, for a switch started with -capture-socket.\nExample: -socket /run/lab.capture")
	sw := fs.String("switch", "", "capture switch `NAME` instead of the one that owns CONTROL.\nExample: -switch lab-b")
	out := fs.String("w", "", "write to `FILE` instead of standard output.\nExample: -w lab.pcapng")
	fs.Usage = func() { fmt.Fprint(stderr, captureUsage); fs.PrintDefaults() }
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "umlswitch capture: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	var body io.ReadCloser
	if *sock != "" {
		c, err := net.Dial("unix", *sock)
		if err != nil {
			fmt.Fprintf(stderr, "umlswitch capture: %v (is a switch running with -capture-socket %s?)\n", err, *sock)
			return 1
		}
		body = c
	} else {
		resp, err := apiClient(controlPath(*ctl), 10*time.Second).Get("http://umlswitch/v1/capture?switch=" + url.QueryEscape(*sw))
		if err != nil {
			fmt.Fprintf(stderr, "umlswitch capture: %v\n", err)
			return 1
		}
		if resp.StatusCode != 200 {
			var e struct{ Error string }
			json.NewDecoder(io.LimitReader(resp.Body, 1<<16)).Decode(&e)
			resp.Body.Close()
			fmt.Fprintf(stderr, "umlswitch capture: %s %s\n", resp.Status, e.Error)
			return 1
		}
		body = resp.Body
	}
	defer body.Close()
	w := stdout
	if *out != "" {
		f, err := unixsock.CreatePath(*out, 0o600) // the lab's traffic: not for every user to read
		if err != nil {
			fmt.Fprintf(stderr, "umlswitch capture: %v\n", err)
			return 1
		}
		defer f.Close()
		w = f
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM, syscall.SIGPIPE)
	defer signal.Stop(sig)
	go func() { <-sig; body.Close() }()
	n, err := io.Copy(w, body)
	if err != nil && !errors.Is(err, net.ErrClosed) && !errors.Is(err, syscall.EPIPE) &&
		!strings.Contains(err.Error(), "closed") {
		fmt.Fprintf(stderr, "umlswitch capture: %v\n", err)
		return 1
	}
	if n == 0 && *sock != "" {
		// A capture socket starts every reader with the pcapng header: one
		// that closes first refused this reader.
		fmt.Fprintf(stderr, "umlswitch capture: %s closed without a capture: reading it is for root, the switch's own user, "+
			"api_uid/api_gid and the socket's owner=/group= (the switch's log names the refusal)\n", *sock)
		return 1
	}
	return 0
}
