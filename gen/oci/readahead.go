package oci

import (
	"hash"
	"io"
)

// readAheadChunk is the unit the read-ahead goroutine reads and hashes.
const readAheadChunk = 256 << 10

// readAhead reads r on its own goroutine, a few chunks ahead of the
// caller, and hashes what it reads into h there: a layer's blob digest then
// costs the goroutine that decompresses and parses the layer nothing. h
// holds everything read once Read has returned io.EOF (or another error of
// r); close stops the goroutine early.
type readAhead struct {
	full chan readAheadChunkOf
	free chan []byte
	done chan struct{}
	cur  readAheadChunkOf
	off  int
}

type readAheadChunkOf struct {
	data []byte
	err  error // r's error after data (io.EOF at the end)
}

func newReadAhead(r io.Reader, h hash.Hash) *readAhead {
	const depth = 4
	ra := &readAhead{full: make(chan readAheadChunkOf, depth), free: make(chan []byte, depth), done: make(chan struct{})}
	for range depth {
		ra.free <- make([]byte, readAheadChunk)
	}
	go func() {
		for {
			var buf []byte
			select {
			case buf = <-ra.free:
			case <-ra.done:
				return
			}
			n, err := io.ReadFull(r, buf)
			if err == io.ErrUnexpectedEOF {
				err = io.EOF
			}
			h.Write(buf[:n])
			ra.full <- readAheadChunkOf{buf[:n], err}
			if err != nil {
				return
			}
		}
	}()
	return ra
}

func (ra *readAhead) Read(p []byte) (int, error) {
	for ra.off == len(ra.cur.data) {
		if ra.cur.err != nil {
			return 0, ra.cur.err
		}
		if ra.cur.data != nil {
			ra.free <- ra.cur.data[:cap(ra.cur.data)]
		}
		ra.cur, ra.off = <-ra.full, 0
	}
	n := copy(p, ra.cur.data[ra.off:])
	ra.off += n
	return n, nil
}

// close stops the goroutine; Read must not be called afterwards. It does not
// wait: the goroutine may still be in a Read of r, which closing r ends.
func (ra *readAhead) close() { close(ra.done) }
