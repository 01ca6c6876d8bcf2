// Command provision is the init of a test-only helper initrd: fs-verity can
// only be enabled by a kernel that has it, so the QEMU tests stage an
// unsealed object store on the root disk (/provision/{objects,images}) and
// boot this once to add every object and image to the real store at
// /composefs with the store's own code (copy, fs-verity enable, the kernel's
// digest checked against ours), check the result with the store's fsck, and
// remove the staging copy.
//
// A staged store with meta.json (a composefs-rs repository, SHA-512 and
// symlinked images) becomes a repository on the disk made with the same
// meta.json: sealed with its algorithm, images as symlinks to their objects.
//
// Kernel command line: provision.skip=images copies the images without
// sealing them (for the "image without fs-verity" scenario).
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"cfsboot/gen/repometa"
	"cfsboot/gen/store"
	"cfsboot/internal/vminit"
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
	vminit.PowerOff()
}

func run() error {
	if err := vminit.Start(); err != nil {
		return err
	}
	cmdline, _ := os.ReadFile("/proc/cmdline")
	sealImages := !slices.Contains(strings.Fields(string(cmdline)), "provision.skip=images")
	if err := vminit.MountDisk("/dev/vda", "/mnt"); err != nil {
		return err
	}
	st, err := openStore()
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

// openStore makes the disk's store like the staged one: with its
// meta.json when it has one.
func openStore() (*store.Store, error) {
	data, err := os.ReadFile(filepath.Join(staging, repometa.FileName))
	if errors.Is(err, os.ErrNotExist) {
		return store.Open(storeDir)
	}
	if err != nil {
		return nil, err
	}
	meta, err := repometa.Parse(data)
	if err != nil {
		return nil, err
	}
	return store.Create(storeDir, meta)
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
		name, err := verity.ParseSumAlgorithm(st.Algorithm(), filepath.Base(p))
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
