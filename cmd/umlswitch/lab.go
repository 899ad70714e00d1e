package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/umlswitch/umlswitch/configs"
	"github.com/umlswitch/umlswitch/lab"
	"github.com/umlswitch/umlswitch/topology"
)

const labUsage = `Usage: umlswitch lab [-dir DIR] [-hub] [-ext FILE] [-evpn FILE] [-machines M1,M2,...] [-daemon] [-pidfile FILE] lab.conf

Runs the collision domains of a Netkit or Kathara lab: one switch per domain
that lab.conf names (MACHINE[N]=DOMAIN or MACHINE[N]=DOMAIN/MAC; other keys
are ignored), all in one process, each named after its domain with a control
socket DIR/DOMAIN.ctl (UML's daemon transport, VDE clients, umlswitch ctl)
and a BESS listener DIR/DOMAIN.bess (port DOMAIN.bess). DIR is created if
missing. A lab.ext next to lab.conf (lines DOMAIN INTERFACE) bridges a
domain to a host interface: a raw port on one that exists, a tap the switch
creates (up) for one that does not; INTERFACE.VLAN bridges the domain to
that VLAN of the interface (the raw port a trunk of it, the domain's other
ports access ports of it).

Once every socket listens it prints two lines per machine, in name order:
the machine's name and the kernel options for UML's daemon transport
(ethN=daemon,MAC,unix,DIR/DOMAIN.ctl; MAC empty where lab.conf gives none),
then the name, "vec:" and the options for kernels without it
(vecN:transport=bess,dst=DIR/DOMAIN.bess,src=DIR/MACHINE-ethN.sock[,mac=MAC];
the interfaces are then called vecN, and a machine booted again needs its
old src socket removed first). It then runs until SIGINT or SIGTERM, which
remove the sockets; SIGHUP reads lab.conf and lab.ext (and -evpn's file)
again.

A lab across hosts: run it on every host with the same lab.conf, each with
-machines naming the machines it boots (it runs switches for their domains
only, and prints their options only) and -evpn naming its own file: an
evpn: block (the configuration file's keys: this host's router_id, vtep
and neighbors) and vni_base: N. Domain number i of the lab's domains sorted
by name (all of lab.conf's, whatever -machines says) gets VNI N+i on every
host, so a domain whose machines run on several hosts spans them over BGP
EVPN with nothing else to configure:

  # evpn1.yaml on host 1 (10.0.0.1); host 2's swaps the addresses
  vni_base: 1000
  evpn:
    asn: 65000
    router_id: 10.0.0.1
    vtep: 10.0.0.1
    neighbors: [{address: 10.0.0.2, asn: 65000}]

  umlswitch lab -evpn evpn1.yaml -machines a,b lab.conf    # host 1
  umlswitch lab -evpn evpn2.yaml -machines c,d lab.conf    # host 2

Examples:
  umlswitch lab lab.conf                       # sockets in .umlswitch/ next to lab.conf
  umlswitch lab -dir /tmp/lab -hub lab.conf    # Netkit's hubs
  umlswitch lab -dir /tmp/lab -daemon -pidfile /tmp/lab/pid lab.conf > /tmp/lab/options
  linux ubd0=pc1.disk $(awk '$1=="pc1" && $2!="vec:" {$1=""; print}' /tmp/lab/options)
  linux ubd0=pc2.disk $(awk '$1=="pc2" && $2=="vec:" {$1=$2=""; print}' /tmp/lab/options)
  umlswitch ctl -s /tmp/lab/A.ctl -all switches

Flags:
`

// labOptions are umlswitch lab's command line.
type labOptions struct {
	fs       *flag.FlagSet
	conf     string
	dir      string
	ext      string
	hub      bool
	daemon   bool
	pidFile  string
	evpn     string      // -evpn: "" for none
	machines []string    // -machines: nil for all
	web      configs.Web // -web, -web-rw, -web-token
}

func parseLabFlags(args []string, stderr io.Writer) (*labOptions, error) {
	o := &labOptions{}
	fs := flag.NewFlagSet("umlswitch lab", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o.fs = fs
	fs.StringVar(&o.dir, "dir", "", "put the sockets in `DIR` (created if missing; default: .umlswitch in lab.conf's directory).\n"+
		"Socket paths must stay within 107 bytes: choose a short one for deep labs.\nExample: -dir /tmp/lab")
	fs.BoolVar(&o.hub, "hub", false, "make every domain a hub, as Netkit's uml_switch -hub: flood every frame, learn nothing.\nExample: -hub")
	fs.StringVar(&o.ext, "ext", "", "read host bridges (lines DOMAIN INTERFACE) from `FILE` instead of lab.ext next to lab.conf;\n"+
		"each becomes a raw port on that interface, or a tap the switch creates if it does not exist.\nExample: -ext /etc/lab/uplinks.ext")
	fs.StringVar(&o.evpn, "evpn", "", "span the lab's domains across hosts over BGP EVPN, as `FILE` says: an evpn: block (the\n"+
		"configuration file's keys) and vni_base: N; the lab's domains, sorted by name, get VNIs N, N+1, ...\n"+
		"Example: -evpn /etc/lab/evpn1.yaml")
	fs.Func("machines", "run only the machines `M1,M2,...` of the lab (a name lab.conf lacks is an error): print their\n"+
		"options, and run switches for the domains they use only. With -evpn, the others run on other hosts.\n"+
		"Example: -machines pc1,r1",
		func(v string) error {
			o.machines = nil
			for _, n := range strings.Split(v, ",") {
				if n = strings.TrimSpace(n); n == "" {
					return fmt.Errorf("%q: an empty machine name", v)
				}
				o.machines = append(o.machines, n)
			}
			return nil
		})
	fs.StringVar(&o.web.Addr, "web", "", "serve the lab's page on `ADDR` (host:port), as umlswitch -web does, with the machines\n"+
		"named as lab.conf names them; its token goes to DIR/web-token.\nExample: -web 127.0.0.1:8080")
	fs.BoolVar(&o.web.RW, "web-rw", false, "let the page set a port's link and impairment keys, with the token (umlswitch -web-rw).\n"+
		"Example: -web-rw -web 127.0.0.1:8080")
	fs.BoolVar(&o.daemon, "daemon", false, "run in the background: the command prints the options and returns (status 0) once every\n"+
		"socket listens, or with the error that stopped it. Use -pidfile to stop it.\nExample: -daemon -pidfile /tmp/lab/umlswitch.pid")
	fs.StringVar(&o.pidFile, "pidfile", "", "write the process id to `FILE` (removed at exit).\nExample: -pidfile /tmp/lab/umlswitch.pid")
	fs.Usage = func() { fmt.Fprint(stderr, labUsage); fs.PrintDefaults() }
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	switch fs.NArg() {
	case 0:
		return nil, errors.New("no lab.conf given")
	case 1:
	default:
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(1))
	}
	o.conf = fs.Arg(0)
	var err error
	if o.dir == "" {
		o.dir = filepath.Join(filepath.Dir(o.conf), ".umlswitch")
	}
	// The options name the sockets for UMLs started anywhere.
	if o.dir, err = filepath.Abs(o.dir); err != nil {
		return nil, err
	}
	return o, nil
}

// read parses lab.conf and its lab.ext: the whole lab, and the part of
// it that this host runs (-machines).
func (o *labOptions) read() (all, here *lab.Lab, err error) {
	if all, err = o.readAll(); err != nil {
		return nil, nil, err
	}
	if o.machines == nil {
		return all, all, nil
	}
	if here, err = all.Only(o.machines); err != nil {
		return nil, nil, fmt.Errorf("-machines: %w", err)
	}
	return all, here, nil
}

// readAll parses lab.conf and its lab.ext.
func (o *labOptions) readAll() (*lab.Lab, error) {
	conf, err := configs.ReadFile(o.conf)
	if err != nil {
		return nil, err
	}
	l, err := lab.Parse(bytes.NewReader(conf))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", o.conf, err)
	}
	ext := o.ext
	if ext == "" {
		ext = filepath.Join(filepath.Dir(o.conf), "lab.ext")
		if _, err := os.Stat(ext); errors.Is(err, os.ErrNotExist) {
			return l, nil
		}
	}
	e, err := configs.ReadFile(ext)
	if err != nil {
		return nil, err
	}
	if err := l.ParseExt(bytes.NewReader(e)); err != nil {
		return nil, fmt.Errorf("%s: %w", ext, err)
	}
	return l, nil
}

// plan reads the lab and plans it; a reload calls it again.
func (o *labOptions) plan() (*configs.File, error) {
	all, here, err := o.read()
	if err != nil {
		return nil, err
	}
	return o.planOf(all, here)
}

// planOf plans this host's part of the lab, in the EVPN fabric with -evpn.
func (o *labOptions) planOf(all, here *lab.Lab) (*configs.File, error) {
	plan, err := here.Plan(o.dir, o.hub)
	if err == nil && o.web.Addr != "" {
		plan.Web = o.web
		plan.Web.Token = filepath.Join(o.dir, "web-token")
	}
	if err != nil || o.evpn == "" {
		return plan, err
	}
	data, err := configs.ReadFile(o.evpn)
	if err != nil {
		return nil, err
	}
	e, base, err := configs.ParseEVPNFile(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", o.evpn, err)
	}
	if err := all.Span(plan, e, base); err != nil {
		return nil, fmt.Errorf("%s: %w", o.evpn, err)
	}
	return plan, nil
}

func labMain(args []string, stdout, stderr io.Writer) int {
	o, err := parseLabFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "umlswitch lab: %v\nRun umlswitch lab -h for the flags.\n", err)
		return 2
	}
	all, l, err := o.read()
	var plan *configs.File
	if err == nil {
		plan, err = o.planOf(all, l)
	}
	if err != nil {
		fmt.Fprintf(stderr, "umlswitch lab: %v\n", err)
		return 2
	}
	if err := os.MkdirAll(o.dir, 0o755); err != nil {
		fmt.Fprintf(stderr, "umlswitch lab: %v\n", err)
		return 1
	}
	// UML binds a vector interface's src socket without removing an old
	// one: clear what a previous run of the lab left.
	removeMachineSockets(l, o.dir)
	var machines []topology.Machine
	if o.web.Addr != "" {
		if machines, err = labMachines(o.conf); err != nil {
			fmt.Fprintf(stderr, "umlswitch lab: %v\n", err)
			return 2
		}
	}
	return service{plan: plan, reload: o.plan, daemon: o.daemon, pidFile: o.pidFile, machines: machines,
		announce: func(w io.Writer) { l.WriteOptions(w, o.dir) },
		cleanup: func() {
			removeMachineSockets(l, o.dir)
			if _, now, err := o.read(); err == nil { // machines a reload added
				removeMachineSockets(now, o.dir)
			}
		},
	}.run(stdout, stderr)
}

func removeMachineSockets(l *lab.Lab, dir string) {
	for _, m := range l.Machines {
		for _, i := range m.Interfaces {
			p := lab.MachineSocket(dir, m.Name, i.Index)
			if fi, err := os.Lstat(p); err == nil && fi.Mode()&os.ModeSocket != 0 {
				os.Remove(p)
			}
		}
	}
}
