package extcap

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Select says which frames of a capture to keep.
type Select struct {
	Filter    *Filter   // nil: every frame
	Port      string    // "": every port
	Direction Direction // "" or Both: either
}

func (s Select) all() bool {
	return s.Filter == nil && s.Port == "" && (s.Direction == "" || s.Direction == Both)
}

// pcapng block types and options the copy reads.
const (
	blockSHB = 0x0A0D0D0A
	blockIDB = 0x00000001
	blockSPB = 0x00000003
	blockEPB = 0x00000006

	optEnd      = 0
	optIfName   = 2 // in an IDB
	optEPBFlags = 2 // in an EPB: bits 0-1 are the direction, 1 inbound, 2 outbound

	byteOrderMagic = 0x1A2B3C4D
)

// maxBlock bounds a block: the switch's frames are at most 64 KiB, and a
// broken stream must not make the extcap allocate gigabytes.
const maxBlock = 1 << 24

// Copy copies the pcapng stream src to dst block by block, leaving out
// the packet blocks of frames sel does not keep; every other block
// (section and interface descriptions, statistics) is copied as it is,
// so interface numbers, names and directions stay those of the switch.
// It writes out what it has whenever src has nothing more at hand, so a
// live capture shows frames as they come. It returns nil when src ends
// between blocks, io.ErrUnexpectedEOF when it ends inside one, dst's
// error as it is, and an error for a malformed stream.
func Copy(dst io.Writer, src io.Reader, sel Select) error {
	br := bufio.NewReaderSize(src, 256<<10)
	bw := bufio.NewWriterSize(dst, 256<<10)
	c := copier{sel: sel}
	for {
		block, err := c.next(br)
		if err == io.EOF {
			return bw.Flush()
		}
		if err != nil {
			bw.Flush()
			return err
		}
		if c.keep(block) {
			if _, err := bw.Write(block); err != nil {
				return err
			}
		}
		if br.Buffered() == 0 {
			if err := bw.Flush(); err != nil {
				return err
			}
		}
	}
}

type copier struct {
	sel     Select
	order   binary.ByteOrder // the section's; nil before the first
	ifnames []string         // the section's interfaces, by number
	buf     []byte
}

// next reads one whole block.
func (c *copier) next(br *bufio.Reader) ([]byte, error) {
	head, err := br.Peek(12)
	if err != nil {
		if len(head) == 0 && err == io.EOF {
			return nil, io.EOF
		}
		if err == io.EOF {
			return nil, io.ErrUnexpectedEOF
		}
		return nil, err
	}
	if binary.LittleEndian.Uint32(head) == blockSHB { // the same in either order
		switch {
		case binary.LittleEndian.Uint32(head[8:]) == byteOrderMagic:
			c.order = binary.LittleEndian
		case binary.BigEndian.Uint32(head[8:]) == byteOrderMagic:
			c.order = binary.BigEndian
		default:
			return nil, errors.New("pcapng: a section header without the byte-order magic")
		}
		c.ifnames = c.ifnames[:0]
	} else if c.order == nil {
		return nil, errors.New("pcapng: the stream does not start with a section header")
	}
	n := c.order.Uint32(head[4:])
	if n < 12 || n%4 != 0 || n > maxBlock {
		return nil, fmt.Errorf("pcapng: a block of %d bytes", n)
	}
	if cap(c.buf) < int(n) {
		c.buf = make([]byte, n)
	}
	b := c.buf[:n]
	if _, err := io.ReadFull(br, b); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	if c.order.Uint32(b[n-4:]) != n {
		return nil, fmt.Errorf("pcapng: a block whose lengths differ (%d, %d)", n, c.order.Uint32(b[n-4:]))
	}
	if c.order.Uint32(b) == blockIDB {
		c.ifnames = append(c.ifnames, c.ifname(b))
	}
	return b, nil
}

// ifname is an IDB's if_name option, "" without one.
func (c *copier) ifname(b []byte) string {
	if len(b) < 20 {
		return ""
	}
	v, _ := c.option(b[16:len(b)-4], optIfName)
	return string(v)
}

// option finds option code in an options area; malformed options end the
// search.
func (c *copier) option(opts []byte, code uint16) ([]byte, bool) {
	for len(opts) >= 4 {
		oc, ol := c.order.Uint16(opts), int(c.order.Uint16(opts[2:]))
		if oc == optEnd || 4+ol > len(opts) {
			return nil, false
		}
		if oc == code {
			return opts[4 : 4+ol], true
		}
		opts = opts[min(4+(ol+3)&^3, len(opts)):]
	}
	return nil, false
}

// keep decides a whole block: packet blocks by sel, others always.
func (c *copier) keep(b []byte) bool {
	if c.sel.all() {
		return true
	}
	switch c.order.Uint32(b) {
	case blockEPB:
		if len(b) < 32 {
			return false
		}
		id := c.order.Uint32(b[8:])
		caplen := c.order.Uint32(b[20:])
		if uint64(caplen) > uint64(len(b)-32) {
			return false // a frame longer than its block: malformed
		}
		data := b[28 : 28+caplen]
		if c.sel.Port != "" && (uint64(id) >= uint64(len(c.ifnames)) || c.ifnames[id] != c.sel.Port) {
			return false
		}
		if c.sel.Direction == In || c.sel.Direction == Out {
			var dir uint32
			if v, ok := c.option(b[28+(caplen+3)&^3:len(b)-4], optEPBFlags); ok && len(v) == 4 {
				dir = c.order.Uint32(v) & 3
			}
			want := uint32(2)
			if c.sel.Direction == In {
				want = 1
			}
			if dir != want {
				return false
			}
		}
		return c.sel.Filter.Match(data)
	case blockSPB: // no interface (the first) and no direction
		if c.sel.Port != "" || (c.sel.Direction != "" && c.sel.Direction != Both) || len(b) < 16 {
			return false
		}
		n := min(int(c.order.Uint32(b[8:])), len(b)-16)
		return c.sel.Filter.Match(b[12 : 12+n])
	}
	return true
}
