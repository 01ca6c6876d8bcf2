package store

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
)

// composefs-rs splitstreams (streams/<name> -> ../objects/XX/<rest>) keep
// their external chunks' objects and the streams they name in two plain
// arrays of object ids; reading those two arrays is all gc and fsck need.
//
// Header (32 bytes): magic "SplitStream", version 0, flags u16, algorithm
// u8 (1 sha256, 2 sha512), lg_blocksize u8, info range (start, end u64).
// Writers before composefs-rs made it repr(C) put the info range first:
// info range, flags, magic, version, algorithm, lg_blocksize.
// Info: ranges of stream_refs, object_refs, stream, named_refs, then
// content_type and stream_size (u64 each); all little endian.

var splitstreamMagic = []byte("SplitStream")

// splitstreamRefs returns the object paths ("xx/rest") the splitstream of
// the given size references: the streams it names and its external chunks.
func splitstreamRefs(r io.ReaderAt, size int64) (streams, objects []string, err error) {
	var hdr [32]byte
	if _, err := r.ReadAt(hdr[:], 0); err != nil {
		return nil, nil, fmt.Errorf("splitstream header: %w", err)
	}
	var version, alg, lgBlock byte
	var info []byte
	switch {
	case bytes.Equal(hdr[:11], splitstreamMagic):
		version, alg, lgBlock, info = hdr[11], hdr[14], hdr[15], hdr[16:32]
	case bytes.Equal(hdr[18:29], splitstreamMagic):
		version, alg, lgBlock, info = hdr[29], hdr[30], hdr[31], hdr[0:16]
	default:
		return nil, nil, errors.New("not a splitstream (no SplitStream magic)")
	}
	if version != 0 || lgBlock != 12 {
		return nil, nil, fmt.Errorf("splitstream version %d with block size 2^%d: unsupported", version, lgBlock)
	}
	idSize := map[byte]uint64{1: 32, 2: 64}[alg]
	if idSize == 0 {
		return nil, nil, fmt.Errorf("splitstream fs-verity algorithm %d: unsupported", alg)
	}
	readRange := func(rng []byte, what string) ([]byte, error) {
		start, end := binary.LittleEndian.Uint64(rng), binary.LittleEndian.Uint64(rng[8:])
		if end < start || end > uint64(size) {
			return nil, fmt.Errorf("splitstream %s range %d..%d outside the %d-byte file", what, start, end, size)
		}
		buf := make([]byte, end-start)
		if _, err := r.ReadAt(buf, int64(start)); err != nil && !(err == io.EOF && len(buf) == 0) {
			return nil, fmt.Errorf("splitstream %s: %w", what, err)
		}
		return buf, nil
	}
	infoBytes, err := readRange(info, "info")
	if err != nil {
		return nil, nil, err
	}
	if len(infoBytes) < 32 {
		return nil, nil, fmt.Errorf("splitstream info: %d bytes, want at least 32", len(infoBytes))
	}
	lists := [2][]string{}
	for i, what := range []string{"stream references", "object references"} {
		ids, err := readRange(infoBytes[16*i:16*i+16], what)
		if err != nil {
			return nil, nil, err
		}
		if uint64(len(ids))%idSize != 0 {
			return nil, nil, fmt.Errorf("splitstream %s: %d bytes is not a whole number of %d-byte ids", what, len(ids), idSize)
		}
		for off := uint64(0); off < uint64(len(ids)); off += idSize {
			h := hex.EncodeToString(ids[off : off+idSize])
			lists[i] = append(lists[i], h[:2]+"/"+h[2:])
		}
	}
	return lists[0], lists[1], nil
}
