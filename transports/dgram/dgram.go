// Package dgram serves QEMU's -netdev dgram over unix sockets: the switch
// binds a datagram socket at its path (QEMU's remote.path=) and sends to
// QEMU's (local.path=), one frame per datagram with no header. It is one
// port per spec, read and written in batches (recvmmsg, sendmmsg).
package dgram

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/umlswitch/umlswitch/transports/portkind"

	"golang.org/x/sys/unix"

	"github.com/umlswitch/umlswitch/fabric"
	"github.com/umlswitch/umlswitch/frame"
	"github.com/umlswitch/umlswitch/internal/sockport"
	"github.com/umlswitch/umlswitch/internal/unixsock"
)

// Config describes one dgram port: its keys (Path, where the switch binds,
// QEMU's remote.path=; Peer, where QEMU binds, its local.path=) and what
// the switch adds.
type Config struct {
	Options
	portkind.Common
}

// retryEvery bounds how often a port whose peer is gone (not started yet,
// or restarted at the same path) tries to connect to it again.
const retryEvery = 100 * time.Millisecond

// Port is two datagram sockets: one bound at Path that takes QEMU's frames
// (from whichever socket sends them: a QEMU that restarts binds a new one),
// and one connected to Peer that sends, and so sees the peer's queue fill
// (ErrWouldBlock and WaitWritable work as for a daemon client). While the
// peer is not there, frames to it are dropped; the port connects again at
// most every retryEvery when there are frames to send.
type Port struct {
	*sockport.Port // the sending socket
	rx             *sockport.Port
	cfg            Config
	peer           unixsock.Addr
	connectFn      func(fd int) error // bound once
	lastTry        atomic.Int64       // unix nanoseconds of the last attempt
}

var _ fabric.Port = (*Port)(nil)

// Open binds the port's socket and connects to the peer if the peer is
// there already.
func Open(cfg Config) (*Port, error) {
	cfg.Common = cfg.Common.Defaulted()
	peer, err := unixsock.FromPath(cfg.Peer)
	if err != nil {
		return nil, fmt.Errorf("dgram: peer: %w", err)
	}
	rxFd, err := socket()
	if err != nil {
		return nil, err
	}
	path := cfg.Path
	// BindPath replaces a stale socket file and refuses a live one, and
	// registers the socket as the switch's own until Remove.
	sock, err := unixsock.BindPath(rxFd, path, cfg.Access.Owned(), 0)
	if err != nil {
		unix.Close(rxFd)
		return nil, fmt.Errorf("dgram: %w", err)
	}
	rx, err := sockport.New(rxFd, sockport.Config{Name: "dgram " + path, Depth: cfg.Depth, MaxFrame: cfg.MaxFrame,
		OnClose: func() { sock.Remove() }})
	if err != nil {
		sock.Remove()
		return nil, err
	}
	txFd, err := socket()
	if err != nil {
		rx.Close()
		return nil, err
	}
	p := &Port{rx: rx, cfg: cfg, peer: peer}
	p.connectFn = p.connect
	if err := p.connect(txFd); err != nil {
		cfg.Logger.Info("dgram: peer not there yet", "path", path, "peer", cfg.Peer, "err", err)
	}
	if p.Port, err = sockport.New(txFd, sockport.Config{Name: "dgram " + path, MaxFrame: cfg.MaxFrame}); err != nil {
		rx.Close()
		return nil, err
	}
	return p, nil
}

func socket() (int, error) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("dgram: %w", err)
	}
	return fd, nil
}

func (p *Port) connect(fd int) error {
	p.lastTry.Store(time.Now().UnixNano())
	return unixsock.Connect(fd, &p.peer)
}

// Receiver returns the reading side (see sockport.Port.Receiver).
func (p *Port) Receiver(id frame.PortID) fabric.Receiver { return p.rx.Receiver(id) }

// Close implements fabric.Port: both sockets go, and the socket file.
func (p *Port) Close() error {
	err := p.Port.Close()
	if rerr := p.rx.Close(); err == nil {
		err = rerr
	}
	return err
}

// Write implements fabric.Port. When the peer is gone it connects again
// (at most every retryEvery) and, connected, sends the rest.
func (p *Port) Write(frames [][]byte) (int, error) {
	n, err := p.Port.Write(frames)
	if err == nil || !errors.Is(err, fabric.ErrPeerGone) {
		return n, err
	}
	if time.Now().UnixNano()-p.lastTry.Load() < int64(retryEvery) {
		return n, err
	}
	if p.Sockopt(p.connectFn) != nil {
		return n, err
	}
	m, err := p.Port.Write(frames[n:])
	return n + m, err
}
