// Package api serves umlswitch's control API: HTTP/JSON under /v1/, on the
// switch's own control sockets (a connection that starts with an HTTP
// method instead of a client's request is handed here), so that the API
// adds no socket and `curl --unix-socket CONTROL http://x/v1/ports` works.
package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/umlswitch/umlswitch/frame"
	"github.com/umlswitch/umlswitch/instance"
	"github.com/umlswitch/umlswitch/internal/connq"
	"github.com/umlswitch/umlswitch/internal/handover"
	"github.com/umlswitch/umlswitch/internal/ratelog"
)

// Limits on what a client may make the daemon hold.
const (
	maxBody           = 64 << 10 // a request body: a port spec, a switch
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 10 * time.Second // header and body; streams are responses, not bound by it
	idleTimeout       = 60 * time.Second
	maxHeaderBytes    = 16 << 10
	// streamWriteTimeout drops an event or capture reader that has taken
	// nothing for this long: a stalled reader must not hold the daemon's
	// memory or a goroutine for ever.
	streamWriteTimeout = 10 * time.Second
)

// Server is the API of one instance.
type Server struct {
	in   *instance.Instance
	log  *slog.Logger
	http *http.Server
	ln   *connq.Listener
	done chan struct{}

	routes      http.Handler
	refusedUIDs sync.Map // uid -> true: callers already logged as refused
	overLimit   ratelog.Every
}

type connInfoKey struct{}

// New returns the API of in; its connections arrive through ServeConn.
func New(in *instance.Instance, log *slog.Logger) *Server {
	s := &Server{in: in, log: log, ln: connq.New("control API"), done: make(chan struct{})}
	s.routes = s.routeTable()
	s.http = &http.Server{
		Handler:           s.routes,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			if ic, ok := c.(*infoConn); ok {
				return context.WithValue(ctx, connInfoKey{}, ic.info)
			}
			return ctx
		},
	}
	go func() {
		s.http.Serve(s.ln)
		close(s.done)
	}()
	return s
}

// ServeConn implements instance.APIServer. A connection over the API's
// limits (in all, or for its peer's uid) gets a 503 and is closed.
func (s *Server) ServeConn(c net.Conn, from instance.ConnInfo) {
	lim := s.in.APILimit()
	if err := lim.Acquire(from.Peer.UID); err != nil {
		s.overLimit.Log(s.log, slog.LevelWarn, "control API: connection refused", "uid", from.Peer.UID, "listener", from.Listener, "err", err)
		c.SetWriteDeadline(time.Now().Add(time.Second))
		msg := fmt.Sprintf("{\"error\": %q}\n", "control API: "+err.Error())
		fmt.Fprintf(c, "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", len(msg), msg)
		c.Close()
		return
	}
	ic := &infoConn{Conn: c, info: from}
	ic.release = func() { lim.Release(from.Peer.UID) }
	if !s.ln.Deliver(ic) {
		ic.Close()
	}
}

// Close stops serving and closes every API connection (event and capture
// streams end with the instance).
func (s *Server) Close() error {
	if handover.Leaving() {
		// The switch handed over (ctl upgrade): the request that asked for
		// it, and any other under way, get their answers first.
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		s.http.Shutdown(ctx)
		cancel()
	}
	err := s.http.Close()
	s.ln.Close()
	<-s.done
	return err
}

// infoConn carries where a connection came from to its requests, and
// gives back its slot of the API's limit when it closes (also once hijacked
// by a capture).
type infoConn struct {
	net.Conn
	info    instance.ConnInfo
	release func()
	once    sync.Once
}

func (c *infoConn) Close() error {
	c.once.Do(c.release)
	return c.Conn.Close()
}

func connInfo(r *http.Request) instance.ConnInfo {
	info, _ := r.Context().Value(connInfoKey{}).(instance.ConnInfo)
	return info
}

// Handler serves the API to requests that arrive by other means than a
// control socket (the web page's server), each as coming from info(r):
// who asked and what that connection may do, which the API then checks
// as it checks a control socket's peer.
func (s *Server) Handler(info func(r *http.Request) instance.ConnInfo) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.routes.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), connInfoKey{}, info(r))))
	})
}

func (s *Server) routeTable() http.Handler {
	mux := http.NewServeMux()
	read := func(pattern string, h func(w http.ResponseWriter, r *http.Request) error) {
		mux.HandleFunc(pattern, s.wrap(h, needRead))
	}
	write := func(pattern string, h func(w http.ResponseWriter, r *http.Request) error) {
		mux.HandleFunc(pattern, s.wrap(h, needWrite))
	}
	read("GET /v1/{$}", s.index)
	read("GET /v1/info", s.info)
	read("GET /v1/switches", func(w http.ResponseWriter, r *http.Request) error { return reply(w, 200, s.in.Switches()) })
	write("POST /v1/switches", s.addSwitch)
	write("DELETE /v1/switches/{name}", func(w http.ResponseWriter, r *http.Request) error {
		return done(w, s.in.RemoveSwitch(r.PathValue("name")))
	})
	read("GET /v1/ports", s.ports)
	write("POST /v1/ports", s.addPort)
	write("PATCH /v1/ports/{name}", s.setPort)
	write("DELETE /v1/ports/{name}", func(w http.ResponseWriter, r *http.Request) error {
		return done(w, s.in.RemovePort(r.PathValue("name")))
	})
	read("GET /v1/fdb", s.fdb)
	write("POST /v1/fdb", s.addStatic)
	write("DELETE /v1/fdb/{switch}/{mac}", func(w http.ResponseWriter, r *http.Request) error {
		vlan, err := vlanParam(r)
		if err != nil {
			return err
		}
		return done(w, s.in.DelStatic(r.PathValue("switch"), r.PathValue("mac"), vlan))
	})
	write("POST /v1/fdb/flush", s.flush)
	read("GET /v1/mirrors", func(w http.ResponseWriter, r *http.Request) error { return reply(w, 200, s.in.Mirrors()) })
	write("POST /v1/mirrors", s.addMirror)
	write("DELETE /v1/mirrors/{name}", func(w http.ResponseWriter, r *http.Request) error {
		return done(w, s.in.RemoveMirror(r.PathValue("name")))
	})
	read("GET /v1/bgp", func(w http.ResponseWriter, r *http.Request) error { return view(w, s.in.BGPView) })
	read("GET /v1/evpn", func(w http.ResponseWriter, r *http.Request) error { return view(w, s.in.EVPNView) })
	read("GET /v1/events", s.events)
	mux.HandleFunc("GET /v1/capture", s.wrap(s.capture, needCapture))
	write("POST /v1/reload", func(w http.ResponseWriter, r *http.Request) error { return done(w, s.in.Reload()) })
	write("POST /v1/upgrade", func(w http.ResponseWriter, r *http.Request) error {
		// A new process of the binary on disk, with the switch's own
		// rights: for root and the switch's user, not for users that
		// api_uid= lets change the lab with theirs.
		if g := grantOf(r); g.as != nil {
			return fmt.Errorf("%w: upgrading the switch starts the binary on disk with the switch's rights: it is for root "+
				"and the switch's own user, not uid %d", errForbidden, g.as.UID)
		}
		return done(w, s.in.Upgrade())
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, fmt.Errorf("no such path %s %s: see GET /v1/", r.Method, r.URL.Path))
	})
	return mux
}

// wrap turns a handler's error into a status and a JSON error body,
// refuses writes on a read-only socket, and refuses callers whose
// credentials do not allow what the request needs (authorize).
func (s *Server) wrap(h func(w http.ResponseWriter, r *http.Request) error, n need) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if n == needWrite && connInfo(r).ReadOnly {
			writeError(w, http.StatusForbidden, errors.New("this control socket is read-only (api=ro)"))
			return
		}
		g, err := authorize(connInfo(r), n, selfUID)
		if err != nil {
			s.refuse(w, r, err)
			return
		}
		if n == needWrite && s.in.Upgrading() {
			// The new switch has this one's ports as they were when the
			// upgrade began: a change now would be lost. Connections made
			// from now on wait for the new switch (accept.Pause).
			w.Header().Set("Retry-After", "1")
			writeError(w, http.StatusServiceUnavailable, errors.New("an upgrade is under way: ask again, and the new switch answers"))
			return
		}
		r = r.WithContext(context.WithValue(r.Context(), grantKey{}, g))
		r.Body = http.MaxBytesReader(w, r.Body, maxBody)
		if err := h(w, r); err != nil {
			writeError(w, statusOf(err), err)
		}
	}
}

// badRequest marks an error the client made.
type badRequest struct{ error }

func (e badRequest) Unwrap() error { return e.error }

func statusOf(err error) int {
	var tooBig *http.MaxBytesError
	var bad badRequest
	switch {
	case errors.As(err, &tooBig):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, instance.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, instance.ErrExists):
		return http.StatusConflict
	case errors.Is(err, instance.ErrForbidden):
		return http.StatusForbidden
	case errors.Is(err, instance.ErrBusy):
		return http.StatusServiceUnavailable
	case errors.As(err, &bad):
		return http.StatusBadRequest
	}
	return http.StatusUnprocessableEntity // the request was well formed; what it asked for failed (a bad spec, a busy path)
}

func writeError(w http.ResponseWriter, status int, err error) {
	reply(w, status, map[string]string{"error": err.Error()})
}

func reply(w http.ResponseWriter, status int, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func done(w http.ResponseWriter, err error) error {
	if err != nil {
		return err
	}
	return reply(w, http.StatusOK, map[string]bool{"ok": true})
}

func (s *Server) index(w http.ResponseWriter, r *http.Request) error {
	return reply(w, 200, map[string][]string{"paths": {
		"GET /v1/info", "GET /v1/switches", "POST /v1/switches", "DELETE /v1/switches/{name}",
		"GET /v1/ports[?switch=NAME]", "POST /v1/ports", "PATCH /v1/ports/{name}", "DELETE /v1/ports/{name}",
		"GET /v1/fdb[?switch=NAME]", "POST /v1/fdb", "DELETE /v1/fdb/{switch}/{mac}", "POST /v1/fdb/flush",
		"GET /v1/mirrors", "POST /v1/mirrors", "DELETE /v1/mirrors/{name}",
		"GET /v1/bgp", "GET /v1/evpn", "GET /v1/events", "GET /v1/capture?switch=NAME[&port=P1,P2][&dir=in|out]", "POST /v1/reload", "POST /v1/upgrade"}})
}

// view answers a read of the EVPN control plane: 404 with "EVPN is not
// configured" when the configuration has no evpn: block (as for a switch
// that does not exist: there is nothing to show, and a script must not
// take an empty answer for a fabric with no neighbours).
func view[T any](w http.ResponseWriter, get func() (T, error)) error {
	v, err := get()
	if err != nil {
		return err
	}
	return reply(w, 200, v)
}

// Info is what GET /v1/info answers: which switch the socket the request
// came through belongs to, so that a client given only that socket knows
// what "this switch" is.
type Info struct {
	Switch   string `json:"switch"`
	Listener string `json:"listener"`
	Path     string `json:"path"`
	ReadOnly bool   `json:"read_only"`
	PID      int    `json:"pid"`
	Switches int    `json:"switches"`
	// Who asked, as the kernel saw it, and what the API lets it do: every
	// peer the socket's allow_uid= and allow_gid= let in reads (the others
	// never get an answer); changing and capturing need root, the switch's
	// user, api_uid or api_gid.
	PeerUID    int64 `json:"peer_uid"` // -1: unknown
	PeerGID    int64 `json:"peer_gid"` // -1: unknown
	MayRead    bool  `json:"may_read"`
	MayChange  bool  `json:"may_change"`
	MayCapture bool  `json:"may_capture"`
	// Refusals so far: requests refused for their callers' credentials,
	// and connections and clients refused by the limits.
	Security instance.SecurityStats `json:"security"`
}

func (s *Server) info(w http.ResponseWriter, r *http.Request) error {
	ci := connInfo(r)
	info := Info{Switch: ci.Switch, Listener: ci.Listener, Path: ci.Path, ReadOnly: ci.ReadOnly,
		PID: os.Getpid(), Switches: len(s.in.Switches()), PeerUID: -1, PeerGID: -1, Security: s.in.Security()}
	if ci.Peer.Known() {
		info.PeerUID, info.PeerGID = int64(ci.Peer.UID), int64(ci.Peer.GID)
	}
	_, errR := authorize(ci, needRead, selfUID)
	_, errW := authorize(ci, needWrite, selfUID)
	_, errC := authorize(ci, needCapture, selfUID)
	info.MayRead, info.MayChange, info.MayCapture = errR == nil, errW == nil && !ci.ReadOnly, errC == nil
	return reply(w, 200, info)
}

// switchParam is the ?switch= of a read: "" means every switch.
func (s *Server) switchParam(r *http.Request) (string, error) {
	sw := r.URL.Query().Get("switch")
	if sw == "" {
		return "", nil
	}
	for _, si := range s.in.Switches() {
		if si.Name == sw {
			return sw, nil
		}
	}
	return "", fmt.Errorf("switch %s: %w", sw, instance.ErrNotFound)
}

func (s *Server) ports(w http.ResponseWriter, r *http.Request) error {
	sw, err := s.switchParam(r)
	if err != nil {
		return err
	}
	return reply(w, 200, s.in.Ports(sw))
}

func (s *Server) fdb(w http.ResponseWriter, r *http.Request) error {
	sw, err := s.switchParam(r)
	if err != nil {
		return err
	}
	fdb, err := s.in.FDB(sw)
	if err != nil {
		return err
	}
	return reply(w, 200, fdb)
}

func (s *Server) addSwitch(w http.ResponseWriter, r *http.Request) error {
	req, err := decodeBody[SwitchRequest](r.Body)
	if err != nil {
		return err
	}
	sw, err := req.switchConfig()
	if err != nil {
		return badRequest{err}
	}
	if err := s.in.AddSwitch(sw); err != nil {
		return err
	}
	return reply(w, http.StatusCreated, map[string]string{"name": sw.Name})
}

func (s *Server) addPort(w http.ResponseWriter, r *http.Request) error {
	req, err := decodeBody[PortRequest](r.Body)
	if err != nil {
		return err
	}
	spec, sw, err := req.port(connInfo(r).Switch)
	if err != nil {
		return badRequest{err}
	}
	name, err := s.in.AddPortAs(grantOf(r).as, sw, spec)
	if err != nil {
		return err
	}
	return reply(w, http.StatusCreated, map[string]string{"name": name, "switch": sw})
}

func (s *Server) setPort(w http.ResponseWriter, r *http.Request) error {
	req, err := decodeBody[SetRequest](r.Body)
	if err != nil {
		return err
	}
	kv, err := req.Pairs()
	if err != nil {
		return badRequest{err}
	}
	if err := s.in.SetPort(r.PathValue("name"), kv); err != nil {
		if instance.IsBadInput(err) {
			return badRequest{err}
		}
		return err
	}
	return reply(w, http.StatusOK, map[string]bool{"ok": true})
}

func (s *Server) addMirror(w http.ResponseWriter, r *http.Request) error {
	req, err := decodeBody[MirrorRequest](r.Body)
	if err != nil {
		return err
	}
	m, sw, err := req.mirror(connInfo(r).Switch)
	if err != nil {
		return badRequest{err}
	}
	name, err := s.in.AddMirrorAs(grantOf(r).as, sw, m)
	if err != nil {
		return err
	}
	return reply(w, http.StatusCreated, map[string]string{"name": name, "switch": sw})
}

func (s *Server) addStatic(w http.ResponseWriter, r *http.Request) error {
	req, err := decodeBody[StaticRequest](r.Body)
	if err != nil {
		return err
	}
	if err := req.check(); err != nil {
		return badRequest{err}
	}
	if err := s.in.AddStatic(req.Switch, req.MAC, req.Port, uint16(req.VLAN)); err != nil {
		return err
	}
	return reply(w, http.StatusCreated, map[string]bool{"ok": true})
}

// vlanParam reads the ?vlan= of a request: 0 when absent.
func vlanParam(r *http.Request) (uint16, error) {
	v := r.URL.Query().Get("vlan")
	if v == "" || v == "0" {
		return 0, nil
	}
	n, err := frame.ParseVLAN(v)
	if err != nil {
		return 0, badRequest{err}
	}
	return n, nil
}

func (s *Server) flush(w http.ResponseWriter, r *http.Request) error {
	req, err := decodeBody[FlushRequest](r.Body)
	if err != nil {
		return err
	}
	targets := []string{req.Target}
	if req.All {
		targets = targets[:0]
		for _, si := range s.in.Switches() {
			targets = append(targets, si.Name)
		}
	} else if req.Target == "" {
		return badRequest{errors.New(`give "target" (a switch or port) or "all": true`)}
	}
	total := 0
	for _, t := range targets {
		n, err := s.in.FlushFDB(t)
		if err != nil {
			return err
		}
		total += n
	}
	return reply(w, 200, map[string]int{"flushed": total})
}

// events streams events as JSON lines until the client goes away.
func (s *Server) events(w http.ResponseWriter, r *http.Request) error {
	sub := s.in.Events().Subscribe()
	defer sub.Cancel()
	rc := http.NewResponseController(w)
	rc.SetReadDeadline(time.Time{})
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(200)
	rc.Flush()
	enc := json.NewEncoder(w)
	var dropped uint64
	for {
		select {
		case <-r.Context().Done():
			return nil
		case ev, ok := <-sub.C:
			if !ok {
				return nil
			}
			rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
			if d := sub.Dropped(); d != dropped {
				enc.Encode(instance.Event{Time: time.Now(), Type: "events-dropped", Count: d - dropped})
				dropped = d
			}
			if err := enc.Encode(ev); err != nil {
				return nil
			}
			if err := rc.Flush(); err != nil {
				return nil
			}
		}
	}
}

// capture streams a switch's frames as pcapng until the client goes away.
func (s *Server) capture(w http.ResponseWriter, r *http.Request) error {
	sw := r.URL.Query().Get("switch")
	if sw == "" {
		sw = connInfo(r).Switch
	}
	if _, err := s.switchParam(r); err != nil {
		return err
	}
	sel, err := CaptureSelection(r.URL.Query())
	if err != nil {
		return badRequest{err}
	}
	if err := s.in.CaptureRoom(sw, sel); err != nil {
		return err
	}
	c, buf, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return err
	}
	c.SetDeadline(time.Time{})
	buf.WriteString("HTTP/1.1 200 OK\r\nContent-Type: application/vnd.tcpdump.pcapng\r\nConnection: close\r\n\r\n")
	if err := buf.Flush(); err != nil {
		c.Close()
		return nil
	}
	if err := s.in.CaptureSelected(sw, sel, c); err != nil {
		c.Close()
	}
	return nil
}
