package instance

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/umlswitch/umlswitch/configs"
	"github.com/umlswitch/umlswitch/evpn"
	"github.com/umlswitch/umlswitch/frame"
	"github.com/umlswitch/umlswitch/internal/peercred"
	"github.com/umlswitch/umlswitch/internal/statefile"
)

// The run state is what the control API changed since the configuration
// was read: switches, ports and mirrors added or removed, `port set` keys
// and static MAC entries. It is kept in a file (Config.State, 0600,
// replaced whole within runSaveDelay of each change) so that a switch
// killed or stopped and started again runs the lab as it was running, not
// only as the configuration describes it. Restore replays it through the
// same methods the API calls; a reload (the configuration is the truth
// again) empties it. Only API writers change it: the methods the API
// calls record, the configuration's own paths (New, Apply) do not.

// runSaveDelay is how soon after a change the file is replaced: changes in
// between are written together.
const runSaveDelay = 20 * time.Millisecond

// runStateFormat names the file's layout; a file of another is ignored.
const runStateFormat = "umlswitch-run-state/1"

// maxRunItems bounds each list of the file, and maxRunStateBytes the file:
// a damaged one cannot make the switch try more than a lab would hold.
const (
	maxRunItems      = 4096
	maxRunStateBytes = 4 << 20
)

// removedItem is a configured port or mirror removed through the API. Its
// spec is kept so that a restart removes only the same one: the
// configuration may have changed meanwhile.
type removedItem struct {
	Switch string `json:"switch"`
	Name   string `json:"name"`
	Spec   string `json:"spec"`
}

type removedItems struct {
	switches map[string]bool
	ports    map[string]removedItem
	mirrors  map[string]removedItem
}

func newRemovedItems() removedItems {
	return removedItems{switches: map[string]bool{}, ports: map[string]removedItem{}, mirrors: map[string]removedItem{}}
}

// staticKey is a static MAC entry the API set.
type staticKey struct {
	sw   string
	mac  frame.MAC
	vlan uint16
}

// savedCred is who added a port or mirror, when it was not root or the
// switch's own user: the restart adds it as that user again.
type savedCred struct {
	UID    uint32   `json:"uid"`
	GID    uint32   `json:"gid"`
	Groups []uint32 `json:"groups,omitempty"`
}

func (c *savedCred) cred() *peercred.Cred {
	if c == nil {
		return nil
	}
	return &peercred.Cred{UID: c.UID, GID: c.GID, Groups: c.Groups}
}

func credOf(c *peercred.Cred) *savedCred {
	if c == nil {
		return nil
	}
	return &savedCred{UID: c.UID, GID: c.GID, Groups: c.Groups}
}

// savedSwitch is a switch added through the API: its settings by their
// configuration keys, as the API's request gives them.
type savedSwitch struct {
	Name     string      `json:"name"`
	Settings [][2]string `json:"settings,omitempty"`
}

// savedPort is a port added through the API: its spec (with its name), as
// the API's request gives it.
type savedPort struct {
	Switch string     `json:"switch"`
	Spec   string     `json:"spec"`
	As     *savedCred `json:"as,omitempty"`
}

// savedSet is the `port set` keys of a port, in the order they were set.
type savedSet struct {
	Port string      `json:"port"`
	Set  [][2]string `json:"set"`
}

type savedStatic struct {
	Switch string `json:"switch"`
	MAC    string `json:"mac"`
	Port   string `json:"port"`
	VLAN   int    `json:"vlan,omitempty"`
}

// runStateDoc is the file, in the order Restore replays it.
type runStateDoc struct {
	Format          string        `json:"format"`
	RemovedSwitches []string      `json:"removed_switches,omitempty"`
	Switches        []savedSwitch `json:"switches,omitempty"`
	RemovedPorts    []removedItem `json:"removed_ports,omitempty"`
	RemovedMirrors  []removedItem `json:"removed_mirrors,omitempty"`
	Ports           []savedPort   `json:"ports,omitempty"`
	Sets            []savedSet    `json:"sets,omitempty"`
	Mirrors         []savedPort   `json:"mirrors,omitempty"` // Spec: a -mirror spec
	Statics         []savedStatic `json:"statics,omitempty"`
	// EVPN is the fabric's data plane (its tunnels and remote entries),
	// put back stale after a crash or an upgrade until BGP confirms it.
	EVPN *evpn.State `json:"evpn,omitempty"`
}

func (d *runStateDoc) empty() bool {
	return len(d.RemovedSwitches)+len(d.Switches)+len(d.RemovedPorts)+len(d.RemovedMirrors)+
		len(d.Ports)+len(d.Sets)+len(d.Mirrors)+len(d.Statics) == 0 && d.EVPN == nil
}

// openRunState keeps the run state file at path, in a directory the
// switch may trust (unixsock.OpenDir). A directory it cannot use is
// reported: the switch runs on without a run state. Nothing is written
// before Restore has read it.
func (in *Instance) openRunState(path string) *statefile.Saver {
	s, err := statefile.Open(path, -1, runSaveDelay, in.log, "a restart would not bring back what the API changed",
		func() []byte {
			doc := in.runState()
			if doc.empty() {
				return nil // nothing differs from the configuration: no file
			}
			return encodeRunState(doc)
		})
	if err != nil {
		in.log.Warn("run state not kept: a restart brings back the configuration only", "path", path, "err", err)
		return nil
	}
	return s
}

// runStateChanged has the run state written within runSaveDelay.
func (in *Instance) runStateChanged() { in.saver.Soon() }

// runState is what the API changed, from the marks on switches, ports and
// mirrors and the records of removals and static entries. A listener's
// clients are not in it (the daemon transport takes its own back), nor
// their keys and static entries: after a restart their names may belong
// to other clients.
func (in *Instance) runState() *runStateDoc {
	fabric := in.speaker.State() // before mu: the speaker holds its lock while it calls the data plane, which takes mu
	in.mu.Lock()
	defer in.mu.Unlock()
	doc := &runStateDoc{Format: runStateFormat}
	if len(fabric.Tunnels)+len(fabric.MACs) > 0 {
		doc.EVPN = &fabric
	}
	running := func(sw string) bool { return in.switchNamed(sw) != nil }
	for name := range in.removed.switches {
		doc.RemovedSwitches = append(doc.RemovedSwitches, name)
	}
	for _, sw := range in.switches {
		if sw.runtime {
			doc.Switches = append(doc.Switches, savedSwitch{Name: sw.name, Settings: switchSettings(sw.plan)})
		}
	}
	for _, r := range in.removed.ports {
		if running(r.Switch) {
			doc.RemovedPorts = append(doc.RemovedPorts, r)
		}
	}
	for _, r := range in.removed.mirrors {
		if running(r.Switch) {
			doc.RemovedMirrors = append(doc.RemovedMirrors, r)
		}
	}
	for _, ps := range in.ports {
		if ps.parent != nil || ps.opened == nil {
			continue // a client, or one still opening
		}
		if ps.runtime {
			spec := ps.spec
			spec.Name = ps.name
			doc.Ports = append(doc.Ports, savedPort{Switch: ps.sw.name, Spec: spec.String(), As: credOf(ps.as)})
		}
		if len(ps.set) > 0 && !ps.vtep.IsValid() { // a fabric tunnel may not be back after a restart
			doc.Sets = append(doc.Sets, savedSet{Port: ps.name, Set: slices.Clone(ps.set)})
		}
	}
	for _, ms := range in.mirrors {
		if ms.runtime && ms.m != nil {
			spec := ms.spec
			spec.Name = ms.name
			doc.Mirrors = append(doc.Mirrors, savedPort{Switch: ms.sw.name, Spec: spec.String(), As: credOf(ms.as)})
		}
	}
	for k, port := range in.statics {
		if ps := in.ports[port]; ps != nil && ps.parent == nil && ps.sw.name == k.sw {
			doc.Statics = append(doc.Statics, savedStatic{Switch: k.sw, MAC: k.mac.String(), Port: port, VLAN: int(k.vlan)})
		}
	}
	// In a stable order: names a port or mirror was given are replayed in
	// the order they were numbered.
	slices.Sort(doc.RemovedSwitches)
	byName := func(a, b removedItem) int { return naturalCompare(a.Name, b.Name) }
	slices.SortFunc(doc.RemovedPorts, byName)
	slices.SortFunc(doc.RemovedMirrors, byName)
	bySpec := func(a, b savedPort) int {
		return cmp.Or(cmp.Compare(a.Switch, b.Switch), naturalCompare(a.Spec, b.Spec))
	}
	slices.SortFunc(doc.Ports, bySpec)
	slices.SortFunc(doc.Mirrors, bySpec)
	slices.SortFunc(doc.Sets, func(a, b savedSet) int { return naturalCompare(a.Port, b.Port) })
	slices.SortFunc(doc.Statics, func(a, b savedStatic) int {
		return cmp.Or(cmp.Compare(a.Switch, b.Switch), cmp.Compare(a.MAC, b.MAC), cmp.Compare(a.VLAN, b.VLAN))
	})
	return doc
}

// switchSettings are sw's settings by their configuration keys.
func switchSettings(sw configs.Switch) [][2]string {
	var kv [][2]string
	if sw.Hub {
		kv = append(kv, [2]string{"hub", "true"})
	}
	if sw.MACAge != 0 {
		kv = append(kv, [2]string{"mac_age", sw.MACAge.String()})
	}
	if sw.MACTableSize != 0 {
		kv = append(kv, [2]string{"mac_table_size", fmt.Sprint(sw.MACTableSize)})
	}
	return kv
}

// Restore replays the run state file, once the configuration's ports are
// open (and the switch runs as the user it is to run as: what is replayed
// opens with the rights the API's changes had), and from then on keeps it.
// A change that fails now (a path taken, a user no longer granted the API)
// is logged and dropped; a damaged or foreign file is reported and
// ignored. Neither stops the switch.
func (in *Instance) Restore() {
	s := in.saver
	if s == nil {
		return
	}
	if doc := in.loaded; doc != nil { // read by New
		in.loaded = nil
		in.replay(doc)
	}
	s.Start()
	in.runStateChanged() // the file now says what was brought back
}

// readRunState reads and checks the file: nil if there is none to use.
func (in *Instance) readRunState() *runStateDoc {
	s := in.saver
	data, err := s.Read(maxRunStateBytes)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	var doc *runStateDoc
	if err == nil {
		doc, err = parseRunState(data)
	}
	if err != nil {
		in.log.Warn("run state file ignored: what the API changed before the restart is not brought back", "path", s.Path(), "err", err)
		return nil
	}
	return doc
}

// replay applies doc through the methods the API calls, in the order that
// lets later records find what earlier ones made.
func (in *Instance) replay(doc *runStateDoc) {
	tried, done := 0, 0
	try := func(what string, err error) {
		tried++
		if err != nil {
			in.log.Info("run state: not brought back", "change", what, "err", err)
			return
		}
		done++
	}
	for _, name := range doc.RemovedSwitches {
		try("remove switch "+name, in.replayRemoval(name, "", "", func() error { return in.RemoveSwitch(name) }))
	}
	for _, sw := range doc.Switches {
		sp, _ := configs.NewSwitch(sw.Name, sw.Settings) // checked by parseRunState
		try("add switch "+sw.Name, in.AddSwitch(sp))
	}
	for _, r := range doc.RemovedPorts {
		try("remove port "+r.Name, in.replayRemoval(r.Name, r.Switch, r.Spec, func() error { return in.RemovePort(r.Name) }))
	}
	for _, r := range doc.RemovedMirrors {
		try("remove mirror "+r.Name, in.replayRemoval(r.Name, r.Switch, r.Spec, func() error { return in.RemoveMirror(r.Name) }))
	}
	for _, p := range doc.Ports {
		spec, _ := configs.ParsePort(p.Spec)
		as := p.As.cred()
		err := in.granted(as)
		if err == nil {
			_, err = in.AddPortAs(as, p.Switch, spec)
		}
		try("add port "+p.Spec+" to "+p.Switch, err)
	}
	for _, set := range doc.Sets {
		try("set "+fmt.Sprint(set.Set)+" on port "+set.Port, in.SetPort(set.Port, set.Set))
	}
	for _, m := range doc.Mirrors {
		spec, _ := configs.ParseMirror(m.Spec)
		as := m.As.cred()
		err := in.granted(as)
		if err == nil {
			_, err = in.AddMirrorAs(as, m.Switch, spec)
		}
		try("add mirror "+m.Spec+" to "+m.Switch, err)
	}
	for _, st := range doc.Statics {
		try("static "+st.MAC+" on port "+st.Port, in.AddStatic(st.Switch, st.MAC, st.Port, uint16(st.VLAN)))
	}
	if tried > 0 {
		in.log.Info("run state brought back", "changes", done, "of", tried)
	}
}

// replayRemoval removes a configured switch (sw and spec empty), port or
// mirror if the configuration still has it as it was when it was removed.
func (in *Instance) replayRemoval(name, sw, spec string, remove func() error) error {
	in.mu.Lock()
	var now string
	found := false
	switch {
	case sw == "":
		s := in.switchNamed(name)
		found = s != nil && !s.runtime
	case in.ports[name] != nil:
		ps := in.ports[name]
		found, now = ps.parent == nil && !ps.runtime && ps.sw.name == sw, ps.spec.String()
	default:
		ms := in.mirrors[name]
		if ms != nil {
			found, now = !ms.runtime && ms.sw.name == sw, ms.spec.String()
		}
	}
	in.mu.Unlock()
	if !found || (sw != "" && now != spec) {
		return fmt.Errorf("the configuration no longer has it as it was when it was removed")
	}
	return remove()
}

// granted refuses to act again as a user the configuration no longer lets
// change the switch (api_uid= and api_gid=, of the whole configuration or
// of a control socket): a restart gives a user no more than a running
// switch would.
func (in *Instance) granted(as *peercred.Cred) error {
	if as == nil {
		return nil
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if as.In(in.plan.APIUIDs, in.plan.APIGIDs) {
		return nil
	}
	for _, ps := range in.ports {
		if ps.parent != nil {
			continue
		}
		var uids, gids []uint32
		if v, ok := ps.spec.Get("api_uid"); ok {
			uids, _ = configs.ParseUsers(v)
		}
		if v, ok := ps.spec.Get("api_gid"); ok {
			gids, _ = configs.ParseGroups(v)
		}
		if as.In(uids, gids) {
			return nil
		}
	}
	return fmt.Errorf("uid %d is not in api_uid= or api_gid= now: %w", as.UID, ErrForbidden)
}

// forgetRunState takes back what the API changed besides switches, ports
// and mirrors (apply closed those the configuration lacks): `port set`
// keys and static entries; then the configuration is the whole truth and
// the run state is emptied. Caller holds reloading.
func (in *Instance) forgetRunState() []error {
	in.mu.Lock()
	for _, sw := range in.switches {
		sw.runtime = false
	}
	var reset []*portState
	for _, ps := range in.ports {
		ps.runtime = false
		if len(ps.set) > 0 {
			reset = append(reset, ps)
		}
	}
	for _, ms := range in.mirrors {
		ms.runtime = false
	}
	statics := in.statics
	in.statics = make(map[staticKey]string)
	in.removed = newRemovedItems()
	in.mu.Unlock()
	var errs []error
	for k := range statics {
		in.mu.Lock()
		sw := in.switchNamed(k.sw)
		in.mu.Unlock()
		if sw != nil {
			sw.core.Table().RemoveStatic(k.vlan, k.mac)
		}
	}
	for _, ps := range reset {
		in.swapping.Lock()
		in.mu.Lock()
		ps.set = nil
		err := in.pushPolicy(ps, false)
		in.swapping.Unlock()
		if err != nil {
			errs = append(errs, fmt.Errorf("port %s: keys set at run time: %w", ps.name, err))
		}
	}
	in.runStateChanged()
	return errs
}
