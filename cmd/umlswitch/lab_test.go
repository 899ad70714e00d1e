package main

import (
	"flag"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// umlswitch lab -h documents every flag, each with an example.
func TestLabHelpDocumentsEveryFlag(t *testing.T) {
	code, _, help := runArgs("lab", "-h")
	if code != 0 || !strings.Contains(help, "Usage: umlswitch lab") {
		t.Fatalf("lab -h exit %d:\n%s", code, help)
	}
	o, _ := parseLabFlags([]string{"lab.conf"}, &strings.Builder{})
	o.fs.VisitAll(func(f *flag.Flag) {
		block := regexp.MustCompile(`(?s)\n  -` + regexp.QuoteMeta(f.Name) + `\b.*?Example: -` + regexp.QuoteMeta(f.Name))
		if !block.MatchString(help) {
			t.Errorf("-%s has no example in lab -h", f.Name)
		}
	})
	if _, _, main := runArgs("-h"); !strings.Contains(main, "umlswitch lab [-dir DIR]") {
		t.Error("umlswitch -h does not mention lab")
	}
}

func TestLabBadArguments(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "lab.conf")
	os.WriteFile(conf, []byte("pc1[0]=A\npc1[1]=B/02:00:00:00:00\n"), 0o644)
	bad := filepath.Join(dir, "bad.ext")
	os.WriteFile(bad, []byte("# uplink\nZ eth0\n"), 0o644)
	good := filepath.Join(dir, "good.conf")
	os.WriteFile(good, []byte("pc1[0]=A\n"), 0o644)
	three := filepath.Join(dir, "three.conf")
	os.WriteFile(three, []byte("pc1[0]=A\npc2[0]=B\npc3[0]=C\n"), 0o644)
	evpnDoc := "vni_base: 100\nevpn:\n  asn: 65000\n  router_id: 127.0.0.1\n  vtep: 127.0.0.1\n  listen_port: 0\n"
	noASN, unknownKey, tooHigh := filepath.Join(dir, "noasn.yaml"), filepath.Join(dir, "unknown.yaml"), filepath.Join(dir, "high.yaml")
	os.WriteFile(noASN, []byte(strings.Replace(evpnDoc, "  asn: 65000\n", "", 1)), 0o644)
	os.WriteFile(unknownKey, []byte(evpnDoc+"vni: 7\n"), 0o644)
	os.WriteFile(tooHigh, []byte(strings.Replace(evpnDoc, "100", "16777214", 1)), 0o644)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"lab"}, "no lab.conf given"},
		{[]string{"lab", conf, "more"}, `unexpected argument "more"`},
		{[]string{"lab", conf}, conf + `: line 2: pc1[1]: MAC "02:00:00:00:00"`},
		{[]string{"lab", filepath.Join(dir, "none.conf")}, "none.conf: no such file"},
		{[]string{"lab", "-ext", bad, good}, bad + `: line 2: no machine of lab.conf is on collision domain "Z"`},
		{[]string{"lab", "-dir", "/" + strings.Repeat("d", 100), good}, "choose a shorter directory"},
		{[]string{"lab", "-machines", "pc1,pc9,r1", three}, "-machines: no machine pc9, r1 in lab.conf (it has pc1, pc2, pc3)"},
		{[]string{"lab", "-machines", "pc1,,pc2", three}, `-machines: "pc1,,pc2": an empty machine name`},
		{[]string{"lab", "-machines", "", three}, `-machines: "": an empty machine name`},
		{[]string{"lab", "-evpn", filepath.Join(dir, "none.yaml"), three}, "none.yaml: no such file"},
		{[]string{"lab", "-evpn", noASN, three}, noASN + ": evpn.asn: required"},
		{[]string{"lab", "-evpn", unknownKey, three}, unknownKey + ": yaml: unmarshal errors:\n  line 7: field vni not found"},
		{[]string{"lab", "-evpn", tooHigh, "-machines", "pc1", three}, tooHigh + ": vni_base 16777214: the lab's 3 collision domains take VNIs 16777214 to 16777216"},
	} {
		code, _, stderr := runArgs(c.args...)
		if code != 2 || !strings.Contains(stderr, c.want) {
			t.Errorf("%s: exit %d, want 2 and %q:\n%s", strings.Join(c.args, " "), code, c.want, stderr)
		}
	}
}

// syncBuilder is a strings.Builder the serving goroutine writes while the
// test reads.
type syncBuilder struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuilder) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuilder) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// A lab runs a switch per domain, with sockets in .umlswitch next to
// lab.conf by default, prints every machine's options once they listen,
// and removes its sockets on SIGTERM.
func TestLabRuns(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "lab.conf")
	os.WriteFile(conf, []byte("LAB_DESCRIPTION=\"a test\"\npc1[0]=A\npc2[0]=A\npc2[3]=\"B/02:00:00:00:00:02\"\npc2[mem]=64\n"), 0o644)
	sock := filepath.Join(dir, ".umlswitch")
	os.MkdirAll(sock, 0o755)
	stale := filepath.Join(sock, "pc1-eth0.sock")
	if err := bindUnix(stale); err != nil {
		t.Fatal(err)
	}
	var out, errs syncBuilder
	done := make(chan int)
	go func() { done <- run([]string{"lab", conf}, &out, &errs) }()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(out.String(), "pc2 vec:") {
		if time.Now().After(deadline) {
			t.Fatalf("no options printed:\n%s\n%s", out.String(), errs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	want := "pc1 eth0=daemon,,unix," + sock + "/A.ctl\n" +
		"pc1 vec: vec0:transport=bess,dst=" + sock + "/A.bess,src=" + sock + "/pc1-eth0.sock\n" +
		"pc2 eth0=daemon,,unix," + sock + "/A.ctl eth3=daemon,02:00:00:00:00:02,unix," + sock + "/B.ctl\n" +
		"pc2 vec: vec0:transport=bess,dst=" + sock + "/A.bess,src=" + sock + "/pc2-eth0.sock " +
		"vec3:transport=bess,dst=" + sock + "/B.bess,src=" + sock + "/pc2-eth3.sock,mac=02:00:00:00:00:02\n"
	if out.String() != want {
		t.Errorf("printed\n%swant\n%s", out.String(), want)
	}
	if _, err := os.Lstat(stale); err == nil {
		t.Error("a previous run's machine socket is still there")
	}
	code, switches, _ := ctlArgs("-s", filepath.Join(sock, "A.ctl"), "-all", "switches")
	if code != 0 || !regexp.MustCompile(`(?m)^A +learning`).MatchString(switches) || !regexp.MustCompile(`(?m)^B +learning`).MatchString(switches) {
		t.Errorf("ctl switches: exit %d\n%s", code, switches)
	}
	// A reload reads lab.conf again: a new domain gets its switch.
	os.WriteFile(conf, []byte("pc1[0]=A\npc2[0]=A\npc2[3]=B\npc3[0]=C\n"), 0o644)
	if code, out, errs := ctlArgs("-s", filepath.Join(sock, "A.ctl"), "reload"); code != 0 {
		t.Fatalf("reload: exit %d: %s%s", code, out, errs)
	}
	if _, err := os.Lstat(filepath.Join(sock, "C.ctl")); err != nil {
		t.Errorf("after the reload: %v", err)
	}
	syscall.Kill(os.Getpid(), syscall.SIGTERM)
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit %d:\n%s", code, errs.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("SIGTERM did not stop the lab")
	}
	for _, f := range []string{"A.ctl", "A.bess", "B.ctl", "B.bess", "C.ctl", "C.bess"} {
		if _, err := os.Lstat(filepath.Join(sock, f)); err == nil {
			t.Errorf("%s left behind", f)
		}
	}
}

// bindUnix leaves a socket file at path, as a UML that stopped does.
func bindUnix(path string) error {
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return err
	}
	l.SetUnlinkOnClose(false)
	return l.Close()
}

// With -machines the lab prints those machines' options only and runs
// switches for their domains only; with -evpn too, the speaker starts.
func TestLabRunsPartOfTheLab(t *testing.T) {
	dir := t.TempDir()
	conf, sock, evpnFile := filepath.Join(dir, "lab.conf"), filepath.Join(dir, "run"), filepath.Join(dir, "evpn.yaml")
	os.WriteFile(conf, []byte("pc1[0]=A\npc1[1]=B\npc2[0]=B\npc3[0]=C\n"), 0o644)
	os.WriteFile(evpnFile, []byte("vni_base: 100\nevpn:\n  asn: 65000\n  router_id: 127.0.0.1\n  vtep: 127.0.0.1\n  listen_port: 0\n"), 0o644)
	for _, evpn := range []bool{false, true} {
		args := []string{"lab", "-dir", sock, "-machines", "pc2,pc1", conf}
		if evpn {
			args = append([]string{"lab", "-evpn", evpnFile}, args[1:]...)
		}
		var out, errs syncBuilder
		done := make(chan int)
		go func() { done <- run(args, &out, &errs) }()
		deadline := time.Now().Add(10 * time.Second)
		for !strings.Contains(out.String(), "pc2 vec:") {
			if time.Now().After(deadline) {
				t.Fatalf("%v: no options printed:\n%s\n%s", args, out.String(), errs.String())
			}
			time.Sleep(10 * time.Millisecond)
		}
		if got := regexp.MustCompile(`(?m)^\S+`).FindAllString(out.String(), -1); strings.Join(got, " ") != "pc1 pc1 pc2 pc2" {
			t.Errorf("%v: printed options of %v:\n%s", args, got, out.String())
		}
		for _, f := range []string{"A.ctl", "B.ctl"} {
			if _, err := os.Lstat(filepath.Join(sock, f)); err != nil {
				t.Errorf("%v: %v", args, err)
			}
		}
		if _, err := os.Lstat(filepath.Join(sock, "C.ctl")); err == nil {
			t.Errorf("%v: domain C, none of whose machines runs here, has a switch", args)
		}
		if evpn {
			for _, want := range []string{"switch=A vni=100 ", "switch=B vni=101 "} {
				if !strings.Contains(errs.String(), want) {
					t.Errorf("%v: no %q joined the fabric:\n%s", args, want, errs.String())
				}
			}
		}
		syscall.Kill(os.Getpid(), syscall.SIGTERM)
		select {
		case code := <-done:
			if code != 0 {
				t.Fatalf("%v: exit %d:\n%s", args, code, errs.String())
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%v: SIGTERM did not stop the lab", args)
		}
	}
}
