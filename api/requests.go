package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/umlswitch/umlswitch/configs"
	"github.com/umlswitch/umlswitch/frame"
	"github.com/umlswitch/umlswitch/instance"
)

// The bodies of the API's write requests. Each decodes strictly (unknown
// fields, trailing data and wrong types are errors) and checks itself
// before anything is done.

// SwitchRequest adds a switch: POST /v1/switches.
type SwitchRequest struct {
	Name         string `json:"name"`
	Hub          *bool  `json:"hub,omitempty"`
	MACAge       string `json:"mac_age,omitempty"` // a duration: 300s
	MACTableSize *int   `json:"mac_table_size,omitempty"`
}

func (r SwitchRequest) switchConfig() (configs.Switch, error) {
	var kv [][2]string
	if r.Hub != nil {
		kv = append(kv, [2]string{"hub", strconv.FormatBool(*r.Hub)})
	}
	if r.MACAge != "" {
		kv = append(kv, [2]string{"mac_age", r.MACAge})
	}
	if r.MACTableSize != nil {
		kv = append(kv, [2]string{"mac_table_size", strconv.Itoa(*r.MACTableSize)})
	}
	return configs.NewSwitch(r.Name, kv)
}

// PortRequest adds a port: POST /v1/ports. Spec is a -port spec; Switch
// defaults to the switch whose socket the request came through (a switch=
// in the spec says the same).
type PortRequest struct {
	Switch string `json:"switch,omitempty"`
	Spec   string `json:"spec"`
}

func (r PortRequest) port(here string) (configs.Port, string, error) {
	if r.Spec == "" {
		return configs.Port{}, "", errors.New(`"spec" is empty: give a -port spec like transport=tap,ifname=tap0`)
	}
	p, err := configs.ParsePort(r.Spec)
	if err != nil {
		return p, "", err
	}
	sw, err := pick(r.Switch, p.Switch, here)
	return p, sw, err
}

// SetRequest changes a running port's policy keys: PATCH /v1/ports/{name}
// with keys as a spec writes them, "delay=50ms,loss=1%"; "vlan=" (no
// value) takes a key back to its default.
type SetRequest struct {
	Set string `json:"set"`
}

// Pairs are the keys and values of Set, in order.
func (r SetRequest) Pairs() ([][2]string, error) {
	var kv [][2]string
	for _, f := range strings.Split(r.Set, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		k, v, ok := strings.Cut(f, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("%q is not key=value", f)
		}
		kv = append(kv, [2]string{k, v})
	}
	if len(kv) == 0 {
		return nil, errors.New(`"set" is empty: give keys like delay=50ms,loss=1%`)
	}
	return kv, nil
}

// MirrorRequest adds a mirror: POST /v1/mirrors, with a -mirror spec.
type MirrorRequest struct {
	Switch string `json:"switch,omitempty"`
	Spec   string `json:"spec"`
}

func (r MirrorRequest) mirror(here string) (configs.Mirror, string, error) {
	if r.Spec == "" {
		return configs.Mirror{}, "", errors.New(`"spec" is empty: give a -mirror spec like file=/tmp/lab.pcapng`)
	}
	m, err := configs.ParseMirror(r.Spec)
	if err != nil {
		return m, "", err
	}
	sw, err := pick(r.Switch, "", here)
	return m, sw, err
}

// pick is the switch a request means: given in the body, in the spec, or
// the one the request came through.
func pick(body, spec, here string) (string, error) {
	switch {
	case body != "" && spec != "" && body != spec:
		return "", fmt.Errorf(`"switch" is %s but the spec says switch=%s`, body, spec)
	case body != "":
		return body, configs.CheckName(body)
	case spec != "":
		return spec, nil
	case here != "":
		return here, nil
	}
	return "", errors.New(`no "switch" given`)
}

// StaticRequest pins an address to a port: POST /v1/fdb.
type StaticRequest struct {
	Switch string `json:"switch"`
	MAC    string `json:"mac"`
	Port   string `json:"port"`
	VLAN   int    `json:"vlan,omitempty"` // 0: untagged frames of ports without VLAN keys
}

func (r StaticRequest) check() error {
	if r.Switch == "" || r.MAC == "" || r.Port == "" {
		return errors.New(`give "switch", "mac" and "port"`)
	}
	if r.VLAN < 0 || r.VLAN > frame.MaxVLAN {
		return fmt.Errorf(`"vlan" %d is not a VLAN id from 1 to %d (or 0: untagged on ports without VLAN keys)`, r.VLAN, frame.MaxVLAN)
	}
	_, err := frame.ParseMAC(r.MAC)
	return err
}

// FlushRequest empties MAC tables: POST /v1/fdb/flush. Target is a switch
// (its whole table) or a port (what was learned on it).
type FlushRequest struct {
	Target string `json:"target,omitempty"`
	All    bool   `json:"all,omitempty"`
}

// decodeBody reads one JSON object of type T and nothing after it.
func decodeBody[T any](body io.Reader) (T, error) {
	var v T
	data, err := io.ReadAll(body)
	if err != nil {
		return v, err // too large: MaxBytesError
	}
	return decode[T](data)
}

func decode[T any](data []byte) (T, error) {
	var v T
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		return v, badRequest{fmt.Errorf("request body: %w", err)}
	}
	if dec.More() {
		return v, badRequest{errors.New("request body: data after the JSON object")}
	}
	if _, err := dec.Token(); err != io.EOF {
		return v, badRequest{errors.New("request body: data after the JSON object")}
	}
	return v, nil
}

// CaptureSelection reads what GET /v1/capture narrows its frames to:
// port=P1,P2 (whole port names) and dir=in|out|both.
func CaptureSelection(q url.Values) (instance.LiveSelect, error) {
	var sel instance.LiveSelect
	if v := q.Get("port"); v != "" {
		for _, p := range strings.Split(v, ",") {
			if err := configs.CheckName(p); err != nil {
				return sel, fmt.Errorf("port=: %w", err)
			}
			if !slices.Contains(sel.Ports, p) {
				sel.Ports = append(sel.Ports, p)
			}
		}
		if len(sel.Ports) > 64 {
			return sel, errors.New("port=: at most 64 ports")
		}
	}
	switch dir := q.Get("dir"); dir {
	case "", "both", "in", "out":
		sel.Dir = dir
	default:
		return sel, fmt.Errorf("dir=%q: want in, out or both", dir)
	}
	return sel, nil
}
