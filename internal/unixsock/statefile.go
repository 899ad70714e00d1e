package unixsock

import (
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// ReplaceFile writes data to name in d so that a reader sees either the
// old file whole or the new one whole: it is written to name.new (created
// as CreateFile creates, mode perm) and renamed over name, which never
// follows a link at name. The switch's state files are written this way.
func (d *Dir) ReplaceFile(name string, data []byte, perm os.FileMode) error {
	tmp := name + ".new"
	f, err := d.CreateFile(tmp, perm, -1, -1)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = unix.Renameat(d.fd, tmp, d.fd, name)
		if err != nil {
			err = &os.PathError{Op: "rename", Path: d.join(tmp), Err: err}
		}
	}
	if err != nil {
		unix.Unlinkat(d.fd, tmp, 0)
		return err
	}
	return nil
}

// ErrNotOwnFile is wrapped by ReadOwnFile's refusals of a file that is
// there but not one to trust.
var ErrNotOwnFile = errors.New("not a file of this switch's")

// ReadOwnFile reads name in d, at most max bytes, if it is a regular file
// (not a link, a FIFO or a device: opening cannot block) that this process,
// root or the user it runs as (RunsAs) owns and that neither its group nor
// others may write: a state
// file someone else could have written is not one to act on. A missing
// file is an error wrapping os.ErrNotExist.
func (d *Dir) ReadOwnFile(name string, max int64) ([]byte, error) {
	path := d.join(name)
	fd, err := unix.Openat(d.fd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, &os.PathError{Op: "stat", Path: path, Err: err}
	}
	switch {
	case st.Mode&unix.S_IFMT != unix.S_IFREG:
		return nil, fmt.Errorf("%s: is not a regular file: %w", path, ErrNotOwnFile)
	case st.Uid != 0 && st.Uid != uint32(os.Geteuid()) && int64(st.Uid) != runsAs.Load():
		return nil, fmt.Errorf("%s: belongs to uid %d: %w", path, st.Uid, ErrNotOwnFile)
	case st.Nlink != 1:
		return nil, fmt.Errorf("%s: has %d links: %w", path, st.Nlink, ErrNotOwnFile)
	case st.Mode&0o022 != 0:
		return nil, fmt.Errorf("%s: its group or others may write it (mode %04o): %w", path, st.Mode&0o7777, ErrNotOwnFile)
	case st.Size > max:
		return nil, fmt.Errorf("%s: %d bytes, more than %d: %w", path, st.Size, max, ErrNotOwnFile)
	}
	return io.ReadAll(io.LimitReader(f, max))
}
