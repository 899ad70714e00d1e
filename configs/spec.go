package configs

import (
	"fmt"
	"strings"
)

// ParsePort parses a -port spec: comma-separated key=value pairs, one of
// them transport=NAME, with the option names UML uses for its vector
// transports. Values cannot contain commas (nor can UML's).
func ParsePort(spec string) (Port, error) {
	kv, err := splitOptions(spec, "")
	if err != nil {
		return Port{}, fmt.Errorf("port %q: %w", spec, err)
	}
	p, err := fromOptions(kv)
	if err != nil {
		return Port{}, fmt.Errorf("port %q: %w", spec, err)
	}
	return p, nil
}

// splitOptions splits "k=v,k=v" into pairs. A field without "=" is an
// error, except after the key listKey, whose value it extends (ports=a,b).
func splitOptions(spec, listKey string) ([][2]string, error) {
	var kv [][2]string
	for _, field := range strings.Split(spec, ",") {
		field = strings.TrimSpace(field)
		if field == "" {
			continue
		}
		k, v, ok := strings.Cut(field, "=")
		if !ok {
			if listKey == "" || len(kv) == 0 || kv[len(kv)-1][0] != listKey {
				return nil, fmt.Errorf("%q is not key=value", field)
			}
			kv[len(kv)-1][1] += "," + field
			continue
		}
		kv = append(kv, [2]string{strings.TrimSpace(k), strings.TrimSpace(v)})
	}
	return kv, nil
}

// String renders p as a -port spec that parses back to p.
func (p Port) String() string {
	var b specBuilder
	add := b.add
	add("transport", p.Transport, true)
	add("name", p.Name, p.Name != "")
	add("switch", p.Switch, p.Switch != "")
	add("path", p.Path, p.Path != "")
	add("mode", fmt.Sprintf("%#o", uint32(p.Mode)), p.Mode != 0)
	add("compat_v0", 1, p.CompatV0)
	add("data", p.DataPath, p.DataPath != "")
	add("api", p.API, p.API != "")
	add("ifname", p.Ifname, p.Ifname != "")
	add("create", 1, p.Create)
	add("persist", 1, p.Persist)
	add("owner", p.Owner, p.HasOwner)
	add("group", p.Group, p.HasGroup)
	add("up", 1, p.Up)
	add("queues", p.Queues, p.Queues != 0)
	add("vnet_hdr", 1, p.VnetHdr)
	add("bpffile", p.BPFFile, p.BPFFile != "")
	add("bpf", p.BPF, p.BPF != "")
	add("promisc", 1, p.Promisc)
	add("vni", p.VNI, p.Transport == "vxlan")
	add("src", p.Src, p.Src.IsValid())
	add("dst", p.Dst, p.Dst.IsValid())
	add("v6", 1, p.V6)
	add("rx_key", fmt.Sprintf("%#x", p.RxKey), p.HasKey)
	add("tx_key", fmt.Sprintf("%#x", p.TxKey), p.HasKey)
	add("sequence", 1, p.Sequence)
	add("pin_sequence", 1, p.PinSeq)
	add("udp", 1, p.UDP)
	add("srcport", p.SrcPort, p.UDP)
	add("dstport", p.DstPort, p.UDP || p.DstPort != 0)
	add("rx_session", fmt.Sprintf("%#x", p.RxSession), p.Transport == "l2tpv3")
	add("tx_session", fmt.Sprintf("%#x", p.TxSession), p.Transport == "l2tpv3")
	add("rx_cookie", fmt.Sprintf("%#x", p.RxCookie), p.HasCookie)
	add("tx_cookie", fmt.Sprintf("%#x", p.TxCookie), p.HasCookie)
	add("cookie64", 1, p.Cookie64)
	add("counter", 1, p.Counter)
	add("pin_counter", 1, p.PinCounter)
	add("depth", p.Depth, p.Depth != 0)
	add("mtu", p.MTU, p.MTU != 0)
	return b.String()
}

// specBuilder writes key=value pairs the way specs are parsed.
type specBuilder struct{ parts []string }

func (b *specBuilder) add(k string, v any, set bool) {
	if set {
		b.parts = append(b.parts, fmt.Sprintf("%s=%v", k, v))
	}
}

func (b *specBuilder) String() string { return strings.Join(b.parts, ",") }
