package instance

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/umlswitch/umlswitch/configs"
	"github.com/umlswitch/umlswitch/evpn"
	"github.com/umlswitch/umlswitch/frame"
)

// The EVPN control plane's side of the instance: the tunnel ports and the
// remote MAC entries it asks for, made through the same attach point and
// FDB calls the API uses.

// evpnGroup is the split horizon group of every fabric tunnel: a frame
// from one VTEP never goes out to another, so any number of hosts form a
// loop-free domain.
const evpnGroup = "evpn"

// fabricVLAN is the VLAN a VNI's addresses live in: the tunnels are
// untagged ports.
const fabricVLAN = 0

// tunnelKey names a fabric tunnel: a switch and the remote VTEP.
type tunnelKey struct {
	sw   string
	vtep netip.Addr
}

// dataplane implements evpn.Dataplane over the instance.
type dataplane struct{ in *Instance }

// tunnelName is the port name of a fabric tunnel: its VNI and VTEP.
func tunnelName(t evpn.Tunnel) string { return fmt.Sprintf("evpn-%d-%s", t.VNI, t.Remote) }

func (d dataplane) AddTunnel(t evpn.Tunnel) error {
	in := d.in
	v6 := ""
	if t.Local.Is6() {
		v6 = ",v6=1"
	}
	spec, err := configs.ParsePort(fmt.Sprintf("transport=vxlan,name=%s,src=%s,dst=%s,vni=%d,dstport=%d,split_horizon=%s%s",
		tunnelName(t), t.Local, t.Remote, t.VNI, t.Port, evpnGroup, v6))
	if err != nil {
		return fmt.Errorf("evpn tunnel: %w", err)
	}
	name, err := in.addPort(t.Switch, spec, nil, false)
	if err != nil {
		return err
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if ps := in.ports[name]; ps != nil {
		ps.vtep = t.Remote
		in.tunnels[tunnelKey{t.Switch, t.Remote}] = ps
	}
	return nil
}

func (d dataplane) RemoveTunnel(t evpn.Tunnel) {
	in := d.in
	in.mu.Lock()
	k := tunnelKey{t.Switch, t.Remote}
	ps := in.tunnels[k]
	delete(in.tunnels, k)
	in.mu.Unlock()
	if ps != nil {
		in.closePort(ps)
	}
}

// tunnel is the port to vtep in switch sw and the switch.
func (in *Instance) tunnel(sw string, vtep netip.Addr) (*portState, error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	ps := in.tunnels[tunnelKey{sw, vtep}]
	if ps == nil || ps.id == frame.NoPort {
		return nil, fmt.Errorf("switch %s: no tunnel to VTEP %s", sw, vtep)
	}
	return ps, nil
}

func (d dataplane) SetRemoteMAC(sw string, mac frame.MAC, vtep netip.Addr) error {
	ps, err := d.in.tunnel(sw, vtep)
	if err != nil {
		return err
	}
	return ps.sw.core.SetRemote(fabricVLAN, mac, ps.id)
}

func (d dataplane) RemoveRemoteMAC(sw string, mac frame.MAC, vtep netip.Addr) {
	if ps, err := d.in.tunnel(sw, vtep); err == nil {
		ps.sw.core.RemoveRemote(fabricVLAN, mac, ps.id)
	}
}

// LocalMACs lists what switch sw holds on its own ports: not behind a
// fabric tunnel, and in the VLAN the tunnels carry.
func (d dataplane) LocalMACs(sw string) []frame.MAC {
	in := d.in
	in.mu.Lock()
	s := in.switchNamed(sw)
	tunnels := make(map[frame.PortID]bool)
	for k, ps := range in.tunnels {
		if k.sw == sw {
			tunnels[ps.id] = true
		}
	}
	in.mu.Unlock()
	if s == nil {
		return nil
	}
	var out []frame.MAC
	for _, e := range s.core.Entries() {
		if e.Remote || e.VLAN != fabricVLAN || e.Port == frame.NoPort || tunnels[e.Port] {
			continue
		}
		out = append(out, e.MAC)
	}
	return out
}

// onEVPN publishes the control plane's events.
func (in *Instance) onEVPN(e evpn.Event) {
	ev := Event{Type: e.Type, Switch: e.Switch}
	switch e.Type {
	case "bgp-up", "bgp-down":
		ev.Peer, ev.Detail = e.Neighbor.String(), e.State
	default:
		ev.Peer, ev.Detail = e.VTEP.String(), fmt.Sprintf("vni %d", e.VNI)
		ev.Port = tunnelName(evpn.Tunnel{VNI: e.VNI, Remote: e.VTEP})
	}
	in.events.publish(ev)
}

// ErrNoEVPN answers a question about the EVPN control plane (GET /v1/bgp,
// /v1/evpn) when the configuration has no evpn: block. It is an
// ErrNotFound: the API answers 404.
var ErrNoEVPN error = noEVPN{}

type noEVPN struct{}

func (noEVPN) Error() string        { return "EVPN is not configured: the configuration has no evpn: block" }
func (noEVPN) Is(target error) bool { return target == ErrNotFound }

// errFabricPort refuses an API change to a port the control plane owns.
var errFabricPort = errors.New("made by the EVPN control plane, which removes it when its VTEP leaves")

// EVPN is the instance's EVPN speaker (stopped when the configuration has
// no evpn: block).
func (in *Instance) EVPN() *evpn.Speaker { return in.speaker }

// joinFabricWait is how long the new switch of an upgrade tries to take
// the BGP port over from the old one, which lets go of it as it stops.
const (
	joinFabricWait  = 30 * time.Second
	joinFabricRetry = 100 * time.Millisecond
)

// JoinFabric starts the EVPN speaker that New held back in the new switch
// of a hot upgrade, once the old switch has stopped its own: that one
// closed its sessions without a notification, so the peers kept this
// VTEP's routes meanwhile (graceful restart), and this speaker brings the
// fabric's data plane back from the run state the moment it starts. Call
// it once the old switch has been told to go.
func (in *Instance) JoinFabric() {
	in.mu.Lock()
	held := in.fabricHeld
	in.mu.Unlock()
	if !held {
		return
	}
	in.watchers.Add(1)
	go func() {
		defer in.watchers.Done()
		deadline := time.Now().Add(joinFabricWait)
		for {
			in.reloading.Lock() // a reload meanwhile left the speaker to us: apply its plan
			in.mu.Lock()
			plan := in.plan
			in.mu.Unlock()
			err := in.speaker.Apply(plan.EVPN, plan.Switches)
			if err == nil || time.Now().After(deadline) {
				in.mu.Lock()
				in.fabricHeld = false
				in.mu.Unlock()
			}
			in.reloading.Unlock()
			switch {
			case err == nil:
				in.log.Info("evpn: joined the fabric after the upgrade")
				return
			case time.Now().After(deadline):
				in.log.Error("evpn: not joined the fabric after the upgrade: the old switch still holds its port", "err", err)
				in.events.publish(Event{Type: "evpn-failed", Error: err.Error()})
				return
			}
			select {
			case <-in.stop:
				return
			case <-time.After(joinFabricRetry):
			}
		}
	}()
}
