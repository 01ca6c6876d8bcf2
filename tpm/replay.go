package tpm

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
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

// LogCheck is the verdict of replaying the log for one PCR in one bank.
type LogCheck struct {
	PCR      int    `json:"pcr"`
	Bank     string `json:"bank"`
	Events   int    `json:"events"`
	Replayed string `json:"replayed"` // hex PCR value the log's events give
	TPM      string `json:"tpm"`      // hex PCR value the TPM holds
	Match    bool   `json:"match"`
}

// ErrLogMismatch: the log's events do not account for the TPM's values.
var ErrLogMismatch = errors.New("the measurement log does not account for the PCR values: events are missing or forged (for PCR 11 on a UKI boot, the stub's events are in the firmware log, not this one)")

// CheckLog replays every PCR the log names in every bank and compares the
// result with the value read from the TPM. It returns ErrLogMismatch, with
// the checks, when any of them differs.
func CheckLog(records []Record, banks []Bank, read func(pcr int) ([]Digest, error)) ([]LogCheck, error) {
	counts := map[int]int{}
	for _, r := range records {
		counts[r.PCR]++
	}
	var checks []LogCheck
	var err error
	for _, pcr := range slices.Sorted(maps.Keys(counts)) {
		now, rerr := read(pcr)
		if rerr != nil {
			return nil, rerr
		}
		for i, b := range banks {
			replayed, rerr := Replay(records, pcr, b)
			if rerr != nil {
				return nil, rerr
			}
			c := LogCheck{PCR: pcr, Bank: b.Name, Events: counts[pcr], Replayed: hex.EncodeToString(replayed), TPM: hex.EncodeToString(now[i].Value)}
			c.Match = c.Replayed == c.TPM
			if !c.Match {
				err = ErrLogMismatch
			}
			checks = append(checks, c)
		}
	}
	return checks, err
}
