package e2e

// FRR 8.4 (Debian's frr) as an EVPN peer: zebra and bgpd run inside a test
// namespace with the kernel's bridge and vxlan devices as their data plane,
// their files in a scratch directory of their own. TestFRRHarness proves
// the harness with two FRR VTEPs; the interoperability tests of issue 20
// put umlswitch in place of one of them.
//
// What FRR 8.4 sends and expects, read from the routes two FRR VTEPs
// exchange here (`show bgp l2vpn evpn route detail`, and the BGP session
// captured with tshark on the underlay and decoded), for VTEP 172.31.0.1,
// router-id 172.31.0.1, AS 65000, VNI 100. "(source)" marks what was read
// in bgpd's source (bgp_evpn.c) rather than seen here.
//
//   - Session: OPEN offers AFI 25 / SAFI 70 (l2vpn evpn) only (with `no bgp
//     default ipv4-unicast`), hold time 9 (timers bgp 3 9), plus route
//     refresh, enhanced route refresh, 4-octet AS, extended message,
//     add-path (l2vpn evpn), FQDN, graceful restart (helper only, no AFI)
//     and LLGR capabilities.
//   - Route distinguisher: type 1, router-id:N, N from a pool of indexes
//     bgpd shares with its VRFs: the first VNI got 2 (172.31.0.1:2); later
//     VNIs get the next free ones in the order bgpd learns them, unrelated
//     to the VNI. Peers must not rely on it: FRR maps routes to VNIs by
//     route target only.
//   - Route target: type 0 (2-octet AS), (ASN & 0xFFFF):VNI, 65000:100, for
//     import and export. While a VNI's import target is derived (not set
//     with `route-target import` in a `vni N` block, vniConfig.ImportRT),
//     FRR imports an AS-specific target by its VNI part alone, the AS
//     masked (source: map_vni_to_rt, mask_ecom_global_admin); seen: two FRR
//     VTEPs in AS 65001 and 65002, eBGP, derived targets, took each other's
//     routes (65002:100 into a VNI whose target is 65001:100: VTEP with
//     HER, MACs). A configured import target matches exactly, and FRR 8.4
//     refuses `route-target import *:100` ("% Malformed Route Target list").
//   - Every EVPN route carries two extended communities: the encapsulation
//     community (type 0x03, subtype 0x0c, tunnel type 8 = VXLAN; bytes
//     03 0c 00 00 00 00 00 08; vtysh shows "ET:8") and the target
//     (00 02 fd e8 00 00 00 64). Attribute order on the wire: MP_REACH_NLRI,
//     ORIGIN (IGP), AS_PATH (empty for iBGP), LOCAL_PREF 100 (iBGP),
//     EXTENDED_COMMUNITIES, then PMSI_TUNNEL (type 3 only). No MAC mobility
//     community while the sequence number is 0.
//   - Next hop (MP_REACH_NLRI, 4 bytes for IPv4): the local VTEP address,
//     the vxlan device's `local`, not the router-id. A route reflector and
//     an eBGP peer that originated the route pass it on unchanged.
//   - Type 3 (inclusive multicast): RD, Ethernet tag 0, originating router
//     IP the VTEP address (length 32); PMSI tunnel attribute (flags 0xc0,
//     type 22): flags 0, tunnel type 6 (ingress replication), label the VNI
//     as a plain 24-bit number (00 00 64 for 100, not shifted as an MPLS
//     label is), tunnel identifier the VTEP address:
//     c0 16 09 00 06 00 00 64 ac 1f 00 01.
//   - Type 2 (MAC/IP advertisement): RD, ESI 0, Ethernet tag 0, MAC length
//     48, the MAC, IP length 0 (MAC-only) or 32/128 and the address, and one
//     label: the VNI, the same plain 24 bits (tshark decodes 00 00 64 as
//     "MPLS Label 1: 6"). No PMSI attribute, no second label (no L3 VNI).
//   - What FRR installs from received routes: a route goes into a VNI when
//     one of its targets matches the VNI's import target; the label is not
//     looked at (source). A type-3 route makes its *originating router IP*
//     (not the next hop) a remote VTEP of the VNI (source: evpn_zebra_install);
//     the flood mode comes from the PMSI tunnel type: ingress replication
//     gives "flood: HER" in `show evpn vni N` and the kernel entry
//     `00:00:00:00:00:00 dst VTEP self permanent` on the vxlan device (seen);
//     no PMSI attribute, or another tunnel type, lists the VTEP with
//     "flood: -", without that entry: FRR never floods to it (source). A
//     type-2 route puts its MAC on the route's *next hop* (source), seen as
//     type remote, remoteVtep the next hop, in `show evpn mac vni N`, and in
//     the kernel as `MAC dst VTEP self extern_learn` on the vxlan device and
//     `MAC master brN extern_learn` on the bridge; it does not depend on a
//     type-3 route from that VTEP (source).
//   - Which MACs FRR advertises: those the kernel bridge learns on its other
//     (non-VXLAN) ports, as MAC-only routes (seen with a veth host on br100
//     that pinged across the fabric). The bridge's own MAC, that of the
//     "host address" on brN, is a permanent local fdb entry that FRR does
//     not advertise at all unless `advertise-svi-ip` (vtepConfig.AdvertiseSVI)
//     is set; with it FRR sends MAC+IP type-2 routes for the bridge's MAC,
//     one per address on the bridge (the IPv6 link-local one too, unless
//     IPv6 is off there as frrVTEP leaves it), and no MAC-only route for it.
//     So a peer must install a type-2 route's MAC whether or not it carries
//     an IP. (`advertise-default-gw` would send it too, as a gateway.)
//
// How the daemons run (checked against this Debian build):
//   - Debian builds FRR with the vty group frrvty and refuses to start when
//     the user it runs as is not in that group ("privs_init: user(root) is
//     not part of vty group specified(frrvty)"), so `-u root -g root` fails.
//     The daemons run as the package's own user frr (who is in frrvty), with
//     the capabilities FRR keeps for itself, as the packaged service and FRR's
//     topotests run them; their scratch directory belongs to frr.
//   - Each daemon writes a crash-log directory under /var/tmp/frr, a path
//     built into FRR. `ip netns exec` gives the daemon a mount namespace of
//     its own (a slave of the host's), and the daemon's wrapper binds the
//     scratch directory over /var/tmp there, so nothing lands on the host.
//   - zebra and bgpd talk through -z (zserv socket), each opens its vty socket
//     in --vty_socket DIR (DIR/zebra.vty, DIR/bgpd.vty), -P 0 closes the TCP
//     vty, -i names the pid file, -f the config; vtysh --vty_socket DIR
//     reaches them, with --config_dir DIR so that it reads no vtysh.conf of
//     the host's.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/umlswitch/umlswitch/internal/nstest"
)

// frrDir is where Debian's frr keeps its daemons.
const frrDir = "/usr/lib/frr"

// frrWait is how long the FRR helpers wait for a state: sessions come up
// within seconds with frrVTEP's timers, but a loaded machine is slow.
const frrWait = 60 * time.Second

// requireFRR fails the test when FRR is not installed (the e2e tests fail,
// not skip, on missing tools) and returns the uid and gid of FRR's user.
func requireFRR(t *testing.T) (uid, gid int) {
	t.Helper()
	for _, p := range []string{frrDir + "/zebra", frrDir + "/bgpd"} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("FRR: %v (install Debian's frr: scripts/deps install)", err)
		}
	}
	if _, err := exec.LookPath("vtysh"); err != nil {
		t.Fatalf("FRR: vtysh not found (install Debian's frr: scripts/deps install)")
	}
	u, err := user.Lookup("frr")
	if err != nil {
		t.Fatalf("FRR: the frr user (made by Debian's frr package): %v", err)
	}
	uid, _ = strconv.Atoi(u.Uid)
	gid, _ = strconv.Atoi(u.Gid)
	return uid, gid
}

// frrNode is zebra and bgpd running in one namespace.
type frrNode struct {
	ns      *nstest.NS
	name    string // hostname in the config, and in messages
	dir     string // config, pid files, sockets, the daemons' /var/tmp
	daemons []*frrDaemon
}

type frrDaemon struct {
	name   string
	cmd    *exec.Cmd
	out    *output
	exited chan struct{}
}

// startFRR runs zebra and bgpd in ns, bgpd with the configuration bgpdConf
// (see vtepConfig.bgpdConf), and waits until both answer on their vty
// sockets. They are stopped, and their files removed, at cleanup; one that
// died before then fails the test. Their logs are printed when a test fails.
func startFRR(t *testing.T, ns *nstest.NS, name, bgpdConf string) *frrNode {
	t.Helper()
	uid, gid := requireFRR(t)
	f := &frrNode{ns: ns, name: name, dir: scratch(t)}
	// The daemons drop to the frr user before they read their configs and
	// bind their sockets.
	if err := os.Chown(f.dir, uid, gid); err != nil {
		t.Fatal(err)
	}
	write := func(file, text string) string {
		p := filepath.Join(f.dir, file)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(p, uid, gid); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("vtysh.conf", "") // so that vtysh reads none of the host's
	tmp := filepath.Join(f.dir, "tmp")
	if err := os.Mkdir(tmp, 0o755); err != nil {
		t.Fatal(err)
	}
	zebraConf := write("zebra.conf", "hostname "+name+"\n")
	bgpdPath := write("bgpd.conf", bgpdConf)
	// bgpd runs on without the lines of its config that it rejects, and
	// its dry run (-C) exits 0 all the same: look at what the dry run says.
	out, err := f.daemonCmd("bgpd", tmp, "-C", "-f", bgpdPath).CombinedOutput()
	if bad := configErrors(string(out)); err != nil || bad != "" {
		t.Fatalf("FRR %s: bgpd -C: %v:\n%s\nin:\n%s", name, err, out, numbered(bgpdConf))
	}
	t.Cleanup(func() { f.stop(t) })
	zserv := filepath.Join(f.dir, "zserv.api")
	common := func(daemon, conf string) []string {
		return []string{"-f", conf, "-i", filepath.Join(f.dir, daemon+".pid"), "--vty_socket", f.dir,
			"-z", zserv, "-P", "0", "--log", "stdout", "--log-level", "informational"}
	}
	f.start(t, "zebra", tmp, common("zebra", zebraConf), zserv, filepath.Join(f.dir, "zebra.vty"))
	f.start(t, "bgpd", tmp, common("bgpd", bgpdPath), filepath.Join(f.dir, "bgpd.vty"))
	return f
}

// start runs one daemon, its /var/tmp bound to tmp, and waits for files.
func (f *frrNode) start(t *testing.T, daemon, tmp string, args []string, files ...string) {
	t.Helper()
	cmd := f.daemonCmd(daemon, tmp, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, exited, err := startCollecting(cmd)
	if err != nil {
		t.Fatalf("FRR %s: start %s: %v", f.name, daemon, err)
	}
	d := &frrDaemon{name: daemon, cmd: cmd, out: out, exited: exited}
	f.daemons = append(f.daemons, d)
	deadline := time.Now().Add(20 * time.Second)
	for _, file := range files {
		for {
			if _, err := os.Stat(file); err == nil {
				break
			}
			select {
			case <-exited:
				t.Fatalf("FRR %s: %s exited at start (%v):\n%s", f.name, daemon, cmd.ProcessState, out.text())
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("FRR %s: %s made no %s:\n%s", f.name, daemon, file, out.text())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// daemonCmd runs an FRR daemon in the node's namespace, with its /var/tmp
// (where it keeps a crash log) bound to tmp. ip netns exec has already
// given the shell a mount namespace of its own, so the bind mount stays in
// it; the daemon replaces the shell and keeps its process id.
func (f *frrNode) daemonCmd(daemon, tmp string, args ...string) *exec.Cmd {
	return f.ns.Cmd("sh", append([]string{"-c", `mount --bind "$1" /var/tmp && shift && exec "$@"`, "sh",
		tmp, filepath.Join(frrDir, daemon)}, args...)...)
}

// configErrors returns the lines of a daemon's dry run (-C) that report a
// rejected line of its config: "% Malformed ..." or "... No such command
// on config line N: ...".
func configErrors(out string) string {
	var bad []string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "%") || strings.Contains(l, "config line") {
			bad = append(bad, l)
		}
	}
	return strings.Join(bad, "\n")
}

// stop ends the daemons, bgpd first (it withdraws its routes and tells its
// peers), and reports one that had died on its own.
func (f *frrNode) stop(t *testing.T) {
	t.Helper()
	for i := len(f.daemons) - 1; i >= 0; i-- {
		d := f.daemons[i]
		select {
		case <-d.exited:
			t.Errorf("FRR %s: %s died during the test (%v)", f.name, d.name, d.cmd.ProcessState)
		default:
			d.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-d.exited:
			case <-time.After(10 * time.Second):
				syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
				<-d.exited
				t.Errorf("FRR %s: %s did not stop on SIGTERM", f.name, d.name)
			}
		}
		if t.Failed() {
			t.Logf("FRR %s: %s log:\n%s", f.name, d.name, d.out.text())
		}
	}
}

// tryVtysh runs vtysh against this node's daemons, one -c per command (a
// configuration change is "configure terminal" followed by its lines).
func (f *frrNode) tryVtysh(cmds ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	args := []string{"--vty_socket", f.dir, "--config_dir", f.dir}
	for _, c := range cmds {
		args = append(args, "-c", c)
	}
	out, err := exec.CommandContext(ctx, "vtysh", args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("vtysh %q: %w", cmds, err)
	}
	return string(out), nil
}

// vtysh is tryVtysh, failing the test on error.
func (f *frrNode) vtysh(t testing.TB, cmds ...string) string {
	t.Helper()
	out, err := f.tryVtysh(cmds...)
	if err != nil {
		t.Fatalf("FRR %s: %v:\n%s", f.name, err, out)
	}
	return out
}

// configure applies configuration lines under "configure terminal", e.g.
// "router bgp 65000", "address-family l2vpn evpn", "advertise-svi-ip".
func (f *frrNode) configure(t testing.TB, lines ...string) {
	t.Helper()
	out := f.vtysh(t, append([]string{"configure terminal"}, lines...)...)
	if strings.Contains(out, "%") { // "% Unknown command", "% Invalid ..."
		t.Fatalf("FRR %s: configure %q:\n%s", f.name, lines, out)
	}
}

// vtyshJSON runs cmd (a `show ... json`) and decodes its output into v.
func (f *frrNode) vtyshJSON(t testing.TB, cmd string, v any) {
	t.Helper()
	out := f.vtysh(t, cmd)
	if err := decodeJSON(out, v); err != nil {
		t.Fatalf("FRR %s: %s: %v:\n%s", f.name, cmd, err, out)
	}
}

// decodeJSON decodes vtysh output. Some of FRR's show commands print
// nothing at all for an empty table; that decodes as an empty object.
func decodeJSON(out string, v any) error {
	if strings.TrimSpace(out) == "" {
		out = "{}"
	}
	return json.Unmarshal([]byte(out), v)
}

// waitFor runs cmd every 250 ms until ok holds for its output, and returns
// that output; after timeout it fails the test, naming what it waited for
// and showing the last output.
func (f *frrNode) waitFor(t testing.TB, timeout time.Duration, what, cmd string, ok func(out string) bool) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		out, err := f.tryVtysh(cmd)
		if err == nil && ok(out) {
			return out
		}
		if time.Now().After(deadline) {
			t.Fatalf("FRR %s: after %v, still not %s; last `%s` (err %v):\n%s", f.name, timeout, what, cmd, err, out)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// waitForJSON is waitFor for a `show ... json` command, decoded into a T
// (a struct, or map[string]any) for ok.
func waitForJSON[T any](t testing.TB, f *frrNode, timeout time.Duration, what, cmd string, ok func(v T) bool) T {
	t.Helper()
	var got T
	f.waitFor(t, timeout, what, cmd, func(out string) bool {
		var v T
		if decodeJSON(out, &v) != nil {
			return false
		}
		got = v
		return ok(v)
	})
	return got
}

// bgpSummary is what `show bgp l2vpn evpn summary json` says of the peers.
type bgpSummary struct {
	Peers map[string]struct {
		State   string `json:"state"`
		PfxRcd  int    `json:"pfxRcd"`
		PfxSnt  int    `json:"pfxSnt"`
		RemoteA uint32 `json:"remoteAs"`
	} `json:"peers"`
}

// waitEstablished waits until the l2vpn evpn sessions with peers are up.
func (f *frrNode) waitEstablished(t testing.TB, peers ...string) {
	t.Helper()
	waitForJSON(t, f, frrWait, "Established with "+strings.Join(peers, ", "), "show bgp l2vpn evpn summary json",
		func(s bgpSummary) bool {
			for _, p := range peers {
				if s.Peers[p].State != "Established" {
					return false
				}
			}
			return true
		})
}

// remoteVTEPs returns the remote VTEPs of a VNI and their flood modes
// ("HER" for ingress replication), from `show evpn vni N`: FRR 8.4's JSON
// of it lists the VTEPs (as "numRemoteVteps") without their flood mode.
func (f *frrNode) remoteVTEPs(t testing.TB, vni uint32) map[string]string {
	t.Helper()
	return parseRemoteVTEPs(f.vtysh(t, fmt.Sprintf("show evpn vni %d", vni)))
}

// parseRemoteVTEPs reads the lines "  ADDR flood: MODE" that follow
// "Remote VTEPs for this VNI:".
func parseRemoteVTEPs(out string) map[string]string {
	vteps := map[string]string{}
	in := false
	s := bufio.NewScanner(strings.NewReader(out))
	for s.Scan() {
		line := strings.TrimSpace(s.Text())
		switch {
		case strings.HasPrefix(line, "Remote VTEPs for this VNI"):
			in = true
		case in:
			addr, mode, ok := strings.Cut(line, " flood:")
			if !ok {
				in = false
				continue
			}
			vteps[addr] = strings.TrimSpace(mode)
		}
	}
	return vteps
}

// evpnMAC is an entry of `show evpn mac vni N json`.
type evpnMAC struct {
	Type       string `json:"type"`       // "local" or "remote"
	Intf       string `json:"intf"`       // local: the bridge port, or the bridge itself (its own MAC)
	RemoteVTEP string `json:"remoteVtep"` // remote: the VTEP it sits behind
	LocalSeq   int    `json:"localSequence"`
	RemoteSeq  int    `json:"remoteSequence"`
}

// evpnMACs returns zebra's MAC table of a VNI, by MAC address.
func (f *frrNode) evpnMACs(t testing.TB, vni uint32) map[string]evpnMAC {
	t.Helper()
	var v struct {
		MACs map[string]evpnMAC `json:"macs"`
	}
	f.vtyshJSON(t, fmt.Sprintf("show evpn mac vni %d json", vni), &v)
	return v.MACs
}

// waitRemoteMAC waits until zebra lists mac in vni as remote behind vtep.
func (f *frrNode) waitRemoteMAC(t testing.TB, vni uint32, mac, vtep string) {
	t.Helper()
	type macs struct {
		MACs map[string]evpnMAC `json:"macs"`
	}
	waitForJSON(t, f, frrWait, fmt.Sprintf("listing %s as remote on %s in VNI %d", mac, vtep, vni),
		fmt.Sprintf("show evpn mac vni %d json", vni), func(v macs) bool {
			m, ok := v.MACs[mac]
			return ok && m.Type == "remote" && m.RemoteVTEP == vtep
		})
}

// evpnRoute is one path of `show bgp l2vpn evpn route json`.
type evpnRoute struct {
	RD        string
	Prefix    string // [2]:[0]:[48]:[MAC]:[32]:[IP] or [3]:[0]:[32]:[IP]
	RouteType int    `json:"routeType"`
	MAC       string `json:"mac"`
	IP        string `json:"ip"`
	Valid     bool   `json:"valid"`
	Best      bool   `json:"bestpath"`
	PeerID    string `json:"peerId"` // "(unspec)" for the node's own routes
	ExtComm   struct {
		String string `json:"string"` // e.g. "ET:8 RT:65000:100"
	} `json:"extendedCommunity"`
	NextHops []struct {
		IP string `json:"ip"`
	} `json:"nexthops"`
}

// evpnRoutes returns every path in bgpd's EVPN table, local and received.
func (f *frrNode) evpnRoutes(t testing.TB) []evpnRoute {
	t.Helper()
	out := f.vtysh(t, "show bgp l2vpn evpn route json")
	routes, err := parseEVPNRoutes(out)
	if err != nil {
		t.Fatalf("FRR %s: show bgp l2vpn evpn route json: %v:\n%s", f.name, err, out)
	}
	return routes
}

// parseEVPNRoutes flattens FRR's {RD: {"rd": RD, PREFIX: {"paths":
// [[path]]}}, "numPrefix": N, ...} into a list of paths.
func parseEVPNRoutes(out string) ([]evpnRoute, error) {
	var top map[string]json.RawMessage
	if err := decodeJSON(out, &top); err != nil {
		return nil, err
	}
	var routes []evpnRoute
	for rd, raw := range top {
		var prefixes map[string]json.RawMessage
		if json.Unmarshal(raw, &prefixes) != nil {
			continue // numPrefix, numPaths
		}
		for prefix, raw := range prefixes {
			var p struct {
				Paths [][]evpnRoute `json:"paths"`
			}
			if prefix == "rd" {
				continue
			}
			if err := json.Unmarshal(raw, &p); err != nil {
				return nil, fmt.Errorf("%s %s: %w", rd, prefix, err)
			}
			for _, group := range p.Paths {
				for _, r := range group {
					r.RD, r.Prefix = rd, prefix
					routes = append(routes, r)
				}
			}
		}
	}
	return routes, nil
}

// numbered is text with line numbers, for config errors.
func numbered(text string) string {
	var b strings.Builder
	for i, l := range strings.Split(text, "\n") {
		fmt.Fprintf(&b, "%3d  %s\n", i+1, l)
	}
	return b.String()
}

// vtepConfig is one FRR VTEP: the kernel's devices and bgpd's config.
type vtepConfig struct {
	Name     string // hostname (default "frr-" + VTEP)
	ASN      uint32
	RouterID string // default: VTEP (IPv4); must be set for an IPv6 VTEP
	VTEP     string // underlay address, the vxlan devices' `local`
	Port     int    // VXLAN UDP port (default 4789)
	VNIs     []vniConfig
	Neighbor []bgpNeighbor
	// AdvertiseSVI: `advertise-svi-ip`, the only way FRR advertises its
	// bridges' own MACs (as MAC+IP routes of their addresses).
	AdvertiseSVI bool
	EVPN         []string // more lines in address-family l2vpn evpn
	BGP          []string // more lines in router bgp
}

// vniConfig is a VNI: a bridge brVNI with vxlanVNI as its port.
type vniConfig struct {
	VNI  uint32
	Addr string // the "host address" on the bridge (CIDR); none if empty
	MAC  string // the bridge's MAC; the kernel's choice if empty
	IPv6 bool   // keep IPv6 on the bridge (FRR then also advertises its link-local MAC+IP)
	// With any of these set, a `vni N` block overrides FRR's derived values
	// ("172.31.0.9:7", "65001:100"). A configured import target matches
	// exactly; the derived one matches any AS (see the top of this file).
	RD       string
	ImportRT []string
	ExportRT []string
}

// bgpNeighbor is a BGP peer of a VTEP.
type bgpNeighbor struct {
	Addr     string
	ASN      uint32 // default: the VTEP's own (iBGP)
	RRClient bool   // neighbor X route-reflector-client (this VTEP reflects)
}

func (v vniConfig) bridge() string { return fmt.Sprintf("br%d", v.VNI) }
func (v vniConfig) vxlan() string  { return fmt.Sprintf("vxlan%d", v.VNI) }

func (c vtepConfig) withDefaults() vtepConfig {
	if c.Name == "" {
		c.Name = "frr-" + c.VTEP
	}
	if c.RouterID == "" {
		c.RouterID = c.VTEP
	}
	if c.Port == 0 {
		c.Port = 4789
	}
	return c
}

// bgpdConf is bgpd's configuration for the VTEP: EVPN for every VNI the
// kernel has (advertise-all-vni), short timers so that sessions come up and
// go down within seconds (keepalive 3 s, hold 9 s, connect retry 1 s).
func (c vtepConfig) bgpdConf() string {
	c = c.withDefaults()
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	w("frr defaults traditional")
	w("hostname %s", c.Name)
	w("!")
	w("router bgp %d", c.ASN)
	w(" bgp router-id %s", c.RouterID)
	w(" no bgp default ipv4-unicast")
	// RFC 8212's default (no routes to or from an eBGP peer without a
	// policy) would silence every eBGP neighbour here.
	w(" no bgp ebgp-requires-policy")
	w(" timers bgp 3 9")
	for _, n := range c.Neighbor {
		asn := n.ASN
		if asn == 0 {
			asn = c.ASN
		}
		w(" neighbor %s remote-as %d", n.Addr, asn)
		w(" neighbor %s timers connect 1", n.Addr)
	}
	for _, l := range c.BGP {
		w(" %s", l)
	}
	w(" !")
	w(" address-family l2vpn evpn")
	for _, n := range c.Neighbor {
		w("  neighbor %s activate", n.Addr)
		if n.RRClient {
			w("  neighbor %s route-reflector-client", n.Addr)
		}
	}
	w("  advertise-all-vni")
	if c.AdvertiseSVI {
		w("  advertise-svi-ip")
	}
	for _, v := range c.VNIs {
		if v.RD == "" && len(v.ImportRT) == 0 && len(v.ExportRT) == 0 {
			continue
		}
		w("  vni %d", v.VNI)
		if v.RD != "" {
			w("   rd %s", v.RD)
		}
		for _, rt := range v.ImportRT {
			w("   route-target import %s", rt)
		}
		for _, rt := range v.ExportRT {
			w("   route-target export %s", rt)
		}
		w("  exit-vni")
	}
	for _, l := range c.EVPN {
		w("  %s", l)
	}
	w(" exit-address-family")
	w("exit")
	return b.String()
}

// frrVTEP builds in ns the data plane FRR expects for advertise-all-vni, a
// bridge brN with a vxlan device vxlanN (VNI N, `local` the VTEP address,
// nolearning) as its port, for each VNI, and starts FRR on it. Learning is
// off on the bridge's VXLAN port too, so the kernel knows a remote MAC only
// when zebra installs it from a type-2 route (otherwise the bridge would
// learn it from traffic and hide a missing route); frames to an unknown MAC
// still go out to every VTEP of the flood list. IPv6 is off on the bridge
// unless asked for, to keep the VNI quiet for tests that count frames.
func frrVTEP(t *testing.T, ns *nstest.NS, c vtepConfig) *frrNode {
	t.Helper()
	c = c.withDefaults()
	for _, v := range c.VNIs {
		br, vx := v.bridge(), v.vxlan()
		add := []string{"link", "add", br}
		if v.MAC != "" {
			add = append(add, "address", v.MAC)
		}
		ns.MustRun(t, "ip", append(add, "type", "bridge")...)
		ns.MustRun(t, "ip", "link", "add", vx, "type", "vxlan", "id", fmt.Sprint(v.VNI), "local", c.VTEP,
			"dstport", fmt.Sprint(c.Port), "nolearning")
		ns.MustRun(t, "ip", "link", "set", vx, "master", br)
		ns.MustRun(t, "bridge", "link", "set", "dev", vx, "learning", "off")
		ns.MustRun(t, "sysctl", "-qw", "net.ipv6.conf."+vx+".disable_ipv6=1")
		if !v.IPv6 {
			ns.MustRun(t, "sysctl", "-qw", "net.ipv6.conf."+br+".disable_ipv6=1")
		}
		ns.MustRun(t, "ip", "link", "set", vx, "up")
		ns.MustRun(t, "ip", "link", "set", br, "up")
		if v.Addr != "" {
			ns.MustRun(t, "ip", "addr", "add", v.Addr, "dev", br)
		}
	}
	return startFRR(t, ns, c.Name, c.bgpdConf())
}

// bridgeMAC returns the MAC of VNI vni's bridge in ns.
func bridgeMAC(t testing.TB, ns *nstest.NS, vni uint32) string {
	t.Helper()
	return strings.TrimSpace(ns.MustRun(t, "cat", fmt.Sprintf("/sys/class/net/br%d/address", vni)))
}

// switchedHosts makes one namespace per address (CIDR, IPv4 or IPv6), each
// a "host" whose interface "wire" holds that address, all joined by a
// bridge br0 in a namespace of their own (as mesh does): a switched underlay
// on which a host's own link (its wire, or the bridge's port wN for host N,
// counting from 1) can be captured or counted alone. Traffic stays in these
// namespaces.
func switchedHosts(t *testing.T, addrs ...string) []*nstest.NS {
	t.Helper()
	hub := nstest.New(t)
	// The hub only switches; its ports send nothing of their own.
	hub.MustRun(t, "sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1")
	hub.MustRun(t, "ip", "link", "add", "br0", "type", "bridge")
	hub.MustRun(t, "ip", "link", "set", "br0", "up")
	hosts := make([]*nstest.NS, len(addrs))
	for i, a := range addrs {
		ns := nstest.New(t)
		port := fmt.Sprintf("w%d", i+1)
		hub.MustRun(t, "ip", "link", "add", port, "type", "veth", "peer", "name", "wire", "netns", ns.Name)
		hub.MustRun(t, "ip", "link", "set", port, "master", "br0")
		hub.MustRun(t, "ip", "link", "set", port, "up")
		if strings.Contains(a, ":") {
			ns.MustRun(t, "ip", "-6", "addr", "add", a, "dev", "wire", "nodad")
		} else {
			ns.MustRun(t, "ip", "addr", "add", a, "dev", "wire")
		}
		ns.MustRun(t, "ip", "link", "set", "wire", "up")
		hosts[i] = ns
	}
	for i, ns := range hosts {
		ns.WaitUp(t, "wire")
		hub.WaitUp(t, fmt.Sprintf("w%d", i+1))
	}
	return hosts
}

// Two FRR VTEPs on one underlay, iBGP EVPN between them, VNI 100 on each
// with an address on its bridge: the session comes up, each lists the other
// as a VTEP of VNI 100 with ingress replication (head-end) flooding, the
// bridge addresses reach each other over VXLAN, and each lists the other's
// bridge MAC as remote on the other's VTEP, installed in the kernel's fdb.
// The harness the FRR interoperability tests stand on, checked on FRR alone.
// It takes about 2 s (sessions up after 0.5 s) on an idle two-core machine,
// 6 to 9 s with both cores kept busy.
func TestFRRHarness(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	start := time.Now()
	vteps := []string{"172.31.0.1", "172.31.0.2"}
	hosts := switchedHosts(t, vteps[0]+"/24", vteps[1]+"/24")
	nodes := make([]*frrNode, 2)
	for i, ns := range hosts {
		nodes[i] = frrVTEP(t, ns, vtepConfig{
			ASN:          65000,
			VTEP:         vteps[i],
			VNIs:         []vniConfig{{VNI: 100, Addr: fmt.Sprintf("10.100.0.%d/24", i+1)}},
			Neighbor:     []bgpNeighbor{{Addr: vteps[1-i]}},
			AdvertiseSVI: true,
		})
	}
	for i, n := range nodes {
		n.waitEstablished(t, vteps[1-i])
	}
	t.Logf("sessions up after %v", time.Since(start).Round(time.Millisecond))
	checkFRRFabric(t, hosts, nodes, vteps)
	t.Logf("FRR harness checked in %v", time.Since(start).Round(time.Millisecond))
}

// Three FRR VTEPs, the middle one a route reflector for the other two,
// which peer with it alone: the outer two still list each other as VTEPs
// (from the reflected type-3 routes) and each other's bridge MACs, and
// reach each other directly. The option the three-host interop test needs.
func TestFRRRouteReflector(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	vteps := []string{"172.31.0.1", "172.31.0.2", "172.31.0.3"}
	hosts := switchedHosts(t, vteps[0]+"/24", vteps[1]+"/24", vteps[2]+"/24")
	nodes := make([]*frrNode, 3)
	for i, ns := range hosts {
		c := vtepConfig{
			ASN:          65000,
			VTEP:         vteps[i],
			VNIs:         []vniConfig{{VNI: 100, Addr: fmt.Sprintf("10.100.0.%d/24", i+1)}},
			Neighbor:     []bgpNeighbor{{Addr: vteps[1]}},
			AdvertiseSVI: true,
		}
		if i == 1 {
			c.Neighbor = []bgpNeighbor{{Addr: vteps[0], RRClient: true}, {Addr: vteps[2], RRClient: true}}
		}
		nodes[i] = frrVTEP(t, ns, c)
	}
	nodes[1].waitEstablished(t, vteps[0], vteps[2])
	checkFRRFabric(t, hosts, nodes, vteps)
}

// checkFRRFabric checks FRR VTEPs on VNI 100 that are to form one L2
// domain, node i in hosts[i] with VTEP vteps[i] and 10.100.0.(i+1) on its
// bridge: each lists every other as a VTEP of VNI 100 with ingress
// replication flooding (and zebra put that flood entry into the kernel),
// reaches every other's bridge address, lists every other's bridge MAC as
// remote on that VTEP (in the kernel's fdb too), and got from every other a
// type-3 route and a MAC+IP route for its bridge with the VTEP as next hop,
// the VXLAN encapsulation and the target 65000:100.
func checkFRRFabric(t *testing.T, hosts []*nstest.NS, nodes []*frrNode, vteps []string) {
	t.Helper()
	for i, n := range nodes {
		for j, other := range vteps {
			if j == i {
				continue
			}
			n.waitFor(t, frrWait, other+" a VTEP of VNI 100", "show evpn vni 100", func(out string) bool {
				return parseRemoteVTEPs(out)[other] != ""
			})
			if mode := n.remoteVTEPs(t, 100)[other]; mode != "HER" {
				t.Errorf("FRR %s: VTEP %s in VNI 100 floods by %q, want HER (ingress replication)", n.name, other, mode)
			}
			if fdb := hosts[i].MustRun(t, "bridge", "fdb", "show", "dev", "vxlan100"); !strings.Contains(fdb, "00:00:00:00:00:00 dst "+other+" ") {
				t.Errorf("FRR %s: no flood entry for %s on vxlan100:\n%s", n.name, other, fdb)
			}
		}
	}
	for i, ns := range hosts {
		for j := range hosts {
			if j != i {
				ns.MustRun(t, "busybox", "ping", "-c", "1", "-W", "5", fmt.Sprintf("10.100.0.%d", j+1))
			}
		}
	}
	for i, n := range nodes {
		for j, other := range vteps {
			if j == i {
				continue
			}
			mac, addr := bridgeMAC(t, hosts[j], 100), fmt.Sprintf("10.100.0.%d", j+1)
			n.waitRemoteMAC(t, 100, mac, other)
			if fdb := hosts[i].MustRun(t, "bridge", "fdb", "show", "dev", "vxlan100"); !regexp.MustCompile(
				regexp.QuoteMeta(mac) + ` dst ` + regexp.QuoteMeta(other) + ` .*extern_learn`).MatchString(fdb) {
				t.Errorf("FRR %s: %s is not on %s in vxlan100's fdb:\n%s", n.name, mac, other, fdb)
			}
			var imet, macip bool
			for _, r := range n.evpnRoutes(t) {
				if !strings.HasPrefix(r.RD, other+":") {
					continue // another VTEP's (or this node's own) route
				}
				if !strings.Contains(r.ExtComm.String, "RT:65000:100") || !strings.Contains(r.ExtComm.String, "ET:8") {
					t.Errorf("FRR %s: route %s %s carries %q", n.name, r.RD, r.Prefix, r.ExtComm.String)
				}
				if len(r.NextHops) == 0 || r.NextHops[0].IP != other {
					t.Errorf("FRR %s: route %s %s has next hops %v, want %s", n.name, r.RD, r.Prefix, r.NextHops, other)
				}
				imet = imet || r.RouteType == 3 && r.IP == other
				macip = macip || r.RouteType == 2 && r.MAC == mac && r.IP == addr
			}
			if !imet || !macip {
				t.Errorf("FRR %s: from %s: type 3 %v, MAC+IP of its bridge %v:\n%s", n.name, other, imet, macip,
					n.vtysh(t, "show bgp l2vpn evpn route"))
			}
		}
	}
}

// FRR's route table JSON flattens to one entry per path.
func TestParseEVPNRoutes(t *testing.T) {
	out := `{"172.31.0.2:2":{"rd":"172.31.0.2:2","[3]:[0]:[32]:[172.31.0.2]":{"prefix":"[3]:[0]:[32]:[172.31.0.2]",` +
		`"prefixLen":352,"paths":[[{"valid":true,"bestpath":true,"routeType":3,"ethTag":0,"ipLen":32,"ip":"172.31.0.2",` +
		`"peerId":"172.31.0.2","extendedCommunity":{"string":"RT:65000:100 ET:8"},"nexthops":[{"ip":"172.31.0.2"}]}]]}},` +
		`"numPrefix":1,"numPaths":1}`
	routes, err := parseEVPNRoutes(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(routes) != 1 {
		t.Fatalf("got %d routes, want 1: %+v", len(routes), routes)
	}
	r := routes[0]
	if r.RD != "172.31.0.2:2" || r.RouteType != 3 || r.IP != "172.31.0.2" || r.PeerID != "172.31.0.2" ||
		r.ExtComm.String != "RT:65000:100 ET:8" || len(r.NextHops) != 1 || r.NextHops[0].IP != "172.31.0.2" || !r.Best {
		t.Errorf("parsed %+v", r)
	}
	if routes, err := parseEVPNRoutes(""); err != nil || len(routes) != 0 {
		t.Errorf("empty output: %v, %v", routes, err)
	}
}

// The remote VTEP lines of `show evpn vni N` (FRR 8.4).
func TestParseRemoteVTEPs(t *testing.T) {
	out := "VNI: 100\n Type: L2\n Local VTEP IP: 172.31.0.1\n Mcast group: 0.0.0.0\n" +
		" Remote VTEPs for this VNI:\n  172.31.0.2 flood: HER\n  172.31.0.3 flood: -\n" +
		" Number of MACs (local and remote) known for this VNI: 0\n"
	got := parseRemoteVTEPs(out)
	if len(got) != 2 || got["172.31.0.2"] != "HER" || got["172.31.0.3"] != "-" {
		t.Errorf("got %v", got)
	}
	if got := parseRemoteVTEPs(" Remote VTEPs for this VNI:\n Number of MACs: 0\n"); len(got) != 0 {
		t.Errorf("no VTEPs: got %v", got)
	}
}
