package tap

import (
	"errors"
	"fmt"

	"github.com/umlswitch/umlswitch/internal/privdrop"
	"github.com/umlswitch/umlswitch/transports/portkind"

	"github.com/umlswitch/umlswitch/configs"
)

// Options are a tap port's keys (transport=tap,...).
type Options struct {
	Ifname          string
	Create, Persist bool
	Owner           int // -1: root only
	Up              bool
	Queues          int
	VnetHdr         bool
}

// schema declares the tap transport's keys.
var schema = configs.Kind{
	Name:    "tap",
	Summary: "a host tap interface (-tap NAME is transport=tap,create=1,ifname=NAME)",
	New:     func() configs.Options { return &Options{Owner: -1} },
	Privileged: func(configs.Options) string {
		return "a tap port creates or opens a host interface (CAP_NET_ADMIN)"
	},
	Keys: []configs.Key{
		configs.Text("ifname", "NAME", "the tap, which must exist unless create=1", func(o *Options) *string { return &o.Ifname }, configs.CheckIfname).
			Require(),
		configs.Flag("create", "create the tap through netlink if it is not there (it goes away with the switch)",
			func(o *Options) *bool { return &o.Create }),
		configs.Flag("persist", "with create=1: keep the tap after the switch exits", func(o *Options) *bool { return &o.Persist }),
		configs.Owner("with create=1: the user that may open the tap", func(o *Options) *int { return &o.Owner }),
		configs.Flag("up", "bring the interface up (mtu= also sets its MTU)", func(o *Options) *bool { return &o.Up }),
		configs.Value("queues", "N", fmt.Sprintf("a multi-queue tap, 1..%d, with a reader per queue", MaxQueues), func(o *Options) *int { return &o.Queues },
			configs.Range(1, MaxQueues), configs.Decimal[int]).WithDefault("1"),
		configs.Flag("vnet_hdr", "keep the host's checksum and TCP segmentation offloads: 64 KiB of a TCP stream in one read, "+
			"cut into segments for the switch, and a TCP flow's segments merged into one write", func(o *Options) *bool { return &o.VnetHdr }),
	},
	Check: func(o configs.Options, _ map[string]bool) error {
		if t := o.(*Options); (t.Persist || t.Owner >= 0) && !t.Create {
			return errors.New("persist= and owner= apply to a tap the switch creates: add create=1")
		}
		return nil
	},
}

// Config is the port o describes in env (the tap keeps its own MTU unless
// the port gives mtu=).
func (o *Options) Config(env portkind.Env) Config {
	return Config{Options: *o, MTU: env.MTU, Common: env.Common}
}

func init() {
	portkind.Register(portkind.Kind{Kind: schema,
		// TUNSETIFF on a tap the switch's user does not own, and creating one.
		Capabilities: func(configs.Options) privdrop.Caps { return privdrop.NetAdmin },
		Open: portkind.Host(func(o *Options) string { return o.Ifname },
			func(o *Options, env portkind.Env) (*Port, error) { return Open(o.Config(env)) }, (*Port).Receivers)})
}
