// Package privdrop turns a switch that started as root into one that runs
// as an ordinary user (-user), keeping only the capabilities its ports
// need to open again while it runs, as OVS's --user and Debian's
// uml-net user do. It acts on every thread of the process: Go runs
// goroutines on any of them, so a thread left with root's rights would be
// root's rights.
package privdrop

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"math/bits"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Caps is a set of Linux capabilities: bit n is capability n.
type Caps uint64

// The capabilities ports keep.
const (
	NetBindService Caps = 1 << unix.CAP_NET_BIND_SERVICE
	NetAdmin       Caps = 1 << unix.CAP_NET_ADMIN
	NetRaw         Caps = 1 << unix.CAP_NET_RAW
	BPF            Caps = 1 << unix.CAP_BPF     // loading an XDP program
	Perfmon        Caps = 1 << unix.CAP_PERFMON // the verifier's pointer arithmetic in it
)

var capNames = map[int]string{unix.CAP_NET_BIND_SERVICE: "cap_net_bind_service", unix.CAP_NET_ADMIN: "cap_net_admin",
	unix.CAP_NET_RAW: "cap_net_raw", unix.CAP_BPF: "cap_bpf", unix.CAP_PERFMON: "cap_perfmon"}

// String lists the set as capsh does: cap_net_admin,cap_net_raw; "none"
// for the empty set.
func (c Caps) String() string {
	if c == 0 {
		return "none"
	}
	var names []string
	for rest := uint64(c); rest != 0; rest &= rest - 1 {
		n := bits.TrailingZeros64(rest)
		name, ok := capNames[n]
		if !ok {
			name = "cap_" + strconv.Itoa(n)
		}
		names = append(names, name)
	}
	return strings.Join(names, ",")
}

// Identity is a user to run as: its uid, primary gid and groups.
type Identity struct {
	Name   string
	UID    int
	GID    int
	Groups []int
}

// Lookup finds the user called name (or numbered so: a uid with no
// passwd entry runs with its own number as its group and no others).
func Lookup(name string) (Identity, error) {
	u, err := user.Lookup(name)
	if err != nil {
		if uid, nerr := strconv.Atoi(name); nerr == nil && uid >= 0 {
			if u, err = user.LookupId(name); err != nil {
				return Identity{Name: name, UID: uid, GID: uid}, nil
			}
		} else {
			return Identity{}, fmt.Errorf("user %q: %w", name, err)
		}
	}
	id := Identity{Name: u.Username}
	if id.UID, err = strconv.Atoi(u.Uid); err != nil {
		return Identity{}, fmt.Errorf("user %q: uid %q: %w", name, u.Uid, err)
	}
	if id.GID, err = strconv.Atoi(u.Gid); err != nil {
		return Identity{}, fmt.Errorf("user %q: gid %q: %w", name, u.Gid, err)
	}
	gids, err := u.GroupIds()
	if err != nil {
		return Identity{}, fmt.Errorf("user %q: groups: %w", name, err)
	}
	for _, g := range gids {
		if n, err := strconv.Atoi(g); err == nil {
			id.Groups = append(id.Groups, n)
		}
	}
	return id, nil
}

// ErrNeedsAllThreads is wrapped when capabilities are to be kept by a
// build whose runtime cannot change every thread's (one with cgo).
var ErrNeedsAllThreads = errors.New("keeping capabilities after -user needs a build without cgo (CGO_ENABLED=0, as make build does)")

// To makes every thread of the process id, with keep as its only
// capabilities (effective and permitted; nothing inheritable, no ambient
// set), and checks that every thread now says so. It needs root (or
// CAP_SETUID, CAP_SETGID and the capabilities kept). On an error the
// process may be half changed: the caller must exit.
func To(id Identity, keep Caps) error {
	if keep != 0 {
		// Without keepcaps, the change of uid clears the permitted set.
		if _, _, errno := syscall.AllThreadsSyscall(unix.SYS_PRCTL, unix.PR_SET_KEEPCAPS, 1, 0); errno != 0 {
			if errno == syscall.ENOTSUP {
				return ErrNeedsAllThreads
			}
			return fmt.Errorf("prctl(PR_SET_KEEPCAPS): %w", errno)
		}
	}
	groups := id.Groups
	if groups == nil {
		groups = []int{}
	}
	// The syscall package's setgroups and setres[ug]id act on every thread.
	if err := syscall.Setgroups(groups); err != nil {
		return fmt.Errorf("setgroups %v: %w", groups, err)
	}
	if err := syscall.Setresgid(id.GID, id.GID, id.GID); err != nil {
		return fmt.Errorf("setresgid %d: %w", id.GID, err)
	}
	if err := syscall.Setresuid(id.UID, id.UID, id.UID); err != nil {
		return fmt.Errorf("setresuid %d: %w", id.UID, err)
	}
	if keep != 0 {
		hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
		var data [2]unix.CapUserData
		data[0].Effective, data[0].Permitted = uint32(keep), uint32(keep)
		data[1].Effective, data[1].Permitted = uint32(keep>>32), uint32(keep>>32)
		if _, _, errno := syscall.AllThreadsSyscall(unix.SYS_CAPSET, uintptr(unsafe.Pointer(&hdr)), uintptr(unsafe.Pointer(&data[0])), 0); errno != 0 {
			return fmt.Errorf("capset %s: %w", keep, errno)
		}
		if _, _, errno := syscall.AllThreadsSyscall(unix.SYS_PRCTL, unix.PR_SET_KEEPCAPS, 0, 0); errno != 0 {
			return fmt.Errorf("prctl(PR_SET_KEEPCAPS, 0): %w", errno)
		}
	}
	return Check(id.UID, keep)
}

// Check reads every thread's status and reports the first that does not
// run as uid with exactly keep effective and permitted.
func Check(uid int, keep Caps) error {
	tasks, err := filepath.Glob("/proc/self/task/*/status")
	if err != nil || len(tasks) == 0 {
		return fmt.Errorf("privdrop: the threads' status: %v", err)
	}
	for _, path := range tasks {
		data, err := os.ReadFile(path)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue // a thread that ended meanwhile
			}
			return fmt.Errorf("privdrop: %w", err)
		}
		st, err := ParseStatus(data)
		if err != nil {
			return fmt.Errorf("privdrop: %s: %w", path, err)
		}
		if st.UIDs != [4]int{uid, uid, uid, uid} || st.Effective != keep || st.Permitted != keep {
			return fmt.Errorf("privdrop: thread %s runs as uids %v with capabilities %s (permitted %s), want uid %d with %s",
				filepath.Base(filepath.Dir(path)), st.UIDs, st.Effective, st.Permitted, uid, keep)
		}
	}
	return nil
}

// Status is what /proc/PID/status says of a thread's identity.
type Status struct {
	UIDs, GIDs           [4]int // real, effective, saved, file system
	Effective, Permitted Caps
}

// ParseStatus reads the Uid, Gid, CapEff and CapPrm lines of a
// /proc/PID/status text; each must be there.
func ParseStatus(data []byte) (Status, error) {
	var st Status
	const all = 1<<4 - 1
	seen := 0 // a bit per line
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		val = strings.TrimSpace(val)
		var err error
		bit := 0
		switch key {
		case "Uid":
			st.UIDs, err = fourIDs(val)
		case "Gid":
			st.GIDs, err = fourIDs(val)
			bit = 1
		case "CapEff", "CapPrm":
			bit = 2
			var c uint64
			c, err = strconv.ParseUint(val, 16, 64)
			if key == "CapEff" {
				st.Effective = Caps(c)
			} else {
				st.Permitted, bit = Caps(c), 3
			}
		default:
			continue
		}
		if err != nil {
			return Status{}, fmt.Errorf("%s: %q: %w", key, val, err)
		}
		seen |= 1 << bit
	}
	if seen != all {
		return Status{}, errors.New("no Uid, Gid, CapEff or CapPrm line")
	}
	return st, nil
}

func fourIDs(s string) ([4]int, error) {
	var ids [4]int
	f := strings.Fields(s)
	if len(f) != 4 {
		return ids, errors.New("want four ids")
	}
	for i, v := range f {
		n, err := strconv.Atoi(v)
		if err != nil {
			return ids, err
		}
		ids[i] = n
	}
	return ids, nil
}
