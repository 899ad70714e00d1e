package capture

import (
	"bufio"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/umlswitch/umlswitch/internal/peercred"
	"github.com/umlswitch/umlswitch/internal/unixsock"
)

// fileOutput writes to a file, starting PATH.1, PATH.2, ... whenever the
// current one would grow past rotate bytes, and keeping the newest keep.
//
// A root switch may write where other users can (/tmp), so every file is
// made in the directory opened once and checked (unixsock.OpenDir), never
// through a link, never over another user's file or a hard link, and
// readable by its owner only (unixsock.Dir.CreateFile).
type fileOutput struct {
	path     string
	dir      *unixsock.Dir
	base     string // PATH's name in dir
	uid, gid int    // the files' owner (Config.Owner); -1: the switch
	rotate   int64
	keep     int
	log      *slog.Logger

	f     *os.File
	bw    *bufio.Writer
	size  int64
	seq   int   // the current file's number; 0 is PATH itself
	retry int64 // after a failed rotation: the size to try again at
}

func newFileOutput(path string, hdr []byte, rotate int64, keep int, owner *peercred.Cred, log *slog.Logger) (*fileOutput, error) {
	o := &fileOutput{path: path, rotate: rotate, keep: keep, log: log, uid: -1, gid: -1}
	dir, base := filepath.Dir(path), filepath.Base(path)
	if strings.HasSuffix(path, "/") || base == "." || base == ".." || base == "/" {
		return nil, fmt.Errorf("capture file %q: not a file name", path)
	}
	o.base = base
	open := func() error {
		d, err := unixsock.OpenDir(dir, o.uid)
		if err != nil {
			return fmt.Errorf("capture file %s: %w", path, err)
		}
		f, err := d.CreateFile(base, DefaultFileMode, o.uid, o.gid)
		if err != nil {
			d.Close()
			return fmt.Errorf("capture: %w", err)
		}
		o.dir, o.f = d, f
		return nil
	}
	var err error
	if owner != nil {
		o.uid, o.gid = int(owner.UID), int(owner.GID)
		err = peercred.Do(*owner, open)
	} else {
		err = open()
	}
	if err != nil {
		return nil, err
	}
	if err := o.start(o.f, hdr); err != nil {
		o.close(nil)
		return nil, err
	}
	return o, nil
}

func (o *fileOutput) name(seq int) string {
	if seq == 0 {
		return o.base
	}
	return fmt.Sprintf("%s.%d", o.base, seq)
}

// start makes f the current file, beginning with hdr.
func (o *fileOutput) start(f *os.File, hdr []byte) error {
	o.f, o.bw, o.size = f, bufio.NewWriterSize(f, 256<<10), 0
	return o.put(hdr)
}

func (o *fileOutput) put(b []byte) error {
	n, err := o.bw.Write(b)
	o.size += int64(n)
	return err
}

func (o *fileOutput) write(chunk []byte, _ int, hdr []byte) error {
	if o.rotate > 0 && o.size+int64(len(chunk)) > o.rotate && o.size > int64(len(hdr)) && o.size >= o.retry {
		if err := o.next(hdr); err != nil {
			return err
		}
	}
	if err := o.put(chunk); err != nil {
		return err
	}
	return o.bw.Flush() // readers see whole blocks as soon as they are written
}

// next starts the following file with the header (and every port
// described so far), then closes the current one and drops the oldest
// beyond keep. If the next name cannot be used (another user put a link
// or a file of theirs there) that number is skipped and the current file
// goes on growing until another rotate bytes have been written: a capture
// is not lost to a planted name.
func (o *fileOutput) next(hdr []byte) error {
	o.seq++
	f, err := o.dir.CreateFile(o.name(o.seq), DefaultFileMode, o.uid, o.gid)
	if err != nil {
		o.log.Warn("mirror rotation: keeping the current file", "err", err)
		o.retry = o.size + o.rotate
		return nil
	}
	if err := o.finish(nil); err != nil {
		f.Close()
		return err
	}
	if o.keep > 0 && o.seq-o.keep >= 0 {
		if err := o.dir.RemoveFile(o.name(o.seq-o.keep), o.uid); err != nil {
			o.log.Warn("mirror rotation", "err", err)
		}
	}
	o.retry = 0
	return o.start(f, hdr)
}

func (o *fileOutput) finish(trailer []byte) error {
	err := o.put(trailer)
	if ferr := o.bw.Flush(); err == nil {
		err = ferr
	}
	if cerr := o.f.Close(); err == nil {
		err = cerr
	}
	return err
}

func (o *fileOutput) close(trailer []byte) error {
	err := o.finish(trailer)
	o.dir.Close()
	return err
}
