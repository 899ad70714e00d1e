// Package statefile keeps a small file that says how the switch runs now,
// for the switch that starts next to read: a control socket's clients, what
// the API changed. The file is replaced whole shortly after each change
// (changes in between are written together), never through a link, and is
// read only if nobody else could have written it.
package statefile

import (
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	"github.com/umlswitch/umlswitch/internal/unixsock"
)

// Saver replaces one state file after changes.
type Saver struct {
	dir    *unixsock.Dir
	name   string
	delay  time.Duration
	log    *slog.Logger
	lost   string        // what a failed write costs, for its warning
	render func() []byte // the file as it is to be now; nil: remove it

	mu      sync.Mutex // held while writing; guards the rest
	timer   *time.Timer
	started bool // writes may replace the file: it has been read
	stopped bool
	failed  bool // the last write failed: the next success is logged
}

// Open keeps the state file at path, in a directory the switch may trust
// (unixsock.OpenDir; owner is a uid it may belong to, -1 for none).
// render gives the file's content whenever it is written, nil to remove
// it; lost says what a failed write costs, for the warning it brings.
// Nothing is written before Start.
func Open(path string, owner int, delay time.Duration, log *slog.Logger, lost string, render func() []byte) (*Saver, error) {
	dir, err := unixsock.OpenDir(filepath.Dir(path), owner)
	if err != nil {
		return nil, err
	}
	return &Saver{dir: dir, name: filepath.Base(path), delay: delay, log: log, lost: lost, render: render}, nil
}

// Path is the file's.
func (s *Saver) Path() string { return filepath.Join(s.dir.Path(), s.name) }

// Read returns the file, at most max bytes, if it is one to trust
// (unixsock.Dir.ReadOwnFile); a missing file wraps os.ErrNotExist.
func (s *Saver) Read(max int64) ([]byte, error) { return s.dir.ReadOwnFile(s.name, max) }

// Start lets writes replace the file, once what it held has been read.
func (s *Saver) Start() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.started = true
}

// Soon has the file written within the delay.
func (s *Saver) Soon() {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.started || s.stopped || s.timer != nil {
		return
	}
	s.timer = time.AfterFunc(s.delay, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.timer = nil
		if !s.stopped {
			s.write()
		}
	})
}

// Now writes the file at once (before handing the switch over).
func (s *Saver) Now() {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started && !s.stopped {
		s.write()
	}
}

// Stop writes the file once more if final (and writes were started), and
// never again.
func (s *Saver) Stop(final bool) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.timer != nil {
		s.timer.Stop()
		s.timer = nil
	}
	if final && s.started && !s.stopped {
		s.write()
	}
	if !s.stopped {
		s.stopped = true
		s.dir.Close()
	}
}

// write replaces or removes the file. Caller holds mu.
func (s *Saver) write() {
	var err error
	if data := s.render(); data == nil {
		err = s.dir.RemoveFile(s.name, -1)
	} else {
		err = s.dir.ReplaceFile(s.name, data, 0o600)
	}
	switch {
	case err != nil && !s.failed:
		s.failed = true
		s.log.Warn("state file not written: "+s.lost, "path", s.Path(), "err", err)
	case err == nil && s.failed:
		s.failed = false
		s.log.Info("state file written again", "path", s.Path())
	}
}
