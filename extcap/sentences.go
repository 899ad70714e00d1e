package extcap

import (
	"bufio"
	"io"
	"strings"
)

// Interface is one line of the interface list.
type Interface struct {
	Target  Target
	Display string // what Wireshark shows next to the name
}

// HelpURL is where Wireshark's help button for these interfaces leads.
const HelpURL = "https://github.com/umlswitch/umlswitch#capture"

// LinkType is the one link type every interface has: Ethernet.
const LinkType = 1 // DLT_EN10MB

// field makes s safe inside a {key=value} field: Wireshark's parser ends a
// value at the first } and a sentence at the end of a line.
func field(s string) string {
	return strings.NewReplacer("{", "(", "}", ")", "\n", " ", "\r", " ").Replace(s)
}

// WriteInterfaces prints the interface list (--extcap-interfaces): the
// extcap's version and help, then an interface per line.
func WriteInterfaces(w io.Writer, version string, ifs []Interface) error {
	bw := bufio.NewWriter(w)
	bw.WriteString("extcap {version=" + field(version) + "}{help=" + HelpURL + "}\n")
	for _, i := range ifs {
		bw.WriteString("interface {value=" + field(i.Target.Name()) + "}{display=" + field(i.Display) + "}\n")
	}
	return bw.Flush()
}

// WriteDLTs prints an interface's link types (--extcap-dlts).
func WriteDLTs(w io.Writer) error {
	_, err := io.WriteString(w, "dlt {number=1}{name=EN10MB}{display=Ethernet}\n")
	return err
}

// WriteConfig prints an interface's options (--extcap-config): on a
// switch's interface, the port to capture (ports: the switch's ports now,
// nil when the switch did not answer), and on every interface the
// direction. A per-port interface has no port option: its port is in its
// name.
func WriteConfig(w io.Writer, t Target, ports []string) error {
	bw := bufio.NewWriter(w)
	n := 0
	if t.Port == "" {
		bw.WriteString("arg {number=0}{call=--port}{display=Port}{type=selector}" +
			"{tooltip=Capture only the frames that enter or leave this port of the switch}\n")
		bw.WriteString("value {arg=0}{value=" + AllPorts + "}{display=every port}{default=true}\n")
		for _, p := range ports {
			bw.WriteString("value {arg=0}{value=" + field(p) + "}{display=" + field(p) + "}{default=false}\n")
		}
		n++
	}
	num := string(rune('0' + n))
	bw.WriteString("arg {number=" + num + "}{call=--direction}{display=Direction}{type=radio}" +
		"{tooltip=Frames entering the switch, leaving it, or both (each frame is seen once on the port it entered and once on each it left)}\n")
	bw.WriteString("value {arg=" + num + "}{value=both}{display=both}{default=true}\n")
	bw.WriteString("value {arg=" + num + "}{value=in}{display=into the switch}{default=false}\n")
	bw.WriteString("value {arg=" + num + "}{value=out}{display=out of the switch}{default=false}\n")
	return bw.Flush()
}
