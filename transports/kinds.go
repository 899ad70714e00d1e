package transports

import (
	"github.com/umlswitch/umlswitch/configs"
	"github.com/umlswitch/umlswitch/policy"

	// Each kind registers itself (see portkind): a new kind is one more
	// line here.
	_ "github.com/umlswitch/umlswitch/transports/bess"
	_ "github.com/umlswitch/umlswitch/transports/daemon"
	_ "github.com/umlswitch/umlswitch/transports/dgram"
	_ "github.com/umlswitch/umlswitch/transports/gre"
	_ "github.com/umlswitch/umlswitch/transports/l2tpv3"
	_ "github.com/umlswitch/umlswitch/transports/nat"
	_ "github.com/umlswitch/umlswitch/transports/raw"
	_ "github.com/umlswitch/umlswitch/transports/stream"
	_ "github.com/umlswitch/umlswitch/transports/tap"
	_ "github.com/umlswitch/umlswitch/transports/vxlan"
)

// Every program that parses port specs opens ports through this package,
// so the kinds are linked in here, in one place, and the per-port policy
// keys registered beside them.
func init() { configs.RegisterPolicy(policy.Kind) }
