package unixsock

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// CreateFile opens name in d for writing from its start, as a capture file
// wants it, and never through a link: a new file is created (O_EXCL) with
// perm; an existing one is reused only if it is a regular file owned by
// the user creating (or by uid), with no other name (one link), and is
// then truncated and given perm. A symbolic link, anything that is not a
// regular file, another user's file or a hard link is refused. uid and
// gid, unless -1, become the file's owner.
func (d *Dir) CreateFile(name string, perm os.FileMode, uid, gid int) (*os.File, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	path := d.join(name)
	for range 3 {
		fd, err := unix.Openat(d.fd, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, uint32(perm.Perm()))
		if errors.Is(err, unix.EEXIST) {
			fd, err = d.reuse(name, perm, uid)
			if errors.Is(err, unix.ENOENT) {
				continue // removed meanwhile: create it
			}
		}
		if err != nil {
			return nil, &os.PathError{Op: "create", Path: path, Err: err}
		}
		if err := chownFD(fd, uid, gid); err != nil {
			unix.Close(fd)
			return nil, &os.PathError{Op: "chown", Path: path, Err: err}
		}
		return os.NewFile(uintptr(fd), path), nil
	}
	return nil, fmt.Errorf("create %s: it keeps appearing and going", path)
}

// reuse opens the existing file name for CreateFile, checked on its
// descriptor (whatever the name pointed to before the open does not count).
func (d *Dir) reuse(name string, perm os.FileMode, uid int) (int, error) {
	var st unix.Stat_t
	if err := d.stat(name, &st); err != nil {
		return -1, err
	}
	if err := reusable(&st, uid); err != nil {
		return -1, err
	}
	// O_NONBLOCK: a FIFO put there meanwhile must not block the open.
	fd, err := unix.Openat(d.fd, name, unix.O_WRONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	if err := unix.Fstat(fd, &st); err == nil {
		err = reusable(&st, uid)
	}
	if err == nil {
		err = unix.Ftruncate(fd, 0)
	}
	if err == nil && st.Mode&0o7777 != uint32(perm.Perm()) {
		err = unix.Fchmod(fd, uint32(perm.Perm()))
	}
	if err == nil {
		_, err = unix.FcntlInt(uintptr(fd), unix.F_SETFL, 0) // clear O_NONBLOCK
	}
	if err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// reusable says why an existing file may not be truncated and written.
func reusable(st *unix.Stat_t, uid int) error {
	switch {
	case st.Mode&unix.S_IFMT == unix.S_IFLNK:
		return errors.New("is a symbolic link: remove it, the switch does not write through links")
	case st.Mode&unix.S_IFMT != unix.S_IFREG:
		return errors.New("exists and is not a regular file")
	case !ownedBy(st, uid):
		return fmt.Errorf("exists and belongs to uid %d: remove it, the switch does not overwrite another user's file", st.Uid)
	case st.Nlink != 1:
		return fmt.Errorf("has %d links: remove it, the switch does not write a file that has other names", st.Nlink)
	}
	return nil
}

// ownedBy reports whether st is the creating user's, or uid's.
func ownedBy(st *unix.Stat_t, uid int) bool {
	return st.Uid == fsuid() || (uid >= 0 && st.Uid == uint32(uid))
}

// chownFD gives the open file uid and gid (-1: unchanged) if it has not
// got them already.
func chownFD(fd, uid, gid int) error {
	if uid < 0 && gid < 0 {
		return nil
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	if (uid < 0 || st.Uid == uint32(uid)) && (gid < 0 || st.Gid == uint32(gid)) {
		return nil
	}
	return unix.Fchown(fd, uid, gid)
}

// RemoveFile unlinks name in d if it is a regular file of the user
// removing it (or of uid): rotation drops old capture files this way, and
// leaves alone whatever another user put in their place.
func (d *Dir) RemoveFile(name string, uid int) error {
	if err := checkName(name); err != nil {
		return err
	}
	var st unix.Stat_t
	if err := d.stat(name, &st); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		return &os.PathError{Op: "stat", Path: d.join(name), Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG || !ownedBy(&st, uid) {
		return fmt.Errorf("not removing %s: not a regular file of this switch", d.join(name))
	}
	return d.removeIf(name, st.Dev, st.Ino)
}

// CreatePath is CreateFile for a whole path, with its directory checked
// as OpenDir does: for a file a command writes where the user says
// (umlswitch capture -w, -cpuprofile), which may be run as root in /tmp.
func CreatePath(path string, perm os.FileMode) (*os.File, error) {
	dir, name, err := splitPath(path)
	if err != nil {
		return nil, err
	}
	d, err := OpenDir(dir, -1)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	return d.CreateFile(name, perm, -1, -1)
}

// Names reports whether name in d is the file dev:ino: a capture file
// notices so that it was removed or renamed while it was written.
func (d *Dir) Names(name string, dev, ino uint64) (bool, error) {
	var st unix.Stat_t
	if err := d.stat(name, &st); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return false, nil
		}
		return false, &os.PathError{Op: "stat", Path: d.join(name), Err: err}
	}
	return st.Dev == dev && st.Ino == ino, nil
}
