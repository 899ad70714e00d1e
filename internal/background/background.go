// Package background puts the switch in the background the way uml_switch
// -daemon does, for a Go program, which cannot fork: the parent starts a
// copy of itself (/proc/self/exe, same arguments) in a new session and
// waits until the copy says it is serving (Ready) or why it cannot be
// (Fail), so the command that started it exits 0 only once the control
// socket exists, and otherwise exits with the child's error.
//
// The child's stdin, stdout and stderr are /dev/null: what it logs after
// Start is lost (there is no log file flag); errors before it is ready
// reach the parent through Fail. The child keeps the parent's working
// directory, unlike daemon(3), so relative paths in the arguments still
// name the same files.
//
// The parent and child talk over a pipe that is the child's fd 3: "R" for
// ready, "E" and a message for failure; a pipe closed with neither means
// the child died first.
package background

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// envVar marks the child. It is unset as soon as the child reads it, so
// the processes the switch starts do not take themselves for the child.
const envVar = "UMLSWITCH_BACKGROUND"

// statusFd is where the child finds the pipe: the first of ExtraFiles.
const statusFd = 3

const (
	readyByte = 'R'
	failByte  = 'E'
	maxMsg    = 4096 // longer error text is cut: a pipe write this small is atomic
)

var (
	isChild bool
	mu      sync.Mutex
	status  *os.File // the child's end of the pipe until Ready or Fail; nil otherwise
)

// init reads the marker before main can start anything that would inherit
// it or fd 3.
func init() {
	if os.Getenv(envVar) == "" {
		return
	}
	isChild = true
	os.Unsetenv(envVar)
	// Only a pipe is ours: a marker set by hand with some other fd 3
	// must not have error text written into it.
	var st unix.Stat_t
	if unix.Fstat(statusFd, &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFIFO {
		return
	}
	unix.CloseOnExec(statusFd)
	status = os.NewFile(statusFd, "background status pipe")
}

// IsChild reports whether this process is the copy Start started. main
// uses it to serve rather than start another copy.
func IsChild() bool { return isChild }

// Ready tells the parent that the switch is serving: the parent's Start
// returns nil and the parent exits. It is a no-op outside the child and
// after the first Ready or Fail.
func Ready() error {
	if err := send([]byte{readyByte}); err != nil {
		return fmt.Errorf("background: tell the parent we are ready: %w", err)
	}
	return nil
}

// Fail hands err's text to the parent, whose Start returns it; the child
// should exit after it. It is a no-op outside the child and after the
// first Ready or Fail.
func Fail(err error) {
	msg := "failed"
	if err != nil {
		msg = err.Error()
	}
	if len(msg) > maxMsg-1 {
		msg = msg[:maxMsg-1]
	}
	send(append([]byte{failByte}, msg...)) // nothing to do if the parent is gone
}

func send(b []byte) error {
	mu.Lock()
	defer mu.Unlock()
	if status == nil {
		return nil
	}
	_, err := status.Write(b)
	status.Close()
	status = nil
	return err
}

// Start starts the copy of this program in the background and waits up to
// readyTimeout (0: for ever) for it to call Ready. nil means it is serving
// and the caller should exit 0. Otherwise the error carries the child's
// Fail text, or says how it exited; a child that is not ready in time is
// killed.
func Start(readyTimeout time.Duration) error {
	r, w, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("background: %w", err)
	}
	defer r.Close()
	// /proc/self/exe: the binary that is running, wherever os.Args[0]
	// points (a relative path, or a binary replaced since).
	cmd := exec.Command("/proc/self/exe", os.Args[1:]...)
	cmd.Args[0] = os.Args[0]
	cmd.Env = append(os.Environ(), envVar+"=1")
	cmd.ExtraFiles = []*os.File{w}                       // fd 3 in the child
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true} // no terminal's signals
	// Stdin, Stdout and Stderr left nil: /dev/null.
	err = cmd.Start()
	w.Close() // now only the child holds it: its death is our EOF
	if err != nil {
		return fmt.Errorf("background: start %s: %w", os.Args[0], err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	var deadline time.Time
	if readyTimeout > 0 {
		deadline = time.Now().Add(readyTimeout)
		r.SetReadDeadline(deadline)
	}
	msg, err := io.ReadAll(io.LimitReader(r, maxMsg))
	switch {
	case len(msg) > 0 && msg[0] == readyByte:
		// ReadAll returned: Ready closed the pipe. The child runs on;
		// the goroutine waiting for it goes with this process.
		return nil
	case errors.Is(err, os.ErrDeadlineExceeded):
		cmd.Process.Kill()
		<-exited
		return fmt.Errorf("background: the switch was not ready within %v: killed it", readyTimeout)
	case err != nil:
		cmd.Process.Kill()
		<-exited
		return fmt.Errorf("background: read the switch's status: %w", err)
	}
	// The pipe closed without "R": the child failed. It should be
	// exiting; the rest of the timeout is what it gets.
	var timeout <-chan time.Time
	if !deadline.IsZero() {
		t := time.NewTimer(time.Until(deadline))
		defer t.Stop()
		timeout = t.C
	}
	var exitErr error
	select {
	case exitErr = <-exited:
	case <-timeout:
		cmd.Process.Kill()
		exitErr = <-exited
	}
	if len(msg) > 0 && msg[0] == failByte {
		if text := strings.TrimSpace(string(msg[1:])); text != "" {
			return errors.New(text) // the child's own words, as it would have printed them
		}
		return errors.New("background: the switch failed and gave no reason")
	}
	if exitErr == nil {
		return errors.New("background: the switch exited before it was ready")
	}
	return fmt.Errorf("background: the switch exited before it was ready: %w", exitErr)
}
