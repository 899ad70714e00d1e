package configs

import (
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// MaxFileSize bounds a configuration file: a path that names something
// endless (a device, /proc) must end in an error, not fill memory.
const MaxFileSize = 16 << 20

// ReadFile reads the configuration file at path, which must be a regular
// file. Opening does not block (O_NONBLOCK) and the check is made on the
// opened descriptor (fstat), so that a FIFO or a device at the path is
// refused at once instead of hanging the start, SIGHUP or ctl reload until
// someone writes to it.
func ReadFile(path string) ([]byte, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, &os.PathError{Op: "stat", Path: path, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, fmt.Errorf("%s: not a regular file (%s)", path, fileType(st.Mode))
	}
	if st.Size > MaxFileSize {
		return nil, fmt.Errorf("%s: %d bytes, more than the %d a configuration may have", path, st.Size, MaxFileSize)
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxFileSize {
		return nil, fmt.Errorf("%s: more than the %d bytes a configuration may have", path, MaxFileSize)
	}
	return data, nil
}

// fileType names a file's type for the error that refuses it.
func fileType(mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFIFO:
		return "a FIFO"
	case unix.S_IFSOCK:
		return "a socket"
	case unix.S_IFCHR:
		return "a character device"
	case unix.S_IFBLK:
		return "a block device"
	case unix.S_IFDIR:
		return "a directory"
	}
	return fmt.Sprintf("type %#o", mode&unix.S_IFMT)
}
