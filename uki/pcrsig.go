package uki

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"

	"cfsboot/tpm"
)

// tpmCCPolicyPCR is TPM2_CC_PolicyPCR, part of the policy digest it makes.
const tpmCCPolicyPCR = 0x0000017f

// pcrSignature is one entry of systemd's .pcrsig JSON: a signed TPM2
// PolicyPCR digest for PCR 11 in one bank after one boot phase path.
type pcrSignature struct {
	PCRs        []int  `json:"pcrs"`
	Fingerprint string `json:"pkfp"` // SHA-256 of the public key (PKCS#1 RSAPublicKey DER)
	Policy      string `json:"pol"`  // the PolicyPCR digest (SHA-256 session), hex
	Signature   []byte `json:"sig"`  // base64 RSA PKCS#1 v1.5 over pol hashed with the bank's hash
}

// SignPCRPolicy predicts PCR 11 from the measured sections for every boot
// phase path (enter-initrd, ...:leave-initrd, ...:sysinit, ...:ready) in
// each bank (default sha256) and returns the JSON `systemd-measure sign`
// writes: per bank, the TPM2 PolicyPCR digest for each value, signed with
// key, so that a secret sealed with `systemd-cryptenroll
// --tpm2-public-key` unseals whenever PCR 11 matches a signed policy.
func SignPCRPolicy(sections map[string][]byte, key *rsa.PrivateKey, bankNames []string) ([]byte, error) {
	if len(bankNames) == 0 {
		bankNames = []string{"sha256"}
	}
	var banks []tpm.Bank
	for _, name := range bankNames {
		b, ok := tpm.BankByName(name)
		if !ok {
			return nil, fmt.Errorf("PCR bank %q: unknown (sha1, sha256, sha384, sha512)", name)
		}
		banks = append(banks, b)
	}
	fp := sha256.Sum256(x509.MarshalPKCS1PublicKey(&key.PublicKey))
	byBank := map[string][]pcrSignature{}
	for _, p := range tpm.PredictPCR11(sections, banks) {
		b, _ := tpm.BankByName(p.Bank)
		pol := PolicyPCRDigest(b, tpm.PCR11, p.Value)
		h := b.Hash.New()
		h.Write(pol)
		sig, err := rsa.SignPKCS1v15(rand.Reader, key, b.Hash, h.Sum(nil))
		if err != nil {
			return nil, fmt.Errorf("signing the PCR policy for %s %s: %w", p.Bank, p.Path, err)
		}
		byBank[p.Bank] = append(byBank[p.Bank], pcrSignature{
			PCRs: []int{tpm.PCR11}, Fingerprint: hex.EncodeToString(fp[:]),
			Policy: hex.EncodeToString(pol), Signature: sig,
		})
	}
	// Banks in the order asked for, like systemd-measure (a Go map would sort them).
	var out bytes.Buffer
	out.WriteByte('{')
	for i, b := range banks {
		if i > 0 {
			out.WriteByte(',')
		}
		list, err := json.Marshal(byBank[b.Name])
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(&out, "%q:%s", b.Name, list)
	}
	out.WriteByte('}')
	return out.Bytes(), nil
}

// PolicyPCRDigest is the digest of a SHA-256 TPM2 policy session after
// PolicyPCR on one PCR of bank b holding value: H(zeros || TPM_CC_PolicyPCR
// || TPML_PCR_SELECTION || H(value)).
func PolicyPCRDigest(b tpm.Bank, pcr int, value []byte) []byte {
	pcrDigest := sha256.Sum256(value)
	h := sha256.New()
	h.Write(make([]byte, sha256.Size))
	binary.Write(h, binary.BigEndian, uint32(tpmCCPolicyPCR))
	sel := [3]byte{}
	sel[pcr/8] |= 1 << (pcr % 8)
	binary.Write(h, binary.BigEndian, uint32(1)) // one TPMS_PCR_SELECTION
	binary.Write(h, binary.BigEndian, uint16(b.Alg))
	h.Write([]byte{byte(len(sel))})
	h.Write(sel[:])
	h.Write(pcrDigest[:])
	return h.Sum(nil)
}

// pcrPublicKeyPEM is the .pcrpkey section: the PEM public key of the PCR
// signing key, as ukify writes it.
func pcrPublicKeyPEM(key *rsa.PrivateKey) ([]byte, error) {
	if key == nil {
		return nil, nil
	}
	spki, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("PCR public key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: spki}), nil
}
