// Package web serves one page of a running umlswitch on a TCP address: its
// switches, ports, MAC tables, live rates, last events and a drawing of the
// topology, with captures to download and, when allowed, a port's link and
// impairment to change. The page is plain HTML, CSS, JavaScript and SVG
// embedded in the binary: a lab without the internet shows it all the same.
//
// The page reads through the control API's own handler (package api), so
// it shows what `umlswitch ctl` shows. TCP carries no peer credentials, so
// the API's rules become a token: reads are open to whoever reaches the
// address (as they are to every local user on a control socket), while
// captures and, with Config.Writable, changes need the token the switch
// writes to a file only its own user can read.
package web

import (
	"bytes"
	"crypto/rand"
	"crypto/subtle"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/netutil"

	"github.com/umlswitch/umlswitch/api"
	"github.com/umlswitch/umlswitch/instance"
	"github.com/umlswitch/umlswitch/internal/handover"
	"github.com/umlswitch/umlswitch/internal/peercred"
	"github.com/umlswitch/umlswitch/internal/unixsock"
	"github.com/umlswitch/umlswitch/policy"
	"github.com/umlswitch/umlswitch/topology"
)

//go:embed static
var static embed.FS

// Config says where and how the page is served.
type Config struct {
	Addr string // host:port
	// Writable lets a request with the token set a port's link and
	// impairment keys (-web-rw). Without it the page changes nothing.
	Writable bool
	// TokenFile is where the token goes, readable by the switch's user
	// only; empty: no token, so no captures and no changes from the page.
	TokenFile string
	// Switch is what "this switch" means to the API for the page's
	// requests that name none (the configuration's first).
	Switch string
	// Machines name the lab's machines behind ports in the drawing
	// (umlswitch lab knows them); nil: addresses only.
	Machines []topology.Machine
}

// Limits of the server: a page polls a few paths a second and holds one
// event stream, and perhaps a capture.
const (
	maxConns   = 64
	maxBody    = 4 << 10
	eventsKept = 100
)

// Server serves the page until Close.
type Server struct {
	cfg   Config
	token string
	ln    net.Listener // raw, limited to maxConns
	raw   net.Listener
	srv   *http.Server
	api   http.Handler
	in    *instance.Instance
	log   *slog.Logger
	done  chan struct{}
	sub   *instance.Subscription
	once  sync.Once

	mu     sync.Mutex
	events []instance.Event // the last eventsKept, oldest first
}

// handedTCP is the Kind of the page's listener in a hot upgrade.
const handedTCP = "web-tcp"

// Serve listens on cfg.Addr and serves the page of in, reading through
// apiHandler (api.Server.Handler), until Close.
func Serve(cfg Config, in *instance.Instance, apiHandler func(func(*http.Request) instance.ConnInfo) http.Handler,
	log *slog.Logger) (*Server, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if _, _, err := net.SplitHostPort(cfg.Addr); err != nil {
		return nil, fmt.Errorf("web: %q: want host:port, like 127.0.0.1:8080", cfg.Addr)
	}
	s := &Server{cfg: cfg, in: in, log: log, done: make(chan struct{})}
	if cfg.TokenFile != "" {
		tok, err := writeToken(cfg.TokenFile)
		if err != nil {
			return nil, fmt.Errorf("web: token: %w", err)
		}
		s.token = tok
	}
	ln, err := handover.ListenTCP(handedTCP, cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("web: listen %s: %w", cfg.Addr, err)
	}
	s.raw, s.ln = ln, netutil.LimitListener(ln, maxConns)
	s.api = apiHandler(s.connInfo)
	s.sub = in.Events().Subscribe()
	go s.keepEvents()
	mux := http.NewServeMux()
	assets, _ := fs.Sub(static, "static")
	files := http.FileServerFS(assets)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "umlswitch web: the page's files are read only", http.StatusMethodNotAllowed)
			return
		}
		files.ServeHTTP(w, r)
	})
	mux.HandleFunc("GET /web/events", s.recentEvents)
	mux.HandleFunc("GET /web/access", s.access)
	mux.HandleFunc("GET /web/topology", s.topology)
	mux.HandleFunc("/v1/", s.v1)
	s.srv = &http.Server{
		Handler:           s.guard(mux),
		ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(s.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("web: serve", "addr", cfg.Addr, "err", err)
		}
	}()
	log.Info("web: serving the lab's page", "url", "http://"+ln.Addr().String()+"/", "writable", cfg.Writable,
		"token_file", cfg.TokenFile)
	return s, nil
}

// Addr is the address the page is served on.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Close stops serving; streams under way (events, captures) end.
func (s *Server) Close() error {
	s.once.Do(func() {
		s.srv.Close()
		s.sub.Cancel()
		<-s.done
		// The token was for this run. A switch that hands over leaves it
		// to the new one, which has written its own there.
		if s.cfg.TokenFile != "" && !handover.Leaving() {
			if b, err := os.ReadFile(s.cfg.TokenFile); err == nil && strings.TrimSpace(string(b)) == s.token {
				os.Remove(s.cfg.TokenFile)
			}
		}
	})
	return nil
}

// HandOver gives a new switch process (a hot upgrade) the listener.
func (s *Server) HandOver() []handover.Item {
	return handover.TCPListener(handedTCP, s.cfg.Addr, s.raw)
}

// writeToken makes a new random token and writes it to path, readable by
// the switch's user only, never through a link or into another user's file.
func writeToken(path string) (string, error) {
	var b [24]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	tok := hex.EncodeToString(b[:])
	f, err := unixsock.CreatePath(path, 0o600)
	if err != nil {
		return "", err
	}
	_, err = f.WriteString(tok + "\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return tok, err
}

// guard answers only requests whose Host names the server the way a
// browser that was pointed at it would (see HostAllowed), so that a page
// elsewhere cannot reach it through a DNS name it rebinds to this address.
func (s *Server) guard(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !HostAllowed(r.Host, s.cfg.Addr, s.ln.Addr()) {
			http.Error(w, "umlswitch web: this server answers only to its own address ("+s.cfg.Addr+"), not to Host "+
				fmt.Sprintf("%q", r.Host), http.StatusMisdirectedRequest)
			return
		}
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("X-Frame-Options", "DENY")
		w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; "+
			"script-src 'self'; connect-src 'self'; frame-ancestors 'none'")
		w.Header().Set("Referrer-Policy", "no-referrer")
		h.ServeHTTP(w, r)
	})
}

// HostAllowed reports whether a request's Host header may reach a server
// configured with addr and listening on bound: its port must be the
// server's, and its host the one addr names, or the address it listens on
// (any address when it listens on all of them), or localhost when it
// listens on loopback. A DNS name an attacker controls (rebinding) is none
// of these.
func HostAllowed(host, addr string, bound net.Addr) bool {
	h, port, err := net.SplitHostPort(host)
	tcp, ok := bound.(*net.TCPAddr)
	if err != nil || !ok || port != fmt.Sprint(tcp.Port) {
		return false
	}
	want, _, _ := net.SplitHostPort(addr)
	h = strings.TrimSuffix(strings.ToLower(h), ".")
	ip := net.ParseIP(h)
	switch {
	case h == "":
		return false
	case want != "" && strings.EqualFold(h, strings.TrimSuffix(want, ".")):
		return true
	case ip != nil:
		return tcp.IP.IsUnspecified() || ip.Equal(tcp.IP)
	case h == "localhost":
		return tcp.IP.IsLoopback() || tcp.IP.IsUnspecified()
	}
	return false
}

// tokenOK reports whether r carries the token (Authorization: Bearer).
func (s *Server) tokenOK(r *http.Request) bool {
	if s.token == "" {
		return false
	}
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), []byte(s.token)) == 1
}

// connInfo is who a request the page passes to the API is: with the token,
// the switch's own user (the token's file is for it alone); without, a
// peer the API lets read only.
func (s *Server) connInfo(r *http.Request) instance.ConnInfo {
	ci := instance.ConnInfo{Switch: s.cfg.Switch, Listener: "web", Path: s.cfg.Addr, ReadOnly: !s.cfg.Writable, Peer: peercred.Unknown}
	if s.tokenOK(r) {
		ci.Peer = peercred.Cred{UID: uint32(os.Geteuid()), GID: uint32(os.Getegid())}
	}
	return ci
}

// Access is what GET /web/access answers: what this page may do.
type Access struct {
	Token    bool     `json:"token"`    // the request carried the token
	Writable bool     `json:"writable"` // the switch runs with -web-rw
	Capture  bool     `json:"capture"`  // it may download captures
	Change   bool     `json:"change"`   // it may set link and impairment keys
	Keys     []string `json:"keys"`     // those keys
	Why      string   `json:"why,omitempty"`
}

func (s *Server) access(w http.ResponseWriter, r *http.Request) {
	tok := s.tokenOK(r)
	a := Access{Token: tok, Writable: s.cfg.Writable, Capture: tok, Change: tok && s.cfg.Writable, Keys: changeable()}
	switch {
	case s.token == "":
		a.Why = "the switch has no token file: the page only reads"
	case !tok:
		a.Why = "captures and changes need the token in " + s.cfg.TokenFile + " (readable by the switch's user only)"
	case !s.cfg.Writable:
		a.Why = "the switch runs without -web-rw: the page changes nothing"
	}
	writeJSON(w, http.StatusOK, a)
}

// changeable are the port keys the page may set: the link and its
// impairment.
func changeable() []string { return append([]string{"link"}, policy.ImpairKeys...) }

// v1 passes the page's API requests on: every read; a capture with the
// token; and, with -web-rw and the token, a change of a port's link and
// impairment keys, nothing else.
func (s *Server) v1(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/v1/capture":
		if !s.tokenOK(r) {
			s.refuse(w, r, "a capture from the page needs the token in "+s.tokenPlace())
			return
		}
	case r.Method == http.MethodGet:
	case r.Method == http.MethodPatch && strings.HasPrefix(r.URL.Path, "/v1/ports/"):
		if !s.cfg.Writable {
			s.refuse(w, r, "the page is read-only: the switch runs without -web-rw")
			return
		}
		if !s.tokenOK(r) {
			s.refuse(w, r, "changes from the page need the token in "+s.tokenPlace())
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
		if err != nil {
			writeJSON(w, http.StatusRequestEntityTooLarge, map[string]string{"error": err.Error()})
			return
		}
		if err := checkChange(body); err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
	default:
		s.refuse(w, r, "the page changes only a port's link and impairment (PATCH /v1/ports/NAME)")
		return
	}
	s.api.ServeHTTP(w, r)
}

// checkChange lets through a port change that sets only changeable keys.
func checkChange(body []byte) error {
	var req api.SetRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return fmt.Errorf("web: the body: %w", err)
	}
	kv, err := req.Pairs()
	if err != nil {
		return fmt.Errorf("web: %w", err)
	}
	keys := changeable()
	for _, p := range kv {
		if !slices.Contains(keys, p[0]) {
			return fmt.Errorf("web: the page may set only %s, not %s=", strings.Join(keys, ", "), p[0])
		}
	}
	return nil
}

func (s *Server) tokenPlace() string {
	if s.cfg.TokenFile == "" {
		return "a token file, and this switch has none (-web-token)"
	}
	return s.cfg.TokenFile
}

func (s *Server) refuse(w http.ResponseWriter, r *http.Request, why string) {
	s.log.Debug("web: refused", "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr, "why", why)
	writeJSON(w, http.StatusForbidden, map[string]string{"error": why})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// topology answers the drawing's data: the graph `ctl topology -format
// json` writes, of this process's switches.
func (s *Server) topology(w http.ResponseWriter, _ *http.Request) {
	fdb, err := s.in.FDB("")
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
		return
	}
	// The views as the API writes them, read as the graph reads an API's
	// answers: one schema, one place.
	b, err := json.Marshal(map[string]any{"switches": s.in.Switches(), "ports": s.in.Ports(""), "fdb": fdb})
	src := topology.Source{Socket: "web " + s.cfg.Addr, PID: os.Getpid()}
	if err == nil {
		err = json.Unmarshal(b, &src)
	}
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, topology.Build([]topology.Source{src}, s.cfg.Machines))
}

// keepEvents keeps the last events for a page opened later.
func (s *Server) keepEvents() {
	for ev := range s.sub.C {
		s.mu.Lock()
		if len(s.events) == eventsKept {
			s.events = slices.Delete(s.events, 0, 1)
		}
		s.events = append(s.events, ev)
		s.mu.Unlock()
	}
}

func (s *Server) recentEvents(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	evs := slices.Clone(s.events)
	s.mu.Unlock()
	if evs == nil {
		evs = []instance.Event{}
	}
	writeJSON(w, http.StatusOK, evs)
}
