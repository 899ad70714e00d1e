package instance

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/umlswitch/umlswitch/configs"
	"github.com/umlswitch/umlswitch/frame"
)

// encodeRunState renders the run state file.
func encodeRunState(doc *runStateDoc) []byte {
	b, _ := json.MarshalIndent(doc, "", " ")
	return append(b, '\n')
}

// parseRunState reads a run state file and checks every record as the API
// checks its requests: names, specs, MAC addresses and VLANs that parse,
// keys that change at run time, lists of bounded length. Whether a record
// still applies (its switch or port exists) is for replay to find.
func parseRunState(data []byte) (*runStateDoc, error) {
	var doc runStateDoc
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("run state: %w", err)
	}
	if dec.More() {
		return nil, errors.New("run state: data after the JSON object")
	}
	if doc.Format != runStateFormat {
		return nil, fmt.Errorf("run state: format %q, want %q", doc.Format, runStateFormat)
	}
	for what, n := range map[string]int{"removed switches": len(doc.RemovedSwitches), "switches": len(doc.Switches),
		"removed ports": len(doc.RemovedPorts), "removed mirrors": len(doc.RemovedMirrors), "ports": len(doc.Ports),
		"sets": len(doc.Sets), "mirrors": len(doc.Mirrors), "statics": len(doc.Statics)} {
		if n > maxRunItems {
			return nil, fmt.Errorf("run state: %d %s, more than %d", n, what, maxRunItems)
		}
	}
	if err := checkRunState(&doc); err != nil {
		return nil, fmt.Errorf("run state: %w", err)
	}
	return &doc, nil
}

func checkRunState(doc *runStateDoc) error {
	for _, name := range doc.RemovedSwitches {
		if err := configs.CheckName(name); err != nil {
			return fmt.Errorf("removed switch: %w", err)
		}
	}
	for _, sw := range doc.Switches {
		if _, err := configs.NewSwitch(sw.Name, sw.Settings); err != nil {
			return fmt.Errorf("switch %q: %w", sw.Name, err)
		}
	}
	for _, items := range [][]removedItem{doc.RemovedPorts, doc.RemovedMirrors} {
		for _, r := range items {
			if err := errors.Join(configs.CheckName(r.Switch), configs.CheckName(r.Name)); err != nil {
				return fmt.Errorf("removed port or mirror: %w", err)
			}
		}
	}
	for _, p := range doc.Ports {
		spec, err := configs.ParsePort(p.Spec)
		if err != nil {
			return fmt.Errorf("port: %w", err)
		}
		if err := errors.Join(configs.CheckName(p.Switch), configs.CheckName(spec.Name)); err != nil {
			return fmt.Errorf("port %s: %w", p.Spec, err)
		}
		if err := p.As.check(); err != nil {
			return fmt.Errorf("port %s: %w", p.Spec, err)
		}
	}
	for _, m := range doc.Mirrors {
		spec, err := configs.ParseMirror(m.Spec)
		if err != nil {
			return fmt.Errorf("mirror: %w", err)
		}
		if err := errors.Join(configs.CheckName(m.Switch), configs.CheckName(spec.Name)); err != nil {
			return fmt.Errorf("mirror %s: %w", m.Spec, err)
		}
		if err := m.As.check(); err != nil {
			return fmt.Errorf("mirror %s: %w", m.Spec, err)
		}
	}
	for _, set := range doc.Sets {
		if err := configs.CheckName(set.Port); err != nil {
			return fmt.Errorf("set: %w", err)
		}
		if len(set.Set) == 0 || len(set.Set) > maxRunItems {
			return fmt.Errorf("set on port %s: %d keys", set.Port, len(set.Set))
		}
		// Whether the keys change at run time and take their values is
		// SetPort's to say, against the port's spec, as for the API.
	}
	for _, st := range doc.Statics {
		if err := errors.Join(configs.CheckName(st.Switch), configs.CheckName(st.Port)); err != nil {
			return fmt.Errorf("static: %w", err)
		}
		if _, err := frame.ParseMAC(st.MAC); err != nil {
			return fmt.Errorf("static: %w", err)
		}
		if st.VLAN < 0 || st.VLAN > frame.MaxVLAN {
			return fmt.Errorf("static %s: VLAN %d", st.MAC, st.VLAN)
		}
	}
	return nil
}

// check refuses an identity no kernel gives.
func (c *savedCred) check() error {
	switch {
	case c == nil:
		return nil
	case c.UID == 0:
		return errors.New("added as uid 0: root adds as the switch itself")
	case !c.cred().Known():
		return fmt.Errorf("added as uid %d", c.UID)
	case len(c.Groups) > 65536:
		return fmt.Errorf("added as uid %d with %d groups", c.UID, len(c.Groups))
	}
	return nil
}
