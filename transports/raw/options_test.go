package raw

import (
	"strings"
	"testing"

	"github.com/umlswitch/umlswitch/configs"
)

// The AF_XDP keys: what they take, what they need, and that a spec comes
// back the same from its parsed form.
func TestXDPKeys(t *testing.T) {
	for _, c := range []struct {
		spec   string
		xdp    XDPMode
		queues int
		zc     bool
	}{
		{"transport=raw,ifname=eth0", XDPOff, 0, false},
		{"transport=raw,ifname=eth0,xdp=auto", XDPAuto, 0, false},
		{"transport=raw,ifname=eth0,xdp=1,queues=4,zerocopy=1", XDPOn, 4, true},
		{"transport=raw,ifname=eth0,xdp=auto,queues=2", XDPAuto, 2, false},
		{"transport=raw,ifname=eth0,xdp=0", XDPOff, 0, false},
	} {
		p, err := configs.ParsePort(c.spec)
		if err != nil {
			t.Errorf("%s: %v", c.spec, err)
			continue
		}
		o := p.Options.(*Options)
		if o.XDP != c.xdp || o.Queues != c.queues || o.ZeroCopy != c.zc {
			t.Errorf("%s: xdp %v, queues %d, zerocopy %v", c.spec, o.XDP, o.Queues, o.ZeroCopy)
		}
		again, err := configs.ParsePort(p.String())
		if err != nil || again.String() != p.String() {
			t.Errorf("%s: printed as %q, which parses as %q (%v)", c.spec, p.String(), again.String(), err)
		}
	}
	for _, c := range []struct{ spec, want string }{
		{"transport=raw,ifname=eth0,xdp=yes", "want 0, 1 or auto"},
		{"transport=raw,ifname=eth0,queues=2", "queues= needs xdp=1 or xdp=auto"},
		{"transport=raw,ifname=eth0,xdp=auto,zerocopy=1", "zerocopy=1 needs xdp=1"},
		{"transport=raw,ifname=eth0,xdp=1,queues=0", "queues"},
		{"transport=raw,ifname=eth0,xdp=1,queues=65", "queues"},
	} {
		if _, err := configs.ParsePort(c.spec); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one saying %q", c.spec, err, c.want)
		}
	}
}

// ring= chooses how an AF_PACKET socket reads; left out, the default; it
// means nothing to AF_XDP, which refuses it.
func TestRingKey(t *testing.T) {
	for _, c := range []struct {
		spec string
		ring RingMode
		mode RingMode
	}{
		{"transport=raw,ifname=eth0", RingDefault, defaultRing},
		{"transport=raw,ifname=eth0,ring=blocks", RingBlocks, RingBlocks},
		{"transport=raw,ifname=eth0,ring=frames", RingFrames, RingFrames},
		{"transport=raw,ifname=eth0,ring=0", RingOff, RingOff},
		{"transport=raw,ifname=eth0,xdp=auto,ring=frames", RingFrames, RingFrames},
	} {
		p, err := configs.ParsePort(c.spec)
		if err != nil {
			t.Errorf("%s: %v", c.spec, err)
			continue
		}
		o := p.Options.(*Options)
		if o.Ring != c.ring || o.Ring.mode() != c.mode {
			t.Errorf("%s: ring %v (%d), mode %v", c.spec, o.Ring, o.Ring, o.Ring.mode())
		}
		if again, err := configs.ParsePort(p.String()); err != nil || again.String() != p.String() {
			t.Errorf("%s: printed as %q, which parses as %q (%v)", c.spec, p.String(), again.String(), err)
		}
	}
	for _, c := range []struct{ spec, want string }{
		{"transport=raw,ifname=eth0,ring=2", "want 0, blocks or frames"},
		{"transport=raw,ifname=eth0,xdp=1,ring=frames", "xdp=1"},
	} {
		if _, err := configs.ParsePort(c.spec); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one saying %q", c.spec, err, c.want)
		}
	}
}
