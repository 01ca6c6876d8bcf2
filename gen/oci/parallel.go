package oci

import (
	"fmt"
	"io"
	"runtime"
	"sync"

	"cfsboot/gen/tree"
)

// ParallelSink is an ObjectSink whose Put (and PutNamed, if it has one) may
// run on several goroutines at once. Import then reads each layer on one
// goroutine and has the sink hash (and store) the files on all cores, so
// that hashing a layer costs no more wall time than reading it.
type ParallelSink interface {
	ObjectSink
	// PutsInParallel marks the sink as safe for concurrent Puts.
	PutsInParallel()
}

// chunkSize is the unit in which file content goes from the tar reader to
// the goroutine hashing it: large enough for few hand-offs, small enough
// that a few per core keep the import's memory small.
const chunkSize = 256 << 10

// maxChunks caps the pool (8 MiB) on machines with many cores.
const maxChunks = 32

// puts hands the files of one layer to goroutines that put them into a
// ParallelSink while the tar stream is read on. Content travels in chunks
// from a fixed pool, so memory stays bounded whatever the files' sizes; at
// most jobs files are in flight, each on its own goroutine that consumes
// what it is given, so the reader always gets a chunk back.
type puts struct {
	sink   ParallelSink
	chunks chan []byte   // free chunks
	jobs   chan struct{} // one token per file in flight
	wg     sync.WaitGroup
	mu     sync.Mutex
	err    error // the first failed put
}

func newPuts(sink ParallelSink) *puts {
	workers := runtime.GOMAXPROCS(0)
	p := &puts{sink: sink, chunks: make(chan []byte, min(4*workers, maxChunks)), jobs: make(chan struct{}, 2*workers)}
	for range cap(p.chunks) {
		p.chunks <- make([]byte, chunkSize)
	}
	return p
}

// failed returns the first error of a finished put, if any.
func (p *puts) failed() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// wait waits for every put and returns the first error.
func (p *puts) wait() error {
	p.wg.Wait()
	return p.failed()
}

// put reads size bytes of content (more than inline) on the calling
// goroutine and puts them into the sink on another one, which records the
// digest in n. Errors of that put surface in failed and wait, naming the
// entry.
func (p *puts) put(n *tree.Node, layer, entry, name string, content io.Reader, size int64) error {
	n.Size = uint64(size)
	p.jobs <- struct{}{}
	r := &chunkReader{in: make(chan []byte, cap(p.chunks)), free: p.chunks}
	p.wg.Add(1)
	go func() {
		defer func() { <-p.jobs; p.wg.Done() }()
		d, err := putInto(p.sink, name, r)
		r.drain()
		switch {
		case err != nil:
			err = fmt.Errorf("storing content: %w", err)
		case r.read != size:
			err = fmt.Errorf("object sink read %d of %d content bytes", r.read, size)
		default:
			n.SetFileDigest(d)
			return
		}
		p.mu.Lock()
		if p.err == nil {
			p.err = &EntryError{Layer: layer, Entry: entry, Err: err}
		}
		p.mu.Unlock()
	}()
	defer close(r.in)
	for left := size; left > 0; {
		c := <-p.chunks
		k, err := io.ReadFull(content, c[:min(left, chunkSize)])
		if err != nil {
			p.chunks <- c
			return fmt.Errorf("reading content: %w", err)
		}
		r.in <- c[:k]
		left -= int64(k)
	}
	return nil
}

// chunkReader is one file's content as the putting goroutine reads it,
// handing each chunk back to the pool once read.
type chunkReader struct {
	in   chan []byte
	free chan<- []byte
	cur  []byte // the chunk being read
	off  int
	read int64
}

func (r *chunkReader) next() bool {
	if r.cur != nil && r.off < len(r.cur) {
		return true
	}
	if r.cur != nil {
		r.free <- r.cur[:cap(r.cur)]
		r.cur = nil
	}
	c, ok := <-r.in
	if !ok {
		return false
	}
	r.cur, r.off = c, 0
	return true
}

func (r *chunkReader) Read(b []byte) (int, error) {
	if !r.next() {
		return 0, io.EOF
	}
	k := copy(b, r.cur[r.off:])
	r.off += k
	r.read += int64(k)
	return k, nil
}

// WriteTo hands the chunks to w without copying them (io.Copy uses it).
func (r *chunkReader) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for r.next() {
		k, err := w.Write(r.cur[r.off:])
		r.off += k
		r.read += int64(k)
		total += int64(k)
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// drain returns what the sink left unread to the pool.
func (r *chunkReader) drain() {
	for r.next() {
		r.off = len(r.cur)
	}
}
