package capture

import (
	"bufio"
	"fmt"
	"log/slog"
	"os"
)

// fileOutput writes to a file, starting PATH.1, PATH.2, ... whenever the
// current one would grow past rotate bytes, and keeping the newest keep.
type fileOutput struct {
	path   string
	rotate int64
	keep   int
	log    *slog.Logger

	f    *os.File
	bw   *bufio.Writer
	size int64
	seq  int // the current file's number; 0 is PATH itself
}

func newFileOutput(path string, hdr []byte, rotate int64, keep int, log *slog.Logger) (*fileOutput, error) {
	o := &fileOutput{path: path, rotate: rotate, keep: keep, log: log}
	if err := o.open(hdr); err != nil {
		return nil, err
	}
	return o, nil
}

func (o *fileOutput) name(seq int) string {
	if seq == 0 {
		return o.path
	}
	return fmt.Sprintf("%s.%d", o.path, seq)
}

func (o *fileOutput) open(hdr []byte) error {
	f, err := os.OpenFile(o.name(o.seq), os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	o.f, o.bw, o.size = f, bufio.NewWriterSize(f, 256<<10), 0
	return o.put(hdr)
}

func (o *fileOutput) put(b []byte) error {
	n, err := o.bw.Write(b)
	o.size += int64(n)
	return err
}

func (o *fileOutput) write(chunk []byte, _ int, hdr []byte) error {
	if o.rotate > 0 && o.size+int64(len(chunk)) > o.rotate && o.size > int64(len(hdr)) {
		if err := o.next(hdr); err != nil {
			return err
		}
	}
	if err := o.put(chunk); err != nil {
		return err
	}
	return o.bw.Flush() // readers see whole blocks as soon as they are written
}

// next closes the current file and starts the following one with the
// header (and every port described so far), dropping the oldest beyond keep.
func (o *fileOutput) next(hdr []byte) error {
	if err := o.finish(nil); err != nil {
		return err
	}
	o.seq++
	if o.keep > 0 && o.seq-o.keep >= 0 {
		if err := os.Remove(o.name(o.seq - o.keep)); err != nil && !os.IsNotExist(err) {
			o.log.Warn("mirror rotation", "err", err)
		}
	}
	return o.open(hdr)
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

func (o *fileOutput) close(trailer []byte) error { return o.finish(trailer) }
