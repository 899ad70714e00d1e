package frame

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
type Vector struct {
	Bufs     [][]byte // each Headroom+MaxFrame+1 long, carved from one arena
	Sizes    []int
	Ports    []PortID
	MaxFrame int
}

// NewVector allocates a batch of depth buffers, each able to hold a frame of
// maxFrame bytes behind Headroom, plus one spare byte: a reader that cannot
// learn a datagram's true length (a tap read truncates silently) still sees
// that it was too long when the spare byte gets filled. Buffers are spaced on
// 64-byte boundaries.
func NewVector(depth, maxFrame int) *Vector {
	room := maxFrame + 1
	stride := (Headroom + room + 63) &^ 63
	arena := make([]byte, depth*stride)
	v := &Vector{
		Bufs:     make([][]byte, depth),
		Sizes:    make([]int, depth),
		Ports:    make([]PortID, depth),
		MaxFrame: maxFrame,
	}
	for i := range v.Bufs {
		v.Bufs[i] = arena[i*stride : i*stride+Headroom+room : i*stride+Headroom+room]
	}
	return v
}

// Depth is the number of frames the vector holds.
func (v *Vector) Depth() int { return len(v.Bufs) }

// Room returns the receive area of buffer i: MaxFrame+1 bytes after Headroom.
func (v *Vector) Room(i int) []byte { return v.Bufs[i][Headroom:] }

// Frame returns frame i. The caller must have checked 0 <= Sizes[i] <= MaxFrame.
func (v *Vector) Frame(i int) []byte { return v.Bufs[i][Headroom : Headroom+v.Sizes[i]] }
