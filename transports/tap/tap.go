// Package tap is a switch port on a host tap interface, as uml_switch's -tap:
// the switch holds /dev/net/tun attached to the named tap (IFF_TAP|IFF_NO_PI,
// no packet-information header, no vnet header) and frames pass unchanged.
//
// A tap descriptor has no recvmmsg: the reader fills a batch by reading until
// EAGAIN, and writes go one frame per write(2).
package tap

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"golang.org/x/sys/unix"

	"github.com/umlswitch/umlswitch/fabric"
	"github.com/umlswitch/umlswitch/frame"
	"github.com/umlswitch/umlswitch/internal/pollfd"
)

// errDown is what writing to a tap whose interface is down gives (EIO): no
// frame of the batch can go, so the rest is dropped at once.
var errDown = fmt.Errorf("tap: interface down: %w", fabric.ErrPeerGone)

// Config describes a tap port.
type Config struct {
	Ifname   string // the tap interface; created (non-persistent) if absent
	Depth    int
	MaxFrame int
	Logger   *slog.Logger
}

// Port is a fabric.Port on a tap interface.
type Port struct {
	cfg    Config
	ifname string
	fd     *pollfd.FD

	// Receive state, used by the single reader goroutine only.
	id     frame.PortID
	rxVec  *frame.Vector
	rxN    int
	rxErr  error
	readFn func(uintptr) bool
}

var _ fabric.Port = (*Port)(nil)

// Open attaches to the tap interface cfg.Ifname. Like uml_switch, it creates
// the interface if it does not exist; such a tap goes away with the switch.
func Open(cfg Config) (*Port, error) {
	if cfg.Depth <= 0 {
		cfg.Depth = 64
	}
	if cfg.MaxFrame <= 0 {
		cfg.MaxFrame = frame.MaxFrameForMTU(frame.DefaultMTU)
	}
	if len(cfg.Ifname) == 0 || len(cfg.Ifname) >= unix.IFNAMSIZ {
		return nil, fmt.Errorf("tap: interface name %q: length not in 1..%d", cfg.Ifname, unix.IFNAMSIZ-1)
	}
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("tap %s: open /dev/net/tun: %w", cfg.Ifname, err)
	}
	ifr, err := unix.NewIfreq(cfg.Ifname)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("tap %s: %w", cfg.Ifname, err)
	}
	ifr.SetUint16(unix.IFF_TAP | unix.IFF_NO_PI)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EBUSY) {
			return nil, fmt.Errorf("tap %s: %w (is it a tun device, or a tap with other flags or already in use?)", cfg.Ifname, err)
		}
		return nil, fmt.Errorf("tap %s: TUNSETIFF: %w", cfg.Ifname, err)
	}
	// Only now can the descriptor be polled (golang/go#30426).
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("tap %s: %w", cfg.Ifname, err)
	}
	pfd, err := pollfd.New(fd, "tap "+cfg.Ifname)
	if err != nil {
		return nil, err
	}
	p := &Port{cfg: cfg, ifname: ifr.Name(), fd: pfd}
	p.readFn = p.read
	return p, nil
}

// Ifname is the interface the port is attached to.
func (p *Port) Ifname() string { return p.ifname }

// Name implements fabric.Port.
func (p *Port) Name() string { return "tap " + p.ifname }

// MaxFrame implements fabric.Port.
func (p *Port) MaxFrame() int { return p.cfg.MaxFrame }

// Write implements fabric.Port, one write(2) per frame.
func (p *Port) Write(frames [][]byte) (int, error) {
	fd, ok := p.fd.Borrow()
	if !ok {
		return 0, net.ErrClosed
	}
	defer p.fd.Return()
	for i, f := range frames {
		for {
			_, err := unix.Write(fd, f)
			if err == nil {
				break
			}
			switch err {
			case unix.EINTR:
				continue
			case unix.EAGAIN:
				return i, fabric.ErrWouldBlock
			case unix.EIO:
				return i, errDown
			}
			return i, err
		}
	}
	return len(frames), nil
}

// WaitWritable implements fabric.Port.
func (p *Port) WaitWritable(timeout time.Duration) bool { return p.fd.WaitWritable(timeout) }

// Close implements fabric.Port. A tap the switch created goes away with it.
func (p *Port) Close() error { return p.fd.Close(nil) }

// Receiver returns the reading side, marking frames with port id.
func (p *Port) Receiver(id frame.PortID) fabric.Receiver {
	p.id = id
	return fabric.Receiver{Name: p.Name(), Depth: p.cfg.Depth, MaxFrame: p.cfg.MaxFrame, Receive: p.receive}
}

func (p *Port) receive(v *frame.Vector) (int, error) {
	if p.rxVec != v {
		for i := range v.Ports {
			v.Ports[i] = p.id
		}
		p.rxVec = v
	}
	p.rxN, p.rxErr = 0, nil
	if err := p.fd.Read(p.readFn); err != nil {
		return 0, err
	}
	if p.rxN == 0 && p.rxErr != nil {
		return 0, fmt.Errorf("tap %s: read: %w", p.ifname, p.rxErr)
	}
	return p.rxN, nil
}

// read drains the tap into the batch. A read fills the room of one buffer,
// which is a byte longer than the largest frame: a frame that fills it was
// cut short by the kernel and is reported (and counted) as oversize.
func (p *Port) read(fd uintptr) bool {
	v, n := p.rxVec, 0
	limit := min(p.cfg.Depth, v.Depth())
	for n < limit {
		m, err := unix.Read(int(fd), v.Room(n))
		if err == nil {
			v.Sizes[n] = m
			n++
			continue
		}
		if err == unix.EINTR {
			continue
		}
		if err != unix.EAGAIN {
			p.rxErr = err
		}
		break
	}
	p.rxN = n
	return n > 0 || p.rxErr != nil
}
