package install

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"cfsboot/disk"
	"cfsboot/verity"
)

// TestInstallBlockDevice installs onto a loop device: the /dev/X path,
// where the disk keeps its own size and other openers are kept out.
func TestInstallBlockDevice(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for a loop device")
	}
	for _, tool := range []string{"losetup", "sfdisk", "mkfs.vfat", "mkfs.ext4", "mtype"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	dir := t.TempDir()
	backing := filepath.Join(dir, "backing.img")
	if err := os.WriteFile(backing, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	os.Truncate(backing, 200<<20)
	out, err := exec.Command("losetup", "--find", "--show", backing).Output()
	if err != nil {
		t.Skipf("no loop device: %v", err)
	}
	dev := strings.TrimSpace(string(out))
	t.Cleanup(func() { exec.Command("losetup", "-d", dev).Run() })

	loader := filepath.Join(dir, "boot.efi")
	os.WriteFile(loader, []byte("MZ"), 0o644)
	digest := verity.ComputeBytes([]byte("img"))
	res, err := Install(context.Background(), Options{Image: "img", Disk: dev, ESPSize: 64 << 20}, Seams{
		Import: func(context.Context, string, string) (verity.Digest, string, error) { return digest, "debian", nil },
		BuildUKI: func(_ context.Context, _ verity.Digest, c, out string) error {
			return os.WriteFile(out, []byte(c), 0o644)
		},
		Bootloader: func(context.Context) (string, error) { return loader, nil },
		Seal:       func(context.Context, string, disk.Partition) error { return nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	if end := res.Root.Offset() + res.Root.Bytes(); end != 199<<20 {
		t.Errorf("root ends at %d: the device's size was not used", end)
	}
	if out, err := exec.Command("sfdisk", "--verify", dev).CombinedOutput(); err != nil || !strings.Contains(string(out), "No errors detected") {
		t.Errorf("sfdisk --verify %s: %v\n%s", dev, err, out)
	}
	if _, err := Install(context.Background(), Options{Image: "img", Disk: dev, Size: 400 << 20}, Seams{
		Import:     func(context.Context, string, string) (verity.Digest, string, error) { return digest, "debian", nil },
		BuildUKI:   func(context.Context, verity.Digest, string, string) error { return nil },
		Bootloader: func(context.Context) (string, error) { return loader, nil },
		Seal:       func(context.Context, string, disk.Partition) error { return nil },
	}); err == nil || !strings.Contains(err.Error(), "asked for") {
		t.Errorf("a --size larger than the device: %v", err)
	}
}
