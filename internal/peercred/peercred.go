package peercred

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"syscall"

	"golang.org/x/sys/unix"
)

// NoUID is the uid of a peer whose credentials are unknown (a TCP peer).
const NoUID = ^uint32(0)

// Cred is a process's identity as the kernel gave it for a socket peer.
type Cred struct {
	PID    int32
	UID    uint32
	GID    uint32
	Groups []uint32 // supplementary groups; nil if the kernel could not say
}

// Unknown is the identity of a peer without credentials.
var Unknown = Cred{UID: NoUID, GID: NoUID}

// Known reports whether c came from the kernel.
func (c Cred) Known() bool { return c.UID != NoUID }

// InGroup reports whether gid is c's primary or a supplementary group.
func (c Cred) InGroup(gid uint32) bool {
	return c.Known() && (c.GID == gid || slices.Contains(c.Groups, gid))
}

// In reports whether c is one of uids, or a member of one of gids.
func (c Cred) In(uids, gids []uint32) bool {
	return c.Known() && (slices.Contains(uids, c.UID) || slices.ContainsFunc(gids, c.InGroup))
}

// String is for logs: uid=N gid=N pid=N.
func (c Cred) String() string {
	if !c.Known() {
		return "uid=unknown"
	}
	return fmt.Sprintf("uid=%d gid=%d pid=%d", c.UID, c.GID, c.PID)
}

// Self is this process's effective identity.
func Self() Cred {
	c := Cred{PID: int32(os.Getpid()), UID: uint32(os.Geteuid()), GID: uint32(os.Getegid())}
	if gs, err := os.Getgroups(); err == nil {
		for _, g := range gs {
			c.Groups = append(c.Groups, uint32(g))
		}
	}
	return c
}

// FromConn returns the credentials of a unix socket connection's peer, as
// they were when it connected.
func FromConn(c syscall.Conn) (Cred, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return Unknown, fmt.Errorf("peercred: %w", err)
	}
	var cred Cred
	var cerr error
	if err := rc.Control(func(fd uintptr) { cred, cerr = FromFD(int(fd)) }); err != nil {
		return Unknown, fmt.Errorf("peercred: %w", err)
	}
	return cred, cerr
}

// FromFD is FromConn for a raw descriptor.
func FromFD(fd int) (Cred, error) {
	u, err := unix.GetsockoptUcred(fd, unix.SOL_SOCKET, unix.SO_PEERCRED)
	if err != nil {
		return Unknown, fmt.Errorf("peercred: SO_PEERCRED: %w", err)
	}
	c := Cred{PID: u.Pid, UID: u.Uid, GID: u.Gid}
	if u.Uid == NoUID { // the kernel's overflow id: not a real uid to trust
		return Unknown, errors.New("peercred: peer has no uid in this namespace")
	}
	c.Groups, _ = peerGroups(fd) // before Linux 4.13: primary group only
	return c, nil
}

// ErrCannotAct is returned by Do when this process may not take another
// user's file system identity (it is not root).
var ErrCannotAct = errors.New("peercred: a switch that is not root cannot act as another user")

// Do runs fn with c's file system identity: its fsuid, fsgid and
// supplementary groups, on a thread of its own that is discarded when fn
// returns. The kernel drops the file capabilities (CAP_DAC_OVERRIDE,
// CAP_CHOWN, CAP_FOWNER and the rest) from a thread whose fsuid is not 0,
// so permission checks are c's. When c is this process's own uid, fn runs
// here unchanged; when this process cannot change its fsuid, Do returns
// ErrCannotAct without running fn. fn must not hand its goroutine's work
// to others expecting them to share the identity: goroutines it starts run
// as the switch.
func Do(c Cred, fn func() error) error {
	if !c.Known() {
		return errors.New("peercred: cannot act as a peer whose uid is unknown")
	}
	euid := uint32(os.Geteuid())
	if c.UID == euid && (euid != 0 || c.GID == uint32(os.Getegid())) {
		return fn()
	}
	if euid != 0 {
		return ErrCannotAct
	}
	errc := make(chan error, 1)
	go func() {
		// Never unlocked: the thread ends with this goroutine, and its
		// borrowed identity with it.
		runtime.LockOSThread()
		if err := become(c); err != nil {
			errc <- err
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// become gives the calling (locked) thread c's file system identity.
func become(c Cred) error {
	groups := c.Groups
	if groups == nil {
		groups = []uint32{c.GID}
	}
	if err := setgroups(groups); err != nil {
		return fmt.Errorf("peercred: setgroups: %w", err)
	}
	unix.Setfsgid(int(c.GID))
	unix.Setfsuid(int(c.UID))
	// setfs[ug]id report no errors: read the ids back (an invalid id
	// changes nothing and returns the current one).
	if g, _ := unix.SetfsgidRetGid(-1); g != int(c.GID) {
		return fmt.Errorf("peercred: fsgid is %d, not %d", g, c.GID)
	}
	if u, _ := unix.SetfsuidRetUid(-1); u != int(c.UID) {
		return fmt.Errorf("peercred: fsuid is %d, not %d", u, c.UID)
	}
	return nil
}
