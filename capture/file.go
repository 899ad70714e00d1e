package capture

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

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
//
// The file only ever ends at a whole block (or pcap record): a write that
// fails (a full disk) is cut back off, its frames are lost and counted,
// and writing resumes there once it works again, first with the port
// descriptions the lost bytes held. A file removed (or renamed) while it
// is written is noticed within a second and made again at its path.
type fileOutput struct {
	path     string
	dir      *unixsock.Dir
	base     string // PATH's name in dir
	uid, gid int    // the files' owner (Config.Owner); -1: the switch
	rotate   int64
	keep     int
	log      *slog.Logger
	wrap     func(*os.File) fileHandle // tests: a disk that fills up

	f        fileHandle
	dev, ino uint64 // f's, to tell whether its name still leads to it
	size     int64  // f's whole blocks end here: where the next write goes
	torn     bool   // a failed write may have left a part block past size
	hdr      []byte // the header as of the last write: the section header and every port described
	hdrDone  int    // how much of hdr f holds
	seq      int    // the current file's number; 0 is PATH itself
	retry    int64  // after a failed rotation: the size to try again at

	lost    uint64    // frames lost since writing began to fail; 0 while it works
	checked time.Time // when the path was last checked to lead to f
	stray   bool      // f's name leads elsewhere and a new file could not be made (said once)
}

// fileHandle is the open capture file as fileOutput uses it: an *os.File,
// or in tests one in front of it that runs out of space.
type fileHandle interface {
	WriteAt(b []byte, off int64) (int, error)
	Truncate(size int64) error
	Stat() (os.FileInfo, error)
	Close() error
}

// pathCheck is how often the current file's name is checked to still lead
// to it: per write would be a syscall per batch of frames.
const pathCheck = time.Second

func newFileOutput(path string, hdr []byte, rotate int64, keep int, owner *peercred.Cred, log *slog.Logger) (*fileOutput, error) {
	o := &fileOutput{path: path, rotate: rotate, keep: keep, log: log, uid: -1, gid: -1}
	dir, base := filepath.Dir(path), filepath.Base(path)
	if strings.HasSuffix(path, "/") || base == "." || base == ".." || base == "/" {
		return nil, fmt.Errorf("capture file %q: not a file name", path)
	}
	o.base = base
	var f *os.File
	open := func() error {
		d, err := unixsock.OpenDir(dir, o.uid)
		if err != nil {
			return fmt.Errorf("capture file %s: %w", path, err)
		}
		f, err = d.CreateFile(base, DefaultFileMode, o.uid, o.gid)
		if err != nil {
			d.Close()
			return fmt.Errorf("capture: %w", err)
		}
		o.dir = d
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
	o.start(f)
	if err := o.append(hdr, nil); err != nil {
		o.close(nil)
		return nil, fmt.Errorf("capture file %s: %w", path, err)
	}
	o.hdr, o.hdrDone = hdr, len(hdr)
	return o, nil
}

func (o *fileOutput) name(seq int) string {
	if seq == 0 {
		return o.base
	}
	return fmt.Sprintf("%s.%d", o.base, seq)
}

// create makes file name in the directory, as rotation does: by the
// directory's descriptor, never through a link, given to the owner.
func (o *fileOutput) create(name string) (*os.File, error) {
	return o.dir.CreateFile(name, DefaultFileMode, o.uid, o.gid)
}

// start makes f the current file, empty: the next write begins it with
// the header.
func (o *fileOutput) start(f *os.File) {
	o.f = f
	if o.wrap != nil {
		o.f = o.wrap(f)
	}
	o.size, o.hdrDone, o.torn = 0, 0, false
	o.dev, o.ino = 0, 0
	if fi, err := f.Stat(); err == nil {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			o.dev, o.ino = st.Dev, st.Ino
		}
	}
	o.checked = time.Now()
}

// append writes a then b at the end of the file's whole blocks. If that
// fails, whatever part of them got written is cut off again (now, or
// before the next write if the cut fails too), so the file never ends
// in half a block.
func (o *fileOutput) append(a, b []byte) error {
	if o.torn {
		if err := o.f.Truncate(o.size); err != nil {
			return fmt.Errorf("cutting back a part block: %w", err)
		}
		o.torn = false
	}
	n, err := o.f.WriteAt(a, o.size)
	if err == nil {
		var nb int
		nb, err = o.f.WriteAt(b, o.size+int64(n))
		n += nb
	}
	if err != nil {
		// Whatever n says: a full tmpfs reports nothing written and
		// still leaves the file a page longer.
		o.torn = o.f.Truncate(o.size) != nil
		return err
	}
	o.size += int64(n)
	return nil
}

// errLost tells the mirror that a write's frames are not in the file.
var errLost = errors.New("capture file: frames lost")

func (o *fileOutput) write(v *view, frames int, hdr []byte) error {
	o.hdr = hdr
	if v == nil || len(v.b) == 0 {
		return nil
	}
	// hdr past v.hdrBefore describes ports first seen in v, and v
	// describes them itself.
	described := max(v.hdrBefore, o.hdrDone)
	chunk := v.b
	if time.Since(o.checked) >= pathCheck {
		o.checkPath()
	}
	if o.rotate > 0 && o.size+int64(len(chunk)) > o.rotate && o.size > int64(o.hdrDone) && o.size >= o.retry {
		o.next()
	}
	// A new file, or one whose last writes were lost, first gets the
	// port descriptions it lacks, so its packets name known interfaces.
	if err := o.append(hdr[o.hdrDone:described], chunk); err != nil {
		if o.lost == 0 {
			o.log.Warn("capture file cannot be written: dropping frames until it can", "file", o.path, "err", err)
		}
		o.lost += uint64(frames)
		return errLost
	}
	o.hdrDone = v.hdrAfter
	if o.lost > 0 {
		o.log.Warn("capture file written again", "file", o.path, "lost", o.lost)
		o.lost = 0
	}
	return nil
}

// checkPath starts a new file at the current one's name if that name no
// longer leads to it (removed or renamed: frames would go where no one
// sees them), the way rotation makes its files.
func (o *fileOutput) checkPath() {
	o.checked = time.Now()
	name := o.name(o.seq)
	if same, err := o.dir.Names(name, o.dev, o.ino); err != nil || same {
		return
	}
	f, err := o.create(name)
	if err != nil {
		if !o.stray {
			o.log.Warn("capture file is gone from its name and cannot be made again: writing on to the old one", "file", o.path, "err", err)
			o.stray = true
		}
		return
	}
	o.stray = false
	o.log.Warn("capture file was removed or renamed: starting it again", "file", filepath.Join(o.dir.Path(), name))
	if err := o.f.Close(); err != nil {
		o.log.Warn("capture file close", "file", o.path, "err", err)
	}
	o.start(f)
}

// next starts the following file (the next write begins it with the
// header and every port described so far), then closes the current one
// and drops the oldest beyond keep. If the next name cannot be used
// (another user put a link or a file of theirs there) that number is
// skipped and the current file goes on growing until another rotate
// bytes have been written: a capture is not lost to a planted name.
func (o *fileOutput) next() {
	o.seq++
	f, err := o.create(o.name(o.seq))
	if err != nil {
		o.log.Warn("mirror rotation: keeping the current file", "err", err)
		o.retry = o.size + o.rotate
		return
	}
	if err := o.f.Close(); err != nil {
		o.log.Warn("mirror rotation", "file", o.path, "err", err)
	}
	if o.keep > 0 && o.seq-o.keep >= 0 {
		if err := o.dir.RemoveFile(o.name(o.seq-o.keep), o.uid); err != nil {
			o.log.Warn("mirror rotation", "err", err)
		}
	}
	o.retry = 0
	o.start(f)
}

// close ends the file with the trailer, after the port descriptions a
// failed write took with it (the trailer's statistics name them).
func (o *fileOutput) close(trailer []byte) error {
	err := o.append(o.hdr[o.hdrDone:], trailer)
	if cerr := o.f.Close(); err == nil {
		err = cerr
	}
	o.dir.Close()
	if err != nil {
		return fmt.Errorf("capture file %s: %w", o.path, err)
	}
	return nil
}
