package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
)

// captureSocketOf is the live capture socket of a switch whose control
// socket is ctl: ctl.capture, or DIR/capture for VDE's DIR/ctl layout.
func captureSocketOf(ctl string) string {
	if strings.HasSuffix(ctl, "/") {
		return filepath.Join(ctl, "capture")
	}
	if fi, err := os.Stat(ctl); err == nil && fi.IsDir() {
		return filepath.Join(ctl, "capture")
	}
	return ctl + ".capture"
}

const captureUsage = `Usage: umlswitch capture [-s CONTROL] [-w FILE]

Writes a live pcapng capture of a running umlswitch (every port, both
directions, one interface per port) to standard output or FILE, until
interrupted or the switch stops. It reads the switch's capture socket, which
lies next to the control socket: CONTROL.capture (DIR/capture for a VDE
directory), or wherever the switch's -capture-socket put it.

Examples:
  umlswitch capture -s /tmp/uml.ctl | tcpdump -n -r -
  umlswitch capture -s /tmp/uml.ctl | wireshark -k -i -
  umlswitch capture -socket /run/lab.capture -w lab.pcapng

Flags:
`

func captureMain(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("umlswitch capture", flag.ContinueOnError)
	fs.SetOutput(stderr)
	ctl := fs.String("s", debianCtl, "the switch's control socket `PATH` (its -unix).\nExample: -s /tmp/uml.ctl")
	sock := fs.String("socket", "", "the capture socket `PATH` itself, for a switch started with -capture-socket.\nExample: -socket /run/lab.capture")
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
	path := *sock
	if path == "" {
		path = captureSocketOf(*ctl)
	}
	c, err := net.Dial("unix", path)
	if err != nil {
		fmt.Fprintf(stderr, "umlswitch capture: %v (is a switch running with that control socket?)\n", err)
		return 1
	}
	defer c.Close()
	w := stdout
	if *out != "" {
		f, err := os.Create(*out)
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
	go func() { <-sig; c.Close() }()
	if _, err := io.Copy(w, c); err != nil && !errors.Is(err, net.ErrClosed) && !errors.Is(err, syscall.EPIPE) {
		fmt.Fprintf(stderr, "umlswitch capture: %v\n", err)
		return 1
	}
	return 0
}
