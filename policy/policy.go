// Package policy declares the port keys that say what the switch does with
// a port's frames rather than how the port carries them: split horizon,
// flooding, isolation, limits. Every port kind takes them; the fabric
// enforces them (fabric.Policy).
package policy

import (
	"github.com/umlswitch/umlswitch/configs"
	"github.com/umlswitch/umlswitch/fabric"
)

// Options are a port's policy keys.
type Options struct {
	SplitHorizon string
	NoFlood      bool
	NoBroadcast  bool
	Isolated     bool
	MACLimit     int
	Storm        int
	NoLinkLocal  bool
}

// Limits of the keys.
const (
	MaxMACLimit = 1 << 24
	MaxStorm    = 1 << 30
)

// Kind declares the keys; package transports registers it as the policy
// every port takes.
var Kind = configs.Kind{
	Name:    "policy",
	Summary: "what the switch does with the port's frames",
	New:     func() configs.Options { return &Options{} },
	Keys: []configs.Key{
		configs.Text("split_horizon", "GROUP", "a frame that came in on a port of GROUP never leaves through another "+
			"port of GROUP: give every tunnel of a full mesh between switches the same group and the mesh cannot loop",
			func(o *Options) *string { return &o.SplitHorizon }, configs.CheckName),
		off("flood", "no unknown unicast out of this port", func(o *Options) *bool { return &o.NoFlood }),
		off("broadcast", "no broadcast out of this port", func(o *Options) *bool { return &o.NoBroadcast }),
		configs.Flag("isolated", "talk only to ports that are not isolated (the Linux bridge's isolated on)",
			func(o *Options) *bool { return &o.Isolated }),
		configs.Value("mac_limit", "N", "learn at most N addresses on this port; frames from further new sources are dropped "+
			"(counted as mac-limit)", func(o *Options) *int { return &o.MACLimit }, configs.Range(1, MaxMACLimit), configs.Decimal[int]),
		configs.Value("storm", "N", "let in at most N flooded frames (broadcast, multicast, unknown unicast) a second; "+
			"the rest are dropped (counted as storm)", func(o *Options) *int { return &o.Storm }, configs.Range(1, MaxStorm), configs.Decimal[int]),
		off("link_local", "drop frames to 01:80:c2:00:00:00-0f (STP, LACP, LLDP, 802.1X) coming in; "+
			"they are forwarded by default, as a lab wants", func(o *Options) *bool { return &o.NoLinkLocal }),
	},
}

// off is a key that is on by default and turned off with name=0; the
// field records that it is off.
func off(name, help string, field func(*Options) *bool) configs.Key {
	return configs.Value(name, "0", help, field, func(v string) (bool, error) {
		on, err := configs.ParseBool(v)
		return !on, err
	}, func(bool) string { return "0" }).WithDefault("1")
}

// Of is the policy of a parsed port; the zero Policy for a port without.
func Of(p configs.Port) fabric.Policy {
	o, ok := p.Policy.(*Options)
	if !ok || o == nil {
		return fabric.Policy{}
	}
	return fabric.Policy{SplitHorizon: o.SplitHorizon, NoFlood: o.NoFlood, NoBroadcast: o.NoBroadcast, Isolated: o.Isolated,
		MACLimit: o.MACLimit, Storm: o.Storm, NoLinkLocal: o.NoLinkLocal}
}
