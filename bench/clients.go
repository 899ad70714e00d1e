package bench

import (
	"fmt"
	"net/netip"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/umlswitch/umlswitch/frame"
	"github.com/umlswitch/umlswitch/internal/sockport"
	"github.com/umlswitch/umlswitch/internal/unixsock"
	"github.com/umlswitch/umlswitch/internal/xsk"
	"github.com/umlswitch/umlswitch/transports/daemon"
	"github.com/umlswitch/umlswitch/transports/gre"
	"github.com/umlswitch/umlswitch/transports/l2tpv3"
	"github.com/umlswitch/umlswitch/transports/stream"
	"github.com/umlswitch/umlswitch/transports/vxlan"
)

// client is one generator port's socket, as the kind of client it plays.
type client struct {
	fd    int
	hdr   []byte // sent in front of every frame (tunnels)
	to    []byte // address of every send, for clients that never connect (UML's daemon)
	close func()
	// framer, for a connection carrying QEMU's stream framing, cuts the
	// records it reads; nil for datagram and packet sockets.
	framer *stream.Framer
	// tagged: the port is on a trunk, and its frames carry an 802.1Q tag of
	// benchVLAN after the source address (counted within their size).
	tagged bool
	// xsk, for a generator port on AF_XDP (-transport xdp), is its socket;
	// fd is the socket's, for poll.
	xsk *xsk.Socket
}

// benchVLAN is the VLAN of the vlan-access and vlan-trunk layouts.
const benchVLAN = 10

// frame is a frame of size bytes from src to dst as this client sends
// them: tagged on a trunk.
func (c *client) frame(dst, src frame.MAC, size int) []byte {
	f := ether(dst, src, size)
	if c.tagged {
		t := frame.MakeTag(frame.TPID8021Q, benchVLAN)
		copy(f[12:], t[:])
		f[16], f[17] = 0x88, 0xb5
	}
	return f
}

// sender returns a function that sends f once, without blocking where
// the socket keeps datagrams apart (EAGAIN when full), and whole, waiting
// for room, where it is a stream: learning and latency frames.
func (c *client) sender(f []byte) func() error {
	if c.framer != nil {
		rec := record(f)
		return func() error { return sendAll(c.fd, rec) }
	}
	if c.xsk != nil {
		one := [][]byte{f}
		return func() error {
			n, err := c.xsk.Transmit(one)
			if n == 0 && err == nil {
				return unix.EAGAIN
			}
			return err
		}
	}
	b := c.batch(1, f)
	return func() error { _, err := b.Send(c.fd, 0, 1, 0); return err }
}

// readOne takes the next datagram (with a tunnel's headers) or stream
// record without blocking: EAGAIN when nothing waits. What it returns is
// valid until the next call.
func (c *client) readOne(buf []byte) ([]byte, error) {
	if c.xsk != nil {
		var size [1]int
		if c.xsk.Receive([][]byte{buf}, 0, size[:]) == 0 {
			return nil, unix.EAGAIN
		}
		return buf[:min(size[0], len(buf))], nil
	}
	if c.framer == nil {
		n, err := unix.Read(c.fd, buf)
		if err != nil {
			return nil, err
		}
		return buf[:n], nil
	}
	for {
		if fr, ok, err := nextRecord(c.framer); ok || err != nil {
			return fr, err
		}
		space := c.framer.Space()
		n, err := unix.Read(c.fd, space)
		switch {
		case err != nil:
			return nil, err
		case n == 0:
			return nil, errStreamEnded
		}
		c.framer.Fill(n)
	}
}

// Transport is a protocol the generator can speak: what the switch must be
// told to serve the generator's ports, and how each of them connects.
type Transport struct {
	Name string
	// Ports are -port specs for umlswitch and the relay to serve n
	// generator ports with sockets under dir and frames of size bytes; nil
	// for the daemon protocol, which every switch serves on its control
	// socket.
	Ports func(dir string, n, size int) []string
	// Setup, if set, makes what those ports need before each switch starts.
	Setup func(n, size int) error
	Dial  func(cfg GenConfig, i int) (*client, error)
	// Netns: the bench runs in a network namespace of its own (it makes
	// interfaces there).
	Netns bool
}

// Transports the generator speaks, by the names -transport takes.
var Transports = map[string]*Transport{
	"daemon": {Name: "daemon", Dial: dialDaemon},
	"bess":   {Name: "bess", Ports: bessPorts, Dial: dialBESS},
	"gre":    {Name: "gre", Ports: grePorts, Dial: dialGRE},
	"l2tpv3": {Name: "l2tpv3", Ports: l2tpPorts, Dial: dialL2TP},
	"vxlan":  {Name: "vxlan", Ports: vxlanPorts, Dial: dialVXLAN},
	"tap":    {Name: "tap", Ports: tapPorts, Dial: dialTap, Netns: true},
	"raw":    {Name: "raw", Ports: rawPorts, Setup: setupVeths, Dial: dialRaw, Netns: true},
	"xdp":    {Name: "xdp", Ports: rawPorts, Setup: setupVeths, Dial: dialXDP, Netns: true},
	"stream": {Name: "stream", Ports: streamPorts, Dial: dialStream},
}

// Tunnel peers are loopback addresses 127.0.0.10 and up; the switch is
// 127.0.0.2. Traffic never leaves the loopback interface.
const maxTunnelPorts = 200

var switchAddr = netip.MustParseAddr("127.0.0.2")

func peerAddr(i int) netip.Addr { return netip.AddrFrom4([4]byte{127, 0, 0, byte(10 + i)}) }

func dialDaemon(cfg GenConfig, i int) (*client, error) {
	cc := daemon.ClientConfig{Ctl: cfg.Ctl, ConnectBack: cfg.ConnectBack}
	tagged := cfg.TrunkCtl != "" && i%2 == 1
	if tagged {
		cc.Ctl = cfg.TrunkCtl
	}
	if cfg.ConnectBack { // as libvdeplug does; UML sends the bare 124-byte request, and uml_switch wants exactly that
		cc.Description = fmt.Sprintf("umlswitch-bench port %d", i)
	}
	c, err := daemon.Dial(cc)
	if err != nil {
		return nil, err
	}
	cl := &client{fd: c.Fd, close: c.Close, tagged: tagged}
	if !cfg.ConnectBack {
		cl.to = c.Remote[:] // UML sendto()s the reply address and never connects
	}
	return cl, nil
}

func bessPorts(dir string, _, _ int) []string {
	return []string{"-port", "transport=bess,path=" + filepath.Join(dir, "sw.bess")}
}

func dialBESS(cfg GenConfig, i int) (*client, error) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	src, _ := unixsock.FromPath(filepath.Join(cfg.Dir, fmt.Sprintf("gen%d.sock", i)))
	dst, _ := unixsock.FromPath(filepath.Join(cfg.Dir, "sw.bess"))
	unix.Unlink(src.FilesystemPath())
	if err := unixsock.Bind(fd, &src); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("bench: bess client: %w", err)
	}
	if err := unixsock.Connect(fd, &dst); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("bench: bess client: %w", err)
	}
	return &client{fd: fd, close: func() { unix.Close(fd); unix.Unlink(src.FilesystemPath()) }}, nil
}

func grePorts(_ string, n, _ int) []string {
	var args []string
	for i := 0; i < n; i++ {
		args = append(args, "-port", fmt.Sprintf("transport=gre,src=%s,dst=%s", switchAddr, peerAddr(i)))
	}
	return args
}

func dialGRE(cfg GenConfig, i int) (*client, error) {
	hdr, _ := gre.Encode(false, 0, false)
	return dialIP(unix.SOCK_RAW, gre.IPProto, peerAddr(i), 0, switchAddr, 0, hdr)
}

// l2tpSession numbers generator port i's sessions: the switch expects
// rx, the generator expects tx.
func l2tpSession(i int) (rx, tx uint32) { return uint32(1000 + i), uint32(2000 + i) }

func l2tpPorts(_ string, n, _ int) []string {
	var args []string
	for i := 0; i < n; i++ {
		rx, tx := l2tpSession(i)
		args = append(args, "-port", fmt.Sprintf("transport=l2tpv3,udp=1,src=%s,dst=%s,srcport=17001,dstport=17001,rx_session=%d,tx_session=%d",
			switchAddr, peerAddr(i), rx, tx))
	}
	return args
}

func dialL2TP(cfg GenConfig, i int) (*client, error) {
	rx, _ := l2tpSession(i)
	hdr, _ := l2tpv3.Encode(l2tpv3.Layout{UDP: true}, rx, 0)
	return dialIP(unix.SOCK_DGRAM, 0, peerAddr(i), 17001, switchAddr, 17001, hdr)
}

// vxlanVNI is generator port i's VNI.
func vxlanVNI(i int) uint32 { return uint32(5000 + i) }

func vxlanPorts(_ string, n, _ int) []string {
	var args []string
	for i := 0; i < n; i++ {
		args = append(args, "-port", fmt.Sprintf("transport=vxlan,src=%s,dst=%s,vni=%d", switchAddr, peerAddr(i), vxlanVNI(i)))
	}
	return args
}

func dialVXLAN(cfg GenConfig, i int) (*client, error) {
	hdr := vxlan.Encode(vxlanVNI(i))
	return dialIP(unix.SOCK_DGRAM, 0, peerAddr(i), 4789, switchAddr, 4789, hdr[:])
}

// vtepTransport is a generator port that is a VTEP of VNI 1 at genVTEP,
// sending to the switch's VTEP at sw.
func vtepTransport(sw netip.Addr) *Transport {
	return &Transport{Name: "vxlan", Dial: func(GenConfig, int) (*client, error) {
		hdr := vxlan.Encode(1)
		return dialIP(unix.SOCK_DGRAM, 0, genVTEP, vxlan.DefaultPort, sw, vxlan.DefaultPort, hdr[:])
	}}
}

// dialIP opens an IPv4 socket of the given type at local, connected to
// remote, as UML's gre and l2tpv3 transports do.
func dialIP(typ, proto int, local netip.Addr, lport uint16, remote netip.Addr, rport uint16, hdr []byte) (*client, error) {
	fd, err := unix.Socket(unix.AF_INET, typ|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, proto)
	if err != nil {
		return nil, fmt.Errorf("bench: socket: %w (raw sockets need root)", err)
	}
	sockport.SetBuffer(fd, unix.SO_RCVBUF, 4<<20)
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: local.As4(), Port: int(lport)}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("bench: bind %s: %w", local, err)
	}
	if err := unix.Connect(fd, &unix.SockaddrInet4{Addr: remote.As4(), Port: int(rport)}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("bench: connect %s: %w", remote, err)
	}
	return &client{fd: fd, hdr: hdr, close: func() { unix.Close(fd) }}, nil
}
