package dgram

import (
	"slices"

	"github.com/umlswitch/umlswitch/fabric"
	"github.com/umlswitch/umlswitch/frame"
	"github.com/umlswitch/umlswitch/transports/portkind"

	"github.com/umlswitch/umlswitch/configs"
	"github.com/umlswitch/umlswitch/internal/unixsock"
)

// Options are a dgram port's keys (transport=dgram,...).
type Options struct {
	Path string
	Peer string
	unixsock.Access
}

// schema declares the dgram transport's keys.
var schema = configs.Kind{
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

// Config is the port o describes in env.
func (o *Options) Config(env portkind.Env) Config {
	return Config{Options: *o, Common: env.Common}
}

func init() {
	portkind.Register(portkind.Kind{Kind: schema, Open: portkind.Single(
		func(o *Options, env portkind.Env) (*Port, error) { return Open(o.Config(env)) },
		func(p *Port, id frame.PortID) []fabric.Receiver { return []fabric.Receiver{p.Receiver(id)} })})
}
