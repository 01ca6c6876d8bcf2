package uki

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"testing"

	"cfsboot/tpm"
)

func TestInspect(t *testing.T) {
	parts := testParts()
	parts.OSRelease = []byte("NAME=cfsboot\nPRETTY_NAME=\"cfsboot test\"\n")
	unsigned, err := Build(readStub(t), parts)
	if err != nil {
		t.Fatal(err)
	}
	key, cert := testCert(t, "cfsboot test db")
	signed, err := Sign(unsigned, key, cert)
	if err != nil {
		t.Fatal(err)
	}
	sha256, _ := tpm.BankByName("sha256")
	info, err := Inspect(signed, []tpm.Bank{sha256})
	if err != nil {
		t.Fatal(err)
	}
	if info.Cmdline != string(parts.Cmdline) || info.OSRelease != "cfsboot test" || info.Uname != string(parts.Uname) {
		t.Errorf("cmdline %q, os-release %q, uname %q", info.Cmdline, info.OSRelease, info.Uname)
	}
	if len(info.Signatures) != 1 || info.Signatures[0].Subject != "CN=cfsboot test db" || !info.Signatures[0].HashMatches {
		t.Errorf("signatures %+v", info.Signatures)
	}
	measured, _ := MeasuredSections(bytes.NewReader(signed))
	want := tpm.PredictPCR11(measured, []tpm.Bank{sha256})
	if len(info.PCR11) != 4 || info.PCR11[3].Phase != "enter-initrd:leave-initrd:sysinit:ready" || info.PCR11[1].Value != hex.EncodeToString(want[1].Value) {
		t.Errorf("PCR 11 %+v", info.PCR11)
	}
	if n := len(info.Sections); n != 12 || info.Sections[n-2].Name != ".linux" || info.Sections[n-2].VirtualSize != uint32(len(parts.Linux)) {
		t.Errorf("sections %+v", info.Sections)
	}
}

// TestMeasuredSectionsZeroFill: a section whose VirtualSize exceeds its
// raw data is measured as loaded, zero-filled (ukify gives .linux the
// kernel's SizeOfImage).
func TestMeasuredSectionsZeroFill(t *testing.T) {
	parts := testParts()
	out, err := Build(readStub(t), parts)
	if err != nil {
		t.Fatal(err)
	}
	p, err := parsePE(out)
	if err != nil {
		t.Fatal(err)
	}
	i := p.section(".linux")
	grown := uint32(len(parts.Linux)) + 3*4096
	binary.LittleEndian.PutUint32(p.data[p.sectTbl+i*sectionHeaderSize+8:], grown)
	got, err := MeasuredSections(bytes.NewReader(p.data))
	if err != nil {
		t.Fatal(err)
	}
	want := append(bytes.Clone(parts.Linux), make([]byte, 3*4096)...)
	if !bytes.Equal(got[".linux"], want) {
		t.Errorf(".linux: %d bytes, want %d (zero-filled)", len(got[".linux"]), len(want))
	}
}

// TestMeasuredSectionsFirstWins: of two sections with one name,
// systemd-stub uses (and measures) the first.
func TestMeasuredSectionsFirstWins(t *testing.T) {
	parts := testParts()
	out, err := Build(readStub(t), parts)
	if err != nil {
		t.Fatal(err)
	}
	p, err := parsePE(out)
	if err != nil {
		t.Fatal(err)
	}
	i := p.section(".osrel") // laid out before .cmdline
	copy(p.data[p.sectTbl+i*sectionHeaderSize:][:8], ".cmdline")
	got, err := MeasuredSections(bytes.NewReader(p.data))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got[".cmdline"], parts.OSRelease) {
		t.Errorf(".cmdline read as %q, want the first section's %q", got[".cmdline"], parts.OSRelease)
	}
}
