package verity

import (
	"crypto/sha256"
	"hash"
)

// Hasher computes an fs-verity digest of the bytes written to it, for
// callers that hash while copying (one read of the data).
type Hasher struct {
	b       *builder
	h       hash.Hash
	block   [BlockSize]byte
	fill    int
	size    uint64
	scratch [sha256.Size]byte
}

// NewHasher returns an empty Hasher.
func NewHasher() *Hasher { return &Hasher{b: newBuilder(), h: sha256.New()} }

// Write adds p to the data; it never fails.
func (h *Hasher) Write(p []byte) (int, error) {
	n := len(p)
	h.size += uint64(n)
	if h.fill > 0 {
		c := copy(h.block[h.fill:], p)
		h.fill += c
		p = p[c:]
		if h.fill < BlockSize {
			return n, nil
		}
		h.addBlock(h.block[:])
		h.fill = 0
	}
	for len(p) >= BlockSize {
		h.addBlock(p[:BlockSize])
		p = p[BlockSize:]
	}
	h.fill = copy(h.block[:], p)
	return n, nil
}

func (h *Hasher) addBlock(block []byte) {
	hashDataBlock(h.h, block, &h.scratch)
	h.b.addDataHash(h.scratch)
}

// Size is the number of bytes written so far.
func (h *Hasher) Size() uint64 { return h.size }

// Digest finishes the tree and returns the digest of everything written.
// The Hasher must not be written to afterwards.
func (h *Hasher) Digest() Digest {
	if h.fill > 0 {
		h.addBlock(h.block[:h.fill])
		h.fill = 0
	}
	return descriptorDigest(h.size, h.b.root())
}
