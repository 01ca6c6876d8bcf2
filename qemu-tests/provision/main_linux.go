// Command provision is the init of a test-only helper initrd: fs-verity can
// only be enabled by a kernel that has it, so the QEMU tests stage an
// unsealed object store on the root disk (/provision/{objects,images}) and
// boot this once to add every object and image to the real store at
// /composefs with the store's own code (copy, fs-verity enable, the kernel's
// digest checked against ours), check the result with the store's fsck, and
// remove the staging copy.
//
// Kernel command line: provision.skip=images copies the images without
// sealing them (for the "image without fs-verity" scenario).
package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"cfsboot/gen/store"
	"cfsboot/initramfs/modload"
	"cfsboot/verity"
)

const (
	staging  = "/mnt/provision"
	storeDir = "/mnt/composefs"
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
	sealImages := !slices.Contains(strings.Fields(string(cmdline)), "provision.skip=images")
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
	st, err := store.Open(storeDir)
	if err != nil {
		return err
	}
	if err := st.RequireProtected(); err != nil {
		return err
	}
	objects, err := addObjects(st)
	if err != nil {
		return err
	}
	images, err := addImages(st, sealImages)
	if err != nil {
		return err
	}
	if sealImages {
		problems, err := st.Fsck()
		if err != nil {
			return err
		}
		if len(problems) > 0 {
			return fmt.Errorf("store fsck after provisioning: %v", problems)
		}
	}
	// The store holds its directory open: close it or /mnt stays busy.
	if err := st.Close(); err != nil {
		return err
	}
	if err := os.RemoveAll(staging); err != nil {
		return err
	}
	if err := unix.Unmount("/mnt", 0); err != nil {
		return fmt.Errorf("unmount /mnt: %w", err)
	}
	fmt.Printf("PROVISIONED %d objects and %d images\n", objects, images)
	return nil
}

// addObjects adds the staged objects to the store in one batch, which
// seals each and checks the kernel's fs-verity digest against the one it
// computed while copying.
func addObjects(st *store.Store) (int, error) {
	paths, err := filepath.Glob(filepath.Join(staging, "objects", "*", "*"))
	if err != nil {
		return 0, err
	}
	b := st.NewBatch()
	defer b.Abort()
	for _, p := range paths {
		d, err := b.AddObject(func(w io.Writer) error {
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = io.Copy(w, f)
			return err
		})
		if err != nil {
			return 0, err
		}
		if got := st.ObjectPath(d); got != filepath.Join(storeDir, strings.TrimPrefix(p, staging)) {
			return 0, fmt.Errorf("staged object %s was stored as %s", p, got)
		}
	}
	return len(paths), b.Flush()
}

// addImages adds each staged image through the store (sealed) or, when
// sealImages is false, writes it under its name without fs-verity.
func addImages(st *store.Store, sealImages bool) (int, error) {
	paths, err := filepath.Glob(filepath.Join(staging, "images", "*"))
	if err != nil {
		return 0, err
	}
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			return 0, err
		}
		name, err := verity.ParseDigest(filepath.Base(p))
		if err != nil {
			return 0, fmt.Errorf("staged image %s: %w", p, err)
		}
		if !sealImages {
			if err := os.WriteFile(st.ImagePath(name), data, 0o644); err != nil {
				return 0, err
			}
			continue
		}
		d, err := st.AddImage(data)
		if err != nil {
			return 0, err
		}
		if d != name {
			return 0, fmt.Errorf("staged image %s has fs-verity digest %s", p, d)
		}
	}
	return len(paths), nil
}
