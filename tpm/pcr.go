// Package tpm extends and reads TPM 2.0 PCRs on every active bank, keeps
// the measurement log in systemd's format, and predicts PCR values.
package tpm

import (
	"crypto"
	_ "crypto/sha1" // register the PCR bank hashes
	_ "crypto/sha256"
	_ "crypto/sha512"
	"fmt"
)

// Bank is a PCR bank: a hash algorithm the TPM keeps PCRs for.
type Bank struct {
	Name string // as systemd names it: sha1, sha256, sha384, sha512
	Alg  AlgID
	Hash crypto.Hash
}

// KnownBanks in the order systemd lists them.
var KnownBanks = []Bank{
	{"sha1", AlgSHA1, crypto.SHA1},
	{"sha256", AlgSHA256, crypto.SHA256},
	{"sha384", AlgSHA384, crypto.SHA384},
	{"sha512", AlgSHA512, crypto.SHA512},
}

// BankByName finds a known bank.
func BankByName(name string) (Bank, bool) {
	for _, b := range KnownBanks {
		if b.Name == name {
			return b, true
		}
	}
	return Bank{}, false
}

// ActiveBanks returns the banks that have PCRs allocated. A bank the TPM
// has but this code does not know is an error: it could not be extended,
// and an unextended bank would let a verifier be fooled.
func ActiveBanks(t Transport) ([]Bank, error) {
	sels, err := getPCRAllocation(t)
	if err != nil {
		return nil, fmt.Errorf("TPM: reading PCR banks: %w", err)
	}
	var banks []Bank
	for _, s := range sels {
		if !anySet(s.Select) {
			continue
		}
		b, ok := bankByAlg(s.Hash)
		if !ok {
			return nil, fmt.Errorf("TPM: active PCR bank with hash algorithm %#x is not supported", uint16(s.Hash))
		}
		banks = append(banks, b)
	}
	if len(banks) == 0 {
		return nil, fmt.Errorf("TPM: no active PCR banks")
	}
	return banks, nil
}

func anySet(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return true
		}
	}
	return false
}

func bankByAlg(a AlgID) (Bank, bool) {
	for _, b := range KnownBanks {
		if b.Alg == a {
			return b, true
		}
	}
	return Bank{}, false
}

// Digest is one bank's digest of an event.
type Digest struct {
	Bank  Bank
	Value []byte
}

// EventDigests hashes data with every bank's algorithm.
func EventDigests(banks []Bank, data []byte) []Digest {
	out := make([]Digest, len(banks))
	for i, b := range banks {
		h := b.Hash.New()
		h.Write(data)
		out[i] = Digest{b, h.Sum(nil)}
	}
	return out
}

// Extend extends pcr with the digests (one per active bank) in one command.
func Extend(t Transport, pcr int, digests []Digest) error {
	for _, d := range digests {
		if len(d.Value) != d.Bank.Hash.Size() {
			return fmt.Errorf("TPM: extending PCR %d: %s digest of %d bytes", pcr, d.Bank.Name, len(d.Value))
		}
	}
	if err := pcrExtend(t, pcr, digests); err != nil {
		return fmt.Errorf("TPM: extending PCR %d: %w", pcr, err)
	}
	return nil
}

// Read returns pcr's value in each bank.
func Read(t Transport, pcr int, banks []Bank) ([]Digest, error) {
	var out []Digest
	for _, b := range banks {
		v, err := pcrRead(t, pcr, b.Alg)
		if err != nil {
			return nil, fmt.Errorf("TPM: reading PCR %d (%s): %w", pcr, b.Name, err)
		}
		if len(v) != b.Hash.Size() {
			return nil, fmt.Errorf("TPM: reading PCR %d (%s): %d bytes", pcr, b.Name, len(v))
		}
		out = append(out, Digest{b, v})
	}
	return out, nil
}

// ExtendValue is what a PCR becomes when extended with digest:
// H(old || digest).
func ExtendValue(b Bank, old, digest []byte) []byte {
	h := b.Hash.New()
	h.Write(old)
	h.Write(digest)
	return h.Sum(nil)
}
