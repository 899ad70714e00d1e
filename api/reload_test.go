package api_test

import (
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/umlswitch/umlswitch/api"
	"github.com/umlswitch/umlswitch/configs"
	"github.com/umlswitch/umlswitch/instance"
	"github.com/umlswitch/umlswitch/instance/instancetest"
	"github.com/umlswitch/umlswitch/transports/porttest"
)

// Reloads asked for at once through the API (and SIGHUP's, which call
// the same method) run one after another: each new port is opened once,
// and the ports are the file's afterwards.
func TestConcurrentAPIReloads(t *testing.T) {
	dir := t.TempDir()
	ctl := filepath.Join(dir, "a.ctl")
	var specs []string
	for i := range 4 {
		specs = append(specs, fmt.Sprintf("{transport: daemon, path: %s}", filepath.Join(dir, fmt.Sprintf("p%d.ctl", i))))
	}
	doc := fmt.Sprintf("switches:\n  - {name: a, ports: [{transport: daemon, path: %s, name: ctl}, %s]}\n", ctl, strings.Join(specs, ", "))
	log := porttest.Quiet()
	in := instancetest.Start(t, fmt.Sprintf("switches:\n  - {name: a, ports: [{transport: daemon, path: %s, name: ctl}]}\n", ctl),
		instance.Config{Logger: log, API: func(in *instance.Instance) instance.APIServer { return api.New(in, log) },
			Reload: func() (*configs.File, error) { return configs.Parse([]byte(doc)) }})
	const reloads = 16
	var wg sync.WaitGroup
	for range reloads {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := unixClient(ctl).Post("http://x/v1/reload", "", nil)
			if err != nil {
				t.Errorf("reload: %v", err)
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Errorf("reload: %d %s", resp.StatusCode, b)
			}
		}()
	}
	wg.Wait()
	var names []string
	for _, p := range in.Ports("a") {
		if p.Listener == "" { // not a client: the API's connections are none
			names = append(names, p.Name)
		}
	}
	slices.Sort(names)
	if got, want := strings.Join(names, " "), "ctl daemon0 daemon1 daemon2 daemon3"; got != want {
		t.Errorf("ports %s, want %s", got, want)
	}
}
