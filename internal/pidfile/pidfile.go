// Package pidfile writes the switch's pid file ("PID\n") and keeps it
// honest: a file left by a switch that died is replaced, one naming a live
// process is refused, and the switch removes the file on its way out only
// if it is still its own.
//
// The file is not kept open (nor locked): a Netkit tool counts the open
// files whose path contains the control socket's path, and a pid file
// named after the socket (uml.ctl.pid) would be one. Liveness is kill(pid, 0) instead, so a
// pid that another program has since been given (after a reboot, in a
// directory that is not cleared at boot) reads as live: remove the file.
package pidfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// File is a pid file this process wrote.
type File struct {
	path string
	pid  int
}

// Write creates path holding this process's pid. A file already there is
// replaced when the pid in it is not a running process (or is ours, or the
// file is empty: a writer died mid-way), and refused when it is running or
// the file does not hold a pid at all.
func Write(path string) (*File, error) {
	// Writers in one directory take turns, so two switches replacing the
	// same stale file cannot both win. The lock goes with the directory's
	// fd, closed on return; a directory we may not read goes unlocked.
	if dir, err := unix.Open(filepath.Dir(path), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0); err == nil {
		defer unix.Close(dir)
		if err := unix.Flock(dir, unix.LOCK_EX); err != nil {
			return nil, fmt.Errorf("pidfile: lock %s: %w", filepath.Dir(path), err)
		}
	}
	me := os.Getpid()
	for tries := 0; ; tries++ {
		err := create(path, me)
		if err == nil {
			return &File{path: path, pid: me}, nil
		}
		if !errors.Is(err, fs.ErrExist) || tries == 2 {
			return nil, fmt.Errorf("pidfile: %w", err)
		}
		pid, err := read(path)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			continue // gone since: try again
		case err != nil:
			return nil, fmt.Errorf("pidfile: %w", err)
		case pid > 0 && pid != me && alive(pid):
			return nil, fmt.Errorf("pidfile: %s belongs to pid %d, which is still running", path, pid)
		}
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("pidfile: replace stale %s: %w", path, err)
		}
	}
}

// create makes path with O_EXCL and writes pid to it.
func create(path string, pid int) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	_, err = f.WriteString(strconv.Itoa(pid) + "\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path) // a half-written file would read as stale anyway
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// read returns the pid in path: 0 for an empty file, an error for one that
// holds something else (not a pid file: not ours to replace).
func read(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return 0, nil
	}
	pid, err := strconv.Atoi(s)
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("%s exists and does not hold a pid: not replacing it", path)
	}
	return pid, nil
}

// alive reports whether pid is a process: kill(pid, 0) fails with ESRCH
// only when there is none (EPERM: there is, another user's).
func alive(pid int) bool {
	return !errors.Is(unix.Kill(pid, 0), unix.ESRCH)
}

// Path is the file's path.
func (f *File) Path() string { return f.path }

// Remove deletes the file if it still holds this process's pid: one that
// another switch has since taken over is left alone. A nil File, or a file
// already gone, is nothing to do.
func (f *File) Remove() error {
	if f == nil {
		return nil
	}
	b, err := os.ReadFile(f.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("pidfile: %w", err)
	}
	if strings.TrimSpace(string(b)) != strconv.Itoa(f.pid) {
		return nil
	}
	if err := os.Remove(f.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("pidfile: %w", err)
	}
	return nil
}
