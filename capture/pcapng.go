package capture

import (
	"encoding/binary"
	"slices"
)

// The pcapng blocks a mirror writes (draft-ietf-opsawg-pcapng). gopacket's
// pcapgo.NgWriter writes these too, but it cannot put options on a packet
// block (the direction flag every packet here carries) and it ties
// interface numbers to one output, while a mirror replays its header and
// interfaces to every reader that joins and to every rotated file; so the
// blocks are appended here, and pcapgo reads them back in the tests.
const (
	blockSHB = 0x0A0D0D0A
	blockIDB = 0x00000001
	blockEPB = 0x00000006
	blockISB = 0x00000005

	optEnd      = 0
	optComment  = 1
	optIfName   = 2
	optTSResol  = 9
	optEPBFlags = 2
	optISBStart = 2
	optISBEnd   = 3
	optISBRecv  = 4
	optISBDrop  = 5

	linkTypeEthernet = 1
)

var le = binary.LittleEndian

// block appends a block of type typ whose body fill appends, with the
// length fields around it.
func block(b []byte, typ uint32, fill func([]byte) []byte) []byte {
	start := len(b)
	b = le.AppendUint32(b, typ)
	b = le.AppendUint32(b, 0) // length, patched below
	b = fill(b)
	n := len(b) - start + 4
	le.PutUint32(b[start+4:], uint32(n))
	return le.AppendUint32(b, uint32(n))
}

// option appends an option with its value padded to 4 bytes.
func option(b []byte, code uint16, v []byte) []byte {
	b = le.AppendUint16(b, code)
	b = le.AppendUint16(b, uint16(len(v)))
	b = append(b, v...)
	for pad := (4 - len(v)%4) % 4; pad > 0; pad-- {
		b = append(b, 0)
	}
	return b
}

func endOptions(b []byte) []byte { return le.AppendUint32(b, optEnd) }

// appendSHB starts a section.
func appendSHB(b []byte) []byte {
	return block(b, blockSHB, func(b []byte) []byte {
		b = le.AppendUint32(b, 0x1A2B3C4D) // byte-order magic
		b = le.AppendUint16(b, 1)          // version 1.0
		b = le.AppendUint16(b, 0)
		b = le.AppendUint64(b, ^uint64(0)) // section length unknown
		b = option(b, optComment, []byte("umlswitch mirror"))
		return endOptions(b)
	})
}

// appendIDB describes one switch port as an Ethernet interface with
// nanosecond timestamps.
func appendIDB(b []byte, name string, snaplen int) []byte {
	return block(b, blockIDB, func(b []byte) []byte {
		b = le.AppendUint16(b, linkTypeEthernet)
		b = le.AppendUint16(b, 0)
		b = le.AppendUint32(b, uint32(snaplen))
		b = option(b, optIfName, []byte(name))
		b = option(b, optTSResol, []byte{9})
		return endOptions(b)
	})
}

// maxBlockOverhead bounds the bytes a frame's block adds to the frame: an
// EPB's header, padding, flags option and trailer (a pcap record's header
// is less).
const maxBlockOverhead = 48

// appendEPB records one frame on interface id, seen in direction dir
// (epb_flags: 1 inbound, 2 outbound). Written field by field into room
// grown once: it runs for every captured frame, under the mirror's lock.
func appendEPB(b []byte, id uint32, ts int64, data []byte, orig int, dir uint32) []byte {
	padded := (len(data) + 3) &^ 3
	n := 28 + padded + 12 + 4
	start := len(b)
	b = slices.Grow(b, n)[:start+n]
	e := b[start:]
	le.PutUint32(e, blockEPB)
	le.PutUint32(e[4:], uint32(n))
	le.PutUint32(e[8:], id)
	le.PutUint32(e[12:], uint32(uint64(ts)>>32))
	le.PutUint32(e[16:], uint32(ts))
	le.PutUint32(e[20:], uint32(len(data)))
	le.PutUint32(e[24:], uint32(orig))
	copy(e[28:], data)
	clear(e[28+len(data) : 28+padded])
	o := e[28+padded:]
	le.PutUint16(o, optEPBFlags)
	le.PutUint16(o[2:], 4)
	le.PutUint32(o[4:], dir)
	le.PutUint32(o[8:], optEnd)
	le.PutUint32(o[12:], uint32(n))
	return b
}

// appendISB writes interface id's statistics: frames the mirror saw for it
// and frames it had to drop.
func appendISB(b []byte, id uint32, start, end int64, recv, drop uint64) []byte {
	return block(b, blockISB, func(b []byte) []byte {
		b = le.AppendUint32(b, id)
		b = le.AppendUint32(b, uint32(uint64(end)>>32))
		b = le.AppendUint32(b, uint32(end))
		var v [8]byte
		for _, o := range []struct {
			code uint16
			val  uint64
		}{{optISBStart, uint64(start)}, {optISBEnd, uint64(end)}} {
			le.PutUint32(v[:], uint32(o.val>>32))
			le.PutUint32(v[4:], uint32(o.val))
			b = option(b, o.code, v[:])
		}
		le.PutUint64(v[:], recv)
		b = option(b, optISBRecv, v[:])
		le.PutUint64(v[:], drop)
		b = option(b, optISBDrop, v[:])
		return endOptions(b)
	})
}
