package fabric

import (
	"sync"
	"sync/atomic"
	"time"
)

// A full destination holds its sender (backpressure, see forwarder.hold):
// that is right while the destination is the sender's only one, or is full
// only for a moment. But a sender is one reader, and holding it delays
// everything it sends; a port that keeps others waiting while taking frames
// one by one (a UML that reads a frame every few milliseconds) would pace
// every sender whose traffic reaches it, broadcasts included, to its own
// speed.
//
// So every wait in a hold whose batch also went to other ports is charged to
// the port waited for (the wall-clock time anyone waited for it: several
// readers waiting at once count once), and every frame the port takes, from
// anyone, pays back slowFramePays of it: a port that drains at least a frame
// per slowFramePays of holding is never charged, however often it is full,
// and a port that stops or trickles is. A hold whose batch went to one port
// alone is never charged: there, holding the sender is the flow control.
//
// A port's debt leaks away at 1/slowLeak of real time, so rare lapses are
// forgiven; once it passes slowBudgetHolds times the hold bound the port is
// slow until its debt has leaked away: a sender whose batch also goes
// elsewhere does not wait for it, and what it cannot take at once is dropped
// and counted as DropSlowReceiver, as a hardware switch drops at an
// oversubscribed port. A batch for the slow port alone is still held for it,
// so a flow to a port that is only its bottleneck keeps its backpressure even
// while the port is slow. A slow port costs the others at most 1/slowLeak of
// their time, plus one hold per episode.
const (
	slowFramePays   = 200 * time.Microsecond // 5,000 frames a second: far below any live UML
	slowLeak        = 20                     // 5 %
	slowBudgetHolds = 2
)

// slowMeter is one port's hold debt.
type slowMeter struct {
	// until is the fabric's time (nanoseconds since start) until which the
	// port is slow; read without the lock.
	until atomic.Int64

	mu       sync.Mutex
	debt     int64  // nanoseconds of waiting not yet paid back or leaked away
	at       int64  // switch time debt was last brought up to date
	waitedTo int64  // end of the last wait charged: overlapping waits count once
	paidTo   uint64 // the port's transmit count when it last paid
	logged   int64  // switch time of the last log line about the port
	unlogged uint64 // episodes since that line
}

// slow reports whether nobody should wait for the port at time now.
func (m *slowMeter) slow(now int64) bool { return now < m.until.Load() }

// charge books a wait from start to now (switch time); sent is how many
// frames the port has taken in all. When that makes the port slow, charge
// returns for how long, and, at most once per slowLogEvery, how many
// episodes there were since the last one it reported (0: do not log).
func (m *slowMeter) charge(start, now int64, sent uint64, hold time.Duration) (slowFor time.Duration, episodes uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if elapsed := now - m.at; elapsed > 0 {
		m.debt = max(0, m.debt-elapsed/slowLeak)
	}
	m.at = max(m.at, now)
	waited := max(0, now-max(start, m.waitedTo))
	m.waitedTo = max(m.waitedTo, now)
	taken := sent - m.paidTo
	m.paidTo = sent
	m.debt = max(0, m.debt+waited-int64(min(taken, 1<<32))*int64(slowFramePays))
	if m.debt <= slowBudgetHolds*int64(hold) {
		return 0, 0
	}
	// Slow until the debt has leaked away; nothing leaks meanwhile that
	// could shorten a later episode.
	slowFor = time.Duration(m.debt * slowLeak)
	m.until.Store(now + int64(slowFor))
	m.at = now + int64(slowFor)
	m.debt = 0
	m.unlogged++
	if m.logged != 0 && now-m.logged < int64(slowLogEvery) {
		return slowFor, 0
	}
	m.logged, episodes, m.unlogged = now, m.unlogged, 0
	return slowFor, episodes
}

// slowLogEvery is how often a port that keeps being slow is logged again.
const slowLogEvery = 10 * time.Second
