package bench

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// Watchers: what a user looking at a lab adds to the switch's work while
// the generator runs, to measure its cost against the same switch unwatched
// (umlswitch-web, umlswitch-capture).

// watchPage plays the lab's web page (-web) left open at addr: the
// requests its script makes, every second the switches, ports, MAC table
// and the drawing's graph, and the event stream held open, until stop.
func watchPage(addr string) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 2)
	client := &http.Client{Timeout: 5 * time.Second}
	base := "http://" + addr
	go func() {
		defer func() { done <- struct{}{} }()
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			for _, path := range []string{"/v1/switches", "/v1/ports", "/v1/fdb", "/web/topology"} {
				req, _ := http.NewRequestWithContext(ctx, "GET", base+path, nil)
				if resp, err := client.Do(req); err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	go func() {
		defer func() { done <- struct{}{} }()
		req, _ := http.NewRequestWithContext(ctx, "GET", base+"/v1/events", nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}()
	return func() { cancel(); <-done; <-done }
}

// watchCapture reads the switch's live capture through its control socket
// ctl, as Wireshark's extcap does, discarding it, until stop; query
// narrows it (port=, dir=).
func watchCapture(ctl, query string) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", ctl)
	}}}
	go func() {
		defer close(done)
		req, _ := http.NewRequestWithContext(ctx, "GET", "http://umlswitch/v1/capture?"+query, nil)
		if resp, err := client.Do(req); err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}()
	return func() { cancel(); <-done }
}

// freeLoopback is a loopback TCP address no one listens on now.
func freeLoopback() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("bench: a port for the web page: %w", err)
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}
