package uki

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

func testCert(t testing.TB, name string) (*rsa.PrivateKey, *x509.Certificate) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return key, cert
}

func writePEMs(t *testing.T, dir string, key *rsa.PrivateKey, cert *x509.Certificate) (keyPath, certPath string) {
	t.Helper()
	keyPath, certPath = filepath.Join(dir, "db.key"), filepath.Join(dir, "db.crt")
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	return keyPath, certPath
}

func TestSignVerify(t *testing.T) {
	unsigned, err := Build(readStub(t), testParts())
	if err != nil {
		t.Fatal(err)
	}
	key, cert := testCert(t, "cfsboot test db")
	signed, err := Sign(unsigned, key, cert)
	if err != nil {
		t.Fatal(err)
	}
	if err := Verify(signed, cert); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if err := Verify(unsigned, cert); !errors.Is(err, ErrNotSigned) {
		t.Errorf("unsigned image: %v", err)
	}
	_, other := testCert(t, "someone else")
	if err := Verify(signed, other); err == nil {
		t.Error("verified with a certificate that did not sign")
	}
	changed := bytes.Clone(signed)
	changed[bytes.Index(changed, []byte("composefs="))] ^= 1 // in .cmdline
	if err := Verify(changed, cert); err == nil {
		t.Error("verified an image changed after signing")
	}
	if _, err := Sign(signed, key, cert); err == nil {
		t.Error("signed an already signed image")
	}
	p, err := parsePE(signed)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := p.u32(optCheckSum), p.checksum(); got != want || got == 0 {
		t.Errorf("CheckSum %#x, computed %#x", got, want)
	}
	sigs, err := Signatures(signed)
	if err != nil || len(sigs) != 1 || sigs[0].Subject != "CN=cfsboot test db" || !sigs[0].HashMatches {
		t.Errorf("Signatures: %+v, %v", sigs, err)
	}
	again, err := Sign(unsigned, key, cert)
	if err != nil || !bytes.Equal(again, signed) {
		t.Errorf("signing again gives other bytes (%v)", err)
	}
}

// TestSignAgainstSbsigntool: sbverify accepts our signatures and refuses
// a changed image; images signed by sbsign verify with ours.
func TestSignAgainstSbsigntool(t *testing.T) {
	sbverify, err1 := exec.LookPath("sbverify")
	sbsign, err2 := exec.LookPath("sbsign")
	if err1 != nil || err2 != nil {
		t.Skip("needs sbsigntool")
	}
	dir := t.TempDir()
	unsigned, err := Build(readStub(t), testParts())
	if err != nil {
		t.Fatal(err)
	}
	key, cert := testCert(t, "cfsboot test db")
	keyPath, certPath := writePEMs(t, dir, key, cert)
	signed, err := Sign(unsigned, key, cert)
	if err != nil {
		t.Fatal(err)
	}
	ours := filepath.Join(dir, "ours.efi")
	if err := os.WriteFile(ours, signed, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(sbverify, "--cert", certPath, ours).CombinedOutput(); err != nil {
		t.Errorf("sbverify refuses our signature: %v\n%s", err, out)
	}
	otherKey, otherCert := testCert(t, "someone else")
	_, otherPath := writePEMs(t, t.TempDir(), otherKey, otherCert)
	if out, err := exec.Command(sbverify, "--cert", otherPath, ours).CombinedOutput(); err == nil {
		t.Errorf("sbverify accepts our signature with another certificate:\n%s", out)
	}
	signed[bytes.Index(signed, []byte("composefs="))] ^= 1
	if err := os.WriteFile(ours, signed, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(sbverify, "--cert", certPath, ours).CombinedOutput(); err == nil {
		t.Errorf("sbverify accepts a changed image:\n%s", out)
	}

	in, theirs := filepath.Join(dir, "unsigned.efi"), filepath.Join(dir, "theirs.efi")
	if err := os.WriteFile(in, unsigned, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(sbsign, "--key", keyPath, "--cert", certPath, "--output", theirs, in).CombinedOutput(); err != nil {
		t.Fatalf("sbsign: %v\n%s", err, out)
	}
	data, err := os.ReadFile(theirs)
	if err != nil {
		t.Fatal(err)
	}
	if err := Verify(data, cert); err != nil {
		t.Errorf("sbsign's signature: %v", err)
	}
	want, err := ImageHash(unsigned)
	if err != nil {
		t.Fatal(err)
	}
	if sigs, err := Signatures(data); err != nil || len(sigs) != 1 || !bytes.Equal(sigs[0].ImageHash, want) {
		t.Errorf("sbsign signed hash %+v (%v), ours %x", sigs, err, want)
	}
}
