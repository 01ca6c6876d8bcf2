// Package vminit starts the small single-purpose inits cfsboot boots in
// helper VMs (the sealing VM, and the tests' provisioning, checking and
// filling VMs): the API filesystems, the initrd's modules, the disk to
// work on, and power off at the end.
package vminit

import (
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"cfsboot/initramfs/layout"
	"cfsboot/initramfs/modload"
)

// Start mounts /proc, /dev and /sys and loads the initrd's modules.
func Start() error {
	for _, m := range [][3]string{{"proc", "/proc", "proc"}, {"devtmpfs", "/dev", "devtmpfs"}, {"sysfs", "/sys", "sysfs"}} {
		os.MkdirAll(m[1], 0o755)
		if err := unix.Mount(m[0], m[1], m[2], 0, ""); err != nil {
			return fmt.Errorf("mount %s: %w", m[1], err)
		}
	}
	return modload.LoadAll("/" + layout.ModulesDir)
}

// MountDisk waits up to 10 s for the block device dev to appear and
// mounts it (ext4) on dir: until its driver has the disk ready, the node
// is missing (ENOENT) or the disk does not answer yet (ENXIO).
func MountDisk(dev, dir string) error {
	os.MkdirAll(dir, 0o755)
	var err error
	for range 100 {
		if err = unix.Mount(dev, dir, "ext4", 0, ""); err == nil {
			return nil
		}
		if !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.ENXIO) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("mount %s: %w", dev, err)
}

// PowerOff flushes the disks and powers the VM off; it does not return.
func PowerOff() {
	unix.Sync()
	unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
	for {
		time.Sleep(time.Hour)
	}
}
