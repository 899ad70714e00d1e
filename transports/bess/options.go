package bess

import (
	"log/slog"
	"slices"

	"github.com/umlswitch/umlswitch/configs"
	"github.com/umlswitch/umlswitch/internal/unixsock"
)

// Options are a BESS listener's keys (transport=bess,...).
type Options struct {
	Path string
	unixsock.Access
}

// Kind declares the bess transport's keys; package transports registers
// it.
var Kind = configs.Kind{
	Name:    "bess",
	Summary: "UML's BESS transport: a unix seqpacket listener, each UML that connects a port of its own",
	New:     func() configs.Options { return &Options{Access: unixsock.NoOwner} },
	Keys: slices.Concat([]configs.Key{
		configs.Text("path", "PATH", "the socket UMLs connect to (their dst=), at most 107 bytes",
			func(o *Options) *string { return &o.Path }, unixsock.CheckPath).Require(),
	}, unixsock.AccessKeys(func(o *Options) *unixsock.Access { return &o.Access })),
}

// Config is the listener o describes.
func (o *Options) Config(depth, maxFrame int, log *slog.Logger) Config {
	return Config{Path: o.Path, Mode: o.Mode, Owner: o.UID, Group: o.GID, Depth: depth, MaxFrame: maxFrame, Logger: log}
}
