package oci

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"fmt"
	"hash"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// Limits bound what a layer may expand to, against decompression bombs.
type Limits struct {
	// MaxLayerBytes is the most uncompressed bytes one layer may hold.
	MaxLayerBytes int64
	// MaxRatio is the most uncompressed bytes per compressed byte, checked
	// once a layer has expanded past RatioGrace bytes.
	MaxRatio   int64
	RatioGrace int64
}

// DefaultLimits allow any real image: gzip cannot expand more than about
// 1032:1, and zstd images of ordinary files stay far below 1000:1.
func DefaultLimits() Limits {
	return Limits{MaxLayerBytes: 64 << 30, MaxRatio: 1000, RatioGrace: 64 << 20}
}

// zstdMaxWindow caps the zstd window (the decoder's memory): 128 MiB is
// zstd's --long=27, more than any image builder uses.
const zstdMaxWindow = 128 << 20

var (
	gzipMagic = []byte{0x1f, 0x8b}
	zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}
)

// ErrDigestMismatch is a layer whose content does not hash to the digest
// its manifest or configuration names.
var ErrDigestMismatch = errors.New("digest mismatch")

// ErrBomb is a layer that expands past the configured limits.
var ErrBomb = errors.New("layer expands past the limit")

// readLayer streams one compressed (gzip, zstd) or uncompressed layer blob
// through apply, checking the blob against blobDigest and the tar stream
// against diffID, both to the last byte. apply gets the uncompressed tar
// stream; whatever it leaves unread is drained into the checks.
func readLayer(blob io.Reader, blobDigest, diffID v1.Hash, limits Limits, apply func(io.Reader) error) error {
	blobHash, err := hasher(blobDigest)
	if err != nil {
		return fmt.Errorf("blob: %w", err)
	}
	diffHash, err := hasher(diffID)
	if err != nil {
		return fmt.Errorf("diff ID: %w", err)
	}
	ra := newReadAhead(blob, blobHash)
	defer ra.close()
	in := &countingReader{r: ra}
	br := bufio.NewReader(in)
	magic, _ := br.Peek(4)
	var plain io.Reader
	switch {
	case bytes.HasPrefix(magic, gzipMagic):
		zr, err := gzip.NewReader(br)
		if err != nil {
			return fmt.Errorf("gzip: %w", err)
		}
		defer zr.Close()
		plain = zr
	case bytes.HasPrefix(magic, zstdMagic):
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true), zstd.WithDecoderMaxWindow(zstdMaxWindow))
		if err != nil {
			return fmt.Errorf("zstd: %w", err)
		}
		defer zr.Close()
		plain = zr
	default:
		plain = br
	}
	out := &boundedReader{r: plain, in: in, limits: limits}
	var tarStream io.Reader = out
	// An uncompressed blob is its own tar stream: with one algorithm, the
	// blob hash is the diff ID's too.
	oneHash := plain == br && diffID.Algorithm == blobDigest.Algorithm
	if !oneHash {
		tarStream = io.TeeReader(out, diffHash)
	}
	if err := apply(tarStream); err != nil {
		return err
	}
	// The tar end marker may be followed by padding, and the compressed
	// stream by its trailer: both belong to the digests.
	if _, err := io.Copy(io.Discard, tarStream); err != nil {
		return fmt.Errorf("reading past the tar end: %w", err)
	}
	if _, err := io.Copy(io.Discard, br); err != nil {
		return fmt.Errorf("reading past the compressed stream: %w", err)
	}
	if got := (v1.Hash{Algorithm: blobDigest.Algorithm, Hex: fmt.Sprintf("%x", blobHash.Sum(nil))}); got != blobDigest {
		return fmt.Errorf("blob is %s, manifest says %s: %w", got, blobDigest, ErrDigestMismatch)
	}
	if oneHash {
		diffHash = blobHash
	}
	if got := (v1.Hash{Algorithm: diffID.Algorithm, Hex: fmt.Sprintf("%x", diffHash.Sum(nil))}); got != diffID {
		return fmt.Errorf("uncompressed layer is %s, config diff ID says %s: %w", got, diffID, ErrDigestMismatch)
	}
	return nil
}

func hasher(h v1.Hash) (hash.Hash, error) {
	switch h.Algorithm {
	case "sha256":
		return sha256.New(), nil
	case "sha512":
		return sha512.New(), nil
	}
	return nil, fmt.Errorf("unsupported digest algorithm %q", h.Algorithm)
}

// boundedReader fails once the uncompressed stream passes the limits.
type boundedReader struct {
	r      io.Reader
	in     *countingReader // compressed bytes consumed so far
	out    int64
	limits Limits
}

func (b *boundedReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	b.out += int64(n)
	if b.limits.MaxLayerBytes > 0 && b.out > b.limits.MaxLayerBytes {
		return n, fmt.Errorf("%w: more than %d uncompressed bytes", ErrBomb, b.limits.MaxLayerBytes)
	}
	if b.limits.MaxRatio > 0 && b.out > b.limits.RatioGrace && b.out > b.limits.MaxRatio*max(b.in.n, 1) {
		return n, fmt.Errorf("%w: %d bytes from %d compressed, ratio over %d", ErrBomb, b.out, b.in.n, b.limits.MaxRatio)
	}
	return n, err
}
