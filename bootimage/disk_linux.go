package bootimage

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"

	"cfsboot/deploy"
	"cfsboot/disk"
	"cfsboot/install"
	"cfsboot/uki"
)

// OpenDisk mounts the root partition of an installed disk (file or device)
// through a loop device and opens its store for deployments. done unmounts
// it and seals what was added (Seal: in place, or in the sealing VM); the
// entries written meanwhile boot only once it has succeeded.
func OpenDisk(ctx context.Context, diskPath string, root disk.Partition, b *Builder) (images *Images, stateDir string, done func() error, err error) {
	mnt, err := os.MkdirTemp(b.work, "root-")
	if err != nil {
		return nil, "", nil, err
	}
	if err := mountPartition(diskPath, root, mnt); err != nil {
		return nil, "", nil, err
	}
	done = func() error {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			return fmt.Errorf("unmount the root partition of %s: %v: %s", diskPath, err, out)
		}
		if b.last == nil {
			return nil // nothing was added
		}
		return b.seal(ctx, diskPath, root, images != nil && images.gcPending)
	}
	images, err = OpenImages(mnt, b)
	if err != nil {
		return nil, "", nil, errors.Join(err, done())
	}
	images.deferGC = !hostVerity()
	return images, filepath.Join(mnt, install.StateDir), done, nil
}

// mountPartition mounts the ext4 partition part of diskPath on mnt.
func mountPartition(diskPath string, part disk.Partition, mnt string) error {
	opts := "loop,offset=" + strconv.FormatInt(part.Offset(), 10) + ",sizelimit=" + strconv.FormatInt(part.Bytes(), 10)
	if out, err := exec.Command("mount", "-t", "ext4", "-o", opts, diskPath, mnt).CombinedOutput(); err != nil {
		return fmt.Errorf("mount the root partition of %s: %v: %s", diskPath, err, out)
	}
	return nil
}

// DefaultCmdline is the kernel command line of the default deployment's
// UKI without its composefs= word: what a new deployment carries over
// when no running kernel tells it.
func DefaultCmdline(m *deploy.Manager) (string, error) {
	deps, err := m.Entries()
	if err != nil {
		return "", err
	}
	if len(deps) == 0 {
		return "", fmt.Errorf("no %s entry in %s to take the command line from", m.OS, deploy.EntryDir)
	}
	name := path.Join(deploy.EntryDir, deps[0].File)
	image, err := m.ESP.ReadFile(name)
	if err != nil {
		return "", err
	}
	info, err := uki.Inspect(image, nil)
	if err != nil {
		return "", fmt.Errorf("%s: %w", name, err)
	}
	return deploy.CarriedCmdline(info.Cmdline), nil
}
