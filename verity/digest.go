// Package verity computes and enforces fs-verity digests (SHA-256 and
// SHA-512): the userspace Merkle tree digest (4096-byte blocks, no salt) that
// the kernel's FS_IOC_MEASURE_VERITY reports, and the enable/measure ioctls.
// Digest is the SHA-256 digest most of cfsboot uses; Sum carries either
// algorithm.
package verity

import "encoding/hex"

// Size is the length of a SHA-256 fs-verity digest in bytes.
const Size = 32

// Digest is an fs-verity SHA-256 file digest. Composefs uses it to name
// objects in the store and as the identity of an image.
type Digest [Size]byte

// String returns the lowercase hex form used on the kernel command line and
// in object store paths.
func (d Digest) String() string { return hex.EncodeToString(d[:]) }

// ParseDigest parses 64 hex digits (either case) into a Digest.
func ParseDigest(s string) (Digest, error) {
	sum, err := ParseSumAlgorithm(SHA256, s)
	return sum.sha256(), err
}
