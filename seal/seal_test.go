package seal

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"cfsboot/seal/inplace"
)

func TestFollow(t *testing.T) {
	console := strings.Join([]string{
		"[    0.000000] Linux version 6.12",
		inplace.ProgressLine(1, 3),
		inplace.ProgressLine(3, 3),
		inplace.SealedLine(3),
		"[    5.0] reboot: Power down",
	}, "\n")
	var progress [][2]int
	sealed, failure, tail := follow(strings.NewReader(console), Options{Progress: func(d, t int) { progress = append(progress, [2]int{d, t}) }})
	if sealed != 3 || failure != "" || len(progress) != 2 || progress[1] != [2]int{3, 3} || len(tail) != 5 {
		t.Errorf("follow = %d %q %v %v", sealed, failure, progress, tail)
	}
	sealed, failure, _ = follow(strings.NewReader("x\ncfsboot-seal: failed: /mnt/composefs/objects/ab/cd: enable fs-verity: operation not supported\n"), Options{})
	if sealed != -1 || !strings.Contains(failure, "operation not supported") {
		t.Errorf("follow of a failure = %d %q", sealed, failure)
	}
}

// A VM that stops without a word is an error that shows its console.
func TestSealReportsSilentExit(t *testing.T) {
	dir := t.TempDir()
	fake := filepath.Join(dir, "qemu")
	os.WriteFile(fake, []byte("#!/bin/sh\necho 'Kernel panic - not syncing: VFS'\nexit 0\n"), 0o755)
	init := filepath.Join(dir, "init")
	os.WriteFile(init, []byte("init"), 0o755)
	_, err := Seal(context.Background(), Options{Kernel: "vmlinuz", Init: init, Disk: "disk", Root: "PARTUUID=x", QEMU: fake})
	if err == nil || !strings.Contains(err.Error(), "without finishing") || !strings.Contains(err.Error(), "Kernel panic") {
		t.Errorf("Seal with a VM that stops silently: %v", err)
	}
	if _, err := Seal(context.Background(), Options{}); err == nil {
		t.Error("Seal without options succeeded")
	}
}
