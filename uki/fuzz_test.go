package uki

import (
	"bytes"
	"os"
	"testing"
)

// FuzzPE: the PE reader, the image hash, the section reader and the
// signature table parser never panic on any input, and Build either
// refuses a stub or makes an image our reader reads back.
func FuzzPE(f *testing.F) {
	if stub, err := os.ReadFile(stubPath); err == nil {
		f.Add(stub)
		if key, cert := testCert(f, "fuzz"); true {
			if uki, err := Build(stub, Parts{Cmdline: []byte("x"), Linux: []byte("kernel")}); err == nil {
				if signed, err := Sign(uki, key, cert); err == nil {
					f.Add(signed)
				}
			}
		}
	}
	f.Add([]byte("MZ"))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = ImageHash(data)
		_, _ = MeasuredSections(bytes.NewReader(data))
		_, _ = Signatures(data)
		_, _ = Inspect(data, nil)
		uki, err := Build(data, Parts{Cmdline: []byte("root=x"), Linux: []byte("kernel")})
		if err != nil {
			return
		}
		got, err := MeasuredSections(bytes.NewReader(uki))
		if err != nil || string(got[".cmdline"]) != "root=x" {
			t.Fatalf("built image reads back %q, %v", got[".cmdline"], err)
		}
	})
}

// FuzzPKCS7: the Authenticode signature parser and verifier never panic.
func FuzzPKCS7(f *testing.F) {
	key, cert := testCert(f, "fuzz")
	hash := bytes.Repeat([]byte{7}, 32)
	if sig, err := signPKCS7(hash, key, cert); err == nil {
		f.Add(sig)
	}
	f.Add([]byte{0x30, 0x03, 0x06, 0x01, 0x00})
	f.Fuzz(func(t *testing.T, der []byte) {
		ps, err := parsePKCS7(der)
		if err != nil {
			return
		}
		_ = ps.verify()
		_ = ps.chainsTo(cert)
	})
}
