package fabric

import (
	"errors"
	"net"
	"time"

	"github.com/umlswitch/umlswitch/frame"
)

// forwarder is the forwarding state of one batch: staging lists and scratch
// reused from batch to batch (readers take one from the fabric's pool per
// batch), so forwarding allocates nothing.
//
// The flow for one batch (forward):
//  1. load the port snapshot once;
//  2. per frame: drop and count empty, runt and oversize frames; learn the
//     source; pick the egress (one port, or every port but the ingress);
//     append the frame's index to that port's staging list;
//  3. per staged port: one Write with all its frames, in arrival order;
//  4. ports that were full: wait for each while it keeps taking frames, and
//     drop what a port that takes nothing for TxHold was still owed.
type forwarder struct {
	fab     *Fabric
	lists   [][]uint16     // by PortID: indices of the frames staged for it
	touched []frame.PortID // ports with a non-empty list, in first-use order
	out     [][]byte       // frames of one Write
	pend    []pending
	depth   int      // initial capacity of a list; deeper batches grow them
	mirrors []Mirror // of the switch in hand; nil when nothing captures
	// mirrored gathers the frames of a run from one port for mirrors, who
	// see them when the run ends (flushMirrored).
	mirrored [][]byte

	// VLANs (vlan.go): by PortID, the frames staged for it that leave in
	// the other form than they came (a tag pushed or popped); they are
	// written after every list of frames as they came, so each frame
	// changes form once.
	flips    [][]uint16
	flipping bool       // some frame of the batch is in flips
	meta     []vlanMeta // by frame, in switches with VLAN ports
	undo     []uint16   // frames whose meta says flipped
}

type pending struct {
	e    *portEntry
	off  int  // frames of its list already written
	flip bool // the list is in flips
}

func newForwarder(s *Fabric, depth int) *forwarder {
	return &forwarder{fab: s, depth: depth, out: make([][]byte, 0, depth), mirrored: make([][]byte, 0, depth)}
}

// rxRun accumulates receive counters over a run of frames from one port so
// the shared atomics are touched once per run, not per frame.
type rxRun struct {
	e              *portEntry
	frames, nbytes uint64
}

func (r *rxRun) flush() {
	if r.e != nil && r.frames > 0 {
		r.e.stats.rxFrames.Add(r.frames)
		r.e.stats.rxBytes.Add(r.nbytes)
	}
	r.frames, r.nbytes = 0, 0
}

func (f *forwarder) forward(v *frame.Vector, n int) {
	set := f.fab.ports.Load()
	now := f.fab.clock.Load()
	if f.forwardFlow(set, v, n, now) {
		return
	}

	var (
		run     rxRun
		in      *portEntry
		dom     *Switch // of in: its table, mirrors and flood list
		hub     bool
		table   *MACTable
		flood   []*portEntry
		inDown  bool     // in's link is down: its frames go nowhere
		policed bool     // a port of dom has a policy
		vlans   bool     // a port of dom has VLAN keys
		learnt  struct { // last source learned: a batch usually has one sender
			key macKey
			in  *portEntry
		}
		memo struct { // last destination looked up
			valid bool
			key   macKey
			out   *portEntry // nil: unknown, flood
		}
	)
	if len(f.meta) < n {
		f.meta = make([]vlanMeta, n)
	}
	for i := 0; i < n; i++ {
		if in == nil || in.id != v.Ports[i] {
			run.flush()
			f.flushMirrored(in)
			if in = set.get(v.Ports[i]); in == nil {
				continue // its port went away while the batch was read
			}
			run.e = in
			inDown = in.pol.down()
			if in.sw != dom { // a shared socket feeds ports of several switches
				dom = in.sw
				hub, table, flood = dom.hub.Load(), dom.table, set.flood[dom.idx]
				policed, vlans = set.policed[dom.idx], set.vlans[dom.idx]
				f.mirrors = dom.mirrors.active()
				learnt.in, memo.valid = nil, false
			}
		}
		if inDown { // a broken link carries nothing in: not counted as received, not mirrored, not learned
			in.stats.drop(DropLinkDown, 1)
			continue
		}
		size := v.Sizes[i]
		switch {
		case size < 0:
			if r := DropReason(-size); r > dropInvalid && r < NumDropReasons {
				in.stats.drop(r, 1) // the transport rejected it: see Rejected
			}
			continue
		case size == 0:
			in.stats.drop(DropEmpty, 1)
			continue
		case size < frame.HeaderLen:
			in.stats.drop(DropRunt, 1)
			continue
		case size > in.maxFrame || size > v.MaxFrame:
			in.stats.drop(DropOversize, 1)
			continue
		}
		run.frames++
		run.nbytes += uint64(size)

		fr := v.Frame(i)
		if f.mirrors != nil {
			f.mirrored = append(f.mirrored, fr)
		}
		pol := in.pol // nil for a port without policy: every check below is skipped
		if pol != nil && pol.noLinkLocal && isLinkLocal(frame.DstMAC(fr)) {
			in.stats.drop(DropLinkLocal, 1)
			continue
		}
		// The frame's VLAN: where no port of the switch has VLAN keys,
		// its tag's (0 for none), and it leaves as it came.
		var vid uint16
		if vlans {
			var ok bool
			if vid, ok = f.classify(in, i, fr); !ok {
				continue
			}
		} else if size >= frame.HeaderLen+frame.VLANTagLen {
			vid, _ = frame.OuterVLAN(fr)
		}
		if !hub {
			if fr[6]&1 == 0 { // a group address never sends
				if key := srcKey(vid, fr); key != learnt.key || in != learnt.in {
					if pol != nil && pol.macLimit > 0 {
						if !table.learnLimited(key, in.ref, now, pol.macLimit) {
							in.stats.drop(DropMACLimit, 1) // not remembered: its next frame is checked again
							continue
						}
					} else {
						table.learn(key, in.ref, now)
					}
					learnt.key, learnt.in = key, in
					memo.valid = false // the frame may have taught us the memoised destination
				}
			}
			if fr[0]&1 == 0 { // unicast
				if key := dstKey(vid, fr); !memo.valid || key != memo.key {
					memo.valid, memo.key = true, key
					memo.out = set.resolve(table.lookup(key, now))
				}
				if out := memo.out; out != nil {
					switch {
					case out == in:
						in.stats.drop(DropHairpin, 1) // never send a frame back where it came from
					case (pol != nil || out.pol != nil) && apart(pol, out.pol):
						in.stats.drop(apartReason(pol, out.pol), 1)
					case out.pol.down():
						out.stats.drop(DropLinkDown, 1) // MACs behind it were flushed; a static entry may lead there still
					case !vlans:
						f.stage(out, i, size)
					case !f.stageVLAN(out, i, size, vid):
						in.stats.drop(DropVLANFiltered, 1) // its VLAN left the port since it was learned there
					}
					continue
				}
			}
		}
		// Flood: broadcast, multicast, unknown unicast, and everything in a hub.
		if pol != nil && pol.storm != nil && !pol.storm.take(f.fab.now()) {
			in.stats.drop(DropStorm, 1)
			continue
		}
		switch {
		case !policed && !vlans:
			for _, out := range flood {
				if out != in {
					f.stage(out, i, size)
				}
			}
		case !vlans:
			for _, out := range flood {
				if out != in && floodsTo(pol, out.pol, frame.DstMAC(fr)) && !out.txDown() {
					f.stage(out, i, size)
				}
			}
		default:
			for _, out := range flood {
				if out != in && (!policed || floodsTo(pol, out.pol, frame.DstMAC(fr))) {
					if out.pol.down() { // counted only where the frame's VLAN would have gone out
						if member, _ := out.vl.egress(vid); member {
							out.stats.drop(DropLinkDown, 1)
						}
						continue
					}
					f.stageVLAN(out, i, size, vid)
				}
			}
		}
	}
	run.flush()
	f.flushMirrored(in)
	f.transmit(set, v)
}

// forwardFlow forwards the commonest batch of a busy link at once: every
// frame from one port, with the same addresses and type (and tag), to a
// destination already learned, in a switch and between ports without
// VLANs, policies or hub mode (mirrors see each frame, as forward shows
// them). One learning and one lookup serve
// the whole batch, and its frames are staged in one go: what forward would
// do frame by frame, with the same counters. It reports false, having
// changed nothing, for any other batch.
func (f *forwarder) forwardFlow(set *portSet, v *frame.Vector, n int, now int64) bool {
	if n < 2 {
		return false
	}
	in := set.get(v.Ports[0])
	if in == nil || in.pol != nil || in.vl != nil {
		return false
	}
	dom := in.sw
	if set.vlans[dom.idx] || dom.hub.Load() {
		return false
	}
	const h = frame.Headroom
	size0 := v.Sizes[0]
	if size0 < frame.HeaderLen {
		return false
	}
	head := frame.HeaderLen // addresses and type; and the tag, for a tagged flow
	if t := frame.EtherType(v.Bufs[0][h:]); t == frame.TPID8021Q || t == frame.TPID8021AD {
		head += frame.VLANTagLen
	}
	first := v.Bufs[0][h : h+head]
	if first[0]&1 != 0 || first[6]&1 != 0 { // a group address: floods, or never sends
		return false
	}
	longest, total := 0, uint64(0)
	for i := 0; i < n; i++ {
		size := v.Sizes[i]
		if v.Ports[i] != in.id || size < head || size > in.maxFrame || size > v.MaxFrame ||
			string(v.Bufs[i][h:h+head]) != string(first) {
			return false
		}
		longest, total = max(longest, size), total+uint64(size)
	}
	var vid uint16
	if head > frame.HeaderLen {
		vid, _ = frame.OuterVLAN(first)
	}
	table := dom.table
	table.learn(srcKey(vid, first), in.ref, now) // as forward would, before the lookup
	out := set.resolve(table.lookup(dstKey(vid, first), now))
	if out == nil || out == in || out.pol != nil || out.vl != nil || longest > out.maxFrame {
		return false // forward does the rest: learning again costs a lookup
	}
	if ms := dom.mirrors.active(); ms != nil {
		for i := 0; i < n; i++ {
			f.mirrored = append(f.mirrored, v.Frame(i))
		}
		f.mirrors = ms
		f.flushMirrored(in)
	}
	in.stats.rxFrames.Add(uint64(n))
	in.stats.rxBytes.Add(total)
	id := int(out.id)
	if id >= len(f.lists) {
		f.grow(id + 1)
	}
	l := f.lists[id][:0]
	for i := 0; i < n; i++ {
		l = append(l, uint16(i))
	}
	f.lists[id] = l
	f.touched = append(f.touched, out.id)
	f.transmit(set, v)
	return true
}

// stage queues frame i for out, unless it is too long for out: ports may
// have different MTUs, and a UML would cut a longer datagram short.
func (f *forwarder) stage(out *portEntry, i, size int) {
	if size > out.maxFrame {
		out.stats.drop(DropTxOversize, 1)
		return
	}
	id := out.id
	if int(id) >= len(f.lists) {
		f.grow(int(id) + 1)
	}
	l := f.lists[id]
	if len(l) == 0 && len(f.flips[id]) == 0 {
		f.touched = append(f.touched, id)
	}
	f.lists[id] = append(l, uint16(i))
}

// grow makes room for more port ids. It allocates, but only when the fabric
// gains a port id this reader has not seen yet.
func (f *forwarder) grow(n int) {
	for len(f.lists) < n {
		f.lists = append(f.lists, make([]uint16, 0, f.depth))
		f.flips = append(f.flips, nil) // a port that never needs one never gets one
	}
}

// frames fills f.out with the frames whose indices are in list, in the
// form the list asks for (flip: the list is in flips).
func (f *forwarder) frames(v *frame.Vector, list []uint16, flip bool) [][]byte {
	out := f.out[:0]
	if !f.flipping { // no frame of the batch changes form
		for _, k := range list {
			out = append(out, v.Frame(int(k)))
		}
	} else {
		for _, k := range list {
			out = append(out, f.form(v, int(k), flip))
		}
	}
	f.out = out // keep what a deeper batch grew
	return out
}

func (f *forwarder) transmit(set *portSet, v *frame.Vector) {
	for _, id := range f.touched {
		if list := f.lists[id]; len(list) > 0 {
			e := set.byID[id]
			if off, full := f.write(e, f.frames(v, list, false)); full {
				f.pend = append(f.pend, pending{e: e, off: off})
			}
		}
	}
	if f.flipping {
		for _, id := range f.touched {
			if list := f.flips[id]; len(list) > 0 {
				e := set.byID[id]
				if off, full := f.write(e, f.frames(v, list, true)); full {
					f.pend = append(f.pend, pending{e: e, off: off, flip: true})
				}
			}
		}
	}
	if len(f.pend) > 0 {
		f.hold(v)
	}
	for _, id := range f.touched {
		f.lists[id] = f.lists[id][:0]
	}
	if f.flipping {
		for _, id := range f.touched {
			f.flips[id] = f.flips[id][:0]
		}
		for _, k := range f.undo {
			f.meta[k].flipped = false
		}
		f.undo, f.flipping = f.undo[:0], false
	}
	f.touched = f.touched[:0]
}

// hold waits for the ports that were full and writes the rest of their
// frames. The reader does not read while it holds: that is the backpressure
// that slows a sender to what its receivers take, and it only ever stalls
// this one reader. The bound is on progress, not on the whole hold: a port
// that takes nothing for TxHold is marked stalled and its frames are dropped
// (and, until it takes frames again, dropped without waiting), so a stopped
// peer costs others one bound; a port that drains slowly is waited for,
// unless it keeps others waiting while it trickles: then it is not waited
// for when the batch has other destinations too (slow.go).
func (f *forwarder) hold(v *frame.Vector) {
	sw := f.fab
	shared := len(f.touched) > 1 || f.flipping // the wait delays frames for other ports too
	for _, p := range f.pend {
		e := p.e
		list := f.lists[e.id]
		if p.flip {
			list = f.flips[e.id]
		}
		list = list[p.off:]
		for len(list) > 0 {
			start := sw.now()
			if shared && e.slow.slow(start) {
				e.stats.drop(DropSlowReceiver, len(list))
				break
			}
			if e.stalled.Load() {
				e.stats.drop(DropTxFull, len(list))
				break
			}
			ok := e.port.WaitWritable(sw.cfg.TxHold)
			end := sw.now()
			e.stats.held.Add(uint64(end - start))
			full := false
			if ok {
				var off int
				off, full = f.write(e, f.frames(v, list, p.flip))
				list = list[off:]
			} else {
				e.stalled.Store(true)
				e.stats.stalls.Add(1)
				e.stats.drop(DropTxFull, len(list))
			}
			if shared {
				f.charge(e, start, end)
			}
			if !full {
				break
			}
		}
	}
	f.pend = f.pend[:0]
}

// charge books a wait for e against its hold debt and reports it when that
// makes the port slow.
func (f *forwarder) charge(e *portEntry, start, end int64) {
	slowFor, episodes := e.slow.charge(start, end, e.stats.txFrames.Load(), f.fab.cfg.TxHold)
	if slowFor == 0 {
		return
	}
	e.stats.slowed.Add(1)
	if episodes > 0 {
		f.fab.log.Info("slow receiver: not waiting for it", "port", e.id, "name", e.name,
			"for", slowFor.Round(time.Millisecond), "episodes", episodes)
	}
}

// write hands frames to e's port. It returns how many it got through (sent
// or dropped for good) and whether the port was full before the end.
func (f *forwarder) write(e *portEntry, frames [][]byte) (done int, full bool) {
	for done < len(frames) {
		n, err := e.port.Write(frames[done:])
		if n > 0 {
			var b uint64
			for _, fr := range frames[done : done+n] {
				b += uint64(len(fr))
			}
			e.stats.txFrames.Add(uint64(n))
			e.stats.txBytes.Add(b)
			if ms := e.sw.mirrors.active(); ms != nil {
				mirrorAll(ms, e, DirOut, frames[done:done+n])
			}
			if e.stalled.Load() {
				e.stalled.Store(false) // it drains again: wait for it next time
			}
		}
		done += n
		switch {
		case err == nil:
			return len(frames), false
		case errors.Is(err, ErrWouldBlock):
			return done, true
		case errors.Is(err, ErrPeerGone) || errors.Is(err, net.ErrClosed):
			e.stats.drop(DropTxError, len(frames)-done)
			return len(frames), false
		case errors.Is(err, ErrUnreachable):
			e.stats.drop(DropUnreachable, len(frames)-done)
			return len(frames), false
		default:
			e.stats.drop(DropTxError, 1) // frames[done] was refused; go on with the rest
			done++
		}
	}
	return done, false
}
