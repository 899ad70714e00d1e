// Package metrics serves a running instance's counters as Prometheus
// metrics.
//
// Everything is read at scrape time through a Source: the instance reads its
// counters' atomics, so scraping never slows forwarding, and nothing here
// keeps state between scrapes. Series:
//
//	per port {switch, port, kind}:
//	  umlswitch_port_rx_frames_total, umlswitch_port_rx_bytes_total,
//	  umlswitch_port_tx_frames_total, umlswitch_port_tx_bytes_total,
//	  umlswitch_port_drops_total{reason}, umlswitch_port_stalls_total,
//	  umlswitch_port_slowed_total, umlswitch_port_hold_seconds_total
//	per listener {switch, port, kind}: umlswitch_listener_clients
//	per switch {switch}:
//	  umlswitch_switch_ports, umlswitch_mac_table_entries,
//	  umlswitch_mac_table_static_entries, umlswitch_mac_table_size,
//	  umlswitch_mac_learned_total, umlswitch_mac_moved_total,
//	  umlswitch_mac_table_refused_total, umlswitch_mac_table_evicted_total,
//	  and with a live capture umlswitch_capture_frames_total,
//	  umlswitch_capture_dropped_frames_total
//	per mirror {switch, mirror}:
//	  umlswitch_mirror_frames_total, umlswitch_mirror_dropped_frames_total
//	umlswitch_switches, umlswitch_ports_attached
//	with an evpn: block:
//	  umlswitch_bgp_neighbor_up{neighbor}, umlswitch_evpn_routes_received,
//	  umlswitch_evpn_routes_sent, umlswitch_evpn_remote_macs,
//	  umlswitch_evpn_vteps{switch, vni}, umlswitch_evpn_ignored_routes_total{reason},
//	  umlswitch_evpn_dataplane_failures_total, umlswitch_evpn_unknown_vtep_packets_total
//
// Switch totals are left to PromQL: sum by (switch) (umlswitch_port_rx_frames_total).
package metrics

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/umlswitch/umlswitch/instance"
	"github.com/umlswitch/umlswitch/internal/handover"
	"github.com/umlswitch/umlswitch/internal/unixsock"
)

// Source is what the metrics read, at scrape time only (the instance reads
// its counters' atomics: scraping never slows forwarding).
type Source interface {
	Switches() []instance.SwitchInfo
	Ports(sw string) []instance.PortInfo // sw "" = every switch
	Mirrors() []instance.MirrorInfo
}

var (
	portLabels     = []string{"switch", "port", "kind"}
	dropLabels     = []string{"switch", "port", "kind", "reason"}
	switchLabels   = []string{"switch"}
	mirrorLabels   = []string{"switch", "mirror"}
	descPortRxF    = newDesc("port_rx_frames_total", "Frames received on the port.", portLabels)
	descPortRxB    = newDesc("port_rx_bytes_total", "Bytes received on the port.", portLabels)
	descPortTxF    = newDesc("port_tx_frames_total", "Frames sent out of the port.", portLabels)
	descPortTxB    = newDesc("port_tx_bytes_total", "Bytes sent out of the port.", portLabels)
	descPortDrops  = newDesc("port_drops_total", "Frames dropped on the port, by reason.", dropLabels)
	descPortStalls = newDesc("port_stalls_total", "Times the port took nothing for the hold bound.", portLabels)
	descPortSlowed = newDesc("port_slowed_total", "Times the port was found slow and stopped holding senders.", portLabels)
	descPortHeld   = newDesc("port_hold_seconds_total", "Time senders waited for the port to take frames.", portLabels)
	descListener   = newDesc("listener_clients", "Ports attached through the listener now.", portLabels)
	descSwPorts    = newDesc("switch_ports", "Ports attached to the switch (listeners not counted).", switchLabels)
	descMACs       = newDesc("mac_table_entries", "Addresses in the switch's MAC table now.", switchLabels)
	descMACStatic  = newDesc("mac_table_static_entries", "Static entries in the switch's MAC table.", switchLabels)
	descMACSize    = newDesc("mac_table_size", "Most addresses the switch's MAC table holds.", switchLabels)
	descMACLearned = newDesc("mac_learned_total", "Addresses first seen by the switch.", switchLabels)
	descMACMoved   = newDesc("mac_moved_total", "Addresses seen on another port than before.", switchLabels)
	descMACRefused = newDesc("mac_table_refused_total", "Addresses not learned: the table was full with nothing to evict.", switchLabels)
	descMACEvicted = newDesc("mac_table_evicted_total", "Addresses evicted from the MAC table to make room.", switchLabels)
	descCapFrames  = newDesc("capture_frames_total", "Frames copied to the switch's live capture.", switchLabels)
	descCapDropped = newDesc("capture_dropped_frames_total", "Frames the switch's live capture could not take.", switchLabels)
	descMirFrames  = newDesc("mirror_frames_total", "Frames copied to the mirror.", mirrorLabels)
	descMirDropped = newDesc("mirror_dropped_frames_total", "Frames the mirror could not take.", mirrorLabels)
	descAttached   = newDesc("ports_attached", "Ports attached to all switches.", nil)
	descSwitches   = newDesc("switches", "Switches in the instance.", nil)
	descBGPUp      = newDesc("bgp_neighbor_up", "1 while the BGP session to the EVPN neighbour is established, else 0.", []string{"neighbor"})
	descEVPNRx     = newDesc("evpn_routes_received", "EVPN routes the neighbours announce now.", nil)
	descEVPNTx     = newDesc("evpn_routes_sent", "EVPN routes this VTEP announces now.", nil)
	descEVPNMACs   = newDesc("evpn_remote_macs", "Addresses behind remote VTEPs held in the switches' MAC tables.", nil)
	descEVPNVTEPs  = newDesc("evpn_vteps", "Remote VTEPs in the VNI's flood list (tunnels of the switch).", []string{"switch", "vni"})
	descEVPNIgnore = newDesc("evpn_ignored_routes_total", "EVPN routes received and not used, by reason.", []string{"reason"})
	descEVPNFail   = newDesc("evpn_dataplane_failures_total", "Tunnels and remote addresses the EVPN control plane could not install.", nil)
	descEVPNUnkn   = newDesc("evpn_unknown_vtep_packets_total", "VXLAN packets dropped at this VTEP: from a VTEP or with a VNI no tunnel has.", nil)
	descRefused    = newDesc("refused_total", "Refusals of local users: api_request (the caller's credentials do not allow it), "+
		"api_connection and client (over a limit), not_allowed (a listener's allow_uid= and allow_gid= do not name the peer).", []string{"what"})

	allDescs = []*prometheus.Desc{
		descPortRxF, descPortRxB, descPortTxF, descPortTxB, descPortDrops,
		descPortStalls, descPortSlowed, descPortHeld, descListener,
		descSwPorts, descMACs, descMACStatic, descMACSize,
		descMACLearned, descMACMoved, descMACRefused, descMACEvicted,
		descCapFrames, descCapDropped, descMirFrames, descMirDropped,
		descAttached, descSwitches, descRefused,
		descBGPUp, descEVPNRx, descEVPNTx, descEVPNMACs, descEVPNVTEPs, descEVPNIgnore, descEVPNFail, descEVPNUnkn,
	}
)

func newDesc(name, help string, labels []string) *prometheus.Desc {
	return prometheus.NewDesc("umlswitch_"+name, help, labels, nil)
}

// securitySource is a Source that also counts refusals (an instance).
type securitySource interface {
	Security() instance.SecurityStats
}

// evpnSource is a Source that also has the EVPN control plane (an
// instance); both views fail with instance.ErrNoEVPN without an evpn: block.
type evpnSource interface {
	BGPView() (instance.BGPInfo, error)
	EVPNFabric() (instance.EVPNInfo, error)
}

type collector struct{ src Source }

// NewCollector returns a collector that reads src at every Collect and
// emits const metrics.
func NewCollector(src Source) prometheus.Collector { return collector{src} }

func (collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range allDescs {
		ch <- d
	}
}

// Collect never fails a scrape: label values that are not valid UTF-8 are
// repaired, and of two entries with the same labels (which the instance
// should never report) the first is kept.
func (c collector) Collect(ch chan<- prometheus.Metric) {
	switches := c.src.Switches()
	ports := c.src.Ports("")
	mirrors := c.src.Mirrors()

	type key struct{ a, b string }
	seen := make(map[key]struct{}, max(len(switches), len(ports), len(mirrors)))
	first := func(a, b string) bool {
		k := key{a, b}
		if _, dup := seen[k]; dup {
			return false
		}
		seen[k] = struct{}{}
		return true
	}

	attached := 0
	for i := range switches {
		s := &switches[i]
		sw := label(s.Name)
		if !first(sw, "") {
			continue
		}
		attached += s.Ports
		gauge(ch, descSwPorts, float64(s.Ports), sw)
		gauge(ch, descMACs, float64(s.MACs), sw)
		gauge(ch, descMACStatic, float64(s.Statics), sw)
		gauge(ch, descMACSize, float64(s.MACTableSize), sw)
		counter(ch, descMACLearned, float64(s.MACLearned), sw)
		counter(ch, descMACMoved, float64(s.MACMoved), sw)
		counter(ch, descMACRefused, float64(s.MACRefused), sw)
		counter(ch, descMACEvicted, float64(s.MACEvicted), sw)
		if s.Capture != nil {
			counter(ch, descCapFrames, float64(s.Capture.Captured), sw)
			counter(ch, descCapDropped, float64(s.Capture.Dropped), sw)
		}
	}
	gauge(ch, descSwitches, float64(len(seen)))
	gauge(ch, descAttached, float64(attached))
	if sec, ok := c.src.(securitySource); ok {
		st := sec.Security()
		counter(ch, descRefused, float64(st.APIRefused), "api_request")
		counter(ch, descRefused, float64(st.APIOverLimit), "api_connection")
		counter(ch, descRefused, float64(st.ClientsRefused), "client")
		counter(ch, descRefused, float64(st.NotAllowed), "not_allowed")
	}

	clear(seen) // ports: {switch, port}
	listeners := make(map[key]struct{})
	for i := range ports {
		p := &ports[i]
		sw, name, kind := label(p.Switch), label(p.Name), label(p.Kind)
		if p.ID < 0 {
			// A listener: its clients are ports of their own. An entry
			// with no port number that does not listen has no counters.
			if p.Listening == "" {
				continue
			}
			k := key{sw, name}
			if _, dup := listeners[k]; !dup {
				listeners[k] = struct{}{}
				gauge(ch, descListener, float64(p.Clients), sw, name, kind)
			}
			continue
		}
		if !first(sw, name) {
			continue
		}
		counter(ch, descPortRxF, float64(p.RxFrames), sw, name, kind)
		counter(ch, descPortRxB, float64(p.RxBytes), sw, name, kind)
		counter(ch, descPortTxF, float64(p.TxFrames), sw, name, kind)
		counter(ch, descPortTxB, float64(p.TxBytes), sw, name, kind)
		counter(ch, descPortStalls, float64(p.Stalls), sw, name, kind)
		counter(ch, descPortSlowed, float64(p.Slowed), sw, name, kind)
		counter(ch, descPortHeld, p.HeldS, sw, name, kind)
		for reason, n := range p.Drops {
			if label(reason) == reason { // repaired reasons could collide
				counter(ch, descPortDrops, float64(n), sw, name, kind, reason)
			}
		}
	}

	clear(seen) // mirrors: {switch, mirror}
	for i := range mirrors {
		m := &mirrors[i]
		sw, name := label(m.Switch), label(m.Name)
		if !first(sw, name) {
			continue
		}
		counter(ch, descMirFrames, float64(m.Captured), sw, name)
		counter(ch, descMirDropped, float64(m.Dropped), sw, name)
	}
	c.collectEVPN(ch)
}

// collectEVPN emits the EVPN control plane's series, none without an
// evpn: block.
func (c collector) collectEVPN(ch chan<- prometheus.Metric) {
	src, ok := c.src.(evpnSource)
	if !ok {
		return
	}
	b, err := src.BGPView()
	if err != nil {
		return
	}
	seen := make(map[string]bool)
	for _, n := range b.Neighbors {
		addr := n.Address.String()
		if seen[addr] {
			continue
		}
		seen[addr] = true
		up := 0.0
		if n.State == "established" {
			up = 1
		}
		gauge(ch, descBGPUp, up, addr)
	}
	st := b.Stats
	gauge(ch, descEVPNRx, float64(st.Received))
	gauge(ch, descEVPNTx, float64(st.Sent))
	gauge(ch, descEVPNMACs, float64(st.RemoteMACs))
	for reason, n := range st.Ignored {
		if label(reason) == reason {
			counter(ch, descEVPNIgnore, float64(n), reason)
		}
	}
	counter(ch, descEVPNFail, float64(st.Failures))
	e, err := src.EVPNFabric()
	if err != nil {
		return
	}
	counter(ch, descEVPNUnkn, float64(e.Unknown))
	clear(seen)
	for _, v := range e.VNIs {
		vni := strconv.FormatUint(uint64(v.VNI), 10)
		if seen[vni] {
			continue
		}
		seen[vni] = true
		gauge(ch, descEVPNVTEPs, float64(len(v.VTEPs)), label(v.Switch), vni)
	}
}

// label makes s a valid label value (the registry refuses invalid UTF-8).
func label(s string) string { return strings.ToValidUTF8(s, "\uFFFD") }

func counter(ch chan<- prometheus.Metric, d *prometheus.Desc, v float64, labels ...string) {
	ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
}

func gauge(ch chan<- prometheus.Metric, d *prometheus.Desc, v float64, labels ...string) {
	ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
}

// Handler serves src's metrics, with the Go runtime's and the process's, from
// a registry of its own.
func Handler(src Source) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		NewCollector(src),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return promhttp.InstrumentMetricHandler(reg, promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		// Serve what could be gathered: a collector's error is counted in
		// promhttp_metric_handler_errors_total, not a failed scrape.
		ErrorHandling:       promhttp.ContinueOnError,
		Registry:            reg,
		MaxRequestsInFlight: 4,
		Timeout:             10 * time.Second,
	}))
}

// Server serves metrics until Close.
type Server struct {
	srv  *http.Server
	addr string // as given: host:port or unix:PATH
	ln   net.Listener
	done chan struct{}
	once sync.Once
	err  error
}

const index = `umlswitch metrics: /metrics
`

// Serve listens on addr, "host:port" (TCP) or "unix:PATH" (a unix stream
// socket), and serves Handler(src) at /metrics, and a short page pointing
// there at /, until Close.
//
// A unix socket's file left by a switch that has gone is removed first; one
// that a live server answers on is an error, as is a file that is not a
// socket. The socket gets mode, or DefaultUnixMode for 0, and must be in a
// directory unixsock.OpenDir trusts. Close removes it.
func Serve(addr string, mode os.FileMode, src Source, log *slog.Logger) (*Server, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var (
		ln   net.Listener
		path string
		err  error
	)
	if p, ok := strings.CutPrefix(addr, "unix:"); ok {
		if p == "" {
			return nil, fmt.Errorf("metrics: listen %s: no socket path after unix:", addr)
		}
		path = p
		ln, err = listenUnix(path, mode)
	} else if !strings.Contains(addr, ":") {
		return nil, fmt.Errorf("metrics: listen %s: want host:port or unix:PATH", addr)
	} else {
		ln, err = handover.ListenTCP(handedTCP, addr)
	}
	if err != nil {
		return nil, fmt.Errorf("metrics: listen %s: %w", addr, err)
	}

	mux := http.NewServeMux()
	mux.Handle("/metrics", Handler(src))
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, index)
	})
	s := &Server{
		srv: &http.Server{
			Handler:           mux,
			ReadHeaderTimeout: 5 * time.Second,
			IdleTimeout:       60 * time.Second,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		},
		addr: addr,
		ln:   ln,
		done: make(chan struct{}),
	}
	log.Info("metrics: serving", "addr", ln.Addr().Network()+":"+ln.Addr().String(), "path", "/metrics")
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics: serve", "addr", addr, "err", err)
		}
	}()
	return s, nil
}

// DefaultUnixMode is the metrics socket's mode when none is given: the
// switch's user only, as the metrics name every port and guest.
const DefaultUnixMode = 0o600

// listenUnix listens on path with mode (0: DefaultUnixMode), replacing a
// stale socket file and refusing a live one; the mode is set on the new
// socket, never through a link (unixsock.Listen). Closing it removes the
// file if it is still that socket.
func listenUnix(path string, mode os.FileMode) (net.Listener, error) {
	if mode == 0 {
		mode = DefaultUnixMode
	}
	ln, err := unixsock.Listen(path, unixsock.Access{Mode: mode, UID: -1, GID: -1})
	if err != nil {
		return nil, err
	}
	return ln, nil
}

// Addr is the address the server listens on (the port chosen for
// "host:0", or the unix socket).
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Close stops the server, waiting a little for scrapes in progress, and
// removes a unix socket's file. Later calls return the first's result.
func (s *Server) Close() error {
	s.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if err := s.srv.Shutdown(ctx); err != nil {
			s.err = s.srv.Close()
		}
		// Closing a unix listener removes its socket file. Removing
		// it here again could remove another server's, made since.
		<-s.done
	})
	return s.err
}

// handedTCP is the Kind of a TCP metrics listener in a hot upgrade, keyed
// by the address as given (a unix one goes with the other unix listeners).
const handedTCP = "metrics-tcp"

// HandOver gives a new switch process (a hot upgrade) a TCP listening
// socket, which it could not bind while this one holds it.
func (s *Server) HandOver() []handover.Item { return handover.TCPListener(handedTCP, s.addr, s.ln) }
