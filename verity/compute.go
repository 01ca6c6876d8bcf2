package verity

import (
	"encoding/binary"
	"fmt"
	"hash"
	"io"
	"runtime"
	"sync"
)

// BlockSize is the Merkle tree block size composefs uses (and the only one
// this package computes): 4096 bytes, no salt.
const BlockSize = 4096

// builder hashes a stream of data block digests up the Merkle tree with one
// partial block buffer per level, so memory stays bounded by the tree height.
// Level 0 buffers up to laneGroup blocks, hashed together by hashBlocks.
type builder struct {
	alg     Algorithm
	h       hash.Hash
	size    int      // digest size
	levels  [][]byte // levels[i]: the hash block(s) being filled at level i
	nblocks []uint64 // completed blocks per level
	first   [MaxSize]byte
	scratch [MaxSize]byte
	sums    [laneGroup * MaxSize]byte // level 0's block digests
	n       uint64                    // data blocks seen
}

func newBuilder(alg Algorithm) *builder {
	return &builder{alg: alg, h: alg.newHash(), size: alg.Size(), levels: [][]byte{nil}, nblocks: []uint64{0}}
}

// sum hashes block into b.scratch; push copies it out before the next sum.
func (b *builder) sum(block []byte) []byte {
	b.h.Reset()
	b.h.Write(block)
	return b.h.Sum(b.scratch[:0])
}

// reset empties the builder for the next input, keeping its buffers.
func (b *builder) reset() {
	for i := range b.levels {
		b.levels[i] = b.levels[i][:0]
		b.nblocks[i] = 0
	}
	b.n = 0
}

// addDataHash appends the digest of the next data block.
func (b *builder) addDataHash(d []byte) {
	if b.n == 0 {
		copy(b.first[:], d)
	}
	b.n++
	b.levels[0] = append(b.levels[0], d...)
	if len(b.levels[0]) == laneGroup*BlockSize {
		b.hashLevel0()
	}
}

// addBlocks hashes data's blocks (a short last one zero-padded into tail,
// which may be nil when data holds whole blocks) into the tree, their
// digests going through sums, which has room for them.
func (b *builder) addBlocks(data, sums []byte, tail *[BlockSize]byte) {
	sums = sums[:(len(data)+BlockSize-1)/BlockSize*b.size]
	hashBlocks(b.alg, b.h, data, sums, tail)
	for off := 0; off < len(sums); off += b.size {
		b.addDataHash(sums[off : off+b.size])
	}
}

// hashLevel0 hashes level 0's buffered blocks, the last one zero-padded if
// partial, and pushes their digests to level 1.
func (b *builder) hashLevel0() {
	buf := b.levels[0]
	blocks := (len(buf) + BlockSize - 1) / BlockSize
	buf = append(buf, make([]byte, blocks*BlockSize-len(buf))...)
	sums := b.sums[:blocks*b.size]
	hashBlocks(b.alg, b.h, buf, sums, nil)
	b.levels[0] = buf[:0]
	b.nblocks[0] += uint64(blocks)
	for off := 0; off < len(sums); off += b.size {
		b.push(1, sums[off:off+b.size])
	}
}

func (b *builder) push(level int, d []byte) {
	for level >= len(b.levels) {
		b.levels = append(b.levels, make([]byte, 0, BlockSize))
		b.nblocks = append(b.nblocks, 0)
	}
	b.levels[level] = append(b.levels[level], d...)
	if len(b.levels[level]) == BlockSize {
		sum := b.sum(b.levels[level])
		b.levels[level] = b.levels[level][:0]
		b.nblocks[level]++
		b.push(level+1, sum)
	}
}

// root finishes the tree: each level's partial block is zero-padded and
// hashed into the next until a level consists of a single block. An empty
// file's root is all zeros.
func (b *builder) root() []byte {
	switch b.n {
	case 0:
		return make([]byte, b.size)
	case 1:
		return b.first[:b.size]
	}
	if len(b.levels[0]) > 0 {
		b.hashLevel0()
	}
	for level := 0; ; level++ {
		partial := len(b.levels[level]) > 0
		total := b.nblocks[level]
		if partial {
			total++
			buf := b.levels[level]
			buf = append(buf, make([]byte, BlockSize-len(buf))...)
			sum := b.sum(buf)
			b.levels[level] = buf[:0]
			b.push(level+1, sum)
		}
		if total == 1 {
			return b.levels[level+1][:b.size]
		}
	}
}

// descriptorDigest returns the digest of the 256-byte fsverity_descriptor,
// hashed with h (of alg): the file's fs-verity digest.
func descriptorDigest(h hash.Hash, alg Algorithm, size uint64, root []byte) Sum {
	var desc [256]byte
	desc[0] = 1 // version
	desc[1] = byte(alg)
	desc[2] = logBlockSize
	// desc[3] salt_size = 0, desc[4:8] reserved
	binary.LittleEndian.PutUint64(desc[8:16], size)
	copy(desc[16:16+MaxSize], root)
	h.Reset()
	h.Write(desc[:])
	s := Sum{alg: alg}
	h.Sum(s.b[:0])
	return s
}

// hashDataBlock hashes one data block into out (which has room for the
// digest), zero-padding a short final block.
func hashDataBlock(h hash.Hash, block []byte, out []byte) {
	h.Reset()
	h.Write(block)
	if len(block) < BlockSize {
		h.Write(zeroBlock[:BlockSize-len(block)])
	}
	h.Sum(out[:0])
}

var zeroBlock [BlockSize]byte

// readChunk is how much Compute reads at a time: 64 blocks, so that a
// small file costs one or two reads rather than one per block.
const readChunk = 64 * BlockSize

// computer is Compute's per-input state, pooled: digesting 20,000 small
// files would otherwise allocate a tree builder, two hashes and a read
// buffer for each.
type computer struct {
	b     *builder
	h     hash.Hash
	chunk [readChunk]byte
	sums  [readChunk / BlockSize * MaxSize]byte // the chunk's block digests
	tail  [BlockSize]byte                       // a zero-padded short last block
}

var computers [SHA512 + 1]sync.Pool // by Algorithm

func (a Algorithm) getComputer() *computer {
	if c, ok := computers[a].Get().(*computer); ok {
		c.b.reset()
		return c
	}
	return &computer{b: newBuilder(a), h: a.newHash()}
}

// addData hashes data, at most readChunk bytes whose short last block (if
// any) ends the input, into the tree.
func (c *computer) addData(data []byte) { c.b.addBlocks(data, c.sums[:], &c.tail) }

// Compute returns the fs-verity digest of everything r yields.
func (a Algorithm) Compute(r io.Reader) (Sum, error) {
	if !a.Valid() {
		return Sum{}, fmt.Errorf("unknown fs-verity hash algorithm %d", uint8(a))
	}
	c := a.getComputer()
	defer computers[a].Put(c)
	var size uint64
	for {
		n, err := io.ReadFull(r, c.chunk[:])
		size += uint64(n)
		c.addData(c.chunk[:n])
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			return Sum{}, err
		}
	}
	return descriptorDigest(c.h, a, size, c.b.root()), nil
}

// ComputeBytes returns the fs-verity digest of data.
func (a Algorithm) ComputeBytes(data []byte) Sum {
	c := a.getComputer()
	defer computers[a].Put(c)
	for off := 0; off < len(data); off += readChunk {
		c.addData(data[off:min(off+readChunk, len(data))])
	}
	return descriptorDigest(c.h, a, uint64(len(data)), c.b.root())
}

// windowBlocks is how many data blocks ComputeReaderAt hashes in parallel
// between tree updates (64 MiB of data); their hashes wait in a pooled
// buffer.
const windowBlocks = 16384

var windowPool = sync.Pool{New: func() any { return new([windowBlocks * MaxSize]byte) }}

// parallelThreshold is the file size from which hashing the data level on
// several cores beats the cost of starting goroutines.
const parallelThreshold = 4 << 20

// ComputeReaderAt returns the fs-verity digest of the first size bytes of r.
// Large inputs have their data blocks hashed on all cores, one bounded window
// at a time, so memory stays constant for multi-GiB files.
func (a Algorithm) ComputeReaderAt(r io.ReaderAt, size int64) (Sum, error) {
	workers := runtime.GOMAXPROCS(0)
	if size < parallelThreshold || workers < 2 {
		return a.Compute(io.NewSectionReader(r, 0, size))
	}
	const chunkBlocks = readChunk / BlockSize // one worker's unit
	dsize := int64(a.Size())
	nblocks := (size + BlockSize - 1) / BlockSize
	hashes := windowPool.Get().(*[windowBlocks * MaxSize]byte)
	defer windowPool.Put(hashes)
	// Each worker hashes with its own pooled state's hash and buffer; the
	// tree is built in this goroutine's.
	cs := make([]*computer, workers)
	for w := range cs {
		cs[w] = a.getComputer()
		defer computers[a].Put(cs[w])
	}
	b := cs[0].b
	for win := int64(0); win < nblocks; win += windowBlocks {
		winEnd := min(win+windowBlocks, nblocks)
		next := make(chan int64, (winEnd-win)/chunkBlocks+1)
		for first := win; first < winEnd; first += chunkBlocks {
			next <- first
		}
		close(next)
		errs := make([]error, workers)
		var wg sync.WaitGroup
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func(c *computer, w int) {
				defer wg.Done()
				for first := range next {
					off := first * BlockSize
					n := min(int64(readChunk), size-off)
					if _, err := r.ReadAt(c.chunk[:n], off); err != nil && err != io.EOF {
						errs[w] = err
						return
					}
					at := (first - win) * dsize
					hashBlocks(a, c.h, c.chunk[:n], hashes[at:at+(n+BlockSize-1)/BlockSize*dsize], &c.tail)
				}
			}(cs[w], w)
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				return Sum{}, err
			}
		}
		for i := int64(0); i < winEnd-win; i++ {
			b.addDataHash(hashes[i*dsize : (i+1)*dsize])
		}
	}
	return descriptorDigest(cs[0].h, a, uint64(size), b.root()), nil
}

// Compute returns the fs-verity SHA-256 digest of everything r yields.
func Compute(r io.Reader) (Digest, error) {
	s, err := SHA256.Compute(r)
	return s.sha256(), err
}

// ComputeBytes returns the fs-verity SHA-256 digest of data.
func ComputeBytes(data []byte) Digest { return SHA256.ComputeBytes(data).sha256() }

// ComputeFile returns the fs-verity SHA-256 digest of the file at path.
func ComputeFile(path string) (Digest, error) {
	s, err := SHA256.ComputeFile(path)
	return s.sha256(), err
}

// ComputeReaderAt returns the fs-verity SHA-256 digest of the first size
// bytes of r.
func ComputeReaderAt(r io.ReaderAt, size int64) (Digest, error) {
	s, err := SHA256.ComputeReaderAt(r, size)
	return s.sha256(), err
}
