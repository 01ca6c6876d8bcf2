package verity

import "hash"

// fs-verity hashes every 4096-byte data block on its own, so a run of
// blocks can be hashed side by side, one block per lane of wide vector
// registers: hashLanes does that where an assembly kernel exists for the
// CPU and the algorithm (lanes_amd64.go), hashDataBlock the rest.

// multiBuffer enables the lane kernels; tests turn it off to check the
// one-block path on machines that have them.
var multiBuffer = true

// laneGroup is how many blocks callers that hash as data arrives (Hasher)
// collect for one hashBlocks call: a lane kernel's width.
const laneGroup = 16

// hashBlocks writes the digest of each BlockSize block of data, the last
// one zero-padded if short, to out (a.Size() bytes each, in order). tail is
// scratch for the padded copy of a short last block; it may be nil when
// data holds whole blocks. h is a hash of a for the blocks hashed one by one.
//
// hashBlocks and the other helpers here are functions, not Algorithm
// methods: cfsboot-init keeps Algorithm's method table (it formats and
// parses Algorithms), so every method name costs it bytes.
func hashBlocks(a Algorithm, h hash.Hash, data, out []byte, tail *[BlockSize]byte) {
	done := 0
	if multiBuffer {
		done = hashLanes(a, data, out, tail)
	}
	size := a.Size()
	for i := done; i*BlockSize < len(data); i++ {
		hashDataBlock(h, data[i*BlockSize:min((i+1)*BlockSize, len(data))], out[i*size:(i+1)*size])
	}
}
