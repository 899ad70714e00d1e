package daemon

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/umlswitch/umlswitch/internal/peercred"
	"github.com/umlswitch/umlswitch/internal/unixsock"
)

// A control socket's state file lists its clients: what the switch needs to
// take each back after it dies or stops and starts again, since UML's
// daemon transport and VDE clients handshake once and then only send to
// the data address they were given. It sits next to the control socket
// (CTL.state), mode 0600, and is replaced whole shortly after every attach
// and detach.

// stateFormat names the file's layout; a file of another is ignored.
const stateFormat = "umlswitch-daemon-state/1"

// maxStateClients bounds what a state file may list (and so what a
// damaged one can make the switch try).
const maxStateClients = 1 << 16

// maxStateBytes bounds the file: its clients at about 400 bytes each.
const maxStateBytes = maxStateClients * 512

// savedClient is one client in the state file.
type savedClient struct {
	Addr   string   `json:"addr"`             // the client's data address: its 110-byte sockaddr_un, in hex
	Local  string   `json:"local"`            // the switch's data socket's abstract name, without the leading NUL
	UID    uint32   `json:"uid"`              // its control connection's uid, gid and groups when it attached
	GID    uint32   `json:"gid"`              // (allow_uid= and allow_gid= are checked again)
	Groups []uint32 `json:"groups,omitempty"` //
	Number int      `json:"number,omitempty"` // the port number it asked for (VDE), 0 for none
	Label  string   `json:"label,omitempty"`  // its description or pid, for logs
}

type stateDoc struct {
	Format  string        `json:"format"`
	Ctl     string        `json:"ctl"` // the control socket it belongs to
	Clients []savedClient `json:"clients"`
}

// localPrefix starts every data socket name the switch binds.
const localPrefix = "umlswitch-"

// encodeState renders the clients of the control socket ctl.
func encodeState(ctl string, clients []savedClient) []byte {
	if clients == nil {
		clients = []savedClient{}
	}
	b, _ := json.MarshalIndent(stateDoc{Format: stateFormat, Ctl: ctl, Clients: clients}, "", " ")
	return append(b, '\n')
}

// parseState reads a state file of the control socket ctl, checking every
// client: an address that is a unix address, a data socket name the switch
// could have made, a port number in range.
func parseState(data []byte, ctl string) ([]savedClient, error) {
	var doc stateDoc
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	switch {
	case doc.Format != stateFormat:
		return nil, fmt.Errorf("state: format %q, want %q", doc.Format, stateFormat)
	case doc.Ctl != ctl:
		return nil, fmt.Errorf("state: of control socket %q, not %q", doc.Ctl, ctl)
	case len(doc.Clients) > maxStateClients:
		return nil, fmt.Errorf("state: %d clients, more than %d", len(doc.Clients), maxStateClients)
	}
	seen := make(map[string]bool, len(doc.Clients))
	for i, c := range doc.Clients {
		if _, err := c.addr(); err != nil {
			return nil, fmt.Errorf("state: client %d: %w", i, err)
		}
		if !strings.HasPrefix(c.Local, localPrefix) || len(c.Local) > unixsock.AddrLen-3 || strings.ContainsRune(c.Local, 0) {
			return nil, fmt.Errorf("state: client %d: data socket name %q is not one the switch makes", i, c.Local)
		}
		if seen[c.Local] {
			return nil, fmt.Errorf("state: client %d: data socket name %q listed twice", i, c.Local)
		}
		seen[c.Local] = true
		if c.Number < 0 || c.Number > 65535 {
			return nil, fmt.Errorf("state: client %d: port number %d", i, c.Number)
		}
		if len(c.Groups) > 65536 {
			return nil, fmt.Errorf("state: client %d: %d groups", i, len(c.Groups))
		}
		if len(c.Label) > 256 {
			return nil, fmt.Errorf("state: client %d: label of %d bytes", i, len(c.Label))
		}
	}
	return doc.Clients, nil
}

// addr is the client's data address.
func (c *savedClient) addr() (unixsock.Addr, error) {
	b, err := hex.DecodeString(c.Addr)
	if err != nil {
		return unixsock.Addr{}, fmt.Errorf("address: %w", err)
	}
	if len(b) != unixsock.AddrLen {
		return unixsock.Addr{}, fmt.Errorf("address of %d bytes, want %d", len(b), unixsock.AddrLen)
	}
	a, err := unixsock.FromBytes(b)
	if err != nil {
		return a, err
	}
	if !a.IsAbstract() && a.FilesystemPath() == "" {
		return a, errors.New("address names no socket")
	}
	return a, nil
}

// saved is how the state file lists a client of credentials cred that
// attached with req and got the data socket named local.
func saved(req *Request, local unixsock.Addr, cred peercred.Cred) savedClient {
	return savedClient{Addr: hex.EncodeToString(req.Addr[:]), Local: abstractName(local), UID: cred.UID, GID: cred.GID,
		Groups: cred.Groups, Number: req.WantPort, Label: label(req)}
}

// cred is the client's credentials as they were when it attached.
func (c *savedClient) cred() peercred.Cred {
	return peercred.Cred{UID: c.UID, GID: c.GID, Groups: c.Groups}
}

// abstractName is an abstract address's name, without its leading NUL.
func abstractName(a unixsock.Addr) string {
	name := a[3:] // family (2 bytes), then the NUL that makes it abstract
	if i := strings.IndexByte(string(name[:]), 0); i >= 0 {
		name = name[:i]
	}
	return string(name)
}
