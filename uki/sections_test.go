package uki

import (
	"bytes"
	"debug/pe"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"cfsboot/tpm"
)

func writeSections(t *testing.T) (dir string, sections map[string][]byte) {
	t.Helper()
	dir = t.TempDir()
	sections = map[string][]byte{
		".linux":   bytes.Repeat([]byte("vmlinuz "), 1000),
		".osrel":   []byte("ID=cfsboot\nVERSION_ID=1\n"),
		".cmdline": []byte("composefs=0123 root=LABEL=cfsroot rw"),
		".initrd":  bytes.Repeat([]byte{0x1f, 0x8b, 7}, 3333),
	}
	for name, data := range sections {
		if err := os.WriteFile(filepath.Join(dir, name[1:]), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir, sections
}

// TestMeasuredSections builds a UKI from Debian's systemd stub with objcopy and
// checks that the sections read back are the ones added (plus the stub's
// own .sbat, which systemd-stub measures too), so a prediction from the UKI
// equals one from its section files.
func TestMeasuredSections(t *testing.T) {
	stubs, _ := filepath.Glob("../.cache/debian/root/systemd-boot-efi/usr/lib/systemd/boot/efi/linuxx64.efi.stub")
	objcopy, err := exec.LookPath("objcopy")
	if len(stubs) == 0 || err != nil {
		t.Skip("needs the systemd stub (make deps) and objcopy (binutils)")
	}
	f, err := pe.Open(stubs[0])
	if err != nil {
		t.Fatal(err)
	}
	base := f.OptionalHeader.(*pe.OptionalHeader64).ImageBase
	var end uint64
	for _, s := range f.Sections {
		end = max(end, uint64(s.VirtualAddress+s.VirtualSize))
	}
	f.Close()
	dir, sections := writeSections(t)
	uki := filepath.Join(dir, "test.efi")
	args := []string{}
	vma := base + (end+0xffff)&^0xffff
	for _, name := range tpm.UKISectionOrder {
		if _, ok := sections[name]; !ok {
			continue
		}
		args = append(args, "--add-section", name+"="+filepath.Join(dir, name[1:]), "--change-section-vma", fmt.Sprintf("%s=%#x", name, vma))
		vma += (uint64(len(sections[name])) + 0xffff) &^ 0xffff
	}
	if out, err := exec.Command(objcopy, append(args, stubs[0], uki)...).CombinedOutput(); err != nil {
		t.Fatalf("objcopy: %v\n%s", err, out)
	}
	r, err := os.Open(uki)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got, err := MeasuredSections(r)
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range sections {
		if !bytes.Equal(got[name], data) {
			t.Errorf("%s: read %d bytes, added %d", name, len(got[name]), len(data))
		}
	}
	if len(got[".sbat"]) == 0 {
		t.Error("the stub's .sbat section was not read")
	}
	sections[".sbat"] = got[".sbat"]
	sha256, _ := tpm.BankByName("sha256")
	b := []tpm.Bank{sha256}
	if fromUKI, fromFiles := tpm.PredictPCR11(got, b), tpm.PredictPCR11(sections, b); !bytes.Equal(fromUKI[3].Value, fromFiles[3].Value) {
		t.Error("prediction from the UKI differs from the one from its sections")
	}
}

// TestPredictPCR11AgainstSystemdMeasure compares with systemd's own
// `systemd-measure calculate` (Debian 12's systemd package).
func TestPredictPCR11AgainstSystemdMeasure(t *testing.T) {
	tool := "/usr/lib/systemd/systemd-measure"
	if _, err := os.Stat(tool); err != nil {
		t.Skip("systemd-measure not installed")
	}
	dir, sections := writeSections(t)
	var banks []tpm.Bank
	for _, n := range []string{"sha1", "sha256", "sha384", "sha512"} {
		b, _ := tpm.BankByName(n)
		banks = append(banks, b)
	}
	args := []string{"calculate", "--json=short"}
	for name := range sections {
		args = append(args, fmt.Sprintf("--%s=%s", name[1:], filepath.Join(dir, name[1:])))
	}
	for _, b := range banks {
		args = append(args, "--bank="+b.Name)
	}
	out, err := exec.Command(tool, args...).Output()
	if err != nil {
		t.Fatalf("systemd-measure: %v", err)
	}
	var want map[string][]struct {
		Phase string `json:"phase"`
		Hash  string `json:"hash"`
	}
	if err := json.Unmarshal(out, &want); err != nil {
		t.Fatalf("systemd-measure output %s: %v", out, err)
	}
	got := tpm.PredictPCR11(sections, banks)
	n := 0
	for _, p := range got {
		for _, w := range want[p.Bank] {
			if w.Phase == p.Path {
				n++
				if w.Hash != hex.EncodeToString(p.Value) {
					t.Errorf("%s %s: %x, systemd-measure %s", p.Bank, p.Path, p.Value, w.Hash)
				}
			}
		}
	}
	if n != len(got) {
		t.Fatalf("compared %d of %d predictions (systemd-measure said %s)", n, len(got), out)
	}
}
