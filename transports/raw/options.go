package raw

import (
	"errors"
	"fmt"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/umlswitch/umlswitch/fabric"
	"github.com/umlswitch/umlswitch/frame"
	"github.com/umlswitch/umlswitch/internal/handover"
	"github.com/umlswitch/umlswitch/internal/privdrop"
	"github.com/umlswitch/umlswitch/internal/xsk"
	"github.com/umlswitch/umlswitch/transports/portkind"

	"github.com/umlswitch/umlswitch/bpf"
	"github.com/umlswitch/umlswitch/configs"
)

// Options are a raw port's keys (transport=raw,...). A filter is read and
// checked once, when the spec is parsed; the text it came from is kept
// for the spec.
type Options struct {
	Ifname   string
	BPFFile  string       // as given
	BPF      string       // tcpdump -ddd text, canonical, ';' between lines
	Filter   *bpf.Program // from either; nil passes every frame
	Promisc  bool
	XDP      XDPMode
	Ring     RingMode // how an AF_PACKET socket reads: a TPACKET_V3 ring or recvmmsg
	Queues   int      // AF_XDP sockets, one per receive queue from 0
	ZeroCopy bool     // AF_XDP in the driver's zero-copy mode, or fail
}

// XDPMode says whether a raw port reads through AF_XDP sockets.
type XDPMode uint8

const (
	XDPOff  XDPMode = iota // an AF_PACKET socket
	XDPOn                  // AF_XDP, or fail
	XDPAuto                // AF_XDP where the interface and kernel allow, AF_PACKET otherwise
)

var xdpModes = []string{"0", "1", "auto"}

func parseXDP(v string) (XDPMode, error) {
	for i, m := range xdpModes {
		if v == m {
			return XDPMode(i), nil
		}
	}
	return 0, fmt.Errorf("%q: want 0, 1 or auto", v)
}

func (m XDPMode) String() string { return xdpModes[m] }

// RingMode says how an AF_PACKET raw port reads: through a memory-mapped
// ring or with recvmmsg. The zero value is the default (defaultRing).
type RingMode uint8

const (
	RingDefault RingMode = iota
	RingOff              // recvmmsg into the port's buffers
	RingBlocks           // a TPACKET_V3 ring: blocks of frames, handed over full or after 1 ms
	RingFrames           // a TPACKET_V2 ring: one frame a slot, handed over at once
)

// defaultRing is what ring= means when not given. On veths the switch
// forwarded 1.1 to 1.6 times the frames on the TPACKET_V2 ring that it did
// with recvmmsg, 1.4 to 1.6 times per CPU-second, with lower latency; on
// the TPACKET_V3 ring as cheaply, but a frame on a quiet link waits 1 ms
// for its block (bench/RESULTS.md).
const defaultRing = RingFrames

var ringModes = []string{"", "0", "blocks", "frames"}

func parseRing(v string) (RingMode, error) {
	for i, m := range ringModes {
		if v == m && m != "" {
			return RingMode(i), nil
		}
	}
	return 0, fmt.Errorf("%q: want 0, blocks or frames", v)
}

func (m RingMode) String() string { return ringModes[m.mode()] }

// mode is m with the default resolved.
func (m RingMode) mode() RingMode {
	if m == RingDefault {
		return defaultRing
	}
	return m
}

// MaxQueues bounds queues=N.
const MaxQueues = 64

// schema declares the raw transport's keys.
var schema = configs.Kind{
	Name:    "raw",
	Summary: "an AF_PACKET socket on a host interface or a veth; frames a filter refuses count as filtered",
	New:     func() configs.Options { return &Options{} },
	Privileged: func(configs.Options) string {
		return "a raw port reads and writes a host interface (CAP_NET_RAW)"
	},
	Keys: []configs.Key{
		configs.Text("ifname", "NAME", "the host interface", func(o *Options) *string { return &o.Ifname }, configs.CheckIfname).Require(),
		{Name: "bpffile", Value: "FILE", Help: "a classic BPF filter, read and checked when the spec is parsed (so FILE must exist then): " +
			"UML's binary sock_filter array, or tcpdump -ddd text if FILE ends in .txt",
			Set: setBPFFile, Get: func(o configs.Options) (string, bool) { r := o.(*Options); return r.BPFFile, r.BPFFile != "" }},
		{Name: "bpf", Value: "PROGRAM", Help: "a classic BPF filter as tcpdump -ddd prints it (lines may be joined by ';')",
			Set: setBPF, Get: func(o configs.Options) (string, bool) { r := o.(*Options); return r.BPF, r.BPF != "" }},
		configs.Flag("promisc", "promiscuous mode while the port is open", func(o *Options) *bool { return &o.Promisc }),
		configs.Value("xdp", "0|1|auto", "read and write through AF_XDP sockets: an XDP program (and the filter, translated) "+
			"redirects the interface's frames to the switch before the kernel makes an skb; 1 fails where the interface or kernel cannot, "+
			"auto falls back to AF_PACKET and says so", func(o *Options) *XDPMode { return &o.XDP }, parseXDP, XDPMode.String).WithDefault("0"),
		configs.Value("ring", "KIND", "how an AF_PACKET socket (xdp=0, or auto falling back) reads: frames through a memory-mapped "+
			"TPACKET_V2 ring that hands over each frame at once; blocks through a TPACKET_V3 ring that hands over a block of frames at a time "+
			"(a part-filled one after 1 ms); 0 with recvmmsg",
			func(o *Options) *RingMode { return &o.Ring }, parseRing, RingMode.String).WithDefault(defaultRing.String()),
		configs.Value("queues", "N", fmt.Sprintf("with xdp: one AF_XDP socket and reader per receive queue 0..N-1, N up to %d", MaxQueues),
			func(o *Options) *int { return &o.Queues }, configs.Range(1, MaxQueues), configs.Decimal[int]).WithDefault("1"),
		configs.Flag("zerocopy", "with xdp=1: the driver's zero-copy mode (frames move in the switch's memory), or fail",
			func(o *Options) *bool { return &o.ZeroCopy }),
	},
	Check: func(o configs.Options, seen map[string]bool) error {
		r := o.(*Options)
		switch {
		case seen["bpf"] && seen["bpffile"]:
			return errors.New("give bpf= or bpffile=, not both")
		case r.XDP == XDPOff && r.Queues > 1:
			return errors.New("queues= needs xdp=1 or xdp=auto (an AF_PACKET port reads one socket)")
		case seen["ring"] && r.XDP == XDPOn:
			return errors.New("ring= concerns AF_PACKET sockets, which xdp=1 never uses")
		case r.ZeroCopy && r.XDP != XDPOn:
			return errors.New("zerocopy=1 needs xdp=1")
		}
		return nil
	},
}

func setBPFFile(o configs.Options, v string) (err error) {
	r := o.(*Options)
	r.BPFFile = v
	r.Filter, err = bpf.LoadFile(v)
	return err
}

// setBPF checks the program now, so a bad one fails before the switch
// starts, and keeps it in one canonical line.
func setBPF(o configs.Options, v string) error {
	raw, err := bpf.ParseText(v)
	if err != nil {
		return err
	}
	r := o.(*Options)
	if r.Filter, err = bpf.New(raw); err != nil {
		return err
	}
	r.BPF = strings.ReplaceAll(strings.TrimSpace(bpf.Text(raw)), "\n", ";")
	return nil
}

// Config is the port o describes in env.
func (o *Options) Config(env portkind.Env) Config {
	return Config{Options: *o, Common: env.Common}
}

func init() {
	portkind.Register(portkind.Kind{Kind: schema,
		Capabilities: capabilities,
		Open: portkind.Host(func(o *Options) string { return o.Ifname },
			func(o *Options, env portkind.Env) (hostPort, error) { return open(o.Config(env)) },
			hostPort.Receivers)})
}

// capabilities: AF_PACKET needs CAP_NET_RAW; AF_XDP sockets too, and the
// XDP program CAP_BPF and CAP_NET_ADMIN (CAP_PERFMON where the filter reads
// the frame's length).
func capabilities(o configs.Options) privdrop.Caps {
	if o.(*Options).XDP == XDPOff {
		return privdrop.NetRaw
	}
	return privdrop.NetRaw | privdrop.NetAdmin | privdrop.BPF | privdrop.Perfmon
}

// hostPort is a raw port on either socket kind.
type hostPort interface {
	fabric.Port
	Receivers(id frame.PortID) []fabric.Receiver
}

// open opens the port cfg asks for: with xdp=auto, on AF_XDP where the
// interface and kernel allow, on AF_PACKET otherwise, saying why.
func open(cfg Config) (hostPort, error) {
	switch cfg.XDP {
	case XDPOff:
		return Open(cfg)
	case XDPOn:
		if handover.PredecessorRunning() {
			// The old switch of this upgrade holds the interface's program
			// and queues, or is opening them (it took them over from its
			// own predecessor a moment ago): trying now would fight it.
			return nil, portkind.Held(errors.New("raw: the switch this one takes over from holds or is opening AF_XDP on the interface"))
		}
		p, err := OpenXDP(cfg)
		switch {
		case errors.Is(err, xsk.ErrInUse):
			return nil, portkind.Held(err) // by an old switch, it may be: see portkind.Host
		case errors.Is(err, unix.EAFNOSUPPORT):
			return nil, fmt.Errorf("%w; xdp=auto reads through AF_PACKET then", err)
		case err != nil:
			return nil, err
		}
		return p, nil
	}
	p, err := OpenXDP(cfg)
	if err == nil {
		return p, nil
	}
	if cfg.Logger != nil {
		cfg.Logger.Warn("xdp=auto: reading through AF_PACKET", "ifname", cfg.Ifname, "why", err)
	}
	return Open(cfg)
}
