package instance_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/umlswitch/umlswitch/configs"
	"github.com/umlswitch/umlswitch/instance"
	"github.com/umlswitch/umlswitch/transports/porttest"
)

// Reloads at the same moment (SIGHUP and ctl reload, two API calls) run
// one after the other: none opens a port another has just opened, and the
// ports are the file's afterwards.
func TestConcurrentReloadsOpenEachPortOnce(t *testing.T) {
	dir := t.TempDir()
	var paths, specs []string
	for i := range 6 {
		p := filepath.Join(dir, fmt.Sprintf("p%d.ctl", i))
		paths = append(paths, p)
		specs = append(specs, "{transport: daemon, path: "+p+"}")
	}
	doc := "ports: [" + strings.Join(specs, ", ") + "]"
	in := start(t, "switches: [{name: default}]", instance.Config{
		Reload: func() (*configs.File, error) { return configs.Parse([]byte(doc)) }})
	const reloads = 40
	errs := make(chan error, reloads)
	var wg sync.WaitGroup
	for range reloads {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- in.Reload()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("reload: %v", err)
		}
	}
	var names, listening []string
	for _, p := range in.Ports("") {
		names, listening = append(names, p.Name), append(listening, p.Listening)
	}
	slices.Sort(names)
	slices.Sort(listening)
	// Unnamed ports are numbered in opening order and numbers are never
	// reused: a second open of a port would have taken a number.
	if got, want := strings.Join(names, " "), "daemon0 daemon1 daemon2 daemon3 daemon4 daemon5"; got != want {
		t.Errorf("ports %s, want %s", got, want)
	}
	if !slices.Equal(listening, paths) {
		t.Errorf("listening on %v, want %v", listening, paths)
	}
}

// A second upgrade while one is under way is refused at once, not left
// waiting for the first; once the first has failed, another may run.
func TestSecondUpgradeRefusedWhileOneRuns(t *testing.T) {
	entered, release := make(chan struct{}), make(chan error)
	in := start(t, "switches: [{name: default}]", instance.Config{
		Upgrade: func(*instance.Instance) error {
			entered <- struct{}{}
			return <-release
		}})
	first := make(chan error, 1)
	go func() { first <- in.Upgrade() }()
	<-entered
	second := make(chan error, 1)
	go func() { second <- in.Upgrade() }()
	select {
	case err := <-second:
		if err == nil || !strings.Contains(err.Error(), "under way") {
			t.Fatalf("a second upgrade during the first: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a second upgrade waits for the first")
	}
	release <- fmt.Errorf("the new switch ended")
	if err := <-first; err == nil {
		t.Fatal("the first upgrade's failure was not returned")
	}
	go func() { <-entered; release <- nil }()
	if err := in.Upgrade(); err != nil {
		t.Fatalf("an upgrade after a failed one: %v", err)
	}
}

// watchers counts the instance watcher goroutines running now.
func watchers() int {
	return strings.Count(porttest.Goroutines(), "instance.(*Instance).watch(")
}

// Close stops Run's watcher and waits for it, and Run returns: nothing of
// the instance's keeps running.
func TestCloseStopsRunAndItsWatcher(t *testing.T) {
	porttest.NoLeaks(t, func() {
		plan, err := configs.Parse([]byte("switches: [{name: default}]"))
		if err != nil {
			t.Fatal(err)
		}
		before := watchers()
		in, err := instance.New(plan, instance.Config{Logger: porttest.Quiet()})
		if err != nil {
			t.Fatal(err)
		}
		ran := make(chan error, 1)
		go func() { ran <- in.Run(context.Background()) }()
		porttest.Eventually(t, "the watcher", func() bool { return watchers() == before+1 })
		in.Close()
		if n := watchers(); n != before {
			t.Errorf("%d watchers after Close, want %d", n, before)
		}
		select {
		case <-ran:
		case <-time.After(5 * time.Second):
			t.Fatal("Run did not return after Close")
		}
	})
}

// Run after Close returns at once and starts nothing.
func TestRunAfterClose(t *testing.T) {
	porttest.NoLeaks(t, func() {
		plan, err := configs.Parse([]byte("switches: [{name: default}]"))
		if err != nil {
			t.Fatal(err)
		}
		in, err := instance.New(plan, instance.Config{Logger: porttest.Quiet()})
		if err != nil {
			t.Fatal(err)
		}
		in.Close()
		ran := make(chan error, 1)
		go func() { ran <- in.Run(context.Background()) }()
		select {
		case err := <-ran:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Run after Close did not return")
		}
	})
}
