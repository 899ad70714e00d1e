// Package configs parses what describes a switch: -port specs in UML's own
// option syntax (transport=NAME,key=value,...) and YAML configuration files
// whose port entries use the same keys. It also embeds the default
// configuration that lets umlswitch run with no arguments.
//
// One table (schema.go) lists every transport's keys, so errors can always
// name the accepted ones.
package configs
