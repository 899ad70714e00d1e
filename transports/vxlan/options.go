package vxlan

import (
	"fmt"
	"slices"

	"github.com/umlswitch/umlswitch/transports/portkind"

	"github.com/umlswitch/umlswitch/configs"
	"github.com/umlswitch/umlswitch/tunnel"
)

// Options are a VXLAN port's keys (transport=vxlan,...).
type Options struct {
	VNI uint32
	tunnel.Addrs
	DstPort uint16
}

// schema declares the vxlan transport's keys.
var schema = configs.Kind{
	Name:    "vxlan",
	Summary: "Ethernet over VXLAN (RFC 7348) to dst:dstport from src:dstport, as Linux's vxlan device",
	New:     func() configs.Options { return &Options{} },
	Privileged: func(o configs.Options) string {
		if p := o.(*Options).DstPort; p != 0 && p < configs.UnprivilegedPorts { // 0: DefaultPort
			return fmt.Sprintf("binding UDP port %d (below %d) takes CAP_NET_BIND_SERVICE", p, configs.UnprivilegedPorts)
		}
		return ""
	},
	Keys: slices.Concat([]configs.Key{
		configs.Value("vni", "N", fmt.Sprintf("the network identifier, 0..%d", MaxVNI), func(o *Options) *uint32 { return &o.VNI },
			configs.Range[uint32](0, MaxVNI), configs.Decimal[uint32]).Require(),
	}, tunnel.AddrKeys(func(o *Options) *tunnel.Addrs { return &o.Addrs }), []configs.Key{
		configs.Value("dstport", "N", "the UDP port on both ends", func(o *Options) *uint16 { return &o.DstPort },
			configs.Range[uint16](1, 65535), configs.Decimal[uint16]).WithDefault(fmt.Sprint(DefaultPort)),
	}),
	Check: func(o configs.Options, _ map[string]bool) error { return o.(*Options).Addrs.Check() },
}

// Config is the port o describes in env.
func (o *Options) Config(env portkind.Env) Config {
	return Config{Options: *o, Common: env.Common}
}

func init() {
	portkind.Register(portkind.Kind{Kind: schema, Open: portkind.Tunneled(
		func(o *Options, env portkind.Env) (*tunnel.Port, error) {
			return Open(env.Tunnels, env.Registry, o.Config(env))
		})})
}
