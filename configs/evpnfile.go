package configs

import (
	"bytes"
	"errors"
	"io"

	"go.yaml.in/yaml/v3"
)

// evpnFileYAML is the document umlswitch lab -evpn reads: a host's evpn:
// block, and the VNI of the lab's first collision domain.
type evpnFileYAML struct {
	VNIBase *scalar   `yaml:"vni_base"`
	EVPN    *evpnYAML `yaml:"evpn"`
}

// ParseEVPNFile reads the document of umlswitch lab -evpn:
//
//	vni_base: 1000
//	evpn:
//	  asn: 65000
//	  ...
//
// The evpn: block takes the configuration file's keys and defaults, and
// both keys are required; unknown keys are errors. Errors name the key
// ("evpn.asn: required", "vni_base: ..."). vniBase is 1..MaxVNI: whether
// the lab's domains fit above it is for the caller, who knows how many
// there are.
func ParseEVPNFile(data []byte) (e *EVPN, vniBase uint32, err error) {
	var y evpnFileYAML
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&y); err != nil && !errors.Is(err, io.EOF) {
		return nil, 0, err
	}
	if err := setKey("vni_base", y.VNIBase, true, func(v string) (err error) {
		vniBase, err = Range[uint32](1, MaxVNI)(v)
		return err
	}); err != nil {
		return nil, 0, err
	}
	if y.EVPN == nil {
		return nil, 0, errors.New("evpn: required (the block a configuration file's evpn: takes)")
	}
	if e, err = y.EVPN.parse(); err != nil {
		return nil, 0, err
	}
	return e, vniBase, nil
}
