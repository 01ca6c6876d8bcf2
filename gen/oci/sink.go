package oci

import (
	"io"
	"sync"

	"cfsboot/verity"
)

// ObjectSink is where file contents go while layers are applied: Put reads
// r to its end exactly once, stores it (or not) and returns the fs-verity
// digest of what it read (in the algorithm that names its objects). A
// store computes the digest while copying into its temporary file, so the
// content is never read twice.
type ObjectSink interface {
	Put(r io.Reader) (verity.Sum, error)
}

// NamedSink is an ObjectSink told each file's path in its layer
// (slash-separated, relative, as the tar names it): an importer that must
// read some files of the image afterwards can keep them aside (the objects
// it stored may be unreadable to it, sealed by fs-verity on a host kernel
// without fs-verity support).
type NamedSink interface {
	ObjectSink
	PutNamed(name string, r io.Reader) (verity.Sum, error)
}

// DigestOnly is the sink that stores nothing: it only computes digests, for
// printing an image's digest without a store.
type DigestOnly struct {
	Algorithm verity.Algorithm // zero: SHA-256
}

// Put returns the fs-verity digest of r.
func (d DigestOnly) Put(r io.Reader) (verity.Sum, error) {
	alg := d.Algorithm
	if alg == 0 {
		alg = verity.SHA256
	}
	if c, ok := r.(*chunkReader); ok && alg.Valid() {
		// A parallel import's chunks are hashed where they are, not
		// copied into a read buffer first.
		h, _ := hashers[alg].Get().(*verity.Hasher)
		if h == nil {
			h = alg.NewHasher()
		}
		defer hashers[alg].Put(h)
		h.Reset()
		_, err := c.WriteTo(h)
		return h.Sum(), err
	}
	return alg.Compute(r)
}

// hashers are DigestOnly's pooled Hashers, by algorithm.
var hashers [verity.SHA512 + 1]sync.Pool

// PutsInParallel: digests are independent.
func (DigestOnly) PutsInParallel() {}
