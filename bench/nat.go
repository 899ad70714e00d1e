package bench

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/umlswitch/umlswitch/internal/linkwatch"
)

// -mode nat: TCP from a guest to a server on the host's loopback through
// three routers that give a lab the host: umlswitch's nat port; QEMU's user
// networking (slirp, in a QEMU without a machine whose hub joins it to a
// stream netdev the switch connects to); and the kernel (a tap of the
// switch holding the gateway's address, with nftables' DNAT to 127.0.0.1).
// In all three the guest is a network namespace of its own behind the
// switch's raw port on a veth, so the ratios compare the routers alone.

// The guest's side, as QEMU's user networking numbers it.
const (
	natGuestAddr = "10.0.2.15/24"
	natGateway   = "10.0.2.2"
	natSwitchEnd = "bnsw"
	natGuestEnd  = "bnguest"
	natTap       = "bntap"
	natTable     = "umlswbench"
)

// NATPaths are the routers -mode nat measures, in the order of its table.
var NATPaths = []string{"nat", "slirp", "kernel"}

// NATConfig is one -mode nat measurement.
type NATConfig struct {
	Exe      string // umlswitch
	Dir      string // scratch, for sockets
	Runs     int
	Warmup   time.Duration
	Duration time.Duration
	CPUs     []int // the switch's and QEMU's; the guest and server run on the others
	Log      io.Writer
}

// NATResult is one run over one path.
type NATResult struct {
	Bytes     int64
	Window    time.Duration
	SwitchCPU time.Duration
	RouterCPU time.Duration // QEMU's, on the slirp path
}

func (r NATResult) gbps() float64 { return float64(r.Bytes) * 8 / r.Window.Seconds() / 1e9 }

// NATRow is every run of one path.
type NATRow struct {
	Path string
	Runs []NATResult
}

// NAT measures every path cfg.Runs times, in turn (ABC, CBA, ...). It
// runs in a network namespace of the bench's own, as root.
func NAT(cfg NATConfig) ([]NATRow, error) {
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		return nil, fmt.Errorf("nat: the slirp path needs QEMU: %w", err)
	}
	if _, err := exec.LookPath("nft"); err != nil {
		return nil, fmt.Errorf("nat: the kernel path needs nftables: %w", err)
	}
	// The server and the routers' connections need this namespace's
	// loopback, which a new namespace has down.
	if lo, err := netlink.LinkByName("lo"); err != nil || netlink.LinkSetUp(lo) != nil {
		return nil, fmt.Errorf("nat: no loopback in the bench's namespace")
	}
	guest, err := natGuest()
	if err != nil {
		return nil, err
	}
	defer guest.Close()
	var received atomic.Int64
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("nat: server: %w", err)
	}
	defer ln.Close()
	go natSink(ln, &received)
	port := ln.Addr().(*net.TCPAddr).Port

	rows := make([]NATRow, len(NATPaths))
	for i, p := range NATPaths {
		rows[i].Path = p
	}
	for run := 0; run < cfg.Runs; run++ {
		order := make([]int, len(NATPaths))
		for i := range order {
			order[i] = i
		}
		if run%2 == 1 {
			slices.Reverse(order)
		}
		for _, i := range order {
			res, err := natRun(cfg, NATPaths[i], guest, port, &received)
			if err != nil {
				return nil, fmt.Errorf("nat: %s: %w", NATPaths[i], err)
			}
			fmt.Fprintf(cfg.Log, "bench: nat: %s: %.2f Gbit/s, switch CPU %.0f%%, QEMU CPU %.0f%%\n", NATPaths[i], res.gbps(),
				100*res.SwitchCPU.Seconds()/res.Window.Seconds(), 100*res.RouterCPU.Seconds()/res.Window.Seconds())
			rows[i].Runs = append(rows[i].Runs, res)
		}
	}
	return rows, nil
}

// natGuest makes the guest: a network namespace whose veth end has
// 10.0.2.15/24 and a default route through 10.0.2.2; the other end,
// natSwitchEnd, stays here for the switch's raw port.
func natGuest() (netns.NsHandle, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	here, err := netns.Get()
	if err != nil {
		return 0, fmt.Errorf("nat: %w", err)
	}
	defer here.Close()
	guest, err := netns.New() // enters it
	if err == nil {
		err = netns.Set(here)
	}
	if err != nil {
		return 0, fmt.Errorf("nat: guest namespace: %w", err)
	}
	fail := func(err error) (netns.NsHandle, error) {
		guest.Close()
		return 0, fmt.Errorf("nat: guest: %w", err)
	}
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: natSwitchEnd, MTU: 1500}, PeerName: natGuestEnd}
	if err := netlink.LinkAdd(veth); err != nil {
		return fail(err)
	}
	peer, err := netlink.LinkByName(natGuestEnd)
	if err == nil {
		err = netlink.LinkSetNsFd(peer, int(guest))
	}
	if err == nil {
		err = netlink.LinkSetUp(veth)
	}
	if err != nil {
		return fail(err)
	}
	h, err := netlink.NewHandleAt(guest)
	if err != nil {
		return fail(err)
	}
	defer h.Close()
	addr, _ := netlink.ParseAddr(natGuestAddr)
	for _, name := range []string{"lo", natGuestEnd} {
		link, err := h.LinkByName(name)
		if err == nil && name == natGuestEnd {
			err = h.AddrAdd(link, addr)
		}
		if err == nil {
			err = h.LinkSetUp(link)
		}
		if err != nil {
			return fail(fmt.Errorf("%s: %w", name, err))
		}
	}
	if err := h.RouteAdd(&netlink.Route{Gw: net.ParseIP(natGateway)}); err != nil {
		return fail(fmt.Errorf("default route: %w", err))
	}
	return guest, nil
}

// natSink counts what every connection to ln brings.
func natSink(ln net.Listener, received *atomic.Int64) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			buf := make([]byte, 256<<10)
			for {
				n, err := c.Read(buf)
				received.Add(int64(n))
				if err != nil {
					return
				}
			}
		}()
	}
}

// natRun starts the path's router and a switch joining it to the guest,
// streams from the guest to the server for the warm-up and the window,
// and stops them again.
func natRun(cfg NATConfig, path string, guest netns.NsHandle, port int, received *atomic.Int64) (NATResult, error) {
	dir, err := os.MkdirTemp(cfg.Dir, path)
	if err != nil {
		return NATResult{}, err
	}
	defer os.RemoveAll(dir)
	ports := []string{"-port", "transport=raw,ifname=" + natSwitchEnd}
	var router *exec.Cmd
	switch path {
	case "nat":
		ports = append(ports, "-port", "transport=nat")
	case "slirp":
		sock := filepath.Join(dir, "slirp.sock")
		router = exec.Command("qemu-system-x86_64", "-nodefaults", "-machine", "none", "-display", "none",
			"-netdev", "user,id=u0", "-netdev", "stream,id=s0,server=on,addr.type=unix,addr.path="+sock,
			"-netdev", "hubport,id=h0,hubid=0,netdev=u0", "-netdev", "hubport,id=h1,hubid=0,netdev=s0")
		router.Stdout, router.Stderr = cfg.Log, cfg.Log
		if err := router.Start(); err != nil {
			return NATResult{}, fmt.Errorf("qemu: %w", err)
		}
		defer func() { router.Process.Kill(); router.Wait() }()
		if len(cfg.CPUs) > 0 {
			pinProcess(router.Process.Pid, cfg.CPUs)
		}
		if err := waitForSocket(sock, 5*time.Second); err != nil {
			return NATResult{}, fmt.Errorf("qemu: %w", err)
		}
		ports = append(ports, "-port", "transport=stream,connect=1,path="+sock)
	case "kernel":
		ports = append(ports, "-port", "transport=tap,ifname="+natTap+",create=1,up=1")
	}
	sw, err := start(Known["umlswitch"], cfg.Exe, dir, false, ports, cfg.CPUs, cfg.Log)
	if err != nil {
		return NATResult{}, err
	}
	defer sw.shutdown()
	if path == "kernel" {
		if err := natKernel(port); err != nil {
			return NATResult{}, err
		}
		defer exec.Command("nft", "delete", "table", "ip", natTable).Run()
	}

	// Each path's gateway has a MAC of its own: the guest must ask again.
	if err := linkwatch.InNamespace(guest, natForgetNeighbours); err != nil {
		return NATResult{}, fmt.Errorf("guest: %w", err)
	}
	conn, err := natDial(guest, net.JoinHostPort(natGateway, strconv.Itoa(port)), 10*time.Second)
	if err != nil {
		return NATResult{}, err
	}
	var stop atomic.Bool
	sent := make(chan error, 1)
	go func() {
		buf := make([]byte, 256<<10)
		for !stop.Load() {
			if _, err := conn.Write(buf); err != nil {
				sent <- err
				return
			}
		}
		sent <- nil
	}()
	time.Sleep(cfg.Warmup)
	cpu0, _ := cpuTime(sw.pid())
	var qemu0 time.Duration
	if router != nil {
		qemu0, _ = cpuTime(router.Process.Pid)
	}
	bytes0, t0 := received.Load(), time.Now()
	time.Sleep(cfg.Duration)
	bytes1, t1 := received.Load(), time.Now()
	cpu1, _ := cpuTime(sw.pid())
	var qemu1 time.Duration
	if router != nil {
		qemu1, _ = cpuTime(router.Process.Pid)
	}
	stop.Store(true)
	conn.Close()
	if err := <-sent; err != nil && !errors.Is(err, net.ErrClosed) && bytes1 == bytes0 {
		return NATResult{}, fmt.Errorf("guest: %w", err)
	}
	if bytes1 == bytes0 {
		return NATResult{}, errors.New("nothing reached the server")
	}
	return NATResult{Bytes: bytes1 - bytes0, Window: t1.Sub(t0), SwitchCPU: cpu1 - cpu0, RouterCPU: qemu1 - qemu0}, nil
}

// natKernel gives the switch's tap the gateway's address and has the
// kernel translate the guest's connections to it to 127.0.0.1 (which
// route_localnet lets in from an interface).
func natKernel(port int) error {
	link, err := netlink.LinkByName(natTap)
	for end := time.Now().Add(5 * time.Second); err != nil && time.Now().Before(end); {
		time.Sleep(20 * time.Millisecond) // the switch makes the tap as it starts
		link, err = netlink.LinkByName(natTap)
	}
	if err != nil {
		return fmt.Errorf("kernel: %w", err)
	}
	addr, _ := netlink.ParseAddr(natGateway + "/24")
	if err := netlink.AddrAdd(link, addr); err != nil {
		return fmt.Errorf("kernel: %s: %w", natTap, err)
	}
	if err := os.WriteFile("/proc/sys/net/ipv4/conf/"+natTap+"/route_localnet", []byte("1"), 0); err != nil {
		return fmt.Errorf("kernel: %w", err)
	}
	rules := fmt.Sprintf("table ip %s {\n chain pre {\n  type nat hook prerouting priority dstnat;\n"+
		"  iifname %q tcp dport %d dnat to 127.0.0.1:%d\n }\n}\n", natTable, natTap, port, port)
	cmd := exec.Command("nft", "-f", "-")
	cmd.Stdin = strings.NewReader(rules)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("kernel: nft: %w: %s", err, out)
	}
	return nil
}

// natForgetNeighbours empties this namespace's IPv4 neighbour table.
func natForgetNeighbours() error {
	neighs, err := netlink.NeighList(0, netlink.FAMILY_V4)
	for _, n := range neighs {
		if err == nil {
			err = netlink.NeighDel(&n)
		}
	}
	return err
}

// natDial connects from the guest, retrying while the path comes up
// (the guest's ARP, the router's first answers).
func natDial(guest netns.NsHandle, addr string, limit time.Duration) (net.Conn, error) {
	var conn net.Conn
	var err error
	for end := time.Now().Add(limit); ; time.Sleep(100 * time.Millisecond) {
		err = linkwatch.InNamespace(guest, func() (err error) {
			conn, err = net.DialTimeout("tcp", addr, time.Second)
			return err
		})
		if err == nil || time.Now().After(end) {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("guest: connect to %s: %w", addr, err)
	}
	return conn, nil
}

// waitForSocket waits until a unix socket at path accepts connections.
func waitForSocket(path string, limit time.Duration) error {
	for end := time.Now().Add(limit); ; time.Sleep(20 * time.Millisecond) {
		c, err := net.Dial("unix", path)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(end) {
			return fmt.Errorf("%s: %w", path, err)
		}
	}
}

// ReportNAT writes the -mode nat table: throughput and CPU by path,
// median (min-max), and each path's throughput against the nat port's.
func ReportNAT(w io.Writer, rows []NATRow) {
	fmt.Fprintln(w, "| path | Gbit/s | switch CPU-s per s | QEMU CPU-s per s | Gbit/s against nat |")
	fmt.Fprintln(w, "|---|---|---|---|---|")
	var base float64
	for i, row := range rows {
		g := summarize(row.Runs, NATResult.gbps)
		if i == 0 {
			base = g.med
		}
		ratio := "-"
		if i > 0 && base > 0 {
			ratio = fmt.Sprintf("%.2fx", g.med/base)
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s |\n", row.Path, g,
			summarize(row.Runs, func(r NATResult) float64 { return r.SwitchCPU.Seconds() / r.Window.Seconds() }),
			summarize(row.Runs, func(r NATResult) float64 { return r.RouterCPU.Seconds() / r.Window.Seconds() }), ratio)
	}
}
