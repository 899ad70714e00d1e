package capture

import (
	"bytes"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
)

// pcapEncoder writes the classic pcap format with gopacket's pcapgo, into
// memory, so one encoding serves the file and every reader.
type pcapEncoder struct {
	buf bytes.Buffer
	w   *pcapgo.Writer
}

func (e *pcapEncoder) fileHeader(snaplen int) []byte {
	e.w = pcapgo.NewWriterNanos(&e.buf)
	e.buf.Reset()
	e.w.WriteFileHeader(uint32(snaplen), layers.LinkTypeEthernet) // writes to memory: cannot fail
	out := bytes.Clone(e.buf.Bytes())
	e.buf.Reset()
	return out
}

func (e *pcapEncoder) record(b []byte, ts int64, data []byte, orig int) []byte {
	e.buf.Reset()
	e.w.WritePacket(gopacket.CaptureInfo{Timestamp: time.Unix(0, ts), CaptureLength: len(data), Length: orig}, data)
	return append(b, e.buf.Bytes()...)
}
