// Package lab reads Netkit and Kathara lab descriptions (lab.conf, and
// lab.ext for host bridges) and turns them into what umlswitch runs: one
// switch per collision domain (Plan), and the UML kernel options that
// attach each machine's interfaces to them (Machine.DaemonOptions,
// Machine.VectorOptions).
package lab

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/umlswitch/umlswitch/configs"
	"github.com/umlswitch/umlswitch/frame"
	_ "github.com/umlswitch/umlswitch/transports" // Plan builds daemon, bess and raw ports: their kinds must be registered
)

// Lab is a parsed lab.conf, with the host bridges of its lab.ext.
type Lab struct {
	Machines []Machine // by name
	Bridges  []Bridge  // lab.ext, in file order
}

// Machine is a virtual machine with at least one interface.
type Machine struct {
	Name       string
	Interfaces []Interface // by index; numbers may have gaps
}

// Interface is one ethN of a machine.
type Interface struct {
	Index  int
	Domain string // the collision domain it is plugged into
	MAC    string // lowercase xx:xx:xx:xx:xx:xx, or empty: the kernel picks one
	Line   int    // where lab.conf gives it
}

// Bridge is a line of lab.ext: a collision domain bridged to an existing
// host interface through a raw port.
type Bridge struct {
	Domain string
	Ifname string
	Line   int
}

// MaxIndex bounds interface numbers: UML takes any, but a lab with eth4096
// is a typo.
const MaxIndex = 255

// MaxSocketPath is the longest path a unix socket can be bound to
// (sun_path's 108 bytes, less the NUL).
const MaxSocketPath = 107

// bessSuffix names a domain's BESS listener after it; a domain's name
// leaves room for it.
const (
	bessSuffix    = ".bess"
	maxDomainName = 64 - len(bessSuffix)
)

// nameRE is what machine and domain names may be: they become file names
// in the socket directory, switch names and kernel options.
var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

func checkName(what, n string) error {
	if !nameRE.MatchString(n) {
		return fmt.Errorf("%s name %q: use 1 to 64 letters, digits and _ . - (starting with a letter or digit)", what, n)
	}
	return nil
}

// ifaceKey is MACHINE[N]: a machine's interface; other bracketed keys
// (mem, image, bridged, ...) are machine settings this package ignores.
var ifaceKey = regexp.MustCompile(`^([^\[\]]+)\[([0-9]+)\]$`)

// Parse reads a lab.conf: MACHINE[N]=DOMAIN or MACHINE[N]=DOMAIN/MAC
// (quotes optional), comments starting with #, blank lines. Other keys
// (LAB_DESCRIPTION=..., pc1[mem]=128, ...) are read and ignored. Errors
// name the line.
func Parse(r io.Reader) (*Lab, error) {
	byName := make(map[string]*Machine)
	s := bufio.NewScanner(r)
	s.Buffer(make([]byte, 0, 4096), 1<<20)
	for n := 1; s.Scan(); n++ {
		line := strings.TrimSpace(s.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		key, value, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("line %d: %q is not KEY=VALUE", n, line)
		}
		m := ifaceKey.FindStringSubmatch(strings.TrimSpace(key))
		if m == nil {
			continue // a setting of the lab or of a machine
		}
		iface, err := parseInterface(m[1], m[2], value)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		iface.Line = n
		mach := byName[m[1]]
		if mach == nil {
			mach = &Machine{Name: m[1]}
			byName[m[1]] = mach
		}
		if i := slices.IndexFunc(mach.Interfaces, func(x Interface) bool { return x.Index == iface.Index }); i >= 0 {
			return nil, fmt.Errorf("line %d: %s[%d] given twice (first on line %d)", n, mach.Name, iface.Index, mach.Interfaces[i].Line)
		}
		mach.Interfaces = append(mach.Interfaces, iface)
	}
	if err := s.Err(); err != nil {
		return nil, err
	}
	l := &Lab{}
	for _, m := range byName {
		slices.SortFunc(m.Interfaces, func(a, b Interface) int { return a.Index - b.Index })
		l.Machines = append(l.Machines, *m)
	}
	slices.SortFunc(l.Machines, func(a, b Machine) int { return strings.Compare(a.Name, b.Name) })
	return l, nil
}

func parseInterface(machine, index, value string) (Interface, error) {
	if err := checkName("machine", machine); err != nil {
		return Interface{}, err
	}
	idx, err := strconv.Atoi(index)
	if err != nil || idx > MaxIndex {
		return Interface{}, fmt.Errorf("%s[%s]: interface numbers go from 0 to %d", machine, index, MaxIndex)
	}
	v := unquote(strings.TrimSpace(value))
	domain, mac, hasMAC := strings.Cut(v, "/")
	iface := Interface{Index: idx, Domain: domain}
	if err := checkName("collision domain", domain); err != nil {
		return Interface{}, fmt.Errorf("%s[%d]: %w", machine, idx, err)
	}
	if err := configs.CheckName(domain + bessSuffix); err != nil { // it names a switch, and its BESS listener
		return Interface{}, fmt.Errorf("%s[%d]: collision domain %q: at most %d letters, digits and _ . : - (starting with a letter or digit)",
			machine, idx, domain, maxDomainName)
	}
	if hasMAC {
		if iface.MAC, err = parseMAC(mac); err != nil {
			return Interface{}, fmt.Errorf("%s[%d]: %w", machine, idx, err)
		}
	}
	return iface, nil
}

// unquote strips one pair of matching quotes, or, from an unquoted value,
// a trailing comment (bash, which Netkit sources lab.conf with, allows
// one).
func unquote(v string) string {
	if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
		return v[1 : len(v)-1]
	}
	if i := strings.IndexAny(v, " \t"); i >= 0 && strings.HasPrefix(strings.TrimSpace(v[i:]), "#") {
		return v[:i]
	}
	return v
}

func parseMAC(s string) (string, error) {
	hw, err := net.ParseMAC(s)
	if err != nil || len(hw) != 6 || !strings.Contains(s, ":") {
		return "", fmt.Errorf("MAC %q: want six hex bytes like 02:00:00:00:00:01", s)
	}
	if hw[0]&1 != 0 {
		return "", fmt.Errorf("MAC %q is a multicast address: an interface needs a unicast one (first byte even)", s)
	}
	return hw.String(), nil
}

// ParseExt reads a lab.ext into l: lines DOMAIN IFNAME bridge a collision
// domain of the lab to a host interface (see Plan); comments start with #.
func (l *Lab) ParseExt(r io.Reader) error {
	domains := l.Domains()
	s := bufio.NewScanner(r)
	s.Buffer(make([]byte, 0, 4096), 1<<20)
	for n := 1; s.Scan(); n++ {
		line := strings.TrimSpace(s.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 2 {
			return fmt.Errorf("line %d: %q is not DOMAIN INTERFACE", n, line)
		}
		b := Bridge{Domain: f[0], Ifname: f[1], Line: n}
		if !slices.Contains(domains, b.Domain) {
			return fmt.Errorf("line %d: no machine of lab.conf is on collision domain %q", n, b.Domain)
		}
		if err := configs.CheckIfname(b.Ifname); err != nil || strings.ContainsAny(b.Ifname, "/,=") {
			return fmt.Errorf("line %d: %q is not an interface name", n, b.Ifname)
		}
		if i := slices.IndexFunc(l.Bridges, func(x Bridge) bool { return x.Ifname == b.Ifname }); i >= 0 {
			return fmt.Errorf("line %d: interface %s is bridged already (line %d)", n, b.Ifname, l.Bridges[i].Line)
		}
		l.Bridges = append(l.Bridges, b)
	}
	if err := s.Err(); err != nil {
		return err
	}
	return nil
}

// Domains lists the collision domains the machines use, sorted.
func (l *Lab) Domains() []string {
	var ds []string
	for _, m := range l.Machines {
		for _, i := range m.Interfaces {
			ds = append(ds, i.Domain)
		}
	}
	slices.Sort(ds)
	return slices.Compact(ds)
}

// Machine returns the machine named name, or nil.
func (l *Lab) Machine(name string) *Machine {
	for i := range l.Machines {
		if l.Machines[i].Name == name {
			return &l.Machines[i]
		}
	}
	return nil
}

// Only is the part of the lab that one host runs: the named machines
// (each name once is enough), and lab.ext's bridges to the domains they
// use. Its plan has switches for those domains only. Names the lab lacks
// are an error that lists them.
func (l *Lab) Only(names []string) (*Lab, error) {
	if len(names) == 0 {
		return nil, fmt.Errorf("no machine named")
	}
	part := &Lab{}
	var unknown []string
	for _, m := range l.Machines { // the lab's order: by name
		if slices.Contains(names, m.Name) {
			part.Machines = append(part.Machines, m)
		}
	}
	for _, n := range names {
		if l.Machine(n) == nil && !slices.Contains(unknown, n) {
			unknown = append(unknown, n)
		}
	}
	if len(unknown) > 0 {
		return nil, fmt.Errorf("no machine %s in lab.conf (it has %s)", strings.Join(unknown, ", "), strings.Join(l.machineNames(), ", "))
	}
	used := part.Domains()
	for _, b := range l.Bridges {
		if slices.Contains(used, b.Domain) {
			part.Bridges = append(part.Bridges, b)
		}
	}
	return part, nil
}

func (l *Lab) machineNames() []string {
	var ns []string
	for _, m := range l.Machines {
		ns = append(ns, m.Name)
	}
	return ns
}

// VNIs numbers the lab's collision domains from base, in the order of
// their names: Domains()[i] gets base+i. Call it on the whole lab, not on
// a part of it (Only), so that every host that reads the same lab.conf
// numbers the domains alike whichever machines it runs. Every VNI must be
// at most configs.MaxVNI.
func (l *Lab) VNIs(base uint32) (map[string]uint32, error) {
	ds := l.Domains()
	if base < 1 || uint64(base)+uint64(len(ds))-1 > configs.MaxVNI {
		return nil, fmt.Errorf("vni_base %d: the lab's %d collision domains take VNIs %d to %d, and VNIs go from 1 to %d",
			base, len(ds), base, uint64(base)+uint64(len(ds))-1, configs.MaxVNI)
	}
	vnis := make(map[string]uint32, len(ds))
	for i, d := range ds {
		vnis[d] = base + uint32(i)
	}
	return vnis, nil
}

// Span puts the switches of plan (a plan of l or of a part of it) into
// the BGP EVPN fabric e, each with its domain's VNI from l.VNIs(base):
// the domains a host shares with other hosts then span them all.
func (l *Lab) Span(plan *configs.File, e *configs.EVPN, base uint32) error {
	vnis, err := l.VNIs(base)
	if err != nil {
		return err
	}
	for _, sw := range plan.Switches {
		if _, ok := vnis[sw.Name]; !ok {
			return fmt.Errorf("switch %s is no collision domain of the lab", sw.Name)
		}
	}
	for i, sw := range plan.Switches {
		plan.Switches[i].VNI = vnis[sw.Name]
	}
	plan.EVPN = e
	return nil
}

// The sockets of a lab in its directory: each domain's control socket
// (UML's daemon transport, VDE) and BESS listener, and the socket a
// machine's vector interface binds.
func CtlPath(dir, domain string) string  { return filepath.Join(dir, domain+".ctl") }
func BESSPath(dir, domain string) string { return filepath.Join(dir, domain+".bess") }
func MachineSocket(dir, machine string, index int) string {
	return filepath.Join(dir, fmt.Sprintf("%s-eth%d.sock", machine, index))
}

// Plan is the configuration that runs the lab: a switch per collision
// domain, named after it, with a daemon port at DIR/DOMAIN.ctl (named
// DOMAIN), a BESS listener at DIR/DOMAIN.bess (named DOMAIN.bess), and a
// port per lab.ext bridge: a raw port on a host interface that exists, a
// tap the switch creates (up, for the host to give an address) for one
// that does not. hub makes every switch a hub, as Netkit's uml_switch was.
func (l *Lab) Plan(dir string, hub bool) (*configs.File, error) {
	if err := l.checkPaths(dir); err != nil {
		return nil, err
	}
	f := &configs.File{}
	for _, d := range l.Domains() {
		sw := configs.Switch{Name: d, Hub: hub}
		vlan, err := l.bridgedVLAN(d)
		if err != nil {
			return nil, err
		}
		// A domain bridged to a VLAN of a host interface is that VLAN:
		// its ports are access ports of it, the bridge a trunk of it.
		var access [][2]string
		if vlan != "" {
			access = [][2]string{{"vlan", vlan}}
		}
		specs := [][][2]string{
			append([][2]string{{"transport", "daemon"}, {"path", CtlPath(dir, d)}, {"name", d}}, access...),
			append([][2]string{{"transport", "bess"}, {"path", BESSPath(dir, d)}, {"name", d + bessSuffix}}, access...),
		}
		for _, b := range l.Bridges {
			if b.Domain != d {
				continue
			}
			switch base, vid, ok := hostVLAN(b.Ifname); {
			case ok:
				specs = append(specs, [][2]string{{"transport", "raw"}, {"ifname", base}, {"trunk", vid}})
			case interfaceExists(b.Ifname):
				specs = append(specs, append([][2]string{{"transport", "raw"}, {"ifname", b.Ifname}}, access...))
			default:
				specs = append(specs, append([][2]string{{"transport", "tap"}, {"ifname", b.Ifname}, {"create", "1"}, {"up", "1"}}, access...))
			}
		}
		for _, kv := range specs {
			p, err := configs.NewPort(kv)
			if err != nil {
				return nil, fmt.Errorf("collision domain %s: %w", d, err)
			}
			sw.Ports = append(sw.Ports, p)
		}
		f.Switches = append(f.Switches, sw)
	}
	if len(f.Switches) == 0 {
		return nil, fmt.Errorf("lab.conf gives no machine an interface (MACHINE[0]=DOMAIN)")
	}
	return f, nil
}

// hostVLAN reads a lab.ext interface written IFNAME.VLAN, as Kathara
// takes it, where IFNAME exists on the host and the interface itself does
// not: the domain is bridged to that VLAN of IFNAME.
func hostVLAN(name string) (base, vid string, ok bool) {
	i := strings.LastIndexByte(name, '.')
	if i <= 0 || interfaceExists(name) || !interfaceExists(name[:i]) {
		return "", "", false
	}
	if _, err := frame.ParseVLAN(name[i+1:]); err != nil {
		return "", "", false
	}
	return name[:i], name[i+1:], true
}

// bridgedVLAN is the host VLAN domain d is bridged to, "" for none. A
// domain is one VLAN: two bridges to different VLANs are refused.
func (l *Lab) bridgedVLAN(d string) (string, error) {
	vlan, line := "", 0
	for _, b := range l.Bridges {
		if b.Domain != d {
			continue
		}
		if _, vid, ok := hostVLAN(b.Ifname); ok {
			if vlan != "" && vid != vlan {
				return "", fmt.Errorf("lab.ext line %d: collision domain %s is bridged to VLAN %s already (line %d): a domain is one VLAN",
					b.Line, d, vlan, line)
			}
			vlan, line = vid, b.Line
		}
	}
	return vlan, nil
}

// interfaceExists reports whether the host has an interface named name.
var interfaceExists = func(name string) bool {
	_, err := net.InterfaceByName(name)
	return err == nil
}

// checkPaths refuses a directory whose socket paths would not fit.
func (l *Lab) checkPaths(dir string) error {
	var paths []string
	for _, d := range l.Domains() {
		paths = append(paths, CtlPath(dir, d), BESSPath(dir, d))
	}
	for _, m := range l.Machines {
		for _, i := range m.Interfaces {
			paths = append(paths, MachineSocket(dir, m.Name, i.Index))
		}
	}
	for _, p := range paths {
		if len(p) > MaxSocketPath {
			return fmt.Errorf("socket path %s is %d bytes, more than the %d a unix socket takes: choose a shorter directory", p, len(p), MaxSocketPath)
		}
	}
	return nil
}

// DaemonOptions are the kernel options that attach the machine's
// interfaces to the lab's switches through UML's daemon transport:
// ethN=daemon,MAC,unix,DIR/DOMAIN.ctl (MAC empty: the kernel picks one).
func (m Machine) DaemonOptions(dir string) []string {
	var opts []string
	for _, i := range m.Interfaces {
		opts = append(opts, fmt.Sprintf("eth%d=daemon,%s,unix,%s", i.Index, i.MAC, CtlPath(dir, i.Domain)))
	}
	return opts
}

// VectorOptions are the same through UML's vector BESS transport, for
// kernels without the daemon transport:
// vecN:transport=bess,dst=DIR/DOMAIN.bess,src=DIR/MACHINE-ethN.sock[,mac=MAC].
// The interfaces are called vecN inside the machine, and UML binds src
// without removing an old file first.
func (m Machine) VectorOptions(dir string) []string {
	var opts []string
	for _, i := range m.Interfaces {
		o := fmt.Sprintf("vec%d:transport=bess,dst=%s,src=%s", i.Index, BESSPath(dir, i.Domain), MachineSocket(dir, m.Name, i.Index))
		if i.MAC != "" {
			o += ",mac=" + i.MAC
		}
		opts = append(opts, o)
	}
	return opts
}

// WriteOptions prints two lines per machine, in name order:
//
//	MACHINE ethN=daemon,... ethM=daemon,...
//	MACHINE vec: vecN:transport=bess,... vecM:transport=bess,...
//
// so that awk '$1=="pc1" && $2!="vec:"' picks a machine's daemon options
// and awk '$1=="pc1" && $2=="vec:"' its vector ones.
func (l *Lab) WriteOptions(w io.Writer, dir string) error {
	for _, m := range l.Machines {
		if _, err := fmt.Fprintf(w, "%s %s\n%s vec: %s\n", m.Name, strings.Join(m.DaemonOptions(dir), " "),
			m.Name, strings.Join(m.VectorOptions(dir), " ")); err != nil {
			return err
		}
	}
	return nil
}

// String renders the lab as a lab.conf that parses back to it (without
// lab.ext's bridges, which live in a file of their own).
func (l *Lab) String() string {
	var b strings.Builder
	for _, m := range l.Machines {
		for _, i := range m.Interfaces {
			v := i.Domain
			if i.MAC != "" {
				v += "/" + i.MAC
			}
			fmt.Fprintf(&b, "%s[%d]=%q\n", m.Name, i.Index, v)
		}
	}
	return b.String()
}
