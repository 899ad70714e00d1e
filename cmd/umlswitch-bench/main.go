// Command umlswitch-bench is umlswitch's load generator: it drives
// umlswitch, uml_switch, vde_switch or a bare relay with generator ports and
// reports frames per second, loss and the switch's CPU time, as tables and
// plots. It starts the umlswitch in its own directory (make build puts both
// in bin/), or the one -umlswitch PATH names. Run with -h for the flags.
//
// It is a command of its own so that the switch daemon does not link the
// plotting.
package main

import (
	"os"

	"github.com/umlswitch/umlswitch/bench"
)

func main() {
	os.Exit(bench.Main(os.Args[1:], os.Stdout, os.Stderr))
}
