package api

import (
	"fmt"
	"net/http"
	"os"

	"github.com/umlswitch/umlswitch/instance"
	"github.com/umlswitch/umlswitch/internal/peercred"
)

// Who may do what through the control API. A control socket is usually
// open to every local user (mode 0777: every user's UML must attach), so
// the socket's permissions say who may attach a guest and nothing more;
// everything else is decided here from the peer's credentials, which the
// kernel gives (SO_PEERCRED) and a client cannot forge:
//
//   - reading (info, switches, ports, the address table, mirrors, events,
//     the BGP neighbours and EVPN routes) is open to every peer, as `ip link` and `bridge fdb` are to every
//     user of the host;
//   - changing anything and capturing traffic is for root and the switch's
//     own user, and for the users and groups that api_uid= and api_gid=
//     name (on the socket, or in the configuration for every socket);
//   - such a user who is not root acts with its own rights: what it opens
//     is opened with its credentials, and port kinds that take root's
//     privilege (raw, tap, GRE, low ports) are refused it (see
//     instance.AddPortAs).

// need is what a request needs of its caller.
type need int

const (
	needRead    need = iota // every peer
	needWrite               // change the switch
	needCapture             // read its traffic
)

func (n need) String() string {
	switch n {
	case needWrite:
		return "changing the switch"
	case needCapture:
		return "capturing its traffic"
	}
	return "reading the switch"
}

// grant is what authorize allows a caller.
type grant struct {
	ok bool
	// as is the caller to act as: nil for root and the switch's own user,
	// who act as the switch; a user let in by api_uid= or api_gid= acts
	// as itself.
	as *peercred.Cred
}

// errForbidden is the refusal of a caller's credentials.
var errForbidden = instance.ErrForbidden

// authorize decides whether ci's peer may do what n needs. self is the
// switch's own uid. The refusal says which rule refused and whom.
func authorize(ci instance.ConnInfo, n need, self uint32) (grant, error) {
	if n == needRead {
		return grant{ok: true}, nil
	}
	p := ci.Peer
	switch {
	case !p.Known():
		return grant{}, fmt.Errorf("%w: %s through the control API needs a peer the kernel can name (SO_PEERCRED); this one is unknown", errForbidden, n)
	case p.UID == 0 || p.UID == self:
		return grant{ok: true}, nil
	case p.In(ci.APIUIDs, ci.APIGIDs):
		as := p
		return grant{ok: true, as: &as}, nil
	}
	return grant{}, fmt.Errorf("%w: %s through the control API is for root, the switch's own user (uid %d) "+
		"and the users and groups given by api_uid= and api_gid=; this peer is uid %d gid %d", errForbidden, n, self, p.UID, p.GID)
}

// selfUID is the switch's effective uid.
var selfUID = uint32(os.Geteuid())

type grantKey struct{}

// grantOf is the grant wrap found for the request's caller.
func grantOf(r *http.Request) grant {
	g, _ := r.Context().Value(grantKey{}).(grant)
	return g
}

// refuse answers a refused request, logs it once per peer uid and counts it.
func (s *Server) refuse(w http.ResponseWriter, r *http.Request, err error) {
	s.in.CountAPIRefusal()
	uid := connInfo(r).Peer.UID
	if _, seen := s.refusedUIDs.LoadOrStore(uid, true); !seen {
		s.log.Warn("control API: refused", "uid", uid, "method", r.Method, "path", r.URL.Path, "listener", connInfo(r).Listener, "err", err)
	}
	writeError(w, http.StatusForbidden, err)
}
