package l2tpv3

import (
	"errors"
	"fmt"
	"slices"

	"github.com/umlswitch/umlswitch/internal/privdrop"
	"github.com/umlswitch/umlswitch/transports/portkind"

	"github.com/umlswitch/umlswitch/configs"
	"github.com/umlswitch/umlswitch/tunnel"
)

// Options are an L2TPv3 session's keys (transport=l2tpv3,...), UML's names
// seen from the switch's side.
type Options struct {
	tunnel.Addrs
	UDP                  bool
	SrcPort, DstPort     uint16
	RxSession, TxSession uint32
	HasCookie, Cookie64  bool // HasCookie: rx_cookie and tx_cookie given
	RxCookie, TxCookie   uint64
	Counter, PinCounter  bool
}

// schema declares the l2tpv3 transport's keys.
var schema = configs.Kind{
	Name:    "l2tpv3",
	Summary: "L2TPv3 Ethernet pseudowire over UDP, or over IP (protocol 115, root), as UML's and QEMU's",
	Privileged: func(o configs.Options) string {
		switch opts := o.(*Options); {
		case !opts.UDP:
			return "L2TPv3 over IP sends and receives on raw IP sockets (CAP_NET_RAW)"
		case opts.SrcPort < configs.UnprivilegedPorts:
			return fmt.Sprintf("binding UDP port %d (below %d) takes CAP_NET_BIND_SERVICE", opts.SrcPort, configs.UnprivilegedPorts)
		}
		return ""
	},
	New: func() configs.Options { return &Options{} },
	Keys: slices.Concat(tunnel.AddrKeys(func(o *Options) *tunnel.Addrs { return &o.Addrs }), []configs.Key{
		configs.Flag("udp", "over UDP, which needs no privileges", func(o *Options) *bool { return &o.UDP }),
		udpPort("srcport", "the switch's", func(o *Options) *uint16 { return &o.SrcPort }),
		udpPort("dstport", "the peer's", func(o *Options) *uint16 { return &o.DstPort }),
		session("rx_session", "the session the switch expects (the peer's tx_session)", func(o *Options) *uint32 { return &o.RxSession }),
		session("tx_session", "the session the switch sends (the peer's rx_session)", func(o *Options) *uint32 { return &o.TxSession }),
		cookie("rx_cookie", "the cookie the switch expects; with tx_cookie=", func(o *Options) *uint64 { return &o.RxCookie }),
		cookie("tx_cookie", "the cookie the switch sends; with rx_cookie=", func(o *Options) *uint64 { return &o.TxCookie }),
		configs.Flag("cookie64", "64-bit cookies (32 bits without it)", func(o *Options) *bool { return &o.Cookie64 }),
		configs.Flag("counter", "UML's plain 32-bit counter in every packet", func(o *Options) *bool { return &o.Counter }),
		configs.Flag("pin_counter", "with counter=1: send 0", func(o *Options) *bool { return &o.PinCounter }),
	}),
	Check: check,
}

func udpPort(name, whose string, field func(*Options) *uint16) configs.Key {
	return configs.Value(name, "N", "with udp=1: "+whose+" UDP port", field, configs.Range[uint16](1, 65535), configs.Decimal[uint16])
}

func session(name, help string, field func(*Options) *uint32) configs.Key {
	return configs.Value(name, "N", help+", not 0", field, configs.ParseU32, configs.Hex[uint32]).
		Require()
}

// cookie is a cookie, which may be 0.
func cookie(name, help string, field func(*Options) *uint64) configs.Key {
	k := configs.Value(name, "N", help, field, configs.ParseU64, configs.Hex[uint64])
	return configs.Present(k, func(o *Options) *bool { return &o.HasCookie })
}

func check(o configs.Options, seen map[string]bool) error {
	l := o.(*Options)
	if l.UDP != (seen["srcport"] && seen["dstport"]) || (!l.UDP && (seen["srcport"] || seen["dstport"])) {
		if l.UDP {
			return errors.New("udp=1 needs srcport= and dstport=")
		}
		return errors.New("srcport= and dstport= need udp=1 (without it L2TPv3 runs over IP, protocol 115)")
	}
	if l.RxSession == 0 || l.TxSession == 0 {
		return errors.New("session 0 is reserved (RFC 3931): give rx_session and tx_session non-zero values")
	}
	if seen["rx_cookie"] != seen["tx_cookie"] {
		return errors.New("rx_cookie and tx_cookie go together")
	}
	if l.Cookie64 && !l.HasCookie {
		return errors.New("cookie64=1 needs rx_cookie and tx_cookie")
	}
	if l.HasCookie && !l.Cookie64 && (l.RxCookie > 0xffffffff || l.TxCookie > 0xffffffff) {
		return errors.New("a cookie over 32 bits needs cookie64=1")
	}
	if l.PinCounter && !l.Counter {
		return errors.New("pin_counter=1 needs counter=1")
	}
	return l.Addrs.Check()
}

// Config is the port o describes in env.
func (o *Options) Config(env portkind.Env) Config {
	return Config{Options: *o, Common: env.Common}
}

func init() {
	portkind.Register(portkind.Kind{Kind: schema,
		Capabilities: func(o configs.Options) privdrop.Caps {
			if o.(*Options).UDP {
				return 0
			}
			return privdrop.NetRaw // L2TPv3 over IP: raw IP sockets
		},
		Open: portkind.Tunneled(
			func(o *Options, env portkind.Env) (*tunnel.Port, error) {
				return Open(env.Tunnels, env.Registry, o.Config(env))
			})})
}
