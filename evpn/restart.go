package evpn

import (
	"context"
	"net/netip"
	"time"

	"github.com/osrg/gobgp/v4/api"

	"github.com/umlswitch/umlswitch/configs"
	"github.com/umlswitch/umlswitch/frame"
)

// Surviving a restart or a hot upgrade (RFC 4724 graceful restart): the
// switch keeps what the fabric's data plane held in its state file, and a
// new process puts it back at once, marked stale, before BGP is up again.
// Peers that negotiated graceful restart keep this VTEP's routes (and
// forwarding to it) meanwhile; the new speaker tells them it restarted
// with forwarding state kept. Once every neighbour has sent its End-of-RIB
// (or the restart time has passed), what no route confirmed is taken out.

// State is the fabric's data plane as a restarted switch brings it back.
type State struct {
	Tunnels []Tunnel    `json:"tunnels,omitempty"`
	MACs    []RemoteMAC `json:"macs,omitempty"`
}

// RemoteMAC is a remote entry: an address in a switch behind a VTEP.
type RemoteMAC struct {
	Switch string     `json:"switch"`
	MAC    string     `json:"mac"`
	VTEP   netip.Addr `json:"vtep"`
}

// Restarting gives the speaker, before its first Apply, what the data
// plane held before a restart; Apply puts it back, stale.
func (s *Speaker) Restarting(st State) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pending = &st
}

// State is what the data plane holds now, for the state file.
func (s *Speaker) State() State {
	s.mu.Lock()
	defer s.mu.Unlock()
	var st State
	for _, v := range s.vnis {
		for vtep := range v.vteps {
			st.Tunnels = append(st.Tunnels, s.tunnel(v, vtep))
		}
		for vtep := range v.staleVTEPs {
			if v.vteps[vtep] == 0 {
				st.Tunnels = append(st.Tunnels, s.tunnel(v, vtep))
			}
		}
		for m, vtep := range v.installed {
			st.MACs = append(st.MACs, RemoteMAC{Switch: v.sw, MAC: m.String(), VTEP: vtep})
		}
	}
	return st
}

// OnChange sets a function called (at most once a second, never with the
// speaker's lock held) after the data plane changed: the state file's
// writer.
func (s *Speaker) OnChange(f func()) {
	s.mu.Lock()
	s.onChange = f
	s.mu.Unlock()
}

// restoreLocked puts the pending state back into the data plane, stale.
func (s *Speaker) restoreLocked() {
	st := s.pending
	s.pending = nil
	if st == nil || len(st.Tunnels)+len(st.MACs) == 0 {
		return
	}
	bySwitch := make(map[string]*vni)
	for _, v := range s.vnis {
		bySwitch[v.sw] = v
	}
	tunnels, macs := 0, 0
	for _, t := range st.Tunnels {
		v := bySwitch[t.Switch]
		if v == nil || v.id != t.VNI || v.vteps[t.Remote] > 0 || v.staleVTEPs[t.Remote] || s.check(&Route{VTEP: t.Remote}) != nil {
			continue
		}
		if err := s.dp.AddTunnel(s.tunnel(v, t.Remote)); err != nil {
			s.log.Warn("evpn: restore a tunnel", "switch", v.sw, "vtep", t.Remote, "err", err)
			continue
		}
		v.staleVTEPs[t.Remote] = true
		tunnels++
	}
	for _, rm := range st.MACs {
		v := bySwitch[rm.Switch]
		m, err := frame.ParseMAC(rm.MAC)
		if v == nil || err != nil || !v.staleVTEPs[rm.VTEP] {
			continue
		}
		if _, ok := v.installed[m]; ok {
			continue
		}
		if err := s.dp.SetRemoteMAC(v.sw, m, rm.VTEP); err != nil {
			continue
		}
		v.installed[m], v.staleMACs[m] = rm.VTEP, true
		macs++
	}
	s.restored = time.Now()
	wait := s.cfg.RestartTime
	if wait == 0 {
		wait = s.cfg.HoldTime
	}
	gen := s.gen
	s.sweepTimer = time.AfterFunc(wait+s.cfg.HoldTime, func() { s.sweep(gen, "restart time passed") })
	s.log.Info("evpn: data plane brought back, stale until the neighbours' End-of-RIB", "tunnels", tunnels, "macs", macs)
}

// onEOR notes a neighbour's End-of-RIB; when every neighbour has sent one,
// what is still stale goes.
func (s *Speaker) onEOR(gen int, peer netip.Addr) {
	s.mu.Lock()
	if gen != s.gen || s.restored.IsZero() {
		s.mu.Unlock()
		return
	}
	s.eor[peer.Unmap()] = true
	all := s.cfg != nil
	if all {
		for _, n := range s.cfg.Neighbors {
			all = all && s.eor[n.Address]
		}
	}
	s.mu.Unlock()
	if all {
		s.sweep(gen, "every neighbour sent its End-of-RIB")
	}
}

// sweep takes out of the data plane what was brought back and no route
// has confirmed.
func (s *Speaker) sweep(gen int, why string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if gen != s.gen || s.restored.IsZero() {
		return
	}
	s.restored = time.Time{}
	if s.sweepTimer != nil {
		s.sweepTimer.Stop()
	}
	tunnels, macs := 0, 0
	for _, v := range s.vnis {
		for m := range v.staleMACs {
			delete(v.staleMACs, m)
			if at, ok := v.installed[m]; ok && v.staleVTEPs[at] {
				macs++
			}
			s.evaluate(v, m)
		}
		for vtep := range v.staleVTEPs {
			delete(v.staleVTEPs, vtep)
			if v.vteps[vtep] == 0 {
				for m, at := range v.installed {
					if at == vtep {
						s.evaluate(v, m)
					}
				}
				s.dp.RemoveTunnel(s.tunnel(v, vtep))
				tunnels++
			}
		}
	}
	s.changed = true
	s.log.Info("evpn: stale state swept", "why", why, "tunnels_removed", tunnels, "macs_checked", macs)
}

// Leave stops the speaker for a hot upgrade: the sessions close without a
// notification, so that peers keep this VTEP's routes for the restart time
// (the new process takes over), and the data plane is left as it is: its
// sockets are the new process's now.
func (s *Speaker) Leave() {
	s.mu.Lock()
	if s.srv != nil {
		s.cancel()
		s.gen++
		if err := s.srv.StopBgp(context.Background(), &api.StopBgpRequest{AllowGracefulRestart: true}); err != nil {
			s.log.Warn("evpn: stop BGP", "err", err)
		}
		s.srv.Stop()
		s.srv = nil
	}
	s.mu.Unlock()
	s.Close()
}

// gracefulRestart is the graceful restart configuration of a neighbour.
// Restarting, it says so (the R and F bits) while it has state to bring
// back.
func (s *Speaker) gracefulRestart(cfg *configs.EVPN) (*api.GracefulRestart, *api.MpGracefulRestart) {
	rt := uint32(cfg.RestartTime / time.Second)
	if rt == 0 {
		return nil, nil
	}
	restarting := s.pending != nil && len(s.pending.Tunnels) > 0
	return &api.GracefulRestart{Enabled: true, RestartTime: rt, LocalRestarting: restarting},
		&api.MpGracefulRestart{Config: &api.MpGracefulRestartConfig{Enabled: true}}
}
