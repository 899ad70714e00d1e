package extcap

import (
	"errors"
	"fmt"
	"strings"
)

// Prefix starts the name of every interface this extcap lists.
const Prefix = "umlswitch:"

// Target is what an interface captures: the frames of switch Switch, as
// the control socket Socket serves them, or only those crossing Port.
//
// Its name, which Wireshark shows and hands back on --capture, is
//
//	umlswitch:SWITCH@SOCKET
//	umlswitch:SWITCH/PORT@SOCKET
//
// with every byte of SWITCH and PORT other than letters, digits and
// "_.:-+,=#~" written %XX (so neither holds a / or @), and SOCKET an
// absolute path, written the same way except that / and @ stay as they
// are. The first @ ends the switch part, so a socket path may hold @.
// Switch and port names (1 to 64 letters, digits and _ . : -) appear as
// they are: umlswitch:A/daemon0.1@/tmp/lab/A.ctl.
type Target struct {
	Socket string
	Switch string
	Port   string // "": every port
}

// Name is the interface name of t.
func (t Target) Name() string {
	var b strings.Builder
	b.WriteString(Prefix)
	escape(&b, t.Switch, "")
	if t.Port != "" {
		b.WriteByte('/')
		escape(&b, t.Port, "")
	}
	b.WriteByte('@')
	escape(&b, t.Socket, "/@")
	return b.String()
}

// String names t for people: switch A at /tmp/lab/A.ctl.
func (t Target) String() string {
	if t.Port != "" {
		return fmt.Sprintf("port %s of switch %s at %s", t.Port, t.Switch, t.Socket)
	}
	return fmt.Sprintf("switch %s at %s", t.Switch, t.Socket)
}

// ParseName reads an interface name back into its target.
func ParseName(name string) (Target, error) {
	rest, ok := strings.CutPrefix(name, Prefix)
	if !ok {
		return Target{}, fmt.Errorf("extcap: interface %q: not one of umlswitch's (they start with %q)", name, Prefix)
	}
	at := strings.IndexByte(rest, '@')
	if at < 0 {
		return Target{}, fmt.Errorf("extcap: interface %q: no @SOCKET", name)
	}
	sw, port, hasPort := strings.Cut(rest[:at], "/")
	var t Target
	var err error
	if t.Switch, err = unescape(sw); err != nil {
		return Target{}, fmt.Errorf("extcap: interface %q: switch: %w", name, err)
	}
	if t.Port, err = unescape(port); err != nil {
		return Target{}, fmt.Errorf("extcap: interface %q: port: %w", name, err)
	}
	if t.Socket, err = unescape(rest[at+1:]); err != nil {
		return Target{}, fmt.Errorf("extcap: interface %q: socket: %w", name, err)
	}
	switch {
	case t.Switch == "":
		return Target{}, fmt.Errorf("extcap: interface %q: no switch", name)
	case hasPort && t.Port == "":
		return Target{}, fmt.Errorf("extcap: interface %q: an empty port after /", name)
	case t.Socket == "":
		return Target{}, fmt.Errorf("extcap: interface %q: no socket after @", name)
	}
	return t, nil
}

// plain reports whether c stands for itself in a name.
func plain(c byte, extra string) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("_.:-+,=#~", c) >= 0 || strings.IndexByte(extra, c) >= 0
}

func escape(b *strings.Builder, s, extra string) {
	const hex = "0123456789ABCDEF"
	for i := 0; i < len(s); i++ {
		c := s[i]
		if plain(c, extra) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
}

var errEscape = errors.New("a % not followed by two hex digits")

func unescape(s string) (string, error) {
	if strings.IndexByte(s, '%') < 0 {
		return s, nil
	}
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			out = append(out, s[i])
			continue
		}
		if i+2 >= len(s) {
			return "", errEscape
		}
		hi, ok1 := unhex(s[i+1])
		lo, ok2 := unhex(s[i+2])
		if !ok1 || !ok2 {
			return "", errEscape
		}
		out = append(out, hi<<4|lo)
		i += 2
	}
	return string(out), nil
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}
