package fabric

import (
	"errors"
	"time"

	"github.com/umlswitch/umlswitch/frame"
)

// ErrWouldBlock is returned by Port.Write when the destination's queue is
// full. The caller may wait with WaitWritable and write the rest again.
var ErrWouldBlock = errors.New("destination queue full")

// ErrPeerGone is wrapped by Port.Write errors that mean the far end no longer
// exists (a vanished client): the caller drops the rest of the batch for that
// port at once instead of trying frame by frame.
var ErrPeerGone = errors.New("peer gone")

// ErrUnreachable is wrapped by Port.Write errors that mean the destination
// has no route now (a tunnel's peer: ENETUNREACH, EHOSTUNREACH): frames[n:]
// would fail the same way, so the caller drops them at once, counted as
// unreachable, instead of paying a system call per frame to learn it.
var ErrUnreachable = errors.New("destination unreachable")

// Port is the sending side of one switch port.
type Port interface {
	// Write sends frames in order without blocking and returns how many of
	// the leading frames were handed over. A nil error means all were sent.
	// ErrWouldBlock means the destination is full and frames[n:] were not
	// sent. An error wrapping ErrPeerGone or net.ErrClosed means no frame
	// from frames[n:] can be sent; one wrapping ErrUnreachable, that none
	// can be sent now. Any other error concerns frames[n] alone,
	// which the caller drops and counts before writing frames[n+1:]. Write
	// must be safe for concurrent use, must not keep any frame after it
	// returns, and must not allocate.
	Write(frames [][]byte) (n int, err error)

	// WaitWritable blocks until a Write may make progress or timeout passes,
	// and reports which. A port that never returns ErrWouldBlock returns true
	// at once.
	WaitWritable(timeout time.Duration) bool

	// MaxFrame is the largest frame, in bytes from the destination MAC to
	// the end of the payload, that the port sends or accepts.
	MaxFrame() int

	// Name identifies the port in logs and counters.
	Name() string

	// Close releases the port. Pending and later Writes return net.ErrClosed.
	Close() error
}

// ReceiveFunc reads one batch into v. It blocks until at least one frame is
// available or the source is closed, fills v.Sizes[i] (the datagram's true
// length, 0 for an empty one, or Rejected(reason) for one the transport
// refused) and v.Ports[i] (the ingress port, or frame.NoPort for a datagram
// that belongs to no port, which the transport counts itself) for i < n,
// and returns n. After the source is closed it returns an error for which
// errors.Is(err, net.ErrClosed) holds. Any other error is transient: the
// caller counts it and calls again. It is called by one goroutine at a time.
type ReceiveFunc func(v *frame.Vector) (n int, err error)

// Receiver is one reading side: a socket, a tap queue, or a socket shared by
// several ports, with the batch shape it needs.
type Receiver struct {
	Name     string
	Depth    int // frames per batch
	MaxFrame int // largest frame of any port it feeds
	Receive  ReceiveFunc
	// Lends says that Receive is handed a lent vector (frame.NewLentVector)
	// and takes its buffers only when frames are waiting, giving them back
	// before it parks: the many ports of listeners (daemon and BESS
	// clients) then hold no buffers while idle. Otherwise the vector owns
	// its buffers for the receiver's lifetime.
	Lends bool
}

// Registry is what a transport needs from a switch to add and remove ports
// as peers come and go. *Switch implements it, and *Fabric for its default
// switch.
type Registry interface {
	// Attach adds p and returns its id. The switch owns p from then on and
	// closes it on Detach.
	Attach(p Port) (frame.PortID, error)
	// Detach removes p, forgets the addresses learned on it and closes it.
	// It takes the port, not its id, because ids are reused: a late Detach
	// from a transport can never remove a newer port. Detaching a port that
	// is not attached does nothing.
	Detach(p Port)
	// Serve runs r on a goroutine of its own until it reports net.ErrClosed.
	Serve(r Receiver)
}

// TimeoutForever can be passed to WaitWritable by callers that hold no bound.
const TimeoutForever = time.Duration(1<<63 - 1)
