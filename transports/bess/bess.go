// Package bess serves UML's BESS vector transport
// (vecN:transport=bess,src=PATH,dst=SWITCH): a unix SOCK_SEQPACKET listener
// at the switch's path where every connecting UML becomes a port of its
// own, one frame per message with no header, until it closes. BESS itself
// serves one client per socket; here any number share the listener.
package bess

import (
	"fmt"
	"sync/atomic"

	"github.com/umlswitch/umlswitch/transports/portkind"

	"golang.org/x/sys/unix"

	"github.com/umlswitch/umlswitch/fabric"
	"github.com/umlswitch/umlswitch/internal/accept"
	"github.com/umlswitch/umlswitch/internal/handover"
	"github.com/umlswitch/umlswitch/internal/limit"
	"github.com/umlswitch/umlswitch/internal/pollfd"
	"github.com/umlswitch/umlswitch/internal/sockport"
	"github.com/umlswitch/umlswitch/internal/unixsock"
)

// Config describes one BESS listener: its keys and what the switch adds.
type Config struct {
	Options // Path is where UMLs connect (their dst=)
	portkind.Common
	// Clients, if set, bounds the clients of every listener together and
	// per uid; a connection over a bound is closed at once.
	Clients *limit.Limiter
	// NotAllowed counts the clients the socket's allow_uid= and allow_gid=
	// refused (Options.Allow); nil: not counted.
	NotAllowed *atomic.Uint64
}

// Transport is a listener and the ports of the UMLs connected to it.
type Transport struct {
	cfg  Config
	sock *unixsock.Socket // the socket file, removed on Close; nil: a socket unit's
	ln   *pollfd.FD
	acc  *accept.Listener[*sockport.Port]
	scan sockport.HangupScan // the accept goroutine's only
}

// Listen binds the listener; nothing is accepted before Start.
func Listen(cfg Config) (*Transport, error) {
	cfg.Common = cfg.Common.Defaulted()
	fd, sock, err := unixsock.ListenPath(cfg.Path, unix.SOCK_SEQPACKET, cfg.Access.Owned(), 64)
	if err != nil {
		return nil, fmt.Errorf("bess: %w", err)
	}
	ln, err := pollfd.New(fd, "bess "+cfg.Path)
	if err != nil { // fd closed
		if sock != nil {
			sock.Remove()
		}
		return nil, err
	}
	t := &Transport{cfg: cfg, sock: sock, ln: ln}
	t.acc = accept.New(ln, accept.Config[*sockport.Port]{Kind: "bess", Addr: cfg.Path, Logger: cfg.Logger, Clients: cfg.Clients, Allow: cfg.Allow, NotAllowed: cfg.NotAllowed,
		NewPort: func(fd int, name string, gone func()) (*sockport.Port, error) {
			return sockport.New(fd, sockport.Config{Name: name, Depth: cfg.Depth, MaxFrame: cfg.MaxFrame, OnEOF: gone})
		},
		HungUp: func(ports []*sockport.Port) int { return t.scan.Count(ports) },
	})
	return t, nil
}

// Path is where UMLs connect.
func (t *Transport) Path() string { return t.cfg.Path }

// Start accepts UMLs and attaches each to reg as a port.
func (t *Transport) Start(reg fabric.Registry) {
	t.acc.Start(reg)
	t.cfg.Logger.Info("listening", "transport", "bess", "path", t.cfg.Path)
}

// Close stops accepting, detaches every port and removes the socket file.
func (t *Transport) Close() error {
	err := t.acc.Close()
	if t.sock == nil {
		return err
	}
	if rerr := t.sock.Remove(); err == nil {
		err = rerr
	}
	return err
}

// HandOver gives a new switch process (a hot upgrade) the listening socket
// and every UML's connection.
func (t *Transport) HandOver() []handover.Item {
	return append(t.acc.HandOver(), accept.HandOverListener(t.ln, t.cfg.Path)...)
}
