package daemon

import (
	"fmt"
	"net"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/umlswitch/umlswitch/internal/pollfd"
	"github.com/umlswitch/umlswitch/internal/unixsock"
)

// ClientConfig describes a client of the daemon protocol, for tests and for
// the benchmark's load generator.
type ClientConfig struct {
	Ctl string // control socket path
	// ConnectBack makes the client behave like libvdeplug: connect its data
	// socket to the switch's reply address. Without it the client behaves
	// like UML: it only sendto()s that address and never connects.
	ConnectBack bool
	// LocalPath binds the data socket at a filesystem path, which is
	// unlinked once connected (as libvdeplug does); empty means a unique
	// abstract name padded to 108 bytes, as UML uses.
	LocalPath   string
	Description string // sent after a version 3 request, as VDE clients do
	Port        int    // the port number asked for, as vde_plug vde://DIR[N] does; 0 for any
	Blocking    bool   // leave the data socket in blocking mode
	Timeout     time.Duration
}

// Client is one connected client: a control connection and a data socket.
type Client struct {
	Ctl    *net.UnixConn
	Fd     int           // data socket
	Local  unixsock.Addr // the data socket's address as announced
	Remote unixsock.Addr // the switch's data address from the reply
	cfg    ClientConfig
}

// Dial performs the version 3 handshake.
func Dial(cfg ClientConfig) (*Client, error) {
	if cfg.Timeout == 0 {
		cfg.Timeout = 5 * time.Second
	}
	ctl, err := net.DialTimeout("unix", cfg.Ctl, cfg.Timeout)
	if err != nil {
		return nil, fmt.Errorf("daemon client: %w", err)
	}
	c := &Client{Ctl: ctl.(*net.UnixConn), Fd: -1, cfg: cfg}
	if err := c.handshake(); err != nil {
		c.Close()
		return nil, fmt.Errorf("daemon client %s: %w", cfg.Ctl, err)
	}
	return c, nil
}

func (c *Client) handshake() error {
	typ := unix.SOCK_DGRAM | unix.SOCK_CLOEXEC
	if !c.cfg.Blocking {
		typ |= unix.SOCK_NONBLOCK
	}
	fd, err := unix.Socket(unix.AF_UNIX, typ, 0)
	if err != nil {
		return err
	}
	c.Fd = fd
	if c.cfg.LocalPath != "" {
		if c.Local, err = unixsock.FromPath(c.cfg.LocalPath); err != nil {
			return err
		}
	} else {
		c.Local = unixsock.UniqueAbstract("umlswitch-client", os.Getpid())
	}
	if err := unixsock.Bind(fd, &c.Local); err != nil {
		return fmt.Errorf("bind: %w", err)
	}
	c.Ctl.SetDeadline(time.Now().Add(c.cfg.Timeout))
	defer c.Ctl.SetDeadline(time.Time{})
	if _, err := c.Ctl.Write(appendV3(nil, reqNewControl|uint32(c.cfg.Port)<<8, &c.Local, c.cfg.Description)); err != nil {
		return fmt.Errorf("request: %w", err)
	}
	var reply [unixsock.AddrLen]byte
	n, err := c.Ctl.Read(reply[:])
	if err != nil {
		return fmt.Errorf("reply: %w", err)
	}
	if n != unixsock.AddrLen { // what UML insists on
		return fmt.Errorf("reply of %d bytes, want %d", n, unixsock.AddrLen)
	}
	c.Remote = unixsock.Addr(reply)
	if c.cfg.ConnectBack {
		if err := unixsock.Connect(fd, &c.Remote); err != nil {
			return fmt.Errorf("connect to %s: %w", c.Remote.String(), err)
		}
		if c.cfg.LocalPath != "" {
			os.Remove(c.cfg.LocalPath)
		}
	}
	return nil
}

// Send sends one frame the way the configured client kind does.
func (c *Client) Send(f []byte) error {
	if c.cfg.ConnectBack {
		_, err := unix.Write(c.Fd, f)
		return err
	}
	_, err := unixsock.Sendto(c.Fd, f, 0, &c.Remote)
	return err
}

// Recv reads one frame, waiting up to timeout. It allocates nothing.
func (c *Client) Recv(b []byte, timeout time.Duration) (int, error) {
	return pollfd.ReadTimeout(c.Fd, b, timeout)
}

// Close closes both sockets: the switch sees EOF and removes the port.
func (c *Client) Close() {
	if c.Fd >= 0 {
		unix.Close(c.Fd)
		c.Fd = -1
	}
	c.Ctl.Close()
	if c.cfg.LocalPath != "" {
		os.Remove(c.cfg.LocalPath)
	}
}
