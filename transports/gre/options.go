package gre

import (
	"errors"
	"slices"

	"github.com/umlswitch/umlswitch/internal/privdrop"
	"github.com/umlswitch/umlswitch/transports/portkind"

	"github.com/umlswitch/umlswitch/configs"
	"github.com/umlswitch/umlswitch/tunnel"
)

// Options are a GRE port's keys (transport=gre,...), UML's names seen from
// the switch's side.
type Options struct {
	tunnel.Addrs
	HasKey                bool // rx_key and tx_key given
	RxKey, TxKey          uint32
	Sequence, PinSequence bool
}

// schema declares the gre transport's keys.
var schema = configs.Kind{
	Name:    "gre",
	Summary: "Ethernet over GRE on raw IP sockets (root or CAP_NET_RAW), as UML's transport=gre and Linux's gretap",
	New:     func() configs.Options { return &Options{} },
	Privileged: func(configs.Options) string {
		return "GRE sends and receives on raw IP sockets (CAP_NET_RAW)"
	},
	Keys: slices.Concat(tunnel.AddrKeys(func(o *Options) *tunnel.Addrs { return &o.Addrs }), []configs.Key{
		greKey("rx_key", "the key the switch expects (the peer's tx_key); with tx_key=", func(o *Options) *uint32 { return &o.RxKey }),
		greKey("tx_key", "the key the switch sends (the peer's rx_key); with rx_key=", func(o *Options) *uint32 { return &o.TxKey }),
		configs.Flag("sequence", "number the frames", func(o *Options) *bool { return &o.Sequence }),
		configs.Flag("pin_sequence", "with sequence=1: send 0", func(o *Options) *bool { return &o.PinSequence }),
	}),
	Check: func(o configs.Options, seen map[string]bool) error {
		g := o.(*Options)
		if seen["rx_key"] != seen["tx_key"] {
			return errors.New("rx_key and tx_key go together: keys are on in both directions or in neither")
		}
		if g.PinSequence && !g.Sequence {
			return errors.New("pin_sequence=1 needs sequence=1")
		}
		return g.Addrs.Check()
	},
}

// greKey is a 32-bit key, which may be 0.
func greKey(name, help string, field func(*Options) *uint32) configs.Key {
	k := configs.Value(name, "N", help, field, configs.ParseU32, configs.Hex[uint32])
	return configs.Present(k, func(o *Options) *bool { return &o.HasKey })
}

// Config is the port o describes in env.
func (o *Options) Config(env portkind.Env) Config {
	return Config{Options: *o, Common: env.Common}
}

func init() {
	portkind.Register(portkind.Kind{Kind: schema,
		Capabilities: func(configs.Options) privdrop.Caps { return privdrop.NetRaw }, // raw IP sockets
		Open: portkind.Tunneled(
			func(o *Options, env portkind.Env) (*tunnel.Port, error) {
				return Open(env.Tunnels, env.Registry, o.Config(env))
			})})
}
