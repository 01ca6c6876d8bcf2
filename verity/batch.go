package verity

import (
	"hash"
	"sync"
)

// A batch digests many small inputs together: their data blocks, then the
// hash blocks above them, go through hashBlocks as one run each, so the
// lane kernels' lanes fill up across inputs (a 20 KiB file alone has 5
// blocks: too few for 16 SHA-256 lanes), and each input's root hash block
// costs a lane instead of a whole hash.

// batchMaxBlocks is the largest input a batch takes, in blocks: 64, so that
// the digests of its data blocks fit one hash block in either algorithm and
// the root is that block's hash.
const batchMaxBlocks = BlockSize / MaxSize

// batchBlocks and batchInputs bound one batch's data (1 MiB) and inputs.
const (
	batchBlocks = 4 * batchMaxBlocks
	batchInputs = 32
)

type batchInput struct {
	first, blocks int // the input's data blocks in batch.data
	size          int // in bytes
	out           int // index into the caller's sums
}

type batch struct {
	alg    Algorithm
	h      hash.Hash
	data   [batchBlocks * BlockSize]byte // each input from a block boundary, zero-padded to one
	sums   [batchBlocks * MaxSize]byte   // the data blocks' digests
	level  [batchInputs * BlockSize]byte // the hash blocks of inputs of 2 or more blocks
	roots  [batchInputs * MaxSize]byte   // their digests
	inputs []batchInput
	used   int // blocks of data in use
}

var batches [SHA512 + 1]sync.Pool // by Algorithm

func getBatch(a Algorithm) *batch {
	if b, ok := batches[a].Get().(*batch); ok {
		return b
	}
	return &batch{alg: a, h: a.newHash(), inputs: make([]batchInput, 0, batchInputs)}
}

// add reserves room for an input of size bytes (at most batchMaxBlocks
// blocks) whose digest goes to sums[out], first hashing the inputs already
// added into sums when they leave too little room. It returns where the
// input's bytes go; setSize records how many there were.
func (b *batch) add(size int, out int, sums []Sum) []byte {
	blocks := (size + BlockSize - 1) / BlockSize
	if len(b.inputs) == batchInputs || b.used+blocks > batchBlocks {
		b.flush(sums)
	}
	b.inputs = append(b.inputs, batchInput{first: b.used, blocks: blocks, size: size, out: out})
	b.used += blocks
	return b.data[b.inputs[len(b.inputs)-1].first*BlockSize:][:size]
}

// setSize sets the last added input's length to n (at most the reserved
// size: an input that came up short) and zero-pads its last block.
func (b *batch) setSize(n int) {
	in := &b.inputs[len(b.inputs)-1]
	clear(b.data[in.first*BlockSize+n : (in.first+in.blocks)*BlockSize])
	in.size, in.blocks = n, (n+BlockSize-1)/BlockSize
}

// flush writes the digests of the added inputs into sums and empties b.
func (b *batch) flush(sums []Sum) {
	size := b.alg.Size()
	hashBlocks(b.alg, b.h, b.data[:b.used*BlockSize], b.sums[:b.used*size], nil)
	// The data digests of each input of several blocks, zero-padded to a
	// hash block, in b.level; single-block inputs' roots are their digests.
	levels := 0
	for _, in := range b.inputs {
		if in.blocks < 2 {
			continue
		}
		block := b.level[levels*BlockSize : (levels+1)*BlockSize]
		clear(block[copy(block, b.sums[in.first*size:(in.first+in.blocks)*size]):])
		levels++
	}
	hashBlocks(b.alg, b.h, b.level[:levels*BlockSize], b.roots[:levels*size], nil)
	var zero [MaxSize]byte
	levels = 0
	for _, in := range b.inputs {
		root := zero[:size] // an empty input's
		switch in.blocks {
		case 0:
		case 1:
			root = b.sums[in.first*size : (in.first+1)*size]
		default:
			root = b.roots[levels*size : (levels+1)*size]
			levels++
		}
		sums[in.out] = descriptorDigest(b.h, b.alg, uint64(in.size), root)
	}
	b.reset()
}

// reset empties b, keeping its buffers.
func (b *batch) reset() { b.inputs, b.used = b.inputs[:0], 0 }
