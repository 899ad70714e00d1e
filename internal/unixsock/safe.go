package unixsock

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// A root switch makes sockets and capture files in directories that other
// users may be able to write (/tmp, a lab's shared directory). Whoever can
// write a directory can swap an entry of it for a symbolic link between two
// calls that name it, so nothing here names a path twice: a directory is
// opened once and checked by its descriptor (Dir), and every create, link,
// chmod, chown and unlink afterwards is relative to that descriptor and
// never follows a link at the last component.

// Dir is a directory, open by descriptor, that was found fit to hold what
// the switch makes (see OpenDir).
type Dir struct {
	fd   int // O_PATH: search and *at calls only
	path string
}

// OpenDir opens the directory path (following links: what is checked is
// the directory reached, by its descriptor) and refuses it unless it is
// trusted:
//
//   - its owner is root, this process's effective uid, the user it acts
//     as (peercred.Do: the file system uid), the user it is to run as
//     (RunsAs), or owner (the uid the socket
//     or file is made for; -1 for none), since a directory's owner may
//     rename anything in it, or chmod it so that anyone can; and
//   - if its group or others may write it, it is sticky (as /tmp is), so
//     that each entry can only be renamed or removed by the entry's owner.
//     With POSIX ACLs the group bits are the ACL mask, so a named user
//     given write access counts too.
//
// Components above the directory are not checked: a user who controls
// one can make path lead elsewhere, but only to another directory that
// passes these checks.
func OpenDir(path string, owner int) (*Dir, error) {
	if path == "" {
		path = "."
	}
	fd, err := unix.Open(path, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open directory", Path: path, Err: err}
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, &os.PathError{Op: "stat directory", Path: path, Err: err}
	}
	if err := checkTrusted(path, &st, owner); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return &Dir{fd: fd, path: path}, nil
}

// runsAs is the uid the process is to run as (-user), -1 for none.
var runsAs atomic.Int64

func init() { runsAs.Store(-1) }

// RunsAs tells OpenDir that the process will change to uid once its ports
// are open: a directory that user owns is as trusted as one the process
// owns, since the process is about to be that user (Debian's
// /var/run/uml-utilities belongs to uml-net, the user uml_switch runs as).
func RunsAs(uid int) { runsAs.Store(int64(uid)) }

// checkTrusted is OpenDir's rule, on the directory's stat.
func checkTrusted(path string, st *unix.Stat_t, owner int) error {
	euid := uint32(os.Geteuid())
	if st.Uid != 0 && st.Uid != euid && st.Uid != fsuid() && int64(st.Uid) != runsAs.Load() && (owner < 0 || st.Uid != uint32(owner)) {
		return fmt.Errorf("directory %s is owned by uid %d, not by root or this switch (uid %d): "+
			"that user could swap what the switch creates there for a link; "+
			"use a directory owned by root (chown root %s) or another directory", path, st.Uid, euid, path)
	}
	if st.Mode&unix.S_ISVTX != 0 {
		return nil
	}
	switch {
	case st.Mode&0o002 != 0:
		return fmt.Errorf("directory %s is writable by others and not sticky: another user could swap "+
			"what the switch creates there for a link; use a directory only root can write, or chmod +t %s", path, path)
	case st.Mode&0o020 != 0:
		return fmt.Errorf("directory %s is writable by its group (gid %d) and not sticky: a member could swap "+
			"what the switch creates there for a link; use a directory only root can write, or chmod g-w or +t %s",
			path, st.Gid, path)
	}
	return nil
}

// Path is the directory as it was named.
func (d *Dir) Path() string { return d.path }

// Close closes the directory's descriptor.
func (d *Dir) Close() error {
	if d.fd < 0 {
		return nil
	}
	err := unix.Close(d.fd)
	d.fd = -1
	return err
}

// join is name in d, for messages.
func (d *Dir) join(name string) string { return filepath.Join(d.path, name) }

// splitPath splits path into its directory and a last component that can
// be a name in it.
func splitPath(path string) (dir, name string, err error) {
	dir, name = filepath.Split(path)
	if name == "" || name == "." || name == ".." {
		return "", "", fmt.Errorf("%q does not end in a file name", path)
	}
	if dir == "" {
		dir = "."
	}
	return filepath.Clean(dir), name, nil
}

// checkName refuses a name that is not one component.
func checkName(name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsRune(name, '/') {
		return fmt.Errorf("%q is not a file name", name)
	}
	return nil
}

// fsuid is the uid that files this goroutine creates get: the effective
// uid, or another user's when it runs in peercred.Do (whose thread is
// locked, so the value read here is that thread's).
func fsuid() uint32 {
	u, _ := unix.SetfsuidRetUid(-1) // -1 changes nothing and returns the current one
	return uint32(u)
}

// stat is fstatat of name in d, never following a link.
func (d *Dir) stat(name string, st *unix.Stat_t) error {
	return unix.Fstatat(d.fd, name, st, unix.AT_SYMLINK_NOFOLLOW)
}

// removeIf unlinks name in d if it is still the inode dev:ino, and leaves
// alone whatever has taken its place.
func (d *Dir) removeIf(name string, dev, ino uint64) error {
	var st unix.Stat_t
	if err := d.stat(name, &st); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		return &os.PathError{Op: "stat", Path: d.join(name), Err: err}
	}
	if st.Dev != dev || st.Ino != ino {
		return nil
	}
	if err := unix.Unlinkat(d.fd, name, 0); err != nil && !errors.Is(err, unix.ENOENT) {
		return &os.PathError{Op: "remove", Path: d.join(name), Err: err}
	}
	return nil
}
