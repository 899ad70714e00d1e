package transports

import (
	"github.com/umlswitch/umlswitch/configs"
	"github.com/umlswitch/umlswitch/policy"
	"github.com/umlswitch/umlswitch/transports/bess"
	"github.com/umlswitch/umlswitch/transports/daemon"
	"github.com/umlswitch/umlswitch/transports/dgram"
	"github.com/umlswitch/umlswitch/transports/gre"
	"github.com/umlswitch/umlswitch/transports/l2tpv3"
	"github.com/umlswitch/umlswitch/transports/raw"
	"github.com/umlswitch/umlswitch/transports/stream"
	"github.com/umlswitch/umlswitch/transports/tap"
	"github.com/umlswitch/umlswitch/transports/vxlan"
)

// Every program that parses port specs opens ports through this package,
// so the kinds are registered here, in one place: a new kind is one more
// argument (and one more case in Set.open).
func init() {
	configs.Register(daemon.Kind, bess.Kind, tap.Kind, raw.Kind, gre.Kind, l2tpv3.Kind, vxlan.Kind,
		stream.Kind, dgram.Kind)
	configs.RegisterPolicy(policy.Kind)
}
