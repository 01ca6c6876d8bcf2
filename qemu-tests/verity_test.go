//go:build qemu

package qemutests

import (
	"path/filepath"
	"testing"
)

// TestVerityAlgorithmsInKernel: the VM kernel seals files with fs-verity
// SHA-256 and SHA-512 through verity.EnableAlgorithm, and verity.MeasureSum
// reports its algorithm and a digest equal to the userspace one on the
// usual sizes (qemu-tests/veritycheck).
func TestVerityAlgorithmsInKernel(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	initrd := HelperInitrdFile(t, fx.Kernel, "./qemu-tests/veritycheck", "virtio_blk")
	disk := filepath.Join(dir, "disk.img")
	run(t, "mkfs.ext4", "-q", "-F", "-b", "4096", "-O", "verity", disk, "64M")
	vm := Boot(t, fx.Kernel, VMOptions{Initrd: initrd, Disk: disk})
	if line := vm.WaitFor(`VERITYCHECK (PASSED|FAILED.*)`); line != "VERITYCHECK PASSED" {
		t.Fatal(line)
	}
	for _, want := range []string{`VERITYCHECK sha512 0: ccf9e5aea1c2a64e`, `VERITYCHECK sha256 0: 3d248ca542a24fc6`} {
		if !vm.Has(want) {
			t.Errorf("console lacks %q", want)
		}
	}
}
