package bootimage

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"cfsboot/disk"
	"cfsboot/install"
	"cfsboot/seal"
	"cfsboot/seal/inplace"
)

// ext4Verity is present when the running kernel's ext4 can enable fs-verity.
const ext4Verity = "/sys/fs/ext4/features/verity"

// Seal enables fs-verity on every object and image of the store in the
// root partition of an installed disk: in place through a loop mount when
// the host kernel can, else in a short VM booting the last imported
// image's kernel with cfsboot-seal. It is an install.Seams.Seal.
func (b *Builder) Seal(ctx context.Context, diskPath string, root disk.Partition) error {
	return b.seal(ctx, diskPath, root, false)
}

// hostVerity reports whether the host kernel can enable (and read)
// fs-verity files.
func hostVerity() bool {
	_, err := os.Stat(ext4Verity)
	return err == nil
}

// seal seals the store; gc also removes the objects no image references,
// in the sealing VM (only it can read the sealed images).
func (b *Builder) seal(ctx context.Context, diskPath string, root disk.Partition, gc bool) error {
	if hostVerity() {
		return b.sealInPlace(diskPath, root)
	}
	if b.last == nil {
		return errors.New("seal: no image imported whose kernel could run the sealing VM")
	}
	b.logf("the host kernel cannot enable fs-verity (no %s): sealing in a helper VM with the image's kernel %s (TCG)", ext4Verity, b.last.version)
	last := time.Time{}
	n, err := seal.Seal(ctx, seal.Options{
		Kernel: b.last.kernel, ModulesDir: b.last.modulesDir, Init: b.o.SealInit,
		Disk: diskPath, Root: "PARTUUID=" + root.UUID.String(), Store: install.StoreDir, GC: gc,
		Progress: func(done, total int) {
			if done == total || time.Since(last) > 5*time.Second {
				b.logf("sealing: %d/%d files", done, total)
				last = time.Now()
			}
		},
	})
	if err != nil {
		return err
	}
	b.logf("sealed %d files", n)
	return nil
}

// sealInPlace mounts the root partition through a loop device and seals
// the store there.
func (b *Builder) sealInPlace(diskPath string, root disk.Partition) error {
	mnt, err := os.MkdirTemp(b.work, "root-")
	if err != nil {
		return err
	}
	if err := mountPartition(diskPath, root, mnt); err != nil {
		return fmt.Errorf("seal: %w", err)
	}
	b.logf("sealing the store in place (the host kernel has fs-verity)")
	n, err := inplace.Seal(filepath.Join(mnt, install.StoreDir), nil)
	out, uerr := exec.Command("umount", mnt).CombinedOutput()
	if err != nil {
		return fmt.Errorf("seal: %w", err)
	}
	if uerr != nil {
		return fmt.Errorf("seal: unmount %s: %v: %s", mnt, uerr, out)
	}
	b.logf("sealed %d files", n)
	return nil
}

// Seams are the installation's seams, filled by b.
func (b *Builder) Seams() install.Seams {
	return install.Seams{Import: b.Import, BuildUKI: b.BuildUKI, Bootloader: b.Bootloader, Seal: b.Seal}
}
