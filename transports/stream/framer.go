package stream

import "encoding/binary"

// prefixLen is QEMU's frame header on a stream: the frame's length, a
// 32-bit big-endian number.
const prefixLen = 4

// Framer cuts QEMU's length-prefixed frames out of a byte stream read in
// pieces of any size. A prefix or a frame split across reads waits in its
// buffer for the rest. It allocates only in NewFramer.
type Framer struct {
	buf    []byte
	r, w   int // unconsumed bytes are buf[r:w]
	max    int
	broken bool // a length over max was seen: the stream cannot be followed
}

// minFramerBuf is the least a framer reads into at once.
const minFramerBuf = 64 << 10

// NewFramer returns a framer for frames of at most maxFrame bytes.
func NewFramer(maxFrame int) *Framer {
	return &Framer{buf: make([]byte, max(minFramerBuf, 2*(prefixLen+maxFrame))), max: maxFrame}
}

// Space is where the next read goes: the free room after the buffered
// bytes, moving them to the front first when the room could not hold a
// whole frame. It is empty only while whole frames wait to be taken with
// Next.
func (f *Framer) Space() []byte {
	if f.r == f.w {
		f.r, f.w = 0, 0
	} else if f.r > 0 && len(f.buf)-f.w < prefixLen+f.max {
		f.w = copy(f.buf, f.buf[f.r:f.w])
		f.r = 0
	}
	return f.buf[f.w:]
}

// Fill records that n bytes were read into Space.
func (f *Framer) Fill(n int) { f.w += n }

// Next takes the next frame. ok is false when no whole frame (or telling
// prefix) is buffered. Otherwise size is the length the prefix gave and fr
// the frame, valid until the next Space; a size of 0 (skipped, the stream
// goes on) or over the largest frame comes with a nil fr. After a size over
// the largest frame the stream is Broken and Next reports nothing more.
func (f *Framer) Next() (fr []byte, size int, ok bool) {
	if f.broken || f.w-f.r < prefixLen {
		return nil, 0, false
	}
	n := binary.BigEndian.Uint32(f.buf[f.r:])
	if uint64(n) > uint64(f.max) {
		f.broken = true
		return nil, int(min(n, 1<<31-1)), true
	}
	size = int(n)
	if f.w-f.r < prefixLen+size {
		return nil, 0, false
	}
	f.r += prefixLen
	if size == 0 {
		return nil, 0, true
	}
	fr = f.buf[f.r : f.r+size]
	f.r += size
	return fr, size, true
}

// Broken reports whether a length over the largest frame was seen.
func (f *Framer) Broken() bool { return f.broken }

// Buffered is the number of bytes read but not yet taken: after the end of
// the stream, a frame cut short.
func (f *Framer) Buffered() int { return f.w - f.r }
