package bench

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/umlswitch/umlswitch/internal/packetsock"
	"github.com/umlswitch/umlswitch/internal/sockport"
	"github.com/umlswitch/umlswitch/internal/xsk"
)

// Host ports: the switch's tap and raw ports, each driven by an AF_PACKET
// socket on the host side of its interface, as the kernel's own stack would
// be. They run in a network namespace of the bench's own (see inNetns), so
// the interfaces it makes are never seen outside it and vanish with it.

// tapName and vethNames name generator port i's interfaces: the switch's
// tap, or the veth pair whose first end the switch's raw port opens and
// whose second end the generator drives.
func tapName(i int) string { return fmt.Sprintf("bgtap%d", i) }
func vethNames(i int) (switchEnd, genEnd string) {
	return fmt.Sprintf("bgsw%d", i), fmt.Sprintf("bggen%d", i)
}

// hostMTU is the interface MTU that lets frames of size bytes through.
func hostMTU(size int) int { return max(1500, size-14) }

// tapPorts has the switch create each tap (as a lab's switch would), up
// and with room for the frames.
func tapPorts(_ string, n, size int) []string {
	var args []string
	for i := 0; i < n; i++ {
		args = append(args, "-port", fmt.Sprintf("transport=tap,ifname=%s,create=1,up=1,mtu=%d", tapName(i), hostMTU(size)))
	}
	return args
}

func dialTap(_ GenConfig, i int) (*client, error) { return dialPacket(tapName(i)) }

// setupVeths makes n veth pairs, up and with room for size-byte frames;
// pairs a previous run made are reused.
func setupVeths(n, size int) error {
	for i := 0; i < n; i++ {
		sw, gen := vethNames(i)
		if _, err := netlink.LinkByName(sw); err != nil {
			// One queue each way: frames a socket sends on queue 0 arrive
			// on the other end's queue 0, where its one AF_XDP socket is.
			veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: sw, NumTxQueues: 1, NumRxQueues: 1}, PeerName: gen}
			if err := netlink.LinkAdd(veth); err != nil {
				return fmt.Errorf("bench: veth %s: %w", sw, err)
			}
		}
		for _, name := range []string{sw, gen} {
			link, err := netlink.LinkByName(name)
			if err == nil {
				err = netlink.LinkSetMTU(link, hostMTU(size))
			}
			if err == nil {
				err = netlink.LinkSetUp(link)
			}
			if err != nil {
				return fmt.Errorf("bench: veth %s: %w", name, err)
			}
		}
	}
	return nil
}

func rawPorts(_ string, n, _ int) []string {
	var args []string
	for i := 0; i < n; i++ {
		sw, _ := vethNames(i)
		args = append(args, "-port", "transport=raw,ifname="+sw)
	}
	return args
}

func dialRaw(_ GenConfig, i int) (*client, error) {
	_, gen := vethNames(i)
	return dialPacket(gen)
}

// dialXDP opens an AF_XDP socket on generator port i's end of its veth,
// with an XDP program of its own there: the generator's frames then cost
// the kernel no skb either, and it is not the limit (-transport xdp).
func dialXDP(_ GenConfig, i int) (*client, error) {
	_, gen := vethNames(i)
	ifi, err := net.InterfaceByName(gen)
	if err != nil {
		return nil, fmt.Errorf("bench: %s: %w", gen, err)
	}
	s, err := xsk.Open(xsk.Config{Ifindex: ifi.Index})
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	prog, err := xsk.Attach(ifi.Index, nil)
	if err == nil {
		if err = prog.Register(0, s); err != nil {
			prog.Close()
		}
	}
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("bench: %w", err)
	}
	return &client{fd: s.Fd(), xsk: s, close: func() { s.Close(); prog.Close() }}, nil
}

// dialPacket opens a packet socket on ifname that does not see its own
// transmissions, waiting up to two seconds for the interface to appear
// (a tap exists once the switch has created it).
func dialPacket(ifname string) (*client, error) {
	var fd int
	var err error
	for end := time.Now().Add(2 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if fd, err = packetsock.Open(ifname); err == nil || time.Now().After(end) {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("bench: %s: %w", ifname, err)
	}
	sockport.SetBuffer(fd, unix.SO_RCVBUF, 4<<20)
	return &client{fd: fd, close: func() { unix.Close(fd) }}, nil
}

// netnsEnv marks a bench process that already runs in its own namespace.
const netnsEnv = "UMLSWITCH_BENCH_NETNS"

// inNetns reports whether this process is the bench re-run in a network
// namespace of its own; if not, reexecInNetns makes it so.
func inNetns() bool { return os.Getenv(netnsEnv) == "1" }

// reexecInNetns runs the bench exe with args again in a new network
// namespace and returns its exit status. The switches it starts inherit
// the namespace, so the taps and veths of the run are private to it and
// the kernel removes them when the last process in it exits.
func reexecInNetns(exe string, args []string, stdout, stderr io.Writer) (int, error) {
	cmd := exec.Command(exe, args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = nil, stdout, stderr
	cmd.Env = append(os.Environ(), netnsEnv+"=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET}
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0, nil
	case errors.As(err, &exit):
		return exit.ExitCode(), nil
	default:
		return 0, fmt.Errorf("a network namespace for the host ports: %w (it needs root)", err)
	}
}

// quietNetns turns IPv6 off in the bench's namespace: otherwise each
// interface brought up sends router solicitations and neighbour discovery
// that the generator would count as frames.
func quietNetns() {
	for _, f := range []string{"all", "default"} {
		os.WriteFile("/proc/sys/net/ipv6/conf/"+f+"/disable_ipv6", []byte("1"), 0)
	}
}
