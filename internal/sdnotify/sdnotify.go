// Package sdnotify is the switch's side of systemd's service protocols,
// without libsystemd: sd_notify(3) (tell a Type=notify unit that the
// switch is serving, and when it is stopping) and sd_listen_fds(3) (take
// the sockets of a .socket unit). Outside systemd, where neither
// NOTIFY_SOCKET nor LISTEN_PID is set, every call is a no-op.
package sdnotify

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Ready tells systemd the switch is serving: its control sockets exist.
func Ready() error { return Notify("READY=1") }

// Stopping tells systemd the switch is shutting down.
func Stopping() error { return Notify("STOPPING=1") }

// Notify sends state (newline-separated VAR=value assignments, see
// sd_notify(3)) to $NOTIFY_SOCKET, a unix datagram socket: a path, or an
// abstract name when it starts with '@'. Unset, it does nothing.
func Notify(state string) error {
	name := os.Getenv("NOTIFY_SOCKET")
	if name == "" {
		return nil
	}
	if name[0] == '@' {
		name = "\x00" + name[1:] // abstract, spelled out rather than left to net's reading of '@'
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("sdnotify: %w", err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(state)); err != nil {
		return fmt.Errorf("sdnotify: send %q: %w", state, err)
	}
	return nil
}

// listenFdsStart is the first fd systemd passes (SD_LISTEN_FDS_START).
const listenFdsStart = 3

// Listeners returns the sockets systemd passed this process (socket
// activation), named after LISTEN_FDNAMES (FileDescriptorName= in the
// .socket unit), or "LISTEN_FD_n" without it. They are close-on-exec.
// None passed, or passed to another process (LISTEN_PID is not ours): nil.
// LISTEN_PID, LISTEN_FDS and LISTEN_FDNAMES are unset either way, so the
// processes the switch starts do not take the sockets for theirs.
func Listeners() ([]*os.File, error) { return listeners(listenFdsStart) }

// listeners is Listeners with the first fd given: tests cannot use fd 3.
func listeners(start int) ([]*os.File, error) {
	pidVar, fdsVar, namesVar := os.Getenv("LISTEN_PID"), os.Getenv("LISTEN_FDS"), os.Getenv("LISTEN_FDNAMES")
	_, hasNames := os.LookupEnv("LISTEN_FDNAMES")
	os.Unsetenv("LISTEN_PID")
	os.Unsetenv("LISTEN_FDS")
	os.Unsetenv("LISTEN_FDNAMES")
	if pidVar == "" {
		return nil, nil
	}
	pid, err := strconv.Atoi(pidVar)
	if err != nil {
		return nil, fmt.Errorf("sdnotify: LISTEN_PID=%q is not a pid", pidVar)
	}
	if pid != os.Getpid() {
		return nil, nil
	}
	n, err := strconv.Atoi(fdsVar)
	if err != nil || n < 0 {
		return nil, fmt.Errorf("sdnotify: LISTEN_FDS=%q is not a count of sockets", fdsVar)
	}
	if n == 0 {
		return nil, nil
	}
	var names []string
	if hasNames {
		names = strings.Split(namesVar, ":")
		if len(names) != n {
			return nil, fmt.Errorf("sdnotify: LISTEN_FDNAMES=%q names %d sockets, LISTEN_FDS=%d", namesVar, len(names), n)
		}
	}
	files := make([]*os.File, 0, n)
	for i := range n {
		fd := start + i
		// Mark it ours: close-on-exec, and proof that the fd is open.
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFD, unix.FD_CLOEXEC); err != nil {
			for _, f := range files {
				f.Close()
			}
			return nil, fmt.Errorf("sdnotify: LISTEN_FDS=%d, but fd %d: %w", n, fd, err)
		}
		name := "LISTEN_FD_" + strconv.Itoa(fd)
		if names != nil {
			name = names[i]
		}
		files = append(files, os.NewFile(uintptr(fd), name))
	}
	return files, nil
}
