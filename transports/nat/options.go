package nat

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"

	"github.com/umlswitch/umlswitch/configs"
	"github.com/umlswitch/umlswitch/frame"
	"github.com/umlswitch/umlswitch/transports/portkind"
)

// Options are a NAT port's keys (transport=nat,...).
type Options struct {
	Net      netip.Prefix // zero: DefaultNet
	NoDHCP   bool         // dhcp=0
	NoDNS    bool         // dns=0
	Restrict bool         // restrict=1: no connection from the guests to anywhere
	Forwards []Forward    // hostfwd=
	MAC      frame.MAC    // the router's; zero: RouterMAC(gateway)
	MaxConns int          // zero: DefaultMaxConns
}

// Defaults of the keys.
const (
	DefaultMaxConns = 1024
	MaxConnsLimit   = 65535
	// MaxForwards bounds hostfwd='s list: each is a host socket.
	MaxForwards = 64
)

// DefaultNet is QEMU's user network.
var DefaultNet = netip.MustParsePrefix("10.0.2.0/24")

// schema declares the nat transport's keys.
var schema = configs.Kind{
	Name: "nat",
	Summary: "a router to the host's network, as QEMU's -netdev user: DHCP, DNS and NAT through the switch's own " +
		"sockets (no root needed); the guests reach the host's 127.0.0.1 at the gateway address",
	New: func() configs.Options { return &Options{} },
	Keys: []configs.Key{
		configs.Value("net", "CIDR", "the guests' IPv4 network, /8 to /24: the router is its .2, DNS .3, leases from .15",
			func(o *Options) *netip.Prefix { return &o.Net }, parseNet, netip.Prefix.String).WithDefault(DefaultNet.String()),
		off("dhcp", "no DHCP server: the guests set their addresses themselves", func(o *Options) *bool { return &o.NoDHCP }),
		off("dns", "no DNS server at .3 (nor in DHCP's answers)", func(o *Options) *bool { return &o.NoDNS }),
		configs.Flag("restrict", "the guests reach nothing outside, the host neither: only DHCP, DNS for the lab. zone "+
			"and hostfwd= work (QEMU's restrict=on)", func(o *Options) *bool { return &o.Restrict }),
		{Name: "hostfwd", Value: "FWDS", Help: "forward host ports to guests, QEMU's syntax, ';' between several: " +
			"[tcp|udp]:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT; HOSTADDR defaults to 127.0.0.1 (QEMU's to every address), " +
			"GUESTADDR to the first lease (.15), HOSTPORT 0 to any free port (see ctl ports -json)",
			Set: func(o configs.Options, v string) (err error) {
				o.(*Options).Forwards, err = ParseForwards(v)
				return err
			},
			Get: func(o configs.Options) (string, bool) {
				fs := o.(*Options).Forwards
				return FormatForwards(fs), len(fs) > 0
			}},
		configs.Value("mac", "MAC", "the router's Ethernet address",
			func(o *Options) *frame.MAC { return &o.MAC }, parseRouterMAC, frame.MAC.String).WithDefault("52:55 and the gateway's address"),
		configs.Value("max_conns", "N", fmt.Sprintf("TCP connections and UDP flows through the router at once, 1..%d; "+
			"more are refused (a TCP reset)", MaxConnsLimit), func(o *Options) *int { return &o.MaxConns },
			configs.Range(1, MaxConnsLimit), configs.Decimal[int]).WithDefault(strconv.Itoa(DefaultMaxConns)),
	},
	Check: func(o configs.Options, _ map[string]bool) error { return o.(*Options).check() },
	// A router that is not restricted connects out, and looks names up,
	// as the switch's process: on a root switch, as root, past firewalls
	// that tell users apart (iptables -m owner, cgroup rules). A user the
	// API lets add ports gets only restricted ones (forwards of its own).
	Privileged: func(o configs.Options) string {
		opts := o.(*Options)
		for _, f := range opts.Forwards {
			if p := f.Host.Port(); p != 0 && p < configs.UnprivilegedPorts {
				return fmt.Sprintf("hostfwd= binds %s port %d (below %d), which takes CAP_NET_BIND_SERVICE",
					f.proto(), p, configs.UnprivilegedPorts)
			}
		}
		if !opts.Restrict {
			return "a nat port without restrict=1 connects out with the switch's own identity, not the caller's"
		}
		return ""
	},
}

// Config describes one router: its keys and what the switch adds.
type Config struct {
	Options
	portkind.Common
}

// Config is the router o describes in env.
func (o *Options) Config(env portkind.Env) Config {
	return Config{Options: *o, Common: env.Common}
}

func init() {
	portkind.Register(portkind.Kind{Kind: schema,
		Open: func(o configs.Options, env portkind.Env) (portkind.Opened, error) {
			return Open(o.(*Options).Config(env), env.Registry)
		}})
}

// off is a key for something on by default: name=0 turns it off.
func off(name, help string, field func(*Options) *bool) configs.Key {
	return configs.Value(name, "0", help, field, func(v string) (bool, error) {
		on, err := configs.ParseBool(v)
		return !on, err
	}, func(bool) string { return "0" }).WithDefault("1")
}

// parseNet parses net=: an IPv4 network of /8 to /24 (the router's
// addresses need .2, .3 and .15 in it), taken as its network address, and
// not one the host keeps for itself (loopback, link-local, multicast).
func parseNet(v string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(v)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not a network like 10.0.2.0/24", v)
	}
	if !p.Addr().Is4() {
		return netip.Prefix{}, fmt.Errorf("%s is not IPv4: the router speaks IPv4 only", v)
	}
	if p.Bits() < 8 || p.Bits() > 24 {
		return netip.Prefix{}, fmt.Errorf("%s: the network must be /8 to /24 (the router is .2, DNS .3, leases start at .15)", v)
	}
	p = p.Masked()
	a := p.Addr()
	if b := a.As4(); a.IsLoopback() || a.IsLinkLocalUnicast() || a.IsMulticast() || b[0] == 0 || b[0] >= 240 {
		return netip.Prefix{}, fmt.Errorf("%s is a network the host keeps for itself (loopback, link-local, multicast or reserved)", v)
	}
	return p, nil
}

// parseRouterMAC takes a unicast address other than zero.
func parseRouterMAC(v string) (frame.MAC, error) {
	m, err := frame.ParseMAC(v)
	if err != nil {
		return frame.MAC{}, fmt.Errorf("%q is not an Ethernet address", v)
	}
	if m.IsMulticast() || m == (frame.MAC{}) {
		return frame.MAC{}, fmt.Errorf("%s is not a unicast address", v)
	}
	return m, nil
}

// check looks at the keys together: the forwards' guest addresses must be
// guests of the network, and no two forwards bind one host port.
func (o *Options) check() error {
	a := addressesOf(o.net())
	if len(o.Forwards) > MaxForwards {
		return fmt.Errorf("hostfwd: %d forwards, at most %d", len(o.Forwards), MaxForwards)
	}
	seen := map[string]bool{}
	for _, f := range o.Forwards {
		if g := f.Guest; g.IsValid() {
			if !a.net.Contains(g) || g == a.net.Addr() || g == a.gateway || g == a.dns || g == a.broadcast {
				return fmt.Errorf("hostfwd %s: %s is not a guest's address in %s (the router is %s, DNS %s)",
					f, g, a.net, a.gateway, a.dns)
			}
		}
		key := f.proto() + " " + f.Host.String()
		if f.Host.Port() != 0 && seen[key] {
			return fmt.Errorf("hostfwd %s: %s port %s is forwarded twice", f, f.proto(), f.Host)
		}
		seen[key] = true
	}
	if o.NoDHCP && o.NoDNS && o.Restrict && len(o.Forwards) == 0 {
		return errors.New("dhcp=0, dns=0 and restrict=1 without hostfwd= leave the router nothing to do")
	}
	return nil
}

func (o *Options) net() netip.Prefix {
	if o.Net.IsValid() {
		return o.Net
	}
	return DefaultNet
}

func (o *Options) maxConns() int {
	if o.MaxConns > 0 {
		return o.MaxConns
	}
	return DefaultMaxConns
}

// addresses are the router's addresses in its network, QEMU's pattern.
type addresses struct {
	net       netip.Prefix
	gateway   netip.Addr // .2: the router, and the host's loopback behind it
	dns       netip.Addr // .3
	first     netip.Addr // .15: the first lease, a forward's default guest
	broadcast netip.Addr
}

func addressesOf(p netip.Prefix) addresses {
	base := p.Masked().Addr().As4()
	n := uint32(base[0])<<24 | uint32(base[1])<<16 | uint32(base[2])<<8 | uint32(base[3])
	at := func(i uint32) netip.Addr {
		v := n + i
		return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
	}
	return addresses{net: p.Masked(), gateway: at(2), dns: at(3), first: at(15), broadcast: at(1<<(32-p.Bits()) - 1)}
}

// RouterMAC is the router's default address: 52:55 and its IPv4 address,
// as QEMU's slirp makes its own.
func RouterMAC(gateway netip.Addr) frame.MAC {
	b := gateway.As4()
	return frame.MAC{0x52, 0x55, b[0], b[1], b[2], b[3]}
}
