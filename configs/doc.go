// Package configs parses what describes a switch: -port specs in UML's own
// option syntax (transport=NAME,key=value,...) and YAML configuration files
// whose port entries use the same keys. It also embeds the default
// configuration that lets umlswitch run with no arguments.
//
// configs knows the keys every port takes (transport, name, switch, depth,
// mtu) and no kind's own: each transport package declares a Kind with its
// keys, defaults, checks and help text, and registers it (through
// transports/portkind, with how its ports open). configs splits specs and YAML into key/value pairs, hands them
// to the kind's setters, and renders ports back through its getters, so
// errors can always name the accepted keys and a key is added in one place.
// Mirrors (-mirror specs and a file's mirror entries) are declared the same
// way, in mirror.go's mirrorKeys. A file's evpn: block and the switches'
// vni, rd, import_rt and export_rt (evpn.go) configure the BGP EVPN
// control plane; only the file sets them.
package configs
