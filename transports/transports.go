// Package transports opens the ports a configuration describes, of every
// kind, on a switch (or on the benchmark's ceiling relay), and closes them
// again. Tunnel ports that share a local address share a socket.
package transports

import (
	"fmt"
	"io"
	"log/slog"
	"sync"

	"github.com/umlswitch/umlswitch/bpf"
	"github.com/umlswitch/umlswitch/configs"
	"github.com/umlswitch/umlswitch/fabric"
	"github.com/umlswitch/umlswitch/frame"
	"github.com/umlswitch/umlswitch/internal/tunnel"
	"github.com/umlswitch/umlswitch/transports/bess"
	"github.com/umlswitch/umlswitch/transports/daemon"
	"github.com/umlswitch/umlswitch/transports/gre"
	"github.com/umlswitch/umlswitch/transports/l2tpv3"
	"github.com/umlswitch/umlswitch/transports/raw"
	"github.com/umlswitch/umlswitch/transports/tap"
	"github.com/umlswitch/umlswitch/transports/vxlan"
)

// Defaults apply to ports that set no depth or mtu of their own.
type Defaults struct {
	Depth int
	MTU   int
}

// Set is the ports and listeners opened on one registry.
type Set struct {
	reg     fabric.Registry
	tunnels *tunnel.Table
	log     *slog.Logger

	mu     sync.Mutex
	opened []io.Closer // in opening order
}

// NewSet returns an empty set that opens ports on reg.
func NewSet(reg fabric.Registry, log *slog.Logger) *Set {
	if log == nil {
		log = slog.Default()
	}
	return &Set{reg: reg, tunnels: tunnel.NewTable(reg, log), log: log}
}

// Open opens the port p describes.
func (s *Set) Open(p configs.Port, d Defaults) error {
	depth, mtu := p.Depth, p.MTU
	if depth == 0 {
		depth = d.Depth
	}
	if mtu == 0 {
		mtu = d.MTU
	}
	maxFrame := frame.MaxFrameForMTU(mtu)
	var c io.Closer
	switch p.Transport {
	case "daemon":
		t, err := daemon.Listen(daemon.Config{Path: p.Path, Mode: p.Mode, CompatV0: p.CompatV0, DataPath: p.DataPath,
			Depth: depth, MaxFrame: maxFrame, Logger: s.log})
		if err != nil {
			return err
		}
		t.Start(s.reg)
		c = t
	case "bess":
		t, err := bess.Listen(bess.Config{Path: p.Path, Mode: p.Mode, Depth: depth, MaxFrame: maxFrame, Logger: s.log})
		if err != nil {
			return err
		}
		t.Start(s.reg)
		c = t
	case "tap":
		owner := -1
		if p.HasOwner {
			owner = int(p.Owner)
		}
		tp, err := tap.Open(tap.Config{Ifname: p.Ifname, Create: p.Create, Persist: p.Persist, Owner: owner, Up: p.Up,
			MTU: p.MTU, Queues: p.Queues, VnetHdr: p.VnetHdr, Depth: depth, MaxFrame: maxFrame, Logger: s.log})
		if err != nil {
			return err
		}
		if c, err = s.attach(tp, tp.Receivers); err != nil {
			return err
		}
	case "raw":
		filter, err := loadFilter(p)
		if err != nil {
			return fmt.Errorf("raw %s: %w", p.Ifname, err)
		}
		rp, err := raw.Open(raw.Config{Ifname: p.Ifname, Filter: filter, Promisc: p.Promisc, Depth: depth, MaxFrame: maxFrame, Logger: s.log})
		if err != nil {
			return err
		}
		one := func(id frame.PortID) []fabric.Receiver { return []fabric.Receiver{rp.Receiver(id)} }
		if c, err = s.attach(rp, one); err != nil {
			return err
		}
	case "gre":
		tp, err := gre.Open(s.tunnels, s.reg, gre.Config{Local: p.Src, Remote: p.Dst, HasKey: p.HasKey, RxKey: p.RxKey,
			TxKey: p.TxKey, Sequence: p.Sequence, PinSequence: p.PinSeq, Depth: depth, MaxFrame: maxFrame})
		if err != nil {
			return err
		}
		c = detacher{s.reg, tp}
	case "l2tpv3":
		tp, err := l2tpv3.Open(s.tunnels, s.reg, l2tpv3.Config{UDP: p.UDP, Local: p.Src, Remote: p.Dst,
			LocalPort: p.SrcPort, RemotePort: p.DstPort, RxSession: p.RxSession, TxSession: p.TxSession,
			HasCookie: p.HasCookie, Cookie64: p.Cookie64, RxCookie: p.RxCookie, TxCookie: p.TxCookie,
			Counter: p.Counter, PinCounter: p.PinCounter, Depth: depth, MaxFrame: maxFrame})
		if err != nil {
			return err
		}
		c = detacher{s.reg, tp}
	case "vxlan":
		tp, err := vxlan.Open(s.tunnels, s.reg, vxlan.Config{Local: p.Src, Remote: p.Dst, VNI: p.VNI, DstPort: p.DstPort,
			Depth: depth, MaxFrame: maxFrame})
		if err != nil {
			return err
		}
		c = detacher{s.reg, tp}
	default:
		return fmt.Errorf("port %s: transport %q is not wired", p, p.Transport)
	}
	s.mu.Lock()
	s.opened = append(s.opened, c)
	s.mu.Unlock()
	return nil
}

// Close closes everything, last opened first.
func (s *Set) Close() {
	s.mu.Lock()
	opened := s.opened
	s.opened = nil
	s.mu.Unlock()
	for i := len(opened) - 1; i >= 0; i-- {
		opened[i].Close()
	}
}

// TunnelStats returns the counters of the tunnel endpoints: packets that
// reached a local address but no port.
func (s *Set) TunnelStats() []tunnel.Stats { return s.tunnels.Stats() }

// attach adds a port with readers of its own (not a shared tunnel socket)
// and starts them.
func (s *Set) attach(p fabric.Port, receivers func(frame.PortID) []fabric.Receiver) (io.Closer, error) {
	id, err := s.reg.Attach(p)
	if err != nil {
		p.Close()
		return nil, err
	}
	for _, r := range receivers(id) {
		s.reg.Serve(r)
	}
	return detacher{s.reg, p}, nil
}

// loadFilter returns the raw port's program, or nil for none.
func loadFilter(p configs.Port) (*bpf.Program, error) {
	switch {
	case p.BPFFile != "":
		return bpf.LoadFile(p.BPFFile)
	case p.BPF != "":
		raw, err := bpf.ParseText(p.BPF)
		if err != nil {
			return nil, err
		}
		return bpf.New(raw)
	}
	return nil, nil
}

// detacher takes a port the set attached off the registry, which closes it.
type detacher struct {
	reg fabric.Registry
	p   fabric.Port
}

func (d detacher) Close() error { d.reg.Detach(d.p); return nil }
