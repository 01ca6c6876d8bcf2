package tpm

import (
	"bytes"
	"encoding/hex"
	"fmt"
)

// Replay recomputes a PCR from zero through the log's records for it in
// one bank, checking that each record's digest is the hash of its content
// string (when the record says what was measured).
func Replay(records []Record, pcr int, b Bank) ([]byte, error) {
	return replayFrom(records, pcr, b, make([]byte, b.Hash.Size()))
}

func replayFrom(records []Record, pcr int, b Bank, value []byte) ([]byte, error) {
	for i, r := range records {
		if r.PCR != pcr {
			continue
		}
		var digest []byte
		for _, d := range r.Digests {
			if d.HashAlg == b.Name {
				v, err := hex.DecodeString(d.Digest)
				if err != nil || len(v) != b.Hash.Size() {
					return nil, fmt.Errorf("record %d: bad %s digest %q", i, b.Name, d.Digest)
				}
				digest = v
			}
		}
		if digest == nil {
			return nil, fmt.Errorf("record %d (PCR %d): no %s digest", i, pcr, b.Name)
		}
		if r.Content.String != "" {
			if want := EventDigests([]Bank{b}, []byte(r.Content.String))[0].Value; !bytes.Equal(want, digest) {
				return nil, fmt.Errorf("record %d (PCR %d, %q): %s digest %x is not the hash of its content (%x)", i, pcr, r.Content.String, b.Name, digest, want)
			}
		}
		value = ExtendValue(b, value, digest)
	}
	return value, nil
}
