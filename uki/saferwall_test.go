package uki

import (
	"bytes"
	"crypto/sha256"
	"debug/pe"
	"strings"
	"testing"

	saferwall "github.com/saferwall/pe"
)

// TestSaferwallReadsOurUKI: an independent PE parser (saferwall/pe) reads a
// built and signed UKI: the same sections at the same places,
// and our Authenticode signature over the image hash it computes itself.
func TestSaferwallReadsOurUKI(t *testing.T) {
	unsigned, err := Build(readStub(t), testParts())
	if err != nil {
		t.Fatal(err)
	}
	key, cert := testCert(t, "cfsboot test db")
	signed, err := Sign(unsigned, key, cert)
	if err != nil {
		t.Fatal(err)
	}
	f, err := saferwall.NewBytes(signed, &saferwall.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Parse(); err != nil {
		t.Fatalf("saferwall/pe: %v", err)
	}
	ours, err := pe.NewFile(bytes.NewReader(signed))
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Sections) != len(ours.Sections) {
		t.Fatalf("saferwall/pe sees %d sections, debug/pe %d", len(f.Sections), len(ours.Sections))
	}
	for i, s := range f.Sections {
		o := ours.Sections[i]
		if s.String() != o.Name || s.Header.VirtualAddress != o.VirtualAddress || s.Header.VirtualSize != o.VirtualSize || s.Header.PointerToRawData != o.Offset {
			t.Errorf("section %d: saferwall/pe %q %+v, debug/pe %+v", i, s.String(), s.Header, o.SectionHeader)
		}
	}
	if !f.IsSigned || len(f.Certificates.Certificates) == 0 {
		t.Fatalf("saferwall/pe finds no signature (IsSigned %v)", f.IsSigned)
	}
	// saferwall/pe's own Authenticode hash of the image (its SignatureValid
	// also wants a chain to the system's roots, which a test key lacks).
	c := f.Certificates.Certificates[0]
	theirs := f.AuthentihashExt(sha256.New())
	if len(theirs) == 0 || !bytes.Equal(theirs[0], c.SignatureContent.HashResult) {
		t.Errorf("saferwall/pe: the signed hash %x is not the image's Authenticode hash %x", c.SignatureContent.HashResult, theirs)
	}
	if ours, err := ImageHash(signed); err != nil || len(theirs) == 0 || !bytes.Equal(ours, theirs[0]) {
		t.Errorf("Authenticode hash: ours %x (%v), saferwall/pe %x", ours, err, theirs)
	}
	if !strings.Contains(c.Info.Subject, "cfsboot test db") {
		t.Errorf("saferwall/pe names the signer %q", c.Info.Subject)
	}
}
