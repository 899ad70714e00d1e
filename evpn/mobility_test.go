package evpn

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/umlswitch/umlswitch/frame"
)

// The raw peer is a GoBGP server, and GoBGP's AddPath fixes up the
// mobility community of a MAC route it originates against the others it
// originated: it refuses one lower than a sequence number it holds for
// the MAC and gives one without the community the highest it holds. So
// the raw peer's routes for a MAC go out lowest sequence number first.

// TestMACMobility: who holds an address that several VTEPs, this one
// among them, announce, as the speaker decides it (RFC 7432 section 15):
// the highest sequence number, then the lowest VTEP address, between
// remote VTEPs and between a remote one and this one. The peer's route targets
// are of another AS (eBGP with derived targets, as FRR does it), so that
// GoBGP's own MAC mobility handling, which works within a route target,
// stays out of it: TestMACMobilitySameTarget has it in.
func TestMACMobility(t *testing.T) { macMobility(t, rawASN+1) }

// TestMACMobilitySameTarget is TestMACMobility with the peer's routes
// carrying this speaker's own route target (iBGP, derived targets: the
// usual fabric). GoBGP's table then withdraws the speaker's MAC routes on
// its own (table_manager.go, handleMacMobility) and refuses withdrawals
// and announcements whose sequence number is below one it holds
// (server.go, fixupApiPath).
func TestMACMobilitySameTarget(t *testing.T) {
	macMobility(t, rawASN)
}

func macMobility(t *testing.T, asn uint16) {
	dp := newFakeDP()
	s, raw, _ := rawSetup(t, dp, sw("a", 100))
	low := netip.MustParseAddr("192.0.1.5") // below vtepA, 192.0.2.1
	route := func(vtep netip.Addr, m frame.MAC, seq uint32) rt {
		return rt{typ: 2, vni: 100, vtep: vtep, mac: m, seq: seq, asn: asn}
	}
	raw.announce(rt{typ: 3, vni: 100, vtep: vtepR, asn: asn}, rt{typ: 3, vni: 100, vtep: vtepQ, asn: asn},
		rt{typ: 3, vni: 100, vtep: low, asn: asn})
	waitFor(t, "three tunnels", func() bool { return len(dp.tunnelSet()["a"]) == 3 })
	mac := func(i byte) frame.MAC { return frame.MAC{2, 0, 0, 0, 9, i} }
	// agree waits until the peer holds exactly the MAC routes the speaker
	// says it announces, with their sequence numbers.
	agree := func(what string) {
		t.Helper()
		var sent map[frame.MAC]int
		ok := waitUntil(func() bool {
			_, out := s.Routes()
			sent = make(map[frame.MAC]int)
			for _, ri := range out {
				if ri.Type == 2 {
					m, _ := frame.ParseMAC(ri.MAC)
					sent[m] = int(ri.Seq)
				}
			}
			got := raw.received()
			for m, seq := range got {
				if want, ok := sent[m]; !ok || !sameSeq(seq, want) {
					return false
				}
			}
			return len(got) == len(sent)
		})
		if !ok {
			t.Fatalf("%s: the speaker says it announces %v, the peer holds %v", what, sent, raw.received())
		}
	}
	at := func(what string, m frame.MAC, want netip.Addr) {
		t.Helper()
		waitFor(t, what, func() bool { return dp.remoteAt("a", m) == want })
		raw.sync(s)
		if got := dp.remoteAt("a", m); got != want {
			t.Fatalf("%s: %s at %v, want %v", what, m, got, want)
		}
		agree(what)
	}
	// announced waits until the speaker announces m with sequence number
	// seq (-1: no mobility community, or one saying 0), or not at all (-2).
	announced := func(what string, m frame.MAC, seq int) {
		t.Helper()
		waitFor(t, what, func() bool {
			got, ok := raw.received()[m]
			return ok && sameSeq(got, seq) || !ok && seq == -2
		})
		agree(what)
	}
	// stays checks, once the speaker took in all sent so far, that it
	// still announces m with seq and has no remote entry for it.
	stays := func(what string, m frame.MAC, seq int) {
		t.Helper()
		raw.sync(s)
		agree(what)
		if got, ok := raw.received()[m]; !ok || !sameSeq(got, seq) || dp.remoteAt("a", m).IsValid() {
			t.Fatalf("%s: announced %v (sequence %d, want %d), remote entry %v", what, ok, got, seq, dp.remoteAt("a", m))
		}
	}
	learn := func(m frame.MAC) {
		dp.learn("a", m)
		s.MACsChanged("a")
	}

	// Between remote VTEPs the highest sequence number wins, whatever
	// the addresses.
	m := mac(1)
	raw.announce(route(vtepQ, m, 0))
	at("Q alone", m, vtepQ)
	raw.announce(route(vtepR, m, 1))
	at("seq 1 from R beats 0 from Q", m, vtepR)
	raw.announce(route(vtepQ, m, 2))
	at("seq 2 from Q beats 1 from R", m, vtepQ)
	raw.withdraw(route(vtepR, m, 0))
	at("R withdrawn: still Q", m, vtepQ)
	raw.withdraw(route(vtepQ, m, 0))
	at("Q withdrawn: nowhere", m, netip.Addr{})

	// Equal sequence numbers: the lowest VTEP address.
	m = mac(2)
	raw.announce(route(vtepR, m, 3), route(vtepQ, m, 3))
	at("tie between R and Q", m, vtepQ)
	raw.announce(route(low, m, 3))
	at("tie, low joins", m, low)
	raw.withdraw(route(low, m, 0))
	at("low withdrawn", m, vtepQ)

	// A local address outbid by a remote VTEP: withdrawn here, pointed
	// there; learned here again, it outbids the remote VTEP.
	m = mac(3)
	learn(m)
	announced("m3 announced with sequence 0", m, -1)
	raw.announce(route(vtepR, m, 1))
	at("m3 moved to R", m, vtepR)
	announced("m3 withdrawn here", m, -2)
	learn(m)
	announced("m3 back with sequence 2", m, 2)
	raw.sync(s)
	if got := dp.remoteAt("a", m); got.IsValid() {
		t.Fatalf("m3 learned here, still pointed at %v", got)
	}
	raw.announce(route(vtepR, m, 3))
	at("m3 moved to R again", m, vtepR)
	announced("m3 withdrawn here again", m, -2)

	// Equal sequence numbers between this VTEP and a remote one: the
	// lower address keeps it. R (192.0.2.9) loses to us, low wins.
	m = mac(4)
	learn(m)
	announced("m4 announced", m, -1)
	raw.announce(route(vtepR, m, 0))
	stays("tie with R (higher address)", m, -1)
	raw.announce(route(low, m, 0))
	at("tie with low (lower address): low takes it", m, low)
	announced("m4 withdrawn here", m, -2)

	// The same at sequence number 2, and a mobility community that says
	// 0 is sequence number 0, as none is.
	m = mac(5)
	raw.announce(route(vtepR, m, 1))
	at("m5 at R", m, vtepR)
	learn(m)
	announced("m5 here with sequence 2", m, 2)
	raw.announce(route(vtepQ, m, 2))
	stays("tie at 2 with Q (higher address)", m, 2)
	raw.announce(route(low, m, 2))
	at("tie at 2 with low: low takes it", m, low)
	announced("m5 withdrawn here", m, -2)
	m = mac(6)
	learn(m)
	announced("m6 announced", m, -1)
	x := route(vtepR, m, 0)
	x.mm = true
	raw.announce(x)
	stays("tie with R's explicit sequence 0", m, -1)

	// Learned here while a remote VTEP holds it: announced above the
	// highest sequence number known, even one from a VTEP not joined.
	m = mac(7)
	raw.announce(route(vtepR, m, 4))
	raw.announce(route(netip.MustParseAddr("192.0.2.60"), m, 9))
	at("m7 at R", m, vtepR)
	learn(m)
	announced("m7 announced with sequence 10", m, 10)
	if got := dp.remoteAt("a", m); got.IsValid() {
		t.Fatalf("m7 learned here, still pointed at %v", got)
	}
}

// sameSeq reports whether sequence numbers a and b, as received() gives
// them (-1: no mobility community), are the same: no community is 0.
func sameSeq(a, b int) bool { return max(a, 0) == max(b, 0) }

// TestMACMobilityVTEPWithoutTunnel: a VTEP that has not announced the VNI
// (no type-3 route, so no tunnel to it) announces an address this VTEP
// holds, with a higher sequence number. It cannot take it (there is no
// tunnel to point the address at) but, whatever the speaker makes of it,
// what it says it announces must be what its peer receives, and once the
// VTEP announces the VNI exactly one of them holds the address. With the
// speaker's own route target, GoBGP's table withdraws the speaker's route
// behind its back (table_manager.go, handleMacMobility).
func TestMACMobilityVTEPWithoutTunnel(t *testing.T) {
	for _, asn := range []uint16{rawASN + 1, rawASN} {
		t.Run(fmt.Sprintf("targets of AS %d", asn), func(t *testing.T) {
			if asn == rawASN {
			}
			dp := newFakeDP()
			s, raw, _ := rawSetup(t, dp, sw("a", 100))
			late := netip.MustParseAddr("192.0.2.50")
			m := frame.MAC{2, 0, 0, 0, 9, 0x70}
			// agree waits until the peer holds exactly what the speaker
			// says it announces, and returns m's sequence number there
			// (-2: not announced).
			agree := func(what string) int {
				t.Helper()
				seq := -2
				if !waitUntil(func() bool {
					_, sent := s.Routes()
					seq = -2
					for _, ri := range sent {
						if ri.MAC == m.String() {
							seq = int(ri.Seq)
						}
					}
					got, ok := raw.received()[m]
					return ok && sameSeq(got, seq) || !ok && seq == -2
				}) {
					t.Fatalf("%s: the speaker says it announces m with sequence %d (-2: not), the peer holds %v",
						what, seq, raw.received())
				}
				return seq
			}
			dp.learn("a", m)
			s.MACsChanged("a")
			waitFor(t, "m announced", func() bool { _, ok := raw.received()[m]; return ok })
			raw.announce(rt{typ: 2, vni: 100, vtep: late, mac: m, seq: 7, asn: asn})
			raw.sync(s)
			time.Sleep(2 * syncPeriod) // what the speaker does about it, at its next sync too
			agree("late announces m with sequence 7")
			if at := dp.remoteAt("a", m); at.IsValid() {
				t.Fatalf("m at %v, which has no tunnel", at)
			}
			raw.announce(rt{typ: 3, vni: 100, vtep: late, asn: asn})
			waitFor(t, "tunnel to late", func() bool { return dp.hasTunnel("a", 100, late) })
			raw.sync(s)
			time.Sleep(2 * syncPeriod)
			seq := agree("late announces the VNI")
			if at := dp.remoteAt("a", m); at.IsValid() == (seq > 7) || at.IsValid() && at != late {
				t.Fatalf("m announced here with sequence %d (-2: not), and at %v", seq, at)
			}
		})
	}
}

// TestIgnoredRouteDoesNotBlockAnnouncing: GoBGP holds every route it
// received, also those the speaker ignores (here a MAC route with a
// martian next hop and a high sequence number); the addresses learned
// here are announced all the same, all of them.
func TestIgnoredRouteDoesNotBlockAnnouncing(t *testing.T) {
	dp := newFakeDP()
	s, raw, _ := rawSetup(t, dp, sw("a", 100))
	raw.announce(rt{typ: 3, vni: 100, vtep: vtepR})
	raw.announce(rt{typ: 2, vni: 100, vtep: vtepR, mac: macR, seq: 2})
	waitFor(t, "macR at R", func() bool { return dp.remoteAt("a", macR) == vtepR })
	raw.announce(rt{typ: 2, vni: 100, vtep: netip.MustParseAddr("192.0.2.70"), nh: netip.MustParseAddr("127.0.0.7"),
		mac: macR, seq: 9})
	raw.sync(s)
	dp.learn("a", macR)
	dp.learn("a", macQ)
	s.MACsChanged("a")
	waitFor(t, "macR and macQ announced", func() bool {
		got := raw.received()
		_, r := got[macR]
		_, q := got[macQ]
		return r && q
	})
}
