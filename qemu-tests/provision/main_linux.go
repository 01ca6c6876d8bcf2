// Command provision is the init of a test-only helper initrd: fs-verity can
// only be enabled by a kernel that has it, so the QEMU tests build the root
// disk on the host and boot this once to seal every object and image.
//
// Kernel command line: provision.skip=images leaves the images unsealed
// (for the "image without fs-verity" scenario).
package main

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"cfsboot/initramfs/modload"
	"cfsboot/verity"
)

func main() {
	err := run()
	if err != nil {
		fmt.Printf("PROVISION FAILED: %v\n", err)
	}
	unix.Sync()
	unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
	select {}
}

func run() error {
	for _, m := range [][3]string{{"proc", "/proc", "proc"}, {"devtmpfs", "/dev", "devtmpfs"}, {"sysfs", "/sys", "sysfs"}} {
		os.MkdirAll(m[1], 0o755)
		if err := unix.Mount(m[0], m[1], m[2], 0, ""); err != nil {
			return fmt.Errorf("mount %s: %w", m[1], err)
		}
	}
	if _, err := modload.LoadAll("/lib/modules"); err != nil {
		return err
	}
	cmdline, _ := os.ReadFile("/proc/cmdline")
	skipImages := strings.Contains(string(cmdline), "provision.skip=images")
	var err error
	for i := 0; i < 100; i++ {
		if _, err = os.Stat("/dev/vda"); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("no /dev/vda: %w", err)
	}
	os.MkdirAll("/mnt", 0o755)
	if err := unix.Mount("/dev/vda", "/mnt", "ext4", 0, ""); err != nil {
		return fmt.Errorf("mount /dev/vda: %w", err)
	}
	sealed := 0
	err = filepath.WalkDir("/mnt/composefs", func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		if skipImages && strings.Contains(p, "/images/") {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := verity.Enable(int(f.Fd())); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		sealed++
		return nil
	})
	if err != nil {
		return err
	}
	if err := unix.Unmount("/mnt", 0); err != nil {
		return err
	}
	fmt.Printf("PROVISIONED %d files\n", sealed)
	return nil
}
