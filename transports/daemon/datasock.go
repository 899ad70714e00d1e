package daemon

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/umlswitch/umlswitch/internal/peercred"
	"github.com/umlswitch/umlswitch/internal/unixsock"
)

// dataSocket makes the switch's end of a client's data path: a datagram
// socket connected to the address the client named, with no more right to
// reach it than the client has, then bound to an unguessable abstract name.
//
// It is connected before it has a name: an unbound socket cannot be sent
// to, and a connected one takes datagrams from its peer only, so no other
// process can ever queue a frame on it (bound first, it took datagrams from
// anyone until it was connected, and they reached the switch as the
// client's). Nothing can be waiting on it afterwards, so there is nothing
// to drain.
func dataSocket(to *unixsock.Addr, cred peercred.Cred) (int, error) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("data socket: %w", err)
	}
	if err := connectAs(fd, to, cred); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("client data socket %s unreachable for %s: %w", to.String(), cred, err)
	}
	// The switch's own datagram sockets (the -compat-v0 data socket, dgram
	// ports) take datagrams from anyone: one named here would feed the
	// switch its own frames, or another port's.
	peer, err := unixsock.Getpeername(fd)
	if err == nil && unixsock.IsOwn(peer) {
		err = fmt.Errorf("client data socket %s is one of the switch's own sockets", to.String())
	}
	if err != nil {
		unix.Close(fd)
		return -1, err
	}
	local := unixsock.UniqueAbstract("umlswitch", os.Getpid())
	if err := unixsock.Bind(fd, &local); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("bind data socket: %w", err)
	}
	return fd, nil
}

// connectAs connects fd to a client's data address as the client could
// itself. A root switch takes the client's file system identity for the
// connect, so the kernel checks the socket file's permissions (and the
// directories' on the way) against the client: a root-only socket, of the
// switch or of any other program, is out of its reach.
//
// Abstract names have no permission model, so any user may send to them
// anyway: they are connected as the switch is, which also spares UML
// clients (always abstract) a thread per attach.
//
// A switch that is not root cannot take another user's identity, and
// connecting with its own would let a client reach the switch user's
// private sockets. It connects such a client only to a socket file the
// client owns (connectOwned): libvdeplug and UML bind their own. A client
// whose credentials the kernel did not give (another user namespace) gets
// no filesystem address at all.
func connectAs(fd int, to *unixsock.Addr, cred peercred.Cred) error {
	if to.IsAbstract() {
		return unixsock.Connect(fd, to)
	}
	if !cred.Known() {
		return errors.New("a filesystem data address needs the client's credentials, and the kernel gave none")
	}
	err := peercred.Do(cred, func() error { return unixsock.Connect(fd, to) })
	if errors.Is(err, peercred.ErrCannotAct) {
		return connectOwned(fd, to, cred.UID)
	}
	return err
}

// connectOwned connects fd to the filesystem socket at to only if uid owns
// it. The file is opened (O_PATH) and checked first, then connected through
// its /proc/self/fd link, so the socket connected to is the one checked
// even if the path is changed in between.
func connectOwned(fd int, to *unixsock.Addr, uid uint32) error {
	path := to.FilesystemPath()
	pfd, err := unix.Open(path, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(pfd)
	var st unix.Stat_t
	if err := unix.Fstat(pfd, &st); err != nil {
		return &os.PathError{Op: "stat", Path: path, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFSOCK {
		return fmt.Errorf("%s is not a socket", path)
	}
	if st.Uid != uid {
		return fmt.Errorf("%s belongs to uid %d: a switch that is not root connects another user's client only to a socket of the client's own", path, st.Uid)
	}
	via, err := unixsock.FromPath(fmt.Sprintf("/proc/self/fd/%d", pfd))
	if err != nil {
		return err
	}
	return unixsock.Connect(fd, &via)
}
