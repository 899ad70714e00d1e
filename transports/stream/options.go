package stream

import (
	"errors"
	"fmt"
	"slices"

	"github.com/umlswitch/umlswitch/transports/portkind"

	"github.com/umlswitch/umlswitch/configs"
	"github.com/umlswitch/umlswitch/internal/unixsock"
)

// Options are a stream port's keys (transport=stream,...).
type Options struct {
	Path    string
	Host    string
	Port    int
	Connect bool
	unixsock.Access
}

// schema declares the stream transport's keys.
var schema = configs.Kind{
	Name: "stream",
	Summary: "QEMU's -netdev stream (and -netdev socket): frames behind a 4-byte length on a unix or TCP stream; " +
		"listening, each QEMU that connects a port of its own, or connect=1 to a QEMU that listens (server=on)",
	New: func() configs.Options { return &Options{Access: unixsock.NoOwner} },
	Privileged: func(o configs.Options) string {
		if opts := o.(*Options); opts.Host != "" && !opts.Connect && opts.Port < configs.UnprivilegedPorts {
			return fmt.Sprintf("listening on TCP port %d (below %d) takes CAP_NET_BIND_SERVICE", opts.Port, configs.UnprivilegedPorts)
		}
		return ""
	},
	Keys: slices.Concat([]configs.Key{
		configs.Text("path", "PATH", "the unix socket (QEMU's addr.path=), at most 107 bytes; or host= and port=",
			func(o *Options) *string { return &o.Path }, unixsock.CheckPath),
		configs.Text("host", "HOST", "the TCP address to listen on or connect to (QEMU's addr.host=)",
			func(o *Options) *string { return &o.Host }, nil).WithDefault("127.0.0.1"),
		configs.Value("port", "N", "the TCP port (QEMU's addr.port=, or socket's listen=/connect= port)",
			func(o *Options) *int { return &o.Port }, configs.Range(1, 65535), configs.Decimal[int]),
		configs.Flag("connect", "connect to a QEMU that listens (server=on, or socket,listen=), again whenever it goes away",
			func(o *Options) *bool { return &o.Connect }).WithDefault("listen"),
	}, unixsock.ListenerKeys(func(o *Options) *unixsock.Access { return &o.Access })),
	Check: func(o configs.Options, seen map[string]bool) error {
		s := o.(*Options)
		switch {
		case (s.Path == "") == (s.Port == 0):
			return errors.New("give path= (a unix socket) or port= (TCP), not both")
		case s.Path != "" && seen["host"]:
			return errors.New("host= goes with port=, not with path=")
		case (s.Port != 0 || s.Connect) && (seen["owner"] || seen["group"]):
			// mode= is let through: -mode sets it on every port that takes it.
			return errors.New("owner= and group= are for a unix socket the switch listens on")
		case (s.Port != 0 || s.Connect) && (seen["allow_uid"] || seen["allow_gid"]):
			return errors.New("allow_uid= and allow_gid= are for a unix socket the switch listens on: " +
				"only there does the kernel say who connected")
		}
		return nil
	},
}

// Config is the listener or connecting port o describes in env.
func (o *Options) Config(env portkind.Env) Config {
	return Config{Options: *o, Common: env.Common, Clients: env.Clients, NotAllowed: env.NotAllowed}
}

func init() {
	portkind.Register(portkind.Kind{Kind: schema,
		// Listening, every QEMU that connects is a port of its own;
		// connecting, the one connection is the port, again after each
		// reconnection.
		Listens: func(o configs.Options) bool { return !o.(*Options).Connect },
		Open:    portkind.Listening(func(o *Options, env portkind.Env) (Transport, error) { return Open(o.Config(env)) })})
}
