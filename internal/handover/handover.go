// Package handover passes a running switch's sockets to a new process of
// the binary on disk, a hot upgrade as HAProxy and nginx do theirs: the new
// process takes the sockets over instead of opening its own, says when it
// serves, and only then does the old one go. Clients never see the switch
// go away: their sockets are the same sockets.
//
// The new process gets a control connection as fd 3 (named by the
// environment variable UMLSWITCH_HANDOVER) and the sockets after it; the
// old one writes on the connection what each socket is, and reads back
// "ready" or why not.
package handover

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// envVar names the new process's control connection, envPID the old
// switch's pid and envPIDFD its pidfd, both handed over.
const (
	envVar   = "UMLSWITCH_HANDOVER"
	envPID   = "UMLSWITCH_HANDOVER_PID"
	envPIDFD = "UMLSWITCH_HANDOVER_PIDFD"
)

// controlFD is where the new process finds its control connection.
const controlFD = 3

// Item is one socket handed over.
type Item struct {
	Kind string          `json:"kind"` // who takes it: Listener, or a port kind's own ("daemon-client")
	Key  string          `json:"key"`  // which one, as that kind names it: a listener's path
	Meta json.RawMessage `json:"meta,omitempty"`
	FD   int             `json:"fd"` // in the new process
	File *os.File        `json:"-"`
}

// Listener is the Kind of a listening unix socket, by its path.
const Listener = "listener"

// maxManifest bounds what the new process reads of the manifest.
const maxManifest = 64 << 20

// Start runs exe with args as a new switch, hands it items and waits, at
// most timeout, until it says it serves. On an error the new process has
// been stopped (or never ran) and the caller keeps serving: nothing it
// holds was given up. Its output goes to stderr.
func Start(exe string, args []string, items []Item, timeout time.Duration, stderr io.Writer) (pid int, err error) {
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("handover: %w", err)
	}
	mine, theirs := os.NewFile(uintptr(pair[0]), "handover"), os.NewFile(uintptr(pair[1]), "handover")
	defer mine.Close()
	cmd := exec.Command(exe, args...)
	cmd.Env = append(os.Environ(), envVar+"="+strconv.Itoa(controlFD), envPID+"="+strconv.Itoa(os.Getpid()))
	cmd.Stdout, cmd.Stderr = stderr, stderr
	cmd.ExtraFiles = []*os.File{theirs}
	for i := range items {
		items[i].FD = controlFD + 1 + i
		cmd.ExtraFiles = append(cmd.ExtraFiles, items[i].File)
	}
	// A pidfd of this process, by which the new one knows when it has
	// gone, whoever its parent is by then (see watchPredecessor).
	if fd, err := unix.PidfdOpen(os.Getpid(), 0); err == nil {
		self := os.NewFile(uintptr(fd), "pidfd")
		defer self.Close()
		cmd.Env = append(cmd.Env, envPIDFD+"="+strconv.Itoa(controlFD+1+len(items)))
		cmd.ExtraFiles = append(cmd.ExtraFiles, self)
	}
	err = cmd.Start()
	theirs.Close()
	if err != nil {
		return 0, fmt.Errorf("handover: start %s: %w", exe, err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	fail := func(err error) (int, error) {
		cmd.Process.Kill()
		<-exited
		return 0, fmt.Errorf("handover: the new switch (%s): %w", exe, err)
	}
	ended := func() (int, error) {
		<-exited
		return 0, fmt.Errorf("handover: the new switch (%s) ended before it served: %v", exe, cmd.ProcessState)
	}
	mine.SetDeadline(time.Now().Add(timeout))
	if err := json.NewEncoder(mine).Encode(items); err != nil {
		// A binary that fails at once can exit before it reads the list:
		// say so, as when it exits after, rather than "broken pipe".
		if errors.Is(err, unix.EPIPE) || errors.Is(err, unix.ECONNRESET) {
			select {
			case <-exited:
				return ended()
			case <-time.After(time.Second):
			}
		}
		return fail(err)
	}
	line, err := bufio.NewReader(mine).ReadString('\n')
	line = strings.TrimSpace(line)
	switch {
	case line == "ready":
		return cmd.Process.Pid, nil
	case line != "":
		return fail(errors.New(line))
	case errors.Is(err, os.ErrDeadlineExceeded):
		return fail(fmt.Errorf("not serving after %v", timeout))
	default:
		return ended()
	}
}

// Upgrading reports whether this process is the new switch of a hot
// upgrade, before Adopt reads what it was handed; its parent is then the
// old switch.
func Upgrading() bool {
	_, ok := os.LookupEnv(envVar)
	return ok
}

// OldSwitch is, in the new switch of a hot upgrade, the old switch's pid.
// Not simply the parent's: the old switch may have died since, and this
// process have been given to another parent. A switch started by one too
// old to say has only its parent's pid to go by.
func OldSwitch() int {
	if pid, err := strconv.Atoi(os.Getenv(envPID)); err == nil && pid > 0 {
		return pid
	}
	return os.Getppid()
}

// Dup duplicates c's socket for a hand-over. Not through the connection's
// File method: Fd on the file that returns puts the socket, which the
// duplicate shares its flags with, into blocking mode, and this process
// still serves it (a blocked accept or read never returns to Close).
func Dup(c syscall.Conn, name string) (*os.File, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	nfd := -1
	cerr := rc.Control(func(fd uintptr) { nfd, err = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0) })
	if cerr != nil {
		return nil, cerr
	}
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(nfd), name), nil // already non-blocking: Fd leaves it so
}

// adoption is what this process was handed, if it is the new switch of a
// hot upgrade.
var adoption struct {
	mu    sync.Mutex
	conn  *os.File
	items map[string]Item // by kind and key
}

func itemKey(kind, key string) string { return kind + "\x00" + key }

// Adopt reads what the old switch hands over when this process is the new
// one of a hot upgrade, and reports whether it is. Take gives each socket
// out once; Ready or Failed answers the old switch.
func Adopt() (bool, error) {
	v, ok := os.LookupEnv(envVar)
	if !ok {
		return false, nil
	}
	os.Unsetenv(envVar)
	fd, err := strconv.Atoi(v)
	if err != nil || fd != controlFD {
		return false, fmt.Errorf("handover: %s=%q", envVar, v)
	}
	unix.CloseOnExec(fd)
	conn := os.NewFile(uintptr(fd), "handover")
	var items []Item
	if err := json.NewDecoder(io.LimitReader(conn, maxManifest)).Decode(&items); err != nil {
		conn.Close()
		return false, fmt.Errorf("handover: the old switch's list: %w", err)
	}
	adoption.mu.Lock()
	defer adoption.mu.Unlock()
	adoption.conn = conn
	adoption.items = make(map[string]Item, len(items))
	for _, it := range items {
		if it.FD <= controlFD {
			continue
		}
		unix.CloseOnExec(it.FD)
		it.File = os.NewFile(uintptr(it.FD), it.Kind+" "+it.Key)
		adoption.items[itemKey(it.Kind, it.Key)] = it
	}
	watchPredecessor()
	return true, nil
}

// Take returns the socket of kind handed over as key, once.
func Take(kind, key string) (Item, bool) {
	adoption.mu.Lock()
	defer adoption.mu.Unlock()
	k := itemKey(kind, key)
	it, ok := adoption.items[k]
	delete(adoption.items, k)
	return it, ok
}

// TakeFD is Take for a caller that wants a plain descriptor: a duplicate,
// close-on-exec and non-blocking, of the socket of kind handed over as
// key, once.
func TakeFD(kind, key string) (int, bool) {
	it, ok := Take(kind, key)
	if !ok {
		return -1, false
	}
	return it.Descriptor()
}

// Descriptor turns the item's file into a plain descriptor of the caller's: a
// duplicate, close-on-exec and non-blocking; the file is closed.
func (it Item) Descriptor() (int, bool) {
	defer it.File.Close()
	fd, err := unix.FcntlInt(it.File.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return -1, false
	}
	unix.SetNonblock(fd, true)
	return fd, true
}

// All takes every socket of kind handed over.
func All(kind string) []Item {
	adoption.mu.Lock()
	defer adoption.mu.Unlock()
	var out []Item
	for k, it := range adoption.items {
		if it.Kind == kind {
			out = append(out, it)
			delete(adoption.items, k)
		}
	}
	return out
}

// Ready tells the old switch that this one serves, and closes the sockets
// nothing took (their clients went meanwhile, or the configuration no
// longer has them). It returns how many those were.
func Ready() int { return answer("ready") }

// Failed tells the old switch why this one could not take over; it then
// goes on serving and stops this one.
func Failed(err error) { answer(strings.ReplaceAll(err.Error(), "\n", " ")) }

func answer(line string) int {
	adoption.mu.Lock()
	defer adoption.mu.Unlock()
	if adoption.conn == nil {
		return 0
	}
	adoption.conn.Write([]byte(line + "\n"))
	adoption.conn.Close()
	adoption.conn = nil
	n := len(adoption.items)
	for k, it := range adoption.items {
		it.File.Close()
		delete(adoption.items, k)
	}
	return n
}

// leaving is set in the old switch once the new one serves.
var leaving atomic.Bool

// Leave marks this process as the old switch of an upgrade that
// succeeded: it stops without removing the socket files, state files or
// taps the new one now serves on (see Leaving).
func Leave() { leaving.Store(true) }

// Leaving reports whether this process handed its sockets over and is on
// its way out.
func Leaving() bool { return leaving.Load() }

// ListenTCP listens on the TCP address addr, or takes the listener an old
// switch handed over under kind and addr (a hot upgrade: the old one still
// holds the port, so the new one could not bind it).
func ListenTCP(kind, addr string) (net.Listener, error) {
	if it, ok := Take(kind, addr); ok {
		defer it.File.Close()
		return net.FileListener(it.File)
	}
	return net.Listen("tcp", addr)
}

// TCPListener is what a hot upgrade hands over of ln, a listener that
// ListenTCP(kind, addr) opened: nothing if it is not a TCP listener.
func TCPListener(kind, addr string, ln net.Listener) []Item {
	tl, ok := ln.(*net.TCPListener)
	if !ok {
		return nil
	}
	f, err := Dup(tl, kind+" "+addr)
	if err != nil {
		return nil
	}
	return []Item{{Kind: kind, Key: addr, File: f}}
}
