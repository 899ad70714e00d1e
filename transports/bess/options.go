package bess

import (
	"slices"

	"github.com/umlswitch/umlswitch/transports/portkind"

	"github.com/umlswitch/umlswitch/configs"
	"github.com/umlswitch/umlswitch/internal/unixsock"
)

// Options are a BESS listener's keys (transport=bess,...).
type Options struct {
	Path string
	unixsock.Access
}

// schema declares the bess transport's keys.
var schema = configs.Kind{
	Name:    "bess",
	Summary: "UML's BESS transport: a unix seqpacket listener, each UML that connects a port of its own",
	New:     func() configs.Options { return &Options{Access: unixsock.NoOwner} },
	Keys: slices.Concat([]configs.Key{
		configs.Text("path", "PATH", "the socket UMLs connect to (their dst=), at most 107 bytes",
			func(o *Options) *string { return &o.Path }, unixsock.CheckPath).Require(),
	}, unixsock.ListenerKeys(func(o *Options) *unixsock.Access { return &o.Access })),
}

// Config is the listener o describes in env.
func (o *Options) Config(env portkind.Env) Config {
	return Config{Options: *o, Common: env.Common, Clients: env.Clients, NotAllowed: env.NotAllowed}
}

func init() {
	portkind.Register(portkind.Kind{Kind: schema, Listens: portkind.Always,
		Open: portkind.Listening(func(o *Options, env portkind.Env) (*Transport, error) { return Listen(o.Config(env)) })})
}
