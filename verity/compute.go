package verity

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash"
	"io"
	"os"
	"runtime"
	"sync"
)

// BlockSize is the Merkle tree block size composefs uses (and the only one
// this package computes): 4096 bytes, no salt.
const BlockSize = 4096

const hashesPerBlock = BlockSize / sha256.Size

// builder hashes a stream of data block digests up the Merkle tree with one
// partial block buffer per level, so memory stays bounded by the tree height.
type builder struct {
	h       hash.Hash
	levels  [][]byte // levels[i]: the hash block being filled at level i
	nblocks []uint64 // completed blocks per level
	first   [sha256.Size]byte
	n       uint64 // data blocks seen
}

func newBuilder() *builder { return &builder{h: sha256.New()} }

func (b *builder) sum(block []byte) (out [sha256.Size]byte) {
	b.h.Reset()
	b.h.Write(block)
	b.h.Sum(out[:0])
	return out
}

// addDataHash appends the digest of the next data block.
func (b *builder) addDataHash(d [sha256.Size]byte) {
	if b.n == 0 {
		b.first = d
	}
	b.n++
	b.push(0, d)
}

func (b *builder) push(level int, d [sha256.Size]byte) {
	for level >= len(b.levels) {
		b.levels = append(b.levels, make([]byte, 0, BlockSize))
		b.nblocks = append(b.nblocks, 0)
	}
	b.levels[level] = append(b.levels[level], d[:]...)
	if len(b.levels[level]) == BlockSize {
		sum := b.sum(b.levels[level])
		b.levels[level] = b.levels[level][:0]
		b.nblocks[level]++
		b.push(level+1, sum)
	}
}

// root finishes the tree: each level's partial block is zero-padded and
// hashed into the next until a level consists of a single block.
func (b *builder) root() [sha256.Size]byte {
	switch b.n {
	case 0:
		return [sha256.Size]byte{}
	case 1:
		return b.first
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
			var r [sha256.Size]byte
			copy(r[:], b.levels[level+1][:sha256.Size])
			return r
		}
	}
}

// descriptorDigest returns SHA-256 of the 256-byte fsverity_descriptor.
func descriptorDigest(size uint64, root [sha256.Size]byte) Digest {
	var desc [256]byte
	desc[0] = 1  // version
	desc[1] = 1  // FS_VERITY_HASH_ALG_SHA256
	desc[2] = 12 // log2(BlockSize)
	// desc[3] salt_size = 0, desc[4:8] reserved
	binary.LittleEndian.PutUint64(desc[8:16], size)
	copy(desc[16:], root[:])
	return Digest(sha256.Sum256(desc[:]))
}

// hashDataBlock hashes one data block, zero-padding a short final block.
func hashDataBlock(h hash.Hash, block []byte, out *[sha256.Size]byte) {
	h.Reset()
	h.Write(block)
	if len(block) < BlockSize {
		h.Write(zeroBlock[:BlockSize-len(block)])
	}
	h.Sum(out[:0])
}

var zeroBlock [BlockSize]byte

// Compute returns the fs-verity digest of everything r yields, reading one
// block at a time.
func Compute(r io.Reader) (Digest, error) {
	b := newBuilder()
	h := sha256.New()
	buf := make([]byte, BlockSize)
	var size uint64
	var d [sha256.Size]byte
	for {
		n, err := io.ReadFull(r, buf)
		if n > 0 {
			size += uint64(n)
			hashDataBlock(h, buf[:n], &d)
			b.addDataHash(d)
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			return Digest{}, err
		}
	}
	return descriptorDigest(size, b.root()), nil
}

// ComputeBytes returns the fs-verity digest of data.
func ComputeBytes(data []byte) Digest {
	b := newBuilder()
	h := sha256.New()
	var d [sha256.Size]byte
	for off := 0; off < len(data); off += BlockSize {
		hashDataBlock(h, data[off:min(off+BlockSize, len(data))], &d)
		b.addDataHash(d)
	}
	return descriptorDigest(uint64(len(data)), b.root())
}

// parallelThreshold is the file size from which hashing the data level on
// several cores beats the cost of starting goroutines.
const parallelThreshold = 4 << 20

// ComputeFile returns the fs-verity digest of the file at path. Large files
// have their data blocks hashed on all cores; the tree above is cheap.
func ComputeFile(path string) (Digest, error) {
	f, err := os.Open(path)
	if err != nil {
		return Digest{}, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return Digest{}, err
	}
	if !st.Mode().IsRegular() {
		return Digest{}, fmt.Errorf("%s: not a regular file", path)
	}
	d, err := ComputeReaderAt(f, st.Size())
	if err != nil {
		return Digest{}, fmt.Errorf("%s: %w", path, err)
	}
	return d, nil
}

// ComputeReaderAt returns the fs-verity digest of the first size bytes of r.
// Large inputs have their data blocks hashed on all cores, one bounded window
// at a time, so memory stays constant for multi-GiB files.
func ComputeReaderAt(r io.ReaderAt, size int64) (Digest, error) {
	workers := runtime.GOMAXPROCS(0)
	if size < parallelThreshold || workers < 2 {
		return Compute(io.NewSectionReader(r, 0, size))
	}
	const (
		chunkBlocks  = 256              // one worker's unit: 1 MiB of data
		windowBlocks = 64 * chunkBlocks // hashes kept between tree updates
	)
	nblocks := (size + BlockSize - 1) / BlockSize
	hashes := make([][sha256.Size]byte, windowBlocks)
	bufs := make([][]byte, workers)
	hs := make([]hash.Hash, workers)
	for w := range bufs {
		bufs[w] = make([]byte, chunkBlocks*BlockSize)
		hs[w] = sha256.New()
	}
	b := newBuilder()
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
			go func(w int) {
				defer wg.Done()
				for first := range next {
					off := first * BlockSize
					n := min(int64(len(bufs[w])), size-off)
					if _, err := r.ReadAt(bufs[w][:n], off); err != nil && err != io.EOF {
						errs[w] = err
						return
					}
					for i := int64(0); i*BlockSize < n; i++ {
						hashDataBlock(hs[w], bufs[w][i*BlockSize:min((i+1)*BlockSize, n)], &hashes[first-win+i])
					}
				}
			}(w)
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				return Digest{}, err
			}
		}
		for i := int64(0); i < winEnd-win; i++ {
			b.addDataHash(hashes[i])
		}
	}
	return descriptorDigest(uint64(size), b.root()), nil
}
