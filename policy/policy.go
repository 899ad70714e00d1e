// Package policy declares the port keys that say what the switch does with
// a port's frames rather than how the port carries them: VLAN membership,
// split horizon, flooding, isolation, limits, whether the link is up, and
// how it misbehaves (delay, loss, rate). Every port kind takes them; the
// fabric enforces all but the last (fabric.VLAN, fabric.Policy), package
// impair the last (impair.Config).
package policy

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/umlswitch/umlswitch/configs"
	"github.com/umlswitch/umlswitch/fabric"
	"github.com/umlswitch/umlswitch/frame"
	"github.com/umlswitch/umlswitch/impair"
)

// Options are a port's policy keys.
type Options struct {
	// 802.1Q (fabric.VLAN).
	Access, Native, QinQ uint16
	Trunk                frame.VLANSet

	SplitHorizon string
	NoFlood      bool
	NoBroadcast  bool
	Isolated     bool
	MACLimit     int
	Storm        int
	NoLinkLocal  bool
	LinkDown     bool // link=down: the port passes nothing (fabric.Policy.LinkDown)

	// The link, on frames leaving through the port (impair.Config).
	Delay, Jitter   time.Duration
	Reorder         bool
	Loss, LossBurst float64
	Dup, Corrupt    float64
	Rate            int64
	Queue           int
	Seed            uint64
}

// ImpairKeys are the keys of the link's impairment (impair.Config).
var ImpairKeys = []string{"delay", "jitter", "reorder", "loss", "loss_burst", "dup", "corrupt", "rate", "queue", "seed"}

// Keys are the names of every policy key: all of them change at run time
// (ctl port set).
func Keys() []string {
	names := make([]string, len(Kind.Keys))
	for i, k := range Kind.Keys {
		names[i] = k.Name
	}
	return names
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
	Check:   func(o configs.Options, _ map[string]bool) error { return vlanOf(o.(*Options)).Check() },
	Keys: []configs.Key{
		configs.Value("vlan", "N", "an access port of VLAN N (1..4094): its untagged frames join VLAN N and frames leave it "+
			"untagged; tagged frames coming in are dropped (vlan-mismatch). A port without vlan=, trunk= or qinq= "+
			"carries every VLAN and passes tags untouched", func(o *Options) *uint16 { return &o.Access }, frame.ParseVLAN, configs.Decimal[uint16]),
		configs.Value("trunk", "LIST", "a trunk: a tagged member of the VLANs in LIST, written 10;20;30-40 or all (quote it in "+
			"a shell); frames of other VLANs are dropped (vlan-filtered)", func(o *Options) *frame.VLANSet { return &o.Trunk },
			frame.ParseVLANSet, frame.VLANSet.String),
		configs.Value("native", "N", "a trunk's untagged VLAN: untagged frames coming in join it and its frames leave "+
			"untagged; without it a trunk drops untagged frames (vlan-mismatch)", func(o *Options) *uint16 { return &o.Native },
			frame.ParseVLAN, configs.Decimal[uint16]),
		configs.Value("qinq", "N", "carry every frame of the port, tagged or not, in service VLAN N (802.1ad, dot1q-tunnel): "+
			"it leaves trunks inside an 802.1ad tag N and leaves this port as it came", func(o *Options) *uint16 { return &o.QinQ },
			frame.ParseVLAN, configs.Decimal[uint16]),
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
		configs.Value("link", "up|down", "down breaks the port's link, as for a failure drill: nothing comes in or goes out "+
			"(counted as link-down), the addresses learned on it are forgotten, and a tap's interface shows NO-CARRIER; "+
			"up mends it", func(o *Options) *bool { return &o.LinkDown }, parseLink, formatLink).WithDefault("up"),
		configs.Value("delay", "DURATION", "hold every frame leaving through the port this long (50ms)",
			func(o *Options) *time.Duration { return &o.Delay }, parseDelay, formatDuration),
		configs.Value("jitter", "DURATION", "and up to this much more or less, uniformly (frames keep their order unless reorder=1)",
			func(o *Options) *time.Duration { return &o.Jitter }, parseDelay, formatDuration),
		configs.Flag("reorder", "let jitter reorder frames", func(o *Options) *bool { return &o.Reorder }),
		configs.Value("loss", "PERCENT", "lose this share of the frames leaving through the port (counted as loss)",
			func(o *Options) *float64 { return &o.Loss }, parsePercent, formatPercent),
		configs.Value("loss_burst", "N", "lose them in runs of N frames on average (Gilbert-Elliott), at the same rate",
			func(o *Options) *float64 { return &o.LossBurst }, parseBurst, formatFloat),
		configs.Value("dup", "PERCENT", "send this share of the frames twice", func(o *Options) *float64 { return &o.Dup },
			parsePercent, formatPercent),
		configs.Value("corrupt", "PERCENT", "flip a bit after the Ethernet header in this share of the frames",
			func(o *Options) *float64 { return &o.Corrupt }, parsePercent, formatPercent),
		configs.Value("rate", "BITS", "at most this many bits a second (10mbit, 1gbit, 64kbit); what the queue cannot "+
			"hold is dropped (counted as rate)", func(o *Options) *int64 { return &o.Rate }, parseRate, formatRate),
		configs.Value("queue", "N", "frames an impaired port holds (delay, rate), 1..1000000",
			func(o *Options) *int { return &o.Queue }, configs.Range(1, 1000000), configs.Decimal[int]).WithDefault(fmt.Sprint(impair.DefaultQueue)),
		configs.Value("seed", "N", "makes loss, dup, corrupt and jitter the same from run to run",
			func(o *Options) *uint64 { return &o.Seed }, parseSeed, func(n uint64) string { return strconv.FormatUint(n, 10) }),
	},
}

// parseLink reads link=up or link=down as whether the link is down.
func parseLink(v string) (bool, error) {
	switch v {
	case "up":
		return false, nil
	case "down":
		return true, nil
	}
	return false, fmt.Errorf("%q is not up or down", v)
}

func formatLink(down bool) string {
	if down {
		return "down"
	}
	return "up"
}

func parseDelay(v string) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 || d > time.Hour {
		return 0, fmt.Errorf("%q is not a duration from 0 to 1h like 50ms", v)
	}
	return d, nil
}

func formatDuration(d time.Duration) string { return d.String() }

// parsePercent reads 20%, 20 or 0.5% as a share from 0 to 1.
func parsePercent(v string) (float64, error) {
	f, err := strconv.ParseFloat(strings.TrimSuffix(v, "%"), 64)
	if err != nil || !(f >= 0 && f <= 100) { // NaN fails too
		return 0, fmt.Errorf("%q is not a percentage from 0 to 100 like 20%%", v)
	}
	return f / 100, nil
}

func formatPercent(f float64) string { return strconv.FormatFloat(f*100, 'g', -1, 64) + "%" }

func parseBurst(v string) (float64, error) {
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || !(f >= 1 && f <= 1e6) {
		return 0, fmt.Errorf("%q is not a mean run length from 1 to 1000000", v)
	}
	return f, nil
}

func formatFloat(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

// parseRate reads a bit rate as tc writes it: 64000, 64kbit, 10mbit, 1gbit.
func parseRate(v string) (int64, error) {
	num, mult := strings.ToLower(v), int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"gbit", 1e9}, {"mbit", 1e6}, {"kbit", 1e3}, {"bit", 1}} {
		if strings.HasSuffix(num, u.suffix) {
			num, mult = strings.TrimSuffix(num, u.suffix), u.mult
			break
		}
	}
	f, err := strconv.ParseFloat(num, 64)
	if bps := f * float64(mult); err != nil || !(bps >= 1000 && bps <= 1e12) { // NaN fails too
		return 0, fmt.Errorf("%q is not a bit rate from 1kbit to 1000gbit like 10mbit", v)
	}
	return int64(f * float64(mult)), nil
}

func formatRate(r int64) string {
	switch {
	case r%1e9 == 0:
		return fmt.Sprintf("%dgbit", r/1e9)
	case r%1e6 == 0:
		return fmt.Sprintf("%dmbit", r/1e6)
	case r%1e3 == 0:
		return fmt.Sprintf("%dkbit", r/1e3)
	}
	return fmt.Sprint(r)
}

func parseSeed(v string) (uint64, error) {
	n, err := strconv.ParseUint(v, 0, 64)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("%q is not a seed (a number from 1)", v)
	}
	return n, nil
}

// Impair is a parsed port's link impairment; the zero Config for a port
// without.
func Impair(p configs.Port) impair.Config {
	o, ok := p.Policy.(*Options)
	if !ok || o == nil {
		return impair.Config{}
	}
	return impair.Config{Delay: o.Delay, Jitter: o.Jitter, Reorder: o.Reorder, Loss: o.Loss, LossBurst: o.LossBurst,
		Dup: o.Dup, Corrupt: o.Corrupt, Rate: o.Rate, Queue: o.Queue, Seed: o.Seed}
}

// off is a key that is on by default and turned off with name=0; the
// field records that it is off.
func off(name, help string, field func(*Options) *bool) configs.Key {
	return configs.Value(name, "0", help, field, func(v string) (bool, error) {
		on, err := configs.ParseBool(v)
		return !on, err
	}, func(bool) string { return "0" }).WithDefault("1")
}

// VLAN is a parsed port's VLAN membership; the zero VLAN (every VLAN,
// tags untouched) for a port without.
func VLAN(p configs.Port) fabric.VLAN {
	o, ok := p.Policy.(*Options)
	if !ok || o == nil {
		return fabric.VLAN{}
	}
	return vlanOf(o)
}

func vlanOf(o *Options) fabric.VLAN {
	v := fabric.VLAN{Access: o.Access, Native: o.Native, QinQ: o.QinQ}
	if o.Trunk != (frame.VLANSet{}) {
		v.Trunk = &o.Trunk
	}
	return v
}

// Of is the policy of a parsed port; the zero Policy for a port without.
func Of(p configs.Port) fabric.Policy {
	o, ok := p.Policy.(*Options)
	if !ok || o == nil {
		return fabric.Policy{}
	}
	return fabric.Policy{SplitHorizon: o.SplitHorizon, NoFlood: o.NoFlood, NoBroadcast: o.NoBroadcast, Isolated: o.Isolated,
		MACLimit: o.MACLimit, Storm: o.Storm, NoLinkLocal: o.NoLinkLocal, LinkDown: o.LinkDown}
}
