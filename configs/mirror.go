package configs

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Mirror is one capture, from a -mirror spec or a config file entry.
type Mirror struct {
	Name    string   // how the API calls it; empty: given one when it opens
	File    string   // write to this file
	Stream  string   // or serve live readers on this unix socket
	Format  string   // pcapng (default) or pcap
	Snaplen int      // 0: whole frames
	Ports   []string // ports whose names contain one of these; none: all
	Dir     string   // in, out or both (default)
	Rotate  int64    // bytes per file before the next; 0: one file
	Keep    int      // rotated files kept; 0: all
	Port    *Port    // or send the frames themselves to this port (SPAN)
	// stream: who may connect, as for a daemon port's socket
	Mode               os.FileMode
	HasOwner, HasGroup bool
	Owner, Group       uint32
}

// MirrorKeys are the keys -mirror takes.
var MirrorKeys = []string{"dir", "file", "format", "group", "keep", "mode", "name", "owner", "port", "ports", "rotate", "snaplen", "stream"}

// ParseMirror parses a -mirror spec: key=value pairs separated by commas;
// a field without "=" continues the list of the key before it, so
// ports=a,b names two ports. port=SPEC comes last and takes the rest, a
// -port spec with commas of its own.
func ParseMirror(spec string) (Mirror, error) {
	rest, portSpec, hasPort := strings.Cut(spec, "port=transport=")
	if hasPort && rest != "" && !strings.HasSuffix(rest, ",") {
		rest, portSpec, hasPort = spec, "", false // "...ports=transport=": not the port key
	}
	kv, err := splitOptions(strings.TrimSuffix(rest, ","), "ports")
	if err != nil {
		return Mirror{}, fmt.Errorf("mirror %q: %w", spec, err)
	}
	if hasPort {
		kv = append(kv, [2]string{"port", "transport=" + portSpec})
	}
	m, err := mirrorFromOptions(kv)
	if err != nil {
		return Mirror{}, fmt.Errorf("mirror %q: %w", spec, err)
	}
	return m, nil
}

func mirrorFromOptions(kv [][2]string) (Mirror, error) {
	var m Mirror
	seen := map[string]bool{}
	for _, p := range kv {
		k, v := p[0], p[1]
		if seen[k] {
			return m, fmt.Errorf("key %q given twice", k)
		}
		seen[k] = true
		if v == "" {
			return m, fmt.Errorf("key %q has an empty value", k)
		}
		var err error
		switch k {
		case "name":
			m.Name, err = v, CheckName(v)
		case "file":
			m.File = v
		case "stream":
			m.Stream = v
		case "mode":
			m.Mode, err = ParseMode(v)
		case "owner":
			m.HasOwner = true
			m.Owner, err = ParseOwner(v)
		case "group":
			m.HasGroup = true
			m.Group, err = ParseGroup(v)
		case "format":
			if v != "pcap" && v != "pcapng" {
				err = fmt.Errorf("format=%s: want pcapng or pcap", v)
			}
			m.Format = v
		case "snaplen":
			m.Snaplen, err = ParseInt(v, 14, 65535)
		case "ports":
			for _, name := range strings.Split(v, ",") {
				if name = strings.TrimSpace(name); name != "" {
					m.Ports = append(m.Ports, name)
				}
			}
		case "dir":
			if v != "in" && v != "out" && v != "both" {
				err = fmt.Errorf("dir=%s: want in, out or both", v)
			}
			m.Dir = v
		case "rotate":
			m.Rotate, err = parseSize(v)
		case "keep":
			m.Keep, err = ParseInt(v, 1, 1<<20)
		case "port":
			var p Port
			if p, err = ParsePort(v); err == nil {
				m.Port = &p
			}
		default:
			err = fmt.Errorf("unknown key %q (accepted: %s)", k, strings.Join(MirrorKeys, ", "))
		}
		if err != nil {
			return m, err
		}
	}
	dests := 0
	for _, set := range []bool{m.File != "", m.Stream != "", m.Port != nil} {
		if set {
			dests++
		}
	}
	if dests != 1 {
		return m, errors.New("give one of file=PATH, stream=PATH and port=SPEC (last, a -port spec)")
	}
	if m.Stream == "" && (m.Mode != 0 || m.HasOwner || m.HasGroup) {
		return m, errors.New("mode=, owner= and group= apply to stream=")
	}
	if m.File == "" && (m.Rotate != 0 || m.Keep != 0) {
		return m, errors.New("rotate= and keep= apply to file=")
	}
	if m.Port != nil && (m.Format != "" || m.Snaplen != 0) {
		return m, errors.New("format= and snaplen= apply to file= and stream=: a port gets whole frames")
	}
	if m.Keep != 0 && m.Rotate == 0 {
		return m, errors.New("keep= needs rotate=")
	}
	return m, nil
}

// String renders m as a -mirror spec that parses back to m.
func (m Mirror) String() string {
	var b specBuilder
	add := b.add
	add("name", m.Name, m.Name != "")
	add("file", m.File, m.File != "")
	add("stream", m.Stream, m.Stream != "")
	add("format", m.Format, m.Format != "")
	add("snaplen", m.Snaplen, m.Snaplen != 0)
	add("ports", strings.Join(m.Ports, ","), len(m.Ports) > 0)
	add("dir", m.Dir, m.Dir != "")
	add("rotate", m.Rotate, m.Rotate != 0)
	add("keep", m.Keep, m.Keep != 0)
	add("mode", fmt.Sprintf("%#o", uint32(m.Mode)), m.Mode != 0)
	add("owner", m.Owner, m.HasOwner)
	add("group", m.Group, m.HasGroup)
	if m.Port != nil {
		add("port", m.Port.String(), true)
	}
	return b.String()
}

// parseSize reads a byte count with an optional k, M or G suffix (powers
// of 1024).
func parseSize(v string) (int64, error) {
	mult := int64(1)
	switch strings.ToLower(v[len(v)-1:]) {
	case "k":
		mult = 1 << 10
	case "m":
		mult = 1 << 20
	case "g":
		mult = 1 << 30
	}
	num := v
	if mult != 1 {
		num = v[:len(v)-1]
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 1 || n > (1<<40)/mult {
		return 0, fmt.Errorf("%q is not a size like 10M, 512k or 1000000", v)
	}
	return n * mult, nil
}
