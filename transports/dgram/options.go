package dgram

import (
	"log/slog"
	"slices"

	"github.com/umlswitch/umlswitch/configs"
	"github.com/umlswitch/umlswitch/internal/unixsock"
)

// Options are a dgram port's keys (transport=dgram,...).
type Options struct {
	Path string
	Peer string
	unixsock.Access
}

// Kind declares the dgram transport's keys; package transports registers
// it.
var Kind = configs.Kind{
	Name:    "dgram",
	Summary: "QEMU's -netdev dgram over unix datagram sockets: one frame per datagram, one QEMU per port",
	New:     func() configs.Options { return &Options{Access: unixsock.NoOwner} },
	Keys: slices.Concat([]configs.Key{
		configs.Text("path", "PATH", "the socket the switch binds (QEMU's remote.path=), at most 107 bytes",
			func(o *Options) *string { return &o.Path }, unixsock.CheckPath).Require(),
		configs.Text("peer", "PATH", "the socket QEMU binds (its local.path=), where frames go",
			func(o *Options) *string { return &o.Peer }, unixsock.CheckPath).Require(),
	}, unixsock.AccessKeys(func(o *Options) *unixsock.Access { return &o.Access })),
}

// Config is the port o describes.
func (o *Options) Config(depth, maxFrame int, log *slog.Logger) Config {
	return Config{Path: o.Path, Peer: o.Peer, Mode: o.Mode, Owner: o.UID, Group: o.GID, Depth: depth, MaxFrame: maxFrame, Logger: log}
}
