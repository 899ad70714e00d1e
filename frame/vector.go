package frame

import "sync"

// PortID is a dense index of a switch port, usable as a slice index.
type PortID uint16

// MaxPorts bounds the number of ports one switch holds at once.
const MaxPorts = 1 << 15

// NoPort marks a frame whose sender matches no port (a shared socket read a
// datagram from a stranger); the switch skips such frames.
const NoPort PortID = 1<<16 - 1

// Headroom is the space kept in front of every frame in a Vector: room for an
// 802.1Q push or an encapsulation header written in place.
const Headroom = 64

// Vector is one reusable batch of frames, owned by a single reader goroutine.
// Frame i occupies Bufs[i][Headroom:Headroom+Sizes[i]] and entered the switch
// through port Ports[i]. A transport reports the datagram's true length in
// Sizes even when it did not fit (so oversize frames are counted, never
// truncated silently); a size of 0 marks an empty datagram.
//
// A lent vector (NewLentVector) holds buffers only between Take and Give:
// a reader takes them when frames are waiting and gives them back before it
// parks, so an idle port holds none and the switch's buffer memory follows
// the readers at work, not the ports attached.
type Vector struct {
	Bufs     [][]byte // each Headroom+MaxFrame+1 long, carved from one arena
	Sizes    []int
	Ports    []PortID
	MaxFrame int
	// Scratch stays with the buffers for the transport that reads into
	// them (its recvmmsg headers, pointed at Bufs once), and moves with
	// them from reader to reader.
	Scratch any

	depth  int
	lender *lender    // nil: the vector owns its buffers
	held   *bufferSet // what Take lent, until Give
}

// bufferSet is what a lent vector holds between Take and Give.
type bufferSet struct {
	bufs    [][]byte
	sizes   []int
	ports   []PortID
	scratch any
}

// NewVector allocates a batch of depth buffers, each able to hold a frame of
// maxFrame bytes behind Headroom, plus one spare byte: a reader that cannot
// learn a datagram's true length (a tap read truncates silently) still sees
// that it was too long when the spare byte gets filled. Buffers are spaced on
// 64-byte boundaries.
func NewVector(depth, maxFrame int) *Vector {
	s := newBufferSet(depth, maxFrame)
	return &Vector{Bufs: s.bufs, Sizes: s.sizes, Ports: s.ports, MaxFrame: maxFrame, depth: depth}
}

func newBufferSet(depth, maxFrame int) *bufferSet {
	room := maxFrame + 1
	stride := (Headroom + room + 63) &^ 63
	arena := make([]byte, depth*stride)
	s := &bufferSet{bufs: make([][]byte, depth), sizes: make([]int, depth), ports: make([]PortID, depth)}
	for i := range s.bufs {
		s.bufs[i] = arena[i*stride : i*stride+Headroom+room : i*stride+Headroom+room]
	}
	return s
}

// NewLentVector returns a vector of the given shape that holds no buffers
// until Take. Every lent vector of one shape draws on the same pool.
func NewLentVector(depth, maxFrame int) *Vector {
	return &Vector{MaxFrame: maxFrame, depth: depth, lender: lenderFor(depth, maxFrame)}
}

// Take gives a lent vector buffers if it holds none. It does nothing to a
// vector that owns its buffers. Sizes and Ports hold whatever the last
// reader left there.
func (v *Vector) Take() {
	if v.held != nil || v.lender == nil {
		return
	}
	s := v.lender.pool.Get().(*bufferSet)
	v.held = s
	v.Bufs, v.Sizes, v.Ports, v.Scratch = s.bufs, s.sizes, s.ports, s.scratch
}

// Give hands a lent vector's buffers back (with its Scratch). The frames in
// them are gone. It does nothing to a vector that owns its buffers.
func (v *Vector) Give() {
	s := v.held
	if s == nil {
		return
	}
	s.scratch = v.Scratch
	v.held = nil
	v.Bufs, v.Sizes, v.Ports, v.Scratch = nil, nil, nil, nil
	v.lender.pool.Put(s)
}

// lender pools the buffer sets of one shape.
type lender struct{ pool sync.Pool }

var lenders struct {
	sync.Mutex
	m map[[2]int]*lender
}

func lenderFor(depth, maxFrame int) *lender {
	lenders.Lock()
	defer lenders.Unlock()
	key := [2]int{depth, maxFrame}
	l := lenders.m[key]
	if l == nil {
		l = &lender{}
		l.pool.New = func() any { return newBufferSet(depth, maxFrame) }
		if lenders.m == nil {
			lenders.m = make(map[[2]int]*lender)
		}
		lenders.m[key] = l
	}
	return l
}

// Depth is the number of frames the vector holds (when it holds buffers).
func (v *Vector) Depth() int { return v.depth }

// Room returns the receive area of buffer i: MaxFrame+1 bytes after Headroom.
func (v *Vector) Room(i int) []byte { return v.Bufs[i][Headroom:] }

// Frame returns frame i. The caller must have checked 0 <= Sizes[i] <= MaxFrame.
func (v *Vector) Frame(i int) []byte { return v.Bufs[i][Headroom : Headroom+v.Sizes[i]] }
