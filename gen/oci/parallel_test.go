package oci

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"cfsboot/verity"
)

// overlapSink holds each Put until another one is in flight, so an import
// that puts one file at a time never gets past its first file.
type overlapSink struct{ arrived chan struct{} }

func (s overlapSink) PutsInParallel() {}

func (s overlapSink) Put(r io.Reader) (verity.Sum, error) {
	select {
	case s.arrived <- struct{}{}: // the other put is waiting
	case <-s.arrived: // the other put arrived first
	case <-time.After(10 * time.Second):
		return verity.Sum{}, errors.New("no other put ran beside this one")
	}
	return verity.SHA256.Compute(r)
}

func TestParallelSinkPutsFilesConcurrently(t *testing.T) {
	a, b := strings.Repeat("a", 100000), strings.Repeat("b", 3000)
	img := imageOfTars(t, tarOf(t, file("a", a), file("b", b)))
	res, err := Import(img, Options{Sink: overlapSink{make(chan struct{})}})
	if err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string]string{"a": a, "b": b} {
		if n := res.Tree.Lookup(name); n == nil || n.Digest == nil || *n.Digest != verity.ComputeBytes([]byte(body)) {
			t.Errorf("%s: wrong or no digest: %+v", name, n)
		}
	}
}

// failingSink fails the put of one content and reads only half of another.
type failingSink struct{}

func (failingSink) PutsInParallel() {}

func (failingSink) Put(r io.Reader) (verity.Sum, error) {
	head := make([]byte, 1)
	if _, err := io.ReadFull(r, head); err != nil {
		return verity.Sum{}, err
	}
	switch head[0] {
	case 'x':
		return verity.Sum{}, errors.New("disk full")
	case 'h':
		io.CopyN(io.Discard, r, 500)
		return verity.SHA256.ComputeBytes(nil), nil
	}
	return verity.SHA256.Compute(io.MultiReader(bytes.NewReader(head), r))
}

// A put that fails on another goroutine fails the import with an
// EntryError naming its entry, as a sequential one does.
func TestParallelSinkErrorsNameTheEntry(t *testing.T) {
	ok := strings.Repeat("o", 5000)
	for _, c := range []struct{ body, want string }{
		{strings.Repeat("x", 700000), "disk full"},
		{strings.Repeat("h", 2000), "object sink read 501 of 2000 content bytes"},
	} {
		img := imageOfTars(t, tarOf(t, file("ok1", ok), file("usr/bad", c.body), file("ok2", ok)))
		_, err := Import(img, Options{Sink: failingSink{}})
		var ee *EntryError
		if !errors.As(err, &ee) || ee.Entry != "usr/bad" || !strings.Contains(err.Error(), c.want) {
			t.Errorf("import: %v, want an entry error of usr/bad saying %q", err, c.want)
		}
	}
}

// readAhead yields r's bytes and error, and hashes exactly what it read.
func TestReadAhead(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789abcdef"), 100000) // several chunks
	h := sha256.New()
	ra := newReadAhead(bytes.NewReader(data), h)
	got, err := io.ReadAll(iotest.OneByteReader(io.LimitReader(ra, 10)))
	if err != nil || string(got) != "0123456789" {
		t.Fatalf("first bytes %q, %v", got, err)
	}
	rest, err := io.ReadAll(ra)
	if err != nil || !bytes.Equal(append(got, rest...), data) {
		t.Fatalf("read %d bytes (%v), want %d", len(got)+len(rest), err, len(data))
	}
	if want := sha256.Sum256(data); !bytes.Equal(h.Sum(nil), want[:]) {
		t.Error("hash differs from the data's")
	}
	ra.close()

	boom := errors.New("boom")
	ra = newReadAhead(io.MultiReader(bytes.NewReader(data[:1000]), iotest.ErrReader(boom)), sha256.New())
	if got, err := io.ReadAll(ra); len(got) != 1000 || !errors.Is(err, boom) {
		t.Errorf("read %d bytes, %v; want 1000 and boom", len(got), err)
	}
	ra.close()
	// Closed before the end: the goroutine stops.
	ra = newReadAhead(bytes.NewReader(data), sha256.New())
	ra.close()
}
