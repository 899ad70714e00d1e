package daemon

import (
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/umlswitch/umlswitch/internal/handover"
	"github.com/umlswitch/umlswitch/internal/sockport"
	"github.com/umlswitch/umlswitch/internal/statefile"
	"github.com/umlswitch/umlswitch/internal/unixsock"
)

// saveDelay is how soon after an attach or detach the state file is
// replaced: changes in between are written together, so that a churn of
// thousands of clients a second costs a write every saveDelay, and a crash
// loses at most the clients of the last saveDelay.
const saveDelay = 20 * time.Millisecond

// openState keeps the control socket ctl's state file, CTL.state, in the
// directory Listen found fit to hold the socket (made for owner, -1 for
// none).
func (t *Transport) openState(ctl string, owner int) error {
	var err error
	t.state, err = statefile.Open(ctl+".state", owner, saveDelay, t.log, "a restart would not take the clients back",
		func() []byte { return encodeState(t.ctlPath, t.savedClients()) })
	if err == nil {
		t.state.Start()
	}
	return err
}

// load reads the clients the state file lists. A missing file is no
// client; a damaged or foreign one is reported and ignored.
func (t *Transport) loadState() []savedClient {
	data, err := t.state.Read(maxStateBytes)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	var clients []savedClient
	if err == nil {
		clients, err = parseState(data, t.ctlPath)
	}
	if err != nil {
		t.log.Warn("state file ignored: its clients are not taken back", "ctl", t.ctlPath, "err", err)
		return nil
	}
	return clients
}

// restore takes back the clients the state file lists: each gets its data
// socket again, under the same name and connected to the same client
// address, and is a port again, with no handshake: UML and VDE clients
// keep sending to that name after the switch that gave it is gone. A
// client whose address is gone (it ended meanwhile) is dropped; so is one
// whose data socket name another process holds. Restored ports have no
// control connection: a client that goes later shows as its data socket
// refusing frames (OnPeerGone).
func (t *Transport) restore(clients []savedClient) {
	back := 0
	for _, c := range clients {
		if err := t.takeBack(c); err != nil {
			t.log.Info("client not taken back", "ctl", t.ctlPath, "client", c.Label, "err", err)
			continue
		}
		back++
	}
	if len(clients) > 0 {
		t.log.Info("clients taken back", "ctl", t.ctlPath, "clients", back, "of", len(clients))
	}
	t.saveSoon() // the file now lists those taken back
}

func (t *Transport) takeBack(c savedClient) error {
	to, err := c.addr()
	if err != nil {
		return err
	}
	if ok, _ := t.gate.Admit(c.cred()); !ok {
		return fmt.Errorf("uid %d is not in the socket's allow_uid= or allow_gid= now", c.UID)
	}
	if err := t.cfg.Clients.Acquire(c.UID); err != nil {
		return err
	}
	// A hot upgrade hands the very sockets over; a restart makes them anew.
	fd, ctl, handed := t.handedOver(c)
	how := "handed over"
	if !handed {
		how = "taken back"
		if fd, err = reconnect(&to, c); err != nil {
			t.cfg.Clients.Release(c.UID)
			return err
		}
	}
	seq := t.seq.Add(1)
	var port *sockport.Port
	cfg := sockport.Config{
		Name: fmt.Sprintf("daemon#%d %s (%s)", seq, c.Label, how), Depth: t.cfg.Depth, MaxFrame: t.cfg.MaxFrame,
		Number:     c.Number,
		OnPeerGone: func() { t.dropTakenBack(port) },
	}
	if ctl != nil {
		cfg.OnClose = func() { ctl.Close() }
		cfg.OnPeerGone = func() { ctl.Close() } // watchControl detaches it
	}
	port, err = sockport.New(fd, cfg)
	if err != nil {
		t.cfg.Clients.Release(c.UID)
		return err
	}
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		port.Close()
		t.cfg.Clients.Release(c.UID)
		return errors.New("closing")
	}
	if err = t.numberFree(c.Number, c.UID); err == nil {
		t.ports[port] = client{uid: c.UID, number: c.Number, saved: c, takenBack: true, ctl: ctl}
	}
	t.mu.Unlock()
	if err == nil {
		err = t.attachTakenBack(port)
	}
	if err != nil {
		t.forget(port)
		port.Close()
		t.cfg.Clients.Release(c.UID)
		return err
	}
	if ctl != nil {
		t.wg.Add(1)
		go t.watchControl(ctl, port)
	}
	return nil
}

// attachTakenBack adds a restored port and starts its reader.
func (t *Transport) attachTakenBack(port *sockport.Port) error {
	id, err := t.reg.Attach(port)
	if err != nil {
		return err
	}
	t.reg.Serve(port.Receiver(id))
	return nil
}

// reconnect makes a taken-back client's data socket as dataSocket made it
// (connected first, then named), under its old name. A filesystem address
// is connected only if the client's uid owns the socket file: there is no
// control connection to take the client's identity from.
func reconnect(to *unixsock.Addr, c savedClient) (int, error) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("data socket: %w", err)
	}
	if to.IsAbstract() {
		err = unixsock.Connect(fd, to)
	} else {
		err = connectOwned(fd, to, c.UID)
	}
	if err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("the client's data socket %s is gone: %w", to.String(), err)
	}
	if peer, err := unixsock.Getpeername(fd); err == nil && unixsock.IsOwn(peer) {
		unix.Close(fd)
		return -1, fmt.Errorf("client data socket %s is one of the switch's own sockets", to.String())
	}
	local := unixsock.Abstract(c.Local)
	if err := unixsock.Bind(fd, &local); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("data socket name @%s: %w", c.Local, err)
	}
	return fd, nil
}

// dropTakenBack detaches a restored port whose client has gone. It runs on
// a writer's goroutine, so the detach runs on one of the transport's own.
func (t *Transport) dropTakenBack(port *sockport.Port) {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return
	}
	t.wg.Add(1)
	t.mu.Unlock()
	go func() {
		defer t.wg.Done()
		t.reg.Detach(port)
		t.mu.Lock()
		c, ok := t.ports[port]
		t.mu.Unlock()
		t.forget(port)
		if ok {
			t.cfg.Clients.Release(c.uid)
			t.log.Info("client gone", "ctl", t.ctlPath, "client", c.saved.Label)
		}
	}()
}

// saveSoon has the state file replaced within saveDelay.
func (t *Transport) saveSoon() { t.state.Soon() }

// savedClients are the clients the state file lists now.
func (t *Transport) savedClients() []savedClient {
	t.mu.Lock()
	defer t.mu.Unlock()
	clients := make([]savedClient, 0, len(t.ports))
	for _, c := range t.ports {
		if c.saved.Local != "" {
			clients = append(clients, c.saved)
		}
	}
	return clients
}

// stopSaving writes the state once more, with every client still attached
// (Close detaches them next, and they are to be taken back by the next
// switch), and writes no more. A switch that handed over leaves the file
// to the new one.
func (t *Transport) stopSaving() { t.state.Stop(!handover.Leaving()) }

// Kinds of the sockets a daemon transport hands over in a hot upgrade,
// each keyed by the control socket's path and the client's data socket
// name (handoverKey).
const (
	handedData    = "daemon-data"
	handedControl = "daemon-control"
)

func (t *Transport) handoverKey(local string) string { return t.ctlPath + "\x00" + local }

// HandOver gives a new switch process (a hot upgrade) what it needs to
// serve this control socket's clients without their noticing: the state
// file is written now, and every client's data socket and control
// connection go along as duplicates. The control socket itself is handed
// over as a listener (unixsock.Listeners).
func (t *Transport) HandOver() []handover.Item {
	t.state.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	var items []handover.Item
	for port, c := range t.ports {
		if c.saved.Local == "" {
			continue // version 0: its frames come on the shared data socket
		}
		key := t.handoverKey(c.saved.Local)
		var data *os.File
		port.Sockopt(func(fd int) error {
			nfd, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
			if err == nil {
				data = os.NewFile(uintptr(nfd), "data "+c.saved.Label)
			}
			return err
		})
		if data == nil {
			continue // closed meanwhile
		}
		items = append(items, handover.Item{Kind: handedData, Key: key, File: data})
		if c.ctl != nil {
			if f, err := handover.Dup(c.ctl, "control "+c.saved.Label); err == nil {
				items = append(items, handover.Item{Kind: handedControl, Key: key, File: f})
			}
		}
	}
	return items
}

// handedOver returns the data socket (and control connection, if it came
// too) an old switch handed over for client c, if it did.
func (t *Transport) handedOver(c savedClient) (fd int, ctl *net.UnixConn, ok bool) {
	key := t.handoverKey(c.Local)
	fd, ok = handover.TakeFD(handedData, key)
	if !ok {
		return -1, nil, false
	}
	if it, ok := handover.Take(handedControl, key); ok {
		if conn, err := net.FileConn(it.File); err == nil {
			ctl, _ = conn.(*net.UnixConn)
		}
		it.File.Close()
	}
	return fd, ctl, true
}

// watchControl detaches a client taken over with its control connection
// when that connection ends, as serveClient does for the clients it
// attached.
func (t *Transport) watchControl(c *net.UnixConn, port *sockport.Port) {
	defer t.wg.Done()
	var buf [64]byte
	for {
		if _, err := c.Read(buf[:]); err != nil {
			break
		}
	}
	t.mu.Lock()
	cl, ok := t.ports[port]
	t.mu.Unlock()
	if !ok {
		return
	}
	t.reg.Detach(port)
	t.forget(port)
	t.cfg.Clients.Release(cl.uid)
}
