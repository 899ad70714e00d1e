package privdrop

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
)

func TestCapsString(t *testing.T) {
	for c, want := range map[Caps]string{0: "none", NetRaw: "cap_net_raw", NetAdmin | NetRaw: "cap_net_admin,cap_net_raw",
		1<<40 | NetBindService: "cap_net_bind_service,cap_40"} {
		if got := c.String(); got != want {
			t.Errorf("%#x: %q, want %q", uint64(c), got, want)
		}
	}
}

func TestParseStatus(t *testing.T) {
	const status = "Name:\tumlswitch\nUid:\t65534\t65534\t65534\t65534\nGid:\t100\t100\t100\t100\n" +
		"CapInh:\t0000000000000000\nCapPrm:\t0000000000002000\nCapEff:\t0000000000002000\n"
	st, err := ParseStatus([]byte(status))
	if err != nil {
		t.Fatal(err)
	}
	if st.UIDs != [4]int{65534, 65534, 65534, 65534} || st.GIDs[0] != 100 || st.Effective != NetRaw || st.Permitted != NetRaw {
		t.Fatalf("%+v", st)
	}
	for _, bad := range []string{
		"",
		strings.Replace(status, "CapPrm", "CapXyz", 1), // a line missing
		strings.Replace(status, "Uid:\t65534\t", "Uid:\t", 1),
		strings.Replace(status, "0000000000002000\nCapEff", "zz\nCapEff", 1),
		strings.Replace(status, "Gid", "Gix", 1) + "CapEff:\t0\n", // one line twice, one missing
	} {
		if _, err := ParseStatus([]byte(bad)); err == nil {
			t.Errorf("taken: %q", bad)
		}
	}
}

// childEnv makes the test binary a child that changes user (To acts on
// the whole process, so the test itself must not).
const childEnv = "PRIVDROP_TEST_CHILD"

func TestMain(m *testing.M) {
	if keep := os.Getenv(childEnv); keep != "" {
		os.Exit(child(keep))
	}
	os.Exit(m.Run())
}

func child(keep string) int {
	want := Caps(0)
	if keep == "raw" {
		want = NetRaw
	}
	id, err := Lookup("nobody")
	if err == nil {
		err = To(id, want)
	}
	switch {
	case errors.Is(err, ErrNeedsAllThreads):
		os.Stdout.WriteString("needs-all-threads")
	case err != nil:
		os.Stdout.WriteString("error: " + err.Error())
	default:
		os.Stdout.WriteString("ok") // To checked every thread
	}
	return 0
}

// As root, To makes every thread nobody with no capability; asked to keep
// cap_net_raw, it keeps that alone, or, in a build whose runtime cannot
// change every thread (cgo), says so before changing anything it cannot
// finish.
func TestTo(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("changing user needs root")
	}
	for keep, want := range map[string][]string{"none": {"ok"}, "raw": {"ok", "needs-all-threads"}} {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), childEnv+"="+keep)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s: %v: %s", keep, err, out)
		}
		ok := false
		for _, w := range want {
			ok = ok || string(out) == w
		}
		if !ok {
			t.Errorf("keep %s: %s, want one of %v", keep, out, want)
		}
	}
}
