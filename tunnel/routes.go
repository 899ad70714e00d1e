package tunnel

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/umlswitch/umlswitch/fabric"
)

// ErrRouteTaken is the error of a claim for a route another port holds.
var ErrRouteTaken = errors.New("route already taken")

// Routes is a protocol's routing table: it finds the port a received
// packet is for by two parts of a route, the group G that packets are
// sorted by first (the sender, or an L2TPv3 session) and the key K that
// tells a group's ports apart (a GRE key, a VXLAN VNI; struct{} where a
// group has one port).
//
// A port claims its route before the switch attaches it, which refuses a
// route another port holds, and is routed to only once published, after
// it has its id: a claimed but unpublished route routes nowhere. Lookup
// takes no lock, for the endpoint's reader: it reads an immutable map that
// every change replaces as a whole. Changes are serialised by a mutex.
// The zero Routes is an empty table.
type Routes[G, K comparable] struct {
	mu     sync.Mutex
	claims map[routeKey[G, K]]*Port         // guarded by mu: the port that holds each route
	groups atomic.Pointer[map[G][]route[K]] // published ports of each group, in the order published
}

type routeKey[G, K comparable] struct {
	group G
	key   K
}

type route[K comparable] struct {
	key  K
	port *Port
}

// Lookup returns g's port with key k; if none of g's ports has k, its
// first port, so that the port's check counts what is wrong with the
// packet; nil if g has none.
func (r *Routes[G, K]) Lookup(g G, k K) *Port {
	m := r.groups.Load()
	if m == nil {
		return nil
	}
	list := (*m)[g]
	for _, e := range list {
		if e.key == k {
			return e.port
		}
	}
	if len(list) == 0 {
		return nil
	}
	return list[0].port
}

// Claim reserves g and k for p. It refuses, naming the holder, a route
// another port holds.
func (r *Routes[G, K]) Claim(g G, k K, p *Port) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	rk := routeKey[G, K]{g, k}
	if q := r.claims[rk]; q != nil {
		return fmt.Errorf("%w by port %q", ErrRouteTaken, q.Name())
	}
	if r.claims == nil {
		r.claims = make(map[routeKey[G, K]]*Port)
	}
	r.claims[rk] = p
	return nil
}

// Publish starts routing g and k to p, if p holds them.
func (r *Routes[G, K]) Publish(g G, k K, p *Port) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.claims[routeKey[G, K]{g, k}] != p {
		return // released meanwhile, or never claimed: routing to p would outlive it
	}
	list := r.published(g)
	if slices.ContainsFunc(list, func(e route[K]) bool { return e.port == p }) {
		return
	}
	// Clipped, so that append copies: readers may hold the old list.
	r.store(g, append(slices.Clip(list), route[K]{k, p}))
}

// Remove releases g and k and stops routing to p, if p holds them; a
// port that lost its claim, or never had it, removes nothing.
func (r *Routes[G, K]) Remove(g G, k K, p *Port) {
	r.mu.Lock()
	defer r.mu.Unlock()
	rk := routeKey[G, K]{g, k}
	if r.claims[rk] != p {
		return
	}
	delete(r.claims, rk)
	list := r.published(g)
	if i := slices.IndexFunc(list, func(e route[K]) bool { return e.port == p }); i >= 0 {
		r.store(g, slices.Delete(slices.Clone(list), i, i+1))
	}
}

// published is g's list of published ports. The caller holds mu.
func (r *Routes[G, K]) published(g G) []route[K] {
	if m := r.groups.Load(); m != nil {
		return (*m)[g]
	}
	return nil
}

// store publishes a copy of the table with g's list replaced (an empty
// list drops g). The lists themselves are never changed once published, so
// the copy shares them. The caller holds mu.
func (r *Routes[G, K]) store(g G, list []route[K]) {
	next := make(map[G][]route[K])
	if m := r.groups.Load(); m != nil {
		maps.Copy(next, *m)
	}
	if len(list) == 0 {
		delete(next, g)
	} else {
		next[g] = list
	}
	r.groups.Store(&next)
}

// OpenPort makes a port on ep with cfg and routes g and k to it: it
// claims the route, attaches the port to reg, then publishes the route,
// which the port's Close removes (OpenPort sets cfg.OnClose). On failure
// the port is closed, which releases the claim and the endpoint.
func (r *Routes[G, K]) OpenPort(ep *Endpoint, reg fabric.Registry, g G, k K, cfg PortConfig) (*Port, error) {
	var p *Port
	cfg.OnClose = func() { r.Remove(g, k, p) }
	p = ep.NewPort(cfg)
	if err := r.Claim(g, k, p); err != nil {
		p.Close()
		return nil, fmt.Errorf("%s: %w", cfg.Name, err)
	}
	id, err := reg.Attach(p)
	if err != nil {
		p.Close()
		return nil, err
	}
	p.SetID(id)
	r.Publish(g, k, p)
	return p, nil
}
