package initramfs

import (
	"os"
	"path/filepath"
	"testing"
)

// TestKernelLogLevels: failures reach the kernel log at crit level (shown
// on a quiet console, kept by journald as errors), progress at debug.
func TestKernelLogLevels(t *testing.T) {
	dir := t.TempDir()
	open := func(name string) *os.File {
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	s := &Linux{kmsg: open("progress"), kmsgCrit: open("crit"), quiet: true}
	s.Log("stage root")
	s.Critical("FAILED at stage root: no device")
	s.kmsg.Close()
	s.kmsgCrit.Close()
	progress, _ := os.ReadFile(filepath.Join(dir, "progress"))
	crit, _ := os.ReadFile(filepath.Join(dir, "crit"))
	if string(progress) != "<7>cfsboot: stage root\n" {
		t.Errorf("progress line %q", progress)
	}
	if string(crit) != "<2>cfsboot: FAILED at stage root: no device\n" {
		t.Errorf("failure line %q", crit)
	}
}
