package verity

// Hasher computes an fs-verity digest of the bytes written to it, for
// callers that hash while copying (one read of the data).
type Hasher struct {
	b     *builder
	block [BlockSize]byte
	fill  int
	size  uint64
	sums  [laneGroup * MaxSize]byte // a run of blocks' digests
}

// NewHasher returns an empty SHA-256 Hasher.
func NewHasher() *Hasher { return SHA256.NewHasher() }

// NewHasher returns an empty Hasher for a.
func (a Algorithm) NewHasher() *Hasher { return &Hasher{b: newBuilder(a)} }

// Reset empties h for new data, keeping its buffers.
func (h *Hasher) Reset() {
	h.b.reset()
	h.fill, h.size = 0, 0
}

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
		h.addBlocks(h.block[:])
		h.fill = 0
	}
	for len(p) >= BlockSize {
		run := min(len(p)/BlockSize, laneGroup) * BlockSize
		h.addBlocks(p[:run])
		p = p[run:]
	}
	h.fill = copy(h.block[:], p)
	return n, nil
}

// addBlocks hashes at most laneGroup whole blocks into the tree.
func (h *Hasher) addBlocks(data []byte) { h.b.addBlocks(data, h.sums[:], nil) }

// Size is the number of bytes written so far.
func (h *Hasher) Size() uint64 { return h.size }

// Sum finishes the tree and returns the digest of everything written.
// The Hasher must not be written to afterwards.
func (h *Hasher) Sum() Sum {
	if h.fill > 0 {
		clear(h.block[h.fill:]) // the short last block, zero-padded
		h.addBlocks(h.block[:])
		h.fill = 0
	}
	return descriptorDigest(h.b.h, h.b.alg, h.size, h.b.root())
}

// Digest is Sum for a SHA-256 Hasher.
func (h *Hasher) Digest() Digest {
	d, _ := h.Sum().Digest()
	return d
}
