package api_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/gopacket/pcapgo"

	"github.com/umlswitch/umlswitch/api"
	"github.com/umlswitch/umlswitch/frame"
	"github.com/umlswitch/umlswitch/transports/porttest"
)

// packetsByPort reads a live capture for d and counts its packets by the
// name of their port.
func packetsByPort(t *testing.T, c *http.Client, query string, d time.Duration) (map[string]int, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://x/v1/capture?"+query, nil)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("capture %s: %v", query, err)
	}
	defer resp.Body.Close()
	counts := map[string]int{}
	if resp.StatusCode != 200 {
		return counts, resp.StatusCode
	}
	r, err := pcapgo.NewNgReader(resp.Body, pcapgo.DefaultNgReaderOptions)
	if err != nil {
		return counts, resp.StatusCode // nothing came in time: no section header either
	}
	for {
		_, ci, err := r.ReadPacketData()
		if err != nil {
			return counts, resp.StatusCode
		}
		iface, _ := r.Interface(ci.InterfaceIndex)
		counts[iface.Name]++
	}
}

// A live capture narrowed to ports and a direction gets only their
// frames; bad selections are refused; too many at once are refused.
func TestCaptureNarrowed(t *testing.T) {
	r := newRig(t)
	c1, c2 := r.dial(t), r.dial(t) // closed at cleanup, after the goroutines below
	stop := make(chan struct{})
	var clients sync.WaitGroup
	defer clients.Wait()
	defer close(stop)
	clients.Add(2)
	go func() { // the second drains what reaches it, so the switch's writes to it succeed
		defer clients.Done()
		b := make([]byte, 2048)
		for {
			select {
			case <-stop:
				return
			default:
			}
			c2.Recv(b, 50*time.Millisecond)
		}
	}()
	go func() { // the first client broadcasts: in on ctl.1, out on ctl.2
		defer clients.Done()
		for {
			c1.Send(porttest.Ether(frame.Broadcast, frame.MAC{2, 0, 0, 0, 0, 1}, 60, 1))
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	for _, c := range []struct {
		query string
		want  map[string]bool // ports that must show; no other may
	}{
		{"switch=a", map[string]bool{"ctl.1": true, "ctl.2": true}},
		{"switch=a&port=ctl.1", map[string]bool{"ctl.1": true}},
		{"switch=a&port=ctl.1&dir=in", map[string]bool{"ctl.1": true}},
		{"switch=a&port=ctl.2&dir=out", map[string]bool{"ctl.2": true}},
		{"switch=a&port=ctl.1&dir=out", map[string]bool{}},
		{"switch=a&port=ctl.2,ctl.1&dir=both", map[string]bool{"ctl.1": true, "ctl.2": true}},
	} {
		got, code := packetsByPort(t, r.client, c.query, time.Second)
		if code != 200 {
			t.Errorf("%s: %d", c.query, code)
		}
		for p := range c.want {
			if got[p] == 0 {
				t.Errorf("%s: nothing from %s: %v", c.query, p, got)
			}
		}
		for p := range got {
			if !c.want[p] {
				t.Errorf("%s: frames from %s: %v", c.query, p, got)
			}
		}
	}
	for q, want := range map[string]string{
		"switch=a&dir=sideways":   "dir=",
		"switch=a&port=bad%20one": "port=",
		"switch=zz&port=ctl.1":    "switch zz",
	} {
		if code, body := call(t, r.client, "GET", "/v1/capture?"+q, ""); code < 400 || !strings.Contains(body, want) {
			t.Errorf("%s: %d %s", q, code, body)
		}
	}
	// Sixteen narrowed captures read at once; a seventeenth is refused,
	// and taken once one of them stops.
	var cancels []context.CancelFunc
	defer func() {
		for _, c := range cancels {
			c()
		}
	}()
	for i := 0; i < 16; i++ {
		ctx, cancel := context.WithCancel(context.Background())
		cancels = append(cancels, cancel)
		req, _ := http.NewRequestWithContext(ctx, "GET", fmt.Sprintf("http://x/v1/capture?switch=a&port=p%d", i), nil)
		resp, err := r.client.Do(req)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("capture %d: %v %v", i, err, resp)
		}
		go io.Copy(io.Discard, resp.Body)
	}
	within(t, "sixteen readers", 20*time.Second, func() bool {
		code, _ := call(t, r.client, "GET", "/v1/capture?switch=a&port=p99", "")
		return code == http.StatusServiceUnavailable
	})
	cancels[0]()
	within(t, "room again", 20*time.Second, func() bool {
		_, code := packetsByPort(t, r.client, "switch=a&port=p99", 200*time.Millisecond)
		return code == 200
	})
}

func FuzzCaptureSelection(f *testing.F) {
	for _, q := range []string{"port=a,b&dir=in", "dir=out", "port=", "port=a%2Cb,,", "dir=x", "port=" + strings.Repeat("p,", 70)} {
		f.Add(q)
	}
	f.Fuzz(func(t *testing.T, q string) {
		v, err := url.ParseQuery(q)
		if err != nil {
			return
		}
		sel, err := api.CaptureSelection(v)
		if err != nil {
			return
		}
		if len(sel.Ports) > 64 || (sel.Dir != "" && sel.Dir != "in" && sel.Dir != "out" && sel.Dir != "both") {
			t.Fatalf("%q: %+v", q, sel)
		}
		for _, p := range sel.Ports {
			if p == "" || strings.ContainsAny(p, ", ") {
				t.Fatalf("%q: port %q", q, p)
			}
		}
	})
}

// within polls cond until it holds, failing the test after limit (readers
// join and leave a live capture on goroutines of their own, slowly under
// the race detector on a busy machine).
func within(t *testing.T, what string, limit time.Duration, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(limit); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, limit)
		}
	}
}
