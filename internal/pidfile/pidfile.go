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
//
// Writers of one pid file take turns through a lock file of their own next
// to it (PATH.lock, 0600), held only while the pid file is written and
// removed before Write returns. Pid files live in directories every user
// can read and often write (/run, /tmp), so the lock must not be one
// another user can hold or plant: a lock on the directory itself would
// let any user who can open it stop a root switch from starting.
// The lock file is never followed through a symbolic link, one owned by
// another user is refused, and a lock held by someone else is waited for
// a few seconds at most.
package pidfile

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

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
func Write(path string) (*File, error) { return write(path, 0) }

// TakeOver is Write for the new switch of a hot upgrade: a file holding
// old, the switch that handed over and is going, is replaced too.
func TakeOver(path string, old int) (*File, error) { return write(path, old) }

func write(path string, old int) (*File, error) {
	unlock, err := lock(path)
	if err != nil {
		return nil, fmt.Errorf("pidfile: %w", err)
	}
	defer unlock()
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
		case pid > 0 && pid != me && pid != old && alive(pid):
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

// maxPidFile bounds what is read of a pid file: a pid is a few digits, and
// a huge file planted in its place is not one.
const maxPidFile = 64

// readRaw returns what path holds, without following a symbolic link (one
// planted at a root switch's pid file would make it read, and name in its
// errors, a file of the planter's choosing).
func readRaw(path string) (string, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if errors.Is(err, unix.ELOOP) {
		return "", fmt.Errorf("%s is a symbolic link: not following it", path)
	}
	if err != nil {
		return "", err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxPidFile+1))
	if err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	return string(b), nil
}

// read returns the pid in path: 0 for an empty file, an error for one that
// holds something else (not a pid file: not ours to replace).
func read(path string) (int, error) {
	b, err := readRaw(path)
	if err != nil {
		return 0, err
	}
	s := strings.TrimSpace(b)
	if s == "" {
		return 0, nil
	}
	pid, err := strconv.Atoi(s)
	if err != nil || pid <= 0 || len(b) > maxPidFile {
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
	b, err := readRaw(f.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("pidfile: %w", err)
	}
	if strings.TrimSpace(b) != strconv.Itoa(f.pid) {
		return nil
	}
	if err := os.Remove(f.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("pidfile: %w", err)
	}
	return nil
}

// Reclaim makes path hold this process's pid again where it holds a pid
// that is gone, or nothing at all: an upgrade's new switch took the file
// over, failed and was stopped, and this one serves on. A file another
// live process holds is left alone.
func Reclaim(path string) error {
	unlock, err := lock(path)
	if err != nil {
		return fmt.Errorf("pidfile: %w", err)
	}
	defer unlock()
	me := os.Getpid()
	pid, err := read(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return fmt.Errorf("pidfile: %w", err)
	case pid == me || (pid > 0 && alive(pid)):
		return nil
	default:
		if err := os.Remove(path); err != nil {
			return fmt.Errorf("pidfile: %w", err)
		}
	}
	if err := create(path, me); err != nil {
		return fmt.Errorf("pidfile: %w", err)
	}
	return nil
}

// lockWait is how long Write waits for the lock file: writers hold it for
// the few system calls of a write, so a lock held longer is not another
// switch starting but a stuck or hostile holder. A variable for tests.
var lockWait = 3 * time.Second

// lockPoll is how often a held lock is tried again.
const lockPoll = 20 * time.Millisecond

// lock takes path's lock file, creating it, and returns what releases it:
// the file is removed while still locked, so nothing is left behind. A
// lock file that is a symbolic link, not a plain file or not ours is
// refused, not used: another user planted it.
func lock(path string) (unlock func(), err error) {
	name := path + ".lock"
	deadline := time.Now().Add(lockWait)
	for {
		// O_NONBLOCK: opening a FIFO planted there must not wait either.
		fd, err := unix.Open(name, unix.O_RDONLY|unix.O_CREAT|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0o600)
		if err != nil {
			if why := notOurs(name); why != "" {
				return nil, errors.New(why)
			}
			return nil, fmt.Errorf("lock file %s: %w", name, err)
		}
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			unix.Close(fd)
			return nil, fmt.Errorf("lock file %s: %w", name, err)
		}
		if why := refuse(name, &st); why != "" {
			unix.Close(fd)
			return nil, errors.New(why)
		}
		for {
			err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB)
			if err == nil {
				break
			}
			if err != unix.EWOULDBLOCK && err != unix.EINTR {
				unix.Close(fd)
				return nil, fmt.Errorf("lock %s: %w", name, err)
			}
			if time.Now().After(deadline) {
				unix.Close(fd)
				return nil, fmt.Errorf("%s is locked by %s and was not released in %v: another switch is stuck writing %s, or the lock is not a switch's (remove %s)",
					name, holder(&st), lockWait, path, name)
			}
			time.Sleep(lockPoll)
		}
		// The holder removes the file before it unlocks: a lock on an inode
		// the name no longer leads to excludes no one, so start again.
		if same(name, &st) {
			return func() {
				if same(name, &st) {
					unix.Unlink(name)
				}
				unix.Close(fd)
			}, nil
		}
		unix.Close(fd)
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%s kept being replaced for %v: not writing %s", name, lockWait, path)
		}
	}
}

// refuse says why the lock file st (opened at name) is not one to use, or
// "" when it is ours.
func refuse(name string, st *unix.Stat_t) string {
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return fmt.Sprintf("lock file %s is not a plain file: not using it", name)
	}
	if uid := uint32(os.Geteuid()); st.Uid != uid {
		return fmt.Sprintf("lock file %s belongs to uid %d, not to this switch's uid %d: not using it (remove it if no switch of that user writes this pid file)",
			name, st.Uid, uid)
	}
	return ""
}

// notOurs explains why the lock file could not be opened when that is
// because of what another user put there (a link, or a file the kernel's
// protected_regular keeps us from opening): "" otherwise.
func notOurs(name string) string {
	var st unix.Stat_t
	if unix.Lstat(name, &st) != nil {
		return ""
	}
	if st.Mode&unix.S_IFMT == unix.S_IFLNK {
		return fmt.Sprintf("lock file %s is a symbolic link: not following it", name)
	}
	return refuse(name, &st)
}

// same reports whether name still leads to the inode st describes.
func same(name string, st *unix.Stat_t) bool {
	var now unix.Stat_t
	return unix.Lstat(name, &now) == nil && now.Dev == st.Dev && now.Ino == st.Ino
}

// holder names the process that holds a flock on st's inode, as
// /proc/locks shows it, or says it is unknown.
func holder(st *unix.Stat_t) string {
	f, err := os.Open("/proc/locks")
	if err != nil {
		return "another process"
	}
	defer f.Close()
	// "1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF"; waiters have "->"
	// after the number.
	inode := fmt.Sprintf("%02x:%02x:%d", unix.Major(uint64(st.Dev)), unix.Minor(uint64(st.Dev)), st.Ino)
	s := bufio.NewScanner(f)
	for s.Scan() {
		f := strings.Fields(s.Text())
		if len(f) >= 6 && f[1] == "FLOCK" && f[5] == inode {
			return "pid " + f[4]
		}
	}
	return "another process"
}
