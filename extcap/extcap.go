// Package extcap makes umlswitch a Wireshark extcap program: Wireshark
// (and tshark, dumpcap) runs programs in its extcap folder to list more
// capture interfaces, and to capture from one into a fifo it reads. Here
// each switch of every control socket the extcap knows is an interface,
// and capturing one streams the switch's live capture (GET /v1/capture)
// into the fifo, through a capture filter if Wireshark gives one.
//
// The package holds the protocol (arguments, the lines Wireshark reads,
// interface names, filters, the pcapng copy, installing the link); the
// control API is reached through API, which the command implements.
package extcap

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// SocketInfo is what a control socket says about itself.
type SocketInfo struct {
	PID        int      // the switch process: two sockets of one process list its switches once
	Self       string   // the switch the socket belongs to
	MayCapture bool     // whether the API lets the caller capture
	Switches   []string // every switch of its process
}

// Port is one attached port of a switch.
type Port struct {
	Name string
	Kind string
	Peer string
}

// API is the control API as the extcap uses it.
type API interface {
	Info(ctx context.Context, socket string) (SocketInfo, error)
	Ports(ctx context.Context, socket, sw string) ([]Port, error)
	// Capture starts switch sw's live pcapng capture, narrowed by the
	// switch to sel's port and direction; closing the reader ends it.
	Capture(ctx context.Context, socket, sw string, sel Select) (io.ReadCloser, error)
}

// Config is how the extcap runs.
type Config struct {
	API     API
	Sockets []string // control sockets to list, in order (absolute paths)
	PerPort bool     // list an interface per attached port as well
	Version string   // the extcap's version, for Wireshark's about box
	// Timeout bounds what the interface list, the options and filter
	// checks wait for a socket: Wireshark runs them while it starts.
	Timeout time.Duration
}

// DefaultTimeout is Config.Timeout's default.
const DefaultTimeout = time.Second

// Run serves one extcap command line and returns the exit status. ctx
// ends with SIGTERM or SIGINT: a capture then stops and exits 0.
func Run(ctx context.Context, cfg Config, args []string, stdout, stderr io.Writer) int {
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	a, err := ParseArgs(args)
	if err != nil {
		fmt.Fprintf(stderr, "umlswitch: %v\n", err)
		return 2
	}
	if a.Mode == ModeInterfaces {
		// Always 0: Wireshark drops a failing extcap's whole list.
		WriteInterfaces(stdout, cfg.Version, List(ctx, cfg))
		return 0
	}
	t, err := ParseName(a.Interface)
	if err != nil {
		fmt.Fprintf(stderr, "umlswitch: %v\n", err)
		return 2
	}
	switch a.Mode {
	case ModeDLTs:
		WriteDLTs(stdout)
	case ModeConfig:
		var names []string
		if t.Port == "" {
			lctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
			ports, _ := cfg.API.Ports(lctx, t.Socket, t.Switch) // a switch that does not answer: no port choices
			cancel()
			for _, p := range ports {
				names = append(names, p.Name)
			}
		}
		WriteConfig(stdout, t, names)
	case ModeCheckFilter:
		// Wireshark takes output for "invalid" and its first line for the
		// reason, nothing for "valid"; a non-zero status means "cannot
		// tell".
		if _, err := CompileFilter(a.Filter); err != nil {
			fmt.Fprintln(stdout, oneLine(err.Error()))
		}
	case ModeCapture:
		if err := capture(ctx, cfg, t, a); err != nil {
			fmt.Fprintf(stderr, "umlswitch: %s: %v\n", t, err)
			return 1
		}
	}
	return 0
}

// List asks every socket for its switches, at once and each for at most
// cfg.Timeout; a socket that does not answer is left out. Switches are
// listed under their own control socket where it is among the sockets,
// else under the first socket of their process that named them.
func List(ctx context.Context, cfg Config) []Interface {
	type answer struct {
		info  SocketInfo
		ports map[string][]Port
		ok    bool
	}
	answers := make([]answer, len(cfg.Sockets))
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	var wg sync.WaitGroup
	for i, sock := range cfg.Sockets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			info, err := cfg.API.Info(ctx, sock)
			if err != nil {
				return
			}
			ans := answer{info: info, ok: true}
			if cfg.PerPort {
				ans.ports = make(map[string][]Port)
				for _, sw := range info.Switches {
					if ps, err := cfg.API.Ports(ctx, sock, sw); err == nil {
						ans.ports[sw] = ps
					}
				}
			}
			answers[i] = ans
		}()
	}
	wg.Wait()
	type key struct {
		pid int
		sw  string
	}
	owner := make(map[key]int) // switch -> the socket it is listed under
	for i, a := range answers {
		if k := (key{a.info.PID, a.info.Self}); a.ok && a.info.Self != "" {
			if _, dup := owner[k]; !dup {
				owner[k] = i
			}
		}
	}
	for i, a := range answers {
		for _, sw := range a.info.Switches {
			if _, dup := owner[key{a.info.PID, sw}]; a.ok && !dup {
				owner[key{a.info.PID, sw}] = i
			}
		}
	}
	var ifs []Interface
	for i, a := range answers {
		if !a.ok {
			continue
		}
		sock := cfg.Sockets[i]
		// The socket's own switch first, then the others in the API's order.
		sws := slices.Clone(a.info.Switches)
		if j := slices.Index(sws, a.info.Self); j > 0 {
			sws = append(append([]string{a.info.Self}, sws[:j]...), sws[j+1:]...)
		}
		note := ""
		if !a.info.MayCapture {
			note = ", capturing not allowed for you"
		}
		for _, sw := range sws {
			if owner[key{a.info.PID, sw}] != i {
				continue
			}
			ifs = append(ifs, Interface{Target: Target{Socket: sock, Switch: sw},
				Display: fmt.Sprintf("umlswitch %s (%s%s)", sw, sock, note)})
			for _, p := range a.ports[sw] {
				peer := ""
				if p.Peer != "" {
					peer = ": " + p.Peer
				}
				ifs = append(ifs, Interface{Target: Target{Socket: sock, Switch: sw, Port: p.Name},
					Display: fmt.Sprintf("umlswitch %s port %s%s (%s%s)", sw, p.Name, peer, sock, note)})
			}
		}
	}
	return ifs
}

// errEnded is a capture that the switch ended.
var errEnded = errors.New("the capture ended: the switch stopped, or was removed")

// capture streams t's frames into a.Fifo until Wireshark stops it (ctx,
// or the fifo's reader going: nil) or the switch goes (an error).
func capture(ctx context.Context, cfg Config, t Target, a Args) error {
	sel := Select{Port: t.Port, Direction: a.Direction}
	if sel.Port == "" && a.Port != AllPorts {
		sel.Port = a.Port
	}
	filter, filterErr := CompileFilter(a.Filter)
	sel.Filter = filter
	// The fifo first, even to fail: Wireshark then shows this process's
	// stderr, not a pipe that never opened.
	fifo, err := openFifo(ctx, a.Fifo)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	defer fifo.Close()
	if filterErr != nil {
		return filterErr
	}
	if sel.Port != "" {
		lctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
		ports, err := cfg.API.Ports(lctx, t.Socket, t.Switch)
		cancel()
		if err != nil {
			return err
		}
		if !slices.ContainsFunc(ports, func(p Port) bool { return p.Name == sel.Port }) {
			return fmt.Errorf("switch %s has no port %s now", t.Switch, sel.Port)
		}
	}
	// The switch narrows the capture to the port and direction (it then
	// copies only those frames); Copy selects them again, for a switch
	// from before it took port= and dir=, which sends every frame.
	body, err := cfg.API.Capture(ctx, t.Socket, t.Switch, sel)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	stop := context.AfterFunc(ctx, func() { body.Close() })
	defer stop()
	defer body.Close()
	err = Copy(fifo, body, sel)
	switch {
	case ctx.Err() != nil: // SIGTERM: Wireshark stops
		return nil
	case errors.Is(err, syscall.EPIPE): // the fifo's reader went
		return nil
	case err == nil, errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed),
		errors.Is(err, syscall.ECONNRESET):
		return errEnded
	}
	return err
}

// openFifo opens Wireshark's fifo for writing, which waits for its reader;
// a stop meanwhile ends the wait.
func openFifo(ctx context.Context, path string) (*os.File, error) {
	type result struct {
		f   *os.File
		err error
	}
	done := make(chan result, 1)
	go func() {
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		done <- result{f, err}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			return nil, fmt.Errorf("the fifo: %w", r.err)
		}
		return r.f, nil
	case <-ctx.Done():
		go func() { // the open may still finish: close what it opens
			if r := <-done; r.f != nil {
				r.f.Close()
			}
		}()
		return nil, ctx.Err()
	}
}

// Sockets is the list of control sockets: the built-in one, then those of
// env (UMLSWITCH_SOCKETS, ':'-separated), each once, as made absolute by
// abs (which also maps a VDE directory to its ctl).
func Sockets(builtin, env string, abs func(string) string) []string {
	var out []string
	for _, s := range append([]string{builtin}, strings.Split(env, ":")...) {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		if s = abs(s); !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}
