package verity

import (
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"fmt"
	"hash"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Algorithm is an fs-verity hash algorithm. Its value is the kernel's
// FS_VERITY_HASH_ALG_* number, the one FS_IOC_ENABLE_VERITY takes, the
// measure ioctl reports, the descriptor holds and overlayfs' metacopy xattr
// names.
type Algorithm uint8

const (
	SHA256 Algorithm = unix.FS_VERITY_HASH_ALG_SHA256
	SHA512 Algorithm = unix.FS_VERITY_HASH_ALG_SHA512
)

// MaxSize is the longest digest of any Algorithm (SHA-512's).
const MaxSize = sha512.Size

// logBlockSize is log2(BlockSize), as composefs-rs spells the block size.
const logBlockSize = 12

// Algorithms lists every supported algorithm.
var Algorithms = []Algorithm{SHA256, SHA512}

// Valid reports whether a is an algorithm this package computes.
func (a Algorithm) Valid() bool { return a == SHA256 || a == SHA512 }

// String returns "sha256" or "sha512" (the names fsverity-utils and
// composefs-rs use).
func (a Algorithm) String() string {
	switch a {
	case SHA256:
		return "sha256"
	case SHA512:
		return "sha512"
	}
	return fmt.Sprintf("fs-verity algorithm %d", uint8(a))
}

// Size returns the digest length in bytes (0 for an invalid algorithm).
func (a Algorithm) Size() int {
	switch a {
	case SHA256:
		return sha256.Size
	case SHA512:
		return sha512.Size
	}
	return 0
}

func (a Algorithm) newHash() hash.Hash {
	if a == SHA512 {
		return sha512.New()
	}
	return sha256.New()
}

// Spec returns the hash name and log2 block size, "sha512-12": what
// composefs-rs writes after "fsverity-" in meta.json and after "v1-" in
// composefs.digest=.
func (a Algorithm) Spec() string { return a.String() + "-" + strconv.Itoa(logBlockSize) }

// ParseAlgorithm parses "sha256" or "sha512".
func ParseAlgorithm(s string) (Algorithm, error) {
	for _, a := range Algorithms {
		if s == a.String() {
			return a, nil
		}
	}
	return 0, fmt.Errorf("fs-verity hash algorithm %q: want sha256 or sha512", s)
}

// ParseSpec parses "<hash>-<log2 block size>" ("sha512-12"). Only 4096-byte
// blocks are accepted: the only size composefs uses.
func ParseSpec(s string) (Algorithm, error) {
	name, bits, ok := strings.Cut(s, "-")
	if !ok {
		return 0, fmt.Errorf("fs-verity algorithm %q: want <hash>-<log2 block size>, like sha512-12", s)
	}
	a, err := ParseAlgorithm(name)
	if err != nil {
		return 0, err
	}
	if bits != strconv.Itoa(logBlockSize) {
		return 0, fmt.Errorf("fs-verity algorithm %q: unsupported block size 2^%s (only 2^%d)", s, bits, logBlockSize)
	}
	return a, nil
}

// AlgorithmForHexLen returns the algorithm whose digest has n hex digits.
func AlgorithmForHexLen(n int) (Algorithm, bool) {
	for _, a := range Algorithms {
		if n == 2*a.Size() {
			return a, true
		}
	}
	return 0, false
}

// Sum is an fs-verity digest of either algorithm, carrying its algorithm. It
// is comparable (==, map keys); the zero Sum is no digest at all.
type Sum struct {
	alg Algorithm
	b   [MaxSize]byte
}

// NewSum makes a Sum of b, which must be exactly alg's digest size.
func NewSum(alg Algorithm, b []byte) (Sum, error) {
	if !alg.Valid() {
		return Sum{}, fmt.Errorf("unknown fs-verity hash algorithm %d", uint8(alg))
	}
	if len(b) != alg.Size() {
		return Sum{}, fmt.Errorf("fs-verity %s digest: want %d bytes, got %d", alg, alg.Size(), len(b))
	}
	s := Sum{alg: alg}
	copy(s.b[:], b)
	return s, nil
}

// Sum returns d as a Sum (SHA-256).
func (d Digest) Sum() Sum {
	s := Sum{alg: SHA256}
	copy(s.b[:], d[:])
	return s
}

// Digest returns s as a SHA-256 Digest; ok is false for other algorithms.
func (s Sum) Digest() (d Digest, ok bool) { return s.sha256(), s.alg == SHA256 }

// sha256 returns the first 32 bytes: the Digest of a SHA-256 Sum.
func (s Sum) sha256() Digest {
	var d Digest
	copy(d[:], s.b[:Size])
	return d
}

// Algorithm returns the digest's algorithm (0 for the zero Sum).
func (s Sum) Algorithm() Algorithm { return s.alg }

// IsZero reports whether s holds no digest.
func (s Sum) IsZero() bool { return s == Sum{} }

// Bytes returns the raw digest, of s.Algorithm().Size() bytes.
func (s Sum) Bytes() []byte { return append([]byte(nil), s.b[:s.alg.Size()]...) }

// String returns the lowercase hex form: 64 digits for SHA-256, 128 for
// SHA-512, as on the kernel command line and in object store names.
func (s Sum) String() string { return hex.EncodeToString(s.b[:s.alg.Size()]) }

// ParseSum parses a hex digest (either case), telling the algorithm from
// its length: 64 digits are SHA-256, 128 are SHA-512.
func ParseSum(s string) (Sum, error) {
	alg, ok := AlgorithmForHexLen(len(s))
	if !ok {
		return Sum{}, fmt.Errorf("fs-verity digest %q: want 64 (sha256) or 128 (sha512) hex digits, got %d", s, len(s))
	}
	return ParseSumAlgorithm(alg, s)
}

// ParseSumAlgorithm parses a hex digest that must be of algorithm alg.
func ParseSumAlgorithm(alg Algorithm, s string) (Sum, error) {
	if !alg.Valid() {
		return Sum{}, fmt.Errorf("unknown fs-verity hash algorithm %d", uint8(alg))
	}
	if len(s) != 2*alg.Size() {
		return Sum{}, fmt.Errorf("fs-verity digest %q: want %d hex digits (%s), got %d", s, 2*alg.Size(), alg, len(s))
	}
	r := Sum{alg: alg}
	if _, err := hex.Decode(r.b[:], []byte(s)); err != nil {
		return Sum{}, fmt.Errorf("fs-verity digest %q: %w", s, err)
	}
	return r, nil
}

// Set and Type make *Algorithm a command-line flag value (pflag.Value).
func (a *Algorithm) Set(s string) error {
	v, err := ParseAlgorithm(s)
	if err == nil {
		*a = v
	}
	return err
}

func (*Algorithm) Type() string { return "sha256|sha512" }
