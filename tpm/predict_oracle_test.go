package tpm

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
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

// TestPredictPCR11AgainstSystemdMeasure compares with systemd's own
// `systemd-measure calculate` (Debian 12's systemd package).
func TestPredictPCR11AgainstSystemdMeasure(t *testing.T) {
	tool := "/usr/lib/systemd/systemd-measure"
	if _, err := os.Stat(tool); err != nil {
		t.Skip("systemd-measure not installed")
	}
	dir, sections := writeSections(t)
	banks := []Bank{mustBank("sha1"), mustBank("sha256"), mustBank("sha384"), mustBank("sha512")}
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
	got := PredictPCR11(sections, banks)
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
