package uki

import (
	"bufio"
	"bytes"
	"debug/pe"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"cfsboot/tpm"
)

const stubPath = "../.cache/debian/root/systemd-boot-efi/usr/lib/systemd/boot/efi/linuxx64.efi.stub"

func readStub(t testing.TB) []byte {
	t.Helper()
	stub, err := os.ReadFile(stubPath)
	if err != nil {
		t.Skipf("needs Debian's systemd stub (make deps): %v", err)
	}
	return stub
}

func testParts() Parts {
	return Parts{
		Linux:     bytes.Repeat([]byte("vmlinuz "), 10000),
		Initrd:    bytes.Repeat([]byte{0x1f, 0x8b, 7}, 3333),
		Cmdline:   []byte("composefs=0123 root=LABEL=cfsroot rw"),
		OSRelease: []byte("ID=cfsboot\nVERSION_ID=1\n"),
		Uname:     []byte("6.12.0-test"),
		Splash:    []byte("BM not really a bitmap"),
	}
}

// TestBuildLayout checks ukify's layout rules with debug/pe: the stub's
// sections unchanged (but .sbat), the new ones after them in ukify's order,
// aligned, sized by their data, SizeOfImage covering them, CheckSum zero.
func TestBuildLayout(t *testing.T) {
	stub := readStub(t)
	parts := testParts()
	out, err := Build(stub, parts)
	if err != nil {
		t.Fatal(err)
	}
	orig, err := pe.NewFile(bytes.NewReader(stub))
	if err != nil {
		t.Fatal(err)
	}
	f, err := pe.NewFile(bytes.NewReader(out))
	if err != nil {
		t.Fatalf("debug/pe cannot read the UKI: %v", err)
	}
	oh, ooh := f.OptionalHeader.(*pe.OptionalHeader64), orig.OptionalHeader.(*pe.OptionalHeader64)
	for i, s := range orig.Sections {
		got := f.Sections[i]
		if s.Name == ".sbat" {
			continue
		}
		if got.SectionHeader != s.SectionHeader {
			t.Errorf("stub section %s changed: %+v, was %+v", s.Name, got.SectionHeader, s.SectionHeader)
		}
		a, _ := s.Data()
		b, _ := got.Data()
		if !bytes.Equal(a, b) {
			t.Errorf("stub section %s: data changed", s.Name)
		}
	}
	want := []string{".osrel", ".cmdline", ".uname", ".splash", ".linux", ".initrd"}
	added := f.Sections[len(orig.Sections):]
	if len(added) != len(want) {
		t.Fatalf("added %d sections, want %v", len(added), want)
	}
	prev := f.Sections[len(orig.Sections)-1]
	data := map[string][]byte{".osrel": parts.OSRelease, ".cmdline": parts.Cmdline, ".uname": parts.Uname, ".splash": parts.Splash, ".initrd": parts.Initrd, ".linux": parts.Linux}
	for i, s := range added {
		if s.Name != want[i] {
			t.Errorf("section %d is %s, want %s", i, s.Name, want[i])
		}
		if s.VirtualSize != uint32(len(data[s.Name])) {
			t.Errorf("%s: VirtualSize %d, data %d bytes", s.Name, s.VirtualSize, len(data[s.Name]))
		}
		if s.VirtualAddress%ooh.SectionAlignment != 0 || s.VirtualAddress < prev.VirtualAddress+prev.VirtualSize {
			t.Errorf("%s: VirtualAddress %#x not aligned after %s", s.Name, s.VirtualAddress, prev.Name)
		}
		if s.Offset%ooh.FileAlignment != 0 || s.Size%ooh.FileAlignment != 0 {
			t.Errorf("%s: raw data %#x+%#x not aligned to %#x", s.Name, s.Offset, s.Size, ooh.FileAlignment)
		}
		got, _ := s.Data()
		if !bytes.Equal(got[:s.VirtualSize], data[s.Name]) {
			t.Errorf("%s: data differs", s.Name)
		}
		prev = s
	}
	if wantSize := (prev.VirtualAddress + prev.VirtualSize + 0xfff) &^ 0xfff; oh.SizeOfImage != wantSize {
		t.Errorf("SizeOfImage %#x, want %#x", oh.SizeOfImage, wantSize)
	}
	if oh.CheckSum != 0 {
		t.Errorf("CheckSum %#x", oh.CheckSum)
	}
	if uint32(len(out)) != prev.Offset+prev.Size {
		t.Errorf("file is %d bytes, the last section ends at %d", len(out), prev.Offset+prev.Size)
	}
	again, err := Build(stub, parts)
	if err != nil || !bytes.Equal(again, out) {
		t.Errorf("a second build differs (%v)", err)
	}
}

// TestBuildSBAT: the stub's .sbat keeps its place and carries the stub's
// entries, then the user's (or ukify's default UKI entry), under one header.
func TestBuildSBAT(t *testing.T) {
	stub := readStub(t)
	for _, user := range []string{"", "sbat,1,SBAT Version,sbat,1,https://github.com/rhboot/shim/blob/main/SBAT.md\ncfsboot,1,cfsboot,cfsboot,1,https://example.org/\n"} {
		parts := testParts()
		if user != "" {
			parts.SBAT = []byte(user)
		}
		out, err := Build(stub, parts)
		if err != nil {
			t.Fatal(err)
		}
		got, err := MeasuredSections(bytes.NewReader(out))
		if err != nil {
			t.Fatal(err)
		}
		sbat := string(got[".sbat"])
		last := "uki,1,UKI,uki,1,https://uapi-group.org/specifications/specs/unified_kernel_image/\n\x00"
		if user != "" {
			last = "cfsboot,1,cfsboot,cfsboot,1,https://example.org/\n\x00"
		}
		if !strings.HasPrefix(sbat, sbatHeader+"systemd-stub,1,") || strings.Count(sbat, "sbat,1,SBAT Version") != 1 ||
			!strings.Contains(sbat, "\nsystemd-stub.debian,1,") || !strings.HasSuffix(sbat, "\n"+last) {
			t.Errorf("merged .sbat:\n%q", sbat)
		}
	}
	parts := testParts()
	parts.SBAT = []byte("cfsboot,1,no header\n")
	if _, err := Build(stub, parts); err == nil {
		t.Error("an SBAT without the header line was accepted")
	}
	parts.SBAT = []byte(sbatHeader + strings.Repeat("x,1,too long for the stub's section\n", 20))
	if _, err := Build(stub, parts); err == nil {
		t.Error("an SBAT larger than the stub's .sbat section was accepted")
	}
}

func TestBuildRefusesSignedStub(t *testing.T) {
	stub := bytes.Clone(readStub(t))
	p, err := parsePE(stub)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.setCertTable(uint32(len(stub)), 8); err != nil {
		t.Fatal(err)
	}
	if _, err := Build(stub, testParts()); err == nil || !strings.Contains(err.Error(), "already signed") {
		t.Errorf("signed stub: %v", err)
	}
}

// TestBuildHeaderRoom: sections are added until the headers are full, then
// refused rather than written over the first section's data.
func TestBuildHeaderRoom(t *testing.T) {
	p, err := parsePE(bytes.Clone(readStub(t)))
	if err != nil {
		t.Fatal(err)
	}
	if err := checkStub(p); err != nil {
		t.Fatal(err)
	}
	room := (int(p.u32(optSizeOfHeaders)) - p.sectTbl) / sectionHeaderSize
	for i := len(p.sections); i < room; i++ {
		if err := p.addSection(fmt.Sprintf(".x%d", i), []byte{1}); err != nil {
			t.Fatalf("section %d of %d: %v", i, room, err)
		}
	}
	if err := p.addSection(".full", []byte{1}); err == nil {
		t.Fatal("a section header past SizeOfHeaders was accepted")
	}
	if _, err := pe.NewFile(bytes.NewReader(p.data)); err != nil {
		t.Fatal(err)
	}
	first := binary.LittleEndian.Uint32(p.data[p.sectTbl+20:])
	if end := p.sectTbl + len(p.sections)*sectionHeaderSize; uint32(end) > first {
		t.Fatalf("section table ends at %#x, the first section's data starts at %#x", end, first)
	}
}

// TestBuildObjdump: binutils reads the sections at the offsets and sizes we
// wrote.
func TestBuildObjdump(t *testing.T) {
	objdump, err := exec.LookPath("objdump")
	if err != nil {
		t.Skip("needs objdump (binutils)")
	}
	out, err := Build(readStub(t), testParts())
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "uki.efi")
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatal(err)
	}
	listing, err := exec.Command(objdump, "-h", path).CombinedOutput()
	if err != nil {
		t.Fatalf("objdump -h: %v\n%s", err, listing)
	}
	f, err := pe.NewFile(bytes.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(listing))
	for sc.Scan() {
		// Idx Name Size VMA LMA File-off Algn
		w := strings.Fields(sc.Text())
		if len(w) != 7 || !strings.HasPrefix(w[1], ".") {
			continue
		}
		s := f.Section(w[1])
		size, _ := strconv.ParseUint(w[2], 16, 32)
		off, _ := strconv.ParseUint(w[5], 16, 32)
		if s == nil || uint32(size) != s.VirtualSize || uint32(off) != s.Offset {
			t.Errorf("objdump: %s size %#x at %#x; ours %+v", w[1], size, off, s)
		}
		seen[w[1]] = true
	}
	for _, s := range f.Sections {
		if !seen[s.Name] {
			t.Errorf("objdump does not list %s", s.Name)
		}
	}
}

// TestBuildAgainstSystemdMeasure: `systemd-measure calculate` over the
// section files equals our prediction over the sections read back from
// the UKI. systemd 252 predates .uname and .sbat measurement, so those two
// are left out on both sides here.
func TestBuildAgainstSystemdMeasure(t *testing.T) {
	tool := "/usr/lib/systemd/systemd-measure"
	if _, err := os.Stat(tool); err != nil {
		t.Skip("systemd-measure not installed")
	}
	parts := testParts()
	out, err := Build(readStub(t), parts)
	if err != nil {
		t.Fatal(err)
	}
	sections, err := MeasuredSections(bytes.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	delete(sections, ".uname")
	delete(sections, ".sbat")
	dir := t.TempDir()
	args := []string{"calculate", "--json=short", "--bank=sha256"}
	for _, part := range []struct {
		name string
		data []byte
	}{{"linux", parts.Linux}, {"osrel", parts.OSRelease}, {"cmdline", parts.Cmdline}, {"initrd", parts.Initrd}, {"splash", parts.Splash}} {
		path := filepath.Join(dir, part.name)
		if err := os.WriteFile(path, part.data, 0o644); err != nil {
			t.Fatal(err)
		}
		args = append(args, "--"+part.name+"="+path)
	}
	want, err := exec.Command(tool, args...).Output()
	if err != nil {
		t.Fatalf("systemd-measure: %v", err)
	}
	sha256, _ := tpm.BankByName("sha256")
	for _, p := range tpm.PredictPCR11(sections, []tpm.Bank{sha256}) {
		if !bytes.Contains(want, fmt.Appendf(nil, `{"phase":"%s","pcr":11,"hash":"%x"}`, p.Path, p.Value)) {
			t.Errorf("%s: ours %x, systemd-measure %s", p.Path, p.Value, want)
		}
	}
}
