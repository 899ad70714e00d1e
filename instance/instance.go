// Package instance owns a running umlswitch: its switches, their named
// ports and mirrors, live capture and the control API's view of them. The
// command turns flags and the configuration file into a plan
// (configs.Merge) and hands it to New; everything that changes a running
// instance (the API, a reload) goes through its methods.
package instance

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/umlswitch/umlswitch/capture"
	"github.com/umlswitch/umlswitch/configs"
	"github.com/umlswitch/umlswitch/evpn"
	"github.com/umlswitch/umlswitch/fabric"
	"github.com/umlswitch/umlswitch/frame"
	"github.com/umlswitch/umlswitch/impair"
	"github.com/umlswitch/umlswitch/internal/handover"
	"github.com/umlswitch/umlswitch/internal/limit"
	"github.com/umlswitch/umlswitch/internal/peercred"
	"github.com/umlswitch/umlswitch/internal/statefile"
	"github.com/umlswitch/umlswitch/transports"
	"github.com/umlswitch/umlswitch/transports/portkind"
)

// Config is what New needs besides the plan.
type Config struct {
	Logger *slog.Logger
	// Level, if set, is the logger's level: a reload changes it.
	Level *slog.LevelVar
	// Reload, if set, reads the configuration again (file and flags,
	// merged) for Reload and SIGHUP.
	Reload func() (*configs.File, error)
	// Upgrade, if set, starts the binary on disk as a new switch and hands
	// it this one's sockets (ctl upgrade, SIGUSR2): see Instance.Upgrade.
	Upgrade func(in *Instance) error
	// API serves the control API on connections handed over by control
	// sockets (see transports/daemon's Handoff). Nil: no API.
	API func(in *Instance) APIServer
	// State is the run state file: what the API changed since the
	// configuration was read, kept so that Restore brings it back after a
	// restart (runstate.go). Empty: none is kept.
	State string
	// Upgrading: this is the new switch of a hot upgrade, and the old one
	// still holds the BGP port: the EVPN speaker waits for JoinFabric.
	Upgrading bool
}

// APIServer serves connections handed over by control sockets.
type APIServer interface {
	ServeConn(c net.Conn, from ConnInfo)
	Close() error
}

// ConnInfo says where an API connection came from and who made it.
type ConnInfo struct {
	Switch   string // the switch whose control socket it reached: what "this switch" means to its client
	Listener string // that socket's port name
	Path     string // and its path
	ReadOnly bool   // the socket's api=ro: reads only
	// Peer is who connected (SO_PEERCRED), peercred.Unknown if the kernel
	// could not say.
	Peer peercred.Cred
	// APIUIDs and APIGIDs may write and capture through this socket besides
	// root and the switch's own user: the socket's api_uid= and api_gid=
	// and the configuration's.
	APIUIDs, APIGIDs []uint32
}

// Instance is a running umlswitch.
type Instance struct {
	log    *slog.Logger
	cfg    Config
	fab    *fabric.Fabric
	set    *transports.Set
	events *Events
	api    APIServer
	// clients bounds the client ports of every listener, apiConns the API
	// connections and capture readers: in all and per uid, as the plan's
	// limits say when the instance starts.
	clients, apiConns *limit.Limiter
	apiRefused        atomic.Uint64
	notAllowed        atomic.Uint64 // peers refused by a listener's allow_uid= and allow_gid=

	// reloading serializes Reload and Apply: two at once would both see a
	// new port missing and open it twice.
	reloading sync.Mutex
	// upgrading is set while an upgrade is under way: a second one is
	// refused at once rather than left waiting for the first to end.
	upgrading atomic.Bool

	// swapping makes a port's change of the port the switch holds (SetPort
	// wrapping it in an impairment) and its detach happen one after the
	// other: the wrapper recorded is the one the switch holds, and a
	// detach takes off the port the switch holds. Taken before mu.
	swapping sync.Mutex

	// stop ends Run and its watcher when Close is called; watchers counts
	// the watcher goroutines Run started, which Close waits for.
	stop     chan struct{}
	watchers sync.WaitGroup

	mu       sync.Mutex // guards everything below; never held while forwarding
	plan     *configs.File
	switches []*switchState
	ports    map[string]*portState // by name: configured ports, listeners and their clients
	mirrors  map[string]*mirrorState
	seq      map[string]int // last number given to an unnamed port or mirror, by prefix
	closed   bool
	// removed and statics are the run state's records besides the marks
	// on switches, ports and mirrors (runstate.go).
	removed removedItems
	statics map[staticKey]string     // static entries the API set: the port's name
	saver   *statefile.Saver         // the run state file; nil: none kept
	tunnels map[tunnelKey]*portState // the EVPN control plane's tunnel ports

	speaker *evpn.Speaker // the EVPN control plane
	// fabricHeld: the speaker waits for JoinFabric (a hot upgrade's new
	// switch, while the old one still holds the BGP port).
	fabricHeld bool
	// loaded is the run state file as New read it, for Restore to replay.
	loaded *runStateDoc
}

type switchState struct {
	name  string
	core  *fabric.Switch
	plan  configs.Switch
	lives map[string]*liveCapture // by LiveSelect.key: created when a reader first asks
	vni   atomic.Uint32           // its VNI in the EVPN fabric, 0 if none: read on the forwarding path
	mac   macLimiter
	// runtime: added through the API, not by the configuration
	runtime bool
}

// portState is a configured port (or listener), or a client of a listener.
type portState struct {
	name     string
	kind     string
	sw       *switchState
	spec     configs.Port // configured only
	opened   *transports.Opened
	ap       *attachPoint
	listener bool
	parent   *portState                 // a client: its listener
	clients  map[fabric.Port]*portState // a listener: its clients now
	port     fabric.Port                // attached ports: the transport's own
	impaired *impair.Port               // and, on an impaired link, the wrapper the switch holds instead
	set      [][2]string                // link keys changed at run time (ctl port set), for it and its clients
	id       frame.PortID
	peer     string
	absent   string         // a configured port detached because its interface is gone: why
	vtep     netip.Addr     // a fabric tunnel the EVPN control plane made: its remote VTEP
	runtime  bool           // added through the API, not by the configuration: the run state keeps it
	as       *peercred.Cred // who added it, when not root or the switch's own user
	// linkDown is link=down as last applied: to its attached port (its
	// carrier), and for a configured port or listener as the events said.
	linkDown bool
}

// held is the port the switch holds for ps: the transport's, or the
// impairment wrapped round it. Caller holds mu.
func (ps *portState) held() fabric.Port {
	if ps.impaired != nil {
		return ps.impaired
	}
	return ps.port
}

type mirrorState struct {
	name string
	sw   *switchState
	spec configs.Mirror
	m    *capture.Mirror
	span *transports.Span
	as   *peercred.Cred // who asked for it, when not root: owner of its files
	// runtime: added through the API, not by the configuration
	runtime bool
}

// New starts what plan describes: every switch, port and mirror, or none
// (an error closes what was opened).
func New(plan *configs.File, cfg Config) (*Instance, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	in := &Instance{log: cfg.Logger, cfg: cfg, plan: plan, events: newEvents(), stop: make(chan struct{}),
		ports: make(map[string]*portState), mirrors: make(map[string]*mirrorState), seq: make(map[string]int),
		removed: newRemovedItems(), statics: make(map[staticKey]string),
		tunnels: make(map[tunnelKey]*portState)}
	lim := plan.Limits.WithDefaults()
	in.clients = limit.New("clients", lim.Clients, lim.ClientsPerUID)
	in.apiConns = limit.New("API connections", lim.API, lim.APIPerUID)
	in.fab = fabric.New(fabric.Config{TxHold: plan.TxHold, Logger: cfg.Logger})
	in.fab.RemoveSwitch(in.fab.Default()) // switches come from the plan
	in.set = transports.NewSet(in.fab, cfg.Logger)
	// Made first, started by Apply below: Close, on an error before then,
	// and the views find it stopped.
	in.speaker = evpn.New(cfg.Logger, dataplane{in}, in.onEVPN)
	if cfg.API != nil {
		in.api = cfg.API(in)
	}
	for _, sp := range plan.Switches {
		if err := in.addSwitch(sp, false); err != nil {
			in.Close()
			return nil, err
		}
	}
	if cfg.State != "" {
		in.saver = in.openRunState(cfg.State)
	}
	if in.saver != nil {
		in.loaded = in.readRunState()
		if in.loaded != nil && in.loaded.EVPN != nil {
			in.speaker.Restarting(*in.loaded.EVPN) // the fabric's tunnels back at once, before BGP is up
		}
	}
	in.speaker.OnChange(in.runStateChanged)
	if cfg.Upgrading && plan.EVPN != nil {
		in.fabricHeld = true // the old switch holds the BGP port until it has gone: JoinFabric
	} else if err := in.speaker.Apply(plan.EVPN, plan.Switches); err != nil {
		in.Close()
		return nil, err
	}
	return in, nil
}

// defaults are the per-port defaults of the current plan.
func (in *Instance) defaults() transports.Defaults {
	in.mu.Lock()
	defer in.mu.Unlock()
	return transports.Defaults{Depth: in.plan.Depth, MTU: in.plan.MTU, Clients: in.clients, NotAllowed: &in.notAllowed}
}

// Run forwards until ctx ends or Close is called, and returns once its
// watcher has stopped; Close still has to be called to close the ports.
func (in *Instance) Run(ctx context.Context) error {
	in.mu.Lock()
	if in.closed {
		in.mu.Unlock()
		return nil
	}
	// Added under mu, so never concurrently with Close's Wait.
	in.watchers.Add(1)
	in.mu.Unlock()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer in.watchers.Done()
		defer close(done)
		in.watch(ctx.Done(), in.stop)
		cancel() // Close was called: forwarding ends too
	}()
	err := in.fab.Run(ctx)
	cancel()
	<-done
	return err
}

// watch publishes what events need a clock for: suppressed MAC events and
// ports that start dropping. It returns when done (Run's end) or stop
// (Close) is closed.
func (in *Instance) watch(done, stop <-chan struct{}) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	drops := make(map[fabric.Port]dropState)
	for {
		select {
		case <-done:
			return
		case <-stop:
			return
		case <-t.C:
		}
		if !in.events.listened() {
			clear(drops)
			continue
		}
		in.mu.Lock()
		sws := slices.Clone(in.switches)
		in.mu.Unlock()
		for _, sw := range sws {
			if n := sw.mac.suppressed.Swap(0); n > 0 {
				in.events.publish(Event{Type: "mac-suppressed", Switch: sw.name, Count: n})
			}
		}
		in.watchDrops(drops)
	}
}

// dropState is what watchDrops knows of a port: its drops so far and
// whether they grew in the last second.
type dropState struct {
	total    uint64
	dropping bool
}

// watchDrops reports a port whose drops grew this second but not the one
// before: once per episode of drops, not once a second.
func (in *Instance) watchDrops(last map[fabric.Port]dropState) {
	type attached struct {
		port     fabric.Port
		id       frame.PortID
		name, sw string
	}
	in.mu.Lock()
	var ports []attached
	for _, p := range in.ports {
		if p.port != nil && p.id != frame.NoPort {
			ports = append(ports, attached{p.port, p.id, p.name, p.sw.name})
		}
	}
	in.mu.Unlock()
	seen := make(map[fabric.Port]bool, len(ports))
	for _, p := range ports {
		port := p.port
		st, ok := in.fab.PortStats(p.id)
		if !ok || st.Name != p.name {
			continue
		}
		seen[port] = true
		total := st.Dropped()
		prev, known := last[port]
		grew := known && total > prev.total
		last[port] = dropState{total: total, dropping: grew}
		if !grew || prev.dropping {
			continue
		}
		reasons := make(map[string]uint64)
		for r := fabric.DropReason(1); r < fabric.NumDropReasons; r++ {
			if st.Drops[r] > 0 {
				reasons[r.String()] = st.Drops[r]
			}
		}
		in.events.publish(Event{Type: "drops", Switch: p.sw, Port: p.name, Count: total - prev.total, Drops: reasons})
	}
	for k := range last {
		if !seen[k] {
			delete(last, k)
		}
	}
}

// Close stops the API, every port and mirror, and forwarding.
func (in *Instance) Close() {
	in.mu.Lock()
	if in.closed {
		in.mu.Unlock()
		return
	}
	in.closed = true
	close(in.stop)
	sws := slices.Clone(in.switches)
	in.mu.Unlock()
	in.watchers.Wait()                 // Run's watcher reads the ports closed below
	in.saver.Stop(!handover.Leaving()) // the run state as it is, before the ports close; after an upgrade the new switch's
	if in.api != nil {
		in.api.Close()
	}
	if handover.Leaving() {
		// The new switch serves the tunnels now: the sessions close
		// without a notification, so peers keep this VTEP's routes
		// (graceful restart) until the new switch's speaker is up, and
		// the BGP port is free only once the tunnel sockets are.
		in.set.Close()
		in.speaker.Leave()
	} else {
		in.speaker.Close() // withdraws this VTEP's routes and takes its tunnels down
		in.set.Close()     // listeners and tunnel sockets first: their readers return
	}
	for _, sw := range sws {
		in.closeSwitch(sw, false)
	}
	in.fab.Close()
	in.events.close()
}

// Events is the instance's event stream.
func (in *Instance) Events() *Events { return in.events }

// handoff is where a control socket sends API connections, with what the
// socket's own keys say of its API.
func (in *Instance) handoff(ps *portState) func(net.Conn, portkind.API) {
	if in.api == nil {
		return nil
	}
	return func(c net.Conn, api portkind.API) {
		// The configuration's grants as they are now: a reload that takes
		// one back takes it back from the next connection on.
		in.mu.Lock()
		uids, gids := slices.Concat(api.UIDs, in.plan.APIUIDs), slices.Concat(api.GIDs, in.plan.APIGIDs)
		in.mu.Unlock()
		info := ConnInfo{Switch: ps.sw.name, Listener: ps.name, ReadOnly: api.ReadOnly, Peer: peercred.Unknown,
			APIUIDs: uids, APIGIDs: gids}
		if sc, ok := c.(syscall.Conn); ok {
			if cred, err := peercred.FromConn(sc); err == nil {
				info.Peer = cred
			}
		}
		in.mu.Lock()
		if ps.opened != nil {
			info.Path = ps.opened.Path()
		}
		in.mu.Unlock()
		in.api.ServeConn(c, info)
	}
}

// ErrNotFound is wrapped by errors about a switch, port or mirror that
// does not exist; ErrExists by those about a name already taken;
// ErrForbidden by refusals of what a caller may not do.
var (
	ErrNotFound  = errors.New("not found")
	ErrExists    = errors.New("already exists")
	ErrForbidden = errors.New("forbidden")
)

// APILimit bounds the control API's connections (and live capture
// readers), in all and per uid.
func (in *Instance) APILimit() *limit.Limiter { return in.apiConns }

// ClientLimit bounds the client ports of every listener.
func (in *Instance) ClientLimit() *limit.Limiter { return in.clients }

// CountAPIRefusal counts a control API request refused for its caller's
// credentials (Security reports it).
func (in *Instance) CountAPIRefusal() { in.apiRefused.Add(1) }

// SecurityStats are the refusals of callers and clients so far.
type SecurityStats struct {
	APIRefused     uint64 `json:"api_refused"`     // requests refused for the caller's credentials
	APIOverLimit   uint64 `json:"api_over_limit"`  // API connections refused by a limit
	ClientsRefused uint64 `json:"clients_refused"` // clients refused by a limit
	// NotAllowed are peers a listener's allow_uid= and allow_gid= refused:
	// clients, and on a daemon socket callers of its API too.
	NotAllowed uint64 `json:"not_allowed"`
}

// Security returns the refusals so far.
func (in *Instance) Security() SecurityStats {
	return SecurityStats{APIRefused: in.apiRefused.Load(), APIOverLimit: in.apiConns.Refused(), ClientsRefused: in.clients.Refused(),
		NotAllowed: in.notAllowed.Load()}
}

// Plan is the plan the instance runs now.
func (in *Instance) Plan() *configs.File {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.plan
}

// newName gives an unnamed port or mirror the next free name of prefix and
// a number, counting from first. Numbers are not reused while the instance
// runs, so a name in an old log line or event means one port. Caller holds
// mu.
func (in *Instance) newName(prefix string, first int, taken func(string) bool) string {
	for {
		n := fmt.Sprintf("%s%d", prefix, first+in.seq[prefix])
		in.seq[prefix]++
		if !taken(n) {
			return n
		}
	}
}

func (in *Instance) switchNamed(name string) *switchState {
	for _, sw := range in.switches {
		if sw.name == name {
			return sw
		}
	}
	return nil
}

var _ io.Closer = (*transports.Opened)(nil)
