package raw

import (
	"errors"
	"strings"

	"github.com/umlswitch/umlswitch/fabric"
	"github.com/umlswitch/umlswitch/frame"
	"github.com/umlswitch/umlswitch/internal/privdrop"
	"github.com/umlswitch/umlswitch/transports/portkind"

	"github.com/umlswitch/umlswitch/bpf"
	"github.com/umlswitch/umlswitch/configs"
)

// Options are a raw port's keys (transport=raw,...). A filter is read and
// checked once, when the spec is parsed; the text it came from is kept
// for the spec.
type Options struct {
	Ifname  string
	BPFFile string       // as given
	BPF     string       // tcpdump -ddd text, canonical, ';' between lines
	Filter  *bpf.Program // from either; nil passes every frame
	Promisc bool
}

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
	},
	Check: func(_ configs.Options, seen map[string]bool) error {
		if seen["bpf"] && seen["bpffile"] {
			return errors.New("give bpf= or bpffile=, not both")
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
		Capabilities: func(configs.Options) privdrop.Caps { return privdrop.NetRaw }, // AF_PACKET
		Open: portkind.Host(func(o *Options) string { return o.Ifname },
			func(o *Options, env portkind.Env) (*Port, error) { return Open(o.Config(env)) },
			func(p *Port, id frame.PortID) []fabric.Receiver { return []fabric.Receiver{p.Receiver(id)} })})
}
