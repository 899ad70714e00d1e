package instance

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/umlswitch/umlswitch/configs"
	"github.com/umlswitch/umlswitch/internal/handover"
)

// Reload reads the configuration again and applies it (SIGHUP, the API's
// reload). Reloads run one at a time, each reading the file and applying
// it before the next reads it: the last one read is the one that runs.
func (in *Instance) Reload() error {
	if in.cfg.Reload == nil {
		return errors.New("reload: the switch was started without a configuration to read again")
	}
	in.reloading.Lock()
	defer in.reloading.Unlock()
	if handover.Leaving() {
		return errors.New("reload: this switch has handed over to a new one: reload that one")
	}
	plan, err := in.cfg.Reload()
	if err != nil {
		in.events.publish(Event{Type: "reload-failed", Error: err.Error()})
		in.log.Warn("reload failed: running on as before", "err", err)
		return fmt.Errorf("reload: %w", err)
	}
	return in.apply(plan)
}

// Upgrade hands the switch over to a new process of the binary on disk
// (Config.Upgrade). It returns once the new switch serves, after which
// this one stops, or with why not, and this one runs on. One runs at a
// time, and not beside a reload: a second is refused while one is under
// way, rather than left waiting as long as the new switch takes to serve.
func (in *Instance) Upgrade() error {
	if in.cfg.Upgrade == nil {
		return errors.New("upgrade: this switch cannot start another")
	}
	if !in.upgrading.CompareAndSwap(false, true) {
		return errors.New("upgrade: one is under way already")
	}
	defer in.upgrading.Store(false)
	in.reloading.Lock()
	defer in.reloading.Unlock()
	if handover.Leaving() { // two at once: the first won, and this switch is going
		return errors.New("upgrade: this switch has handed over to a new one already")
	}
	in.events.publish(Event{Type: "upgrade-started"})
	if err := in.cfg.Upgrade(in); err != nil {
		in.events.publish(Event{Type: "upgrade-failed", Error: err.Error()})
		in.log.Warn("upgrade failed: running on as before", "err", err)
		return fmt.Errorf("upgrade: %w", err)
	}
	return nil
}

// Upgrading reports whether an upgrade is under way or done: changes made
// now would be this switch's alone, lost when the new one serves.
func (in *Instance) Upgrading() bool { return in.upgrading.Load() || handover.Leaving() }

// HandOver is what a new switch process needs of this one's ports to serve
// their clients (internal/handover), besides the listening sockets.
func (in *Instance) HandOver() []handover.Item { return in.set.HandOver() }

// Apply makes the instance run plan, touching only what differs: a port
// whose spec did not change keeps running, and so do its clients. Ports,
// mirrors and switches that the running instance has and plan does not
// (those added through the API too) are closed; a switch's hub mode, ageing
// and table size change in place. What else the API changed (port set
// keys, static entries) is taken back, and the run state is emptied: plan
// is the truth. Depth and MTU defaults apply to ports opened from now on;
// tx_hold and busy_poll need a restart. It waits for a reload or Apply
// under way.
func (in *Instance) Apply(plan *configs.File) error {
	in.reloading.Lock()
	defer in.reloading.Unlock()
	return in.apply(plan)
}

// cpuOrOff is a busy_poll setting as it reads in a log line: the CPU, or -1.
func cpuOrOff(cpu *int) int {
	if cpu == nil {
		return -1
	}
	return *cpu
}

// apply is Apply for a caller that holds in.reloading.
func (in *Instance) apply(plan *configs.File) error {
	in.mu.Lock()
	old := in.plan
	in.plan = plan
	var gone []*switchState
	for _, sw := range in.switches {
		if plan.Switch(sw.name) == nil {
			gone = append(gone, sw)
		}
	}
	in.mu.Unlock()
	if in.cfg.Level != nil && plan.LogLevel != "" {
		var l slog.Level
		if l.UnmarshalText([]byte(plan.LogLevel)) == nil {
			in.cfg.Level.Set(l)
		}
	}
	if plan.TxHold != old.TxHold {
		in.log.Warn("reload: tx_hold changes at the next start", "running", old.TxHold, "configured", plan.TxHold)
	}
	if cpuOrOff(plan.BusyPoll) != cpuOrOff(old.BusyPoll) {
		in.log.Warn("reload: busy_poll changes at the next start", "running", cpuOrOff(old.BusyPoll), "configured", cpuOrOff(plan.BusyPoll))
	}
	var st reloadStats
	var errs []error
	for _, sw := range gone {
		in.closeSwitch(sw, true)
		st.switchesRemoved++
	}
	for _, sp := range plan.Switches {
		in.mu.Lock()
		sw := in.switchNamed(sp.Name)
		in.mu.Unlock()
		if sw == nil {
			if err := in.addSwitchWhole(sp, false); err != nil {
				errs = append(errs, err)
			} else {
				st.switchesAdded++
			}
			continue
		}
		sw.core.Reconfigure(sp.Hub, sp.MACAge, sp.MACTableSize)
		sw.vni.Store(sp.VNI)
		errs = append(errs, in.applyPorts(sw, sp.Ports, &st)...)
		errs = append(errs, in.applyMirrors(sw, sp.Mirrors, &st)...)
	}
	in.mu.Lock()
	held := in.fabricHeld // JoinFabric applies the plan of the day
	in.mu.Unlock()
	if !held {
		if err := in.speaker.Apply(plan.EVPN, plan.Switches); err != nil {
			errs = append(errs, err)
		}
	}
	errs = append(errs, in.forgetRunState()...)
	err := errors.Join(errs...)
	ev := Event{Type: "reload", Detail: st.String()}
	if err != nil {
		ev.Error = err.Error()
	}
	in.events.publish(ev)
	in.log.Info("configuration reloaded", "changes", st.String(), "err", err)
	return err
}

type reloadStats struct {
	switchesAdded, switchesRemoved      int
	portsAdded, portsRemoved, portsKept int
	mirrorsAdded, mirrorsRemoved        int
}

func (s reloadStats) String() string {
	return fmt.Sprintf("switches +%d -%d, ports +%d -%d (%d unchanged), mirrors +%d -%d",
		s.switchesAdded, s.switchesRemoved, s.portsAdded, s.portsRemoved, s.portsKept, s.mirrorsAdded, s.mirrorsRemoved)
}

// applyPorts closes the configured ports of sw that want does not list
// with the same spec, then opens those it lists that are not running.
func (in *Instance) applyPorts(sw *switchState, want []configs.Port, st *reloadStats) []error {
	in.mu.Lock()
	var running []*portState
	for _, p := range in.ports {
		if p.sw == sw && p.parent == nil && !p.vtep.IsValid() { // the control plane's tunnels are not configured
			running = append(running, p)
		}
	}
	in.mu.Unlock()
	stale, open := diff(running, want, func(r *portState, w configs.Port) bool { return r.spec.String() == w.String() })
	st.portsKept += len(running) - len(stale)
	for _, r := range stale {
		in.closePort(r)
		st.portsRemoved++
	}
	var errs []error
	for _, p := range open {
		if _, err := in.addPort(sw.name, p, nil, false); err != nil {
			errs = append(errs, err)
		} else {
			st.portsAdded++
		}
	}
	return errs
}

// applyMirrors does for mirrors what applyPorts does for ports.
func (in *Instance) applyMirrors(sw *switchState, want []configs.Mirror, st *reloadStats) []error {
	in.mu.Lock()
	var running []*mirrorState
	for _, m := range in.mirrors {
		if m.sw == sw && m.m != nil {
			running = append(running, m)
		}
	}
	in.mu.Unlock()
	stale, open := diff(running, want, func(r *mirrorState, w configs.Mirror) bool { return r.spec.String() == w.String() })
	for _, r := range stale {
		in.closeMirror(r)
		st.mirrorsRemoved++
	}
	var errs []error
	for _, m := range open {
		if _, err := in.addMirror(sw.name, m, nil, false); err != nil {
			errs = append(errs, err)
		} else {
			st.mirrorsAdded++
		}
	}
	return errs
}

// diff pairs what runs with what is wanted, each at most once: it returns
// what runs unpaired (to close) and what is wanted unpaired (to open).
func diff[R, W any](running []R, want []W, same func(R, W) bool) (stale []R, open []W) {
	paired := make([]bool, len(running))
	for _, w := range want {
		found := false
		for i, r := range running {
			if !paired[i] && same(r, w) {
				paired[i], found = true, true
				break
			}
		}
		if !found {
			open = append(open, w)
		}
	}
	for i, r := range running {
		if !paired[i] {
			stale = append(stale, r)
		}
	}
	return stale, open
}
