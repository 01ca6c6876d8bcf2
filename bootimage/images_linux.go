package bootimage

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"cfsboot/deploy"
	"cfsboot/gen/store"
	"cfsboot/install"
	"cfsboot/verity"
)

// Images is the store of a system's physical root (<root>/composefs) as
// deployments use it: Add imports through the builder (sealed by the
// store when the root filesystem has fs-verity), Remove and GC take the
// store's exclusive lock.
type Images struct {
	Dir     string
	Builder *Builder
	// deferGC leaves GC to the sealing VM (OpenDisk on a host without
	// fs-verity, which cannot read the sealed images); gcPending says it
	// was asked for.
	deferGC, gcPending bool
}

var _ deploy.Images = (*Images)(nil)

// PhysicalRoots are where a booted system finds its root device:
// cfsboot-init moves it to /sysroot, or to /run/cfsboot/sysroot when the
// image has no /sysroot.
var PhysicalRoots = []string{"/sysroot", "/run/cfsboot/sysroot"}

// FindPhysicalRoot is the first of PhysicalRoots that holds a store.
func FindPhysicalRoot() (string, error) {
	for _, r := range PhysicalRoots {
		if _, err := os.Stat(filepath.Join(r, install.StoreDir, "images")); err == nil {
			return r, nil
		}
	}
	return "", fmt.Errorf("no store (%s/images) under %v: not a system cfsboot booted; give --root", install.StoreDir, PhysicalRoots)
}

// OpenImages opens the store under the physical root dir.
func OpenImages(root string, b *Builder) (*Images, error) {
	dir := filepath.Join(root, install.StoreDir)
	st, err := store.OpenExisting(dir, store.OpenOptions{Lock: store.Shared})
	if err != nil {
		return nil, err
	}
	return &Images{Dir: dir, Builder: b}, st.Close()
}

func (i *Images) Add(ctx context.Context, ref string) (verity.Digest, error) {
	if i.Builder == nil {
		return verity.Digest{}, errors.New("images: adding needs a builder")
	}
	d, _, err := i.Builder.Import(ctx, ref, i.Dir)
	return d, err
}

func (i *Images) List() ([]verity.Digest, error) {
	st, err := store.OpenExisting(i.Dir, store.OpenOptions{Lock: store.Shared})
	if err != nil {
		return nil, err
	}
	defer st.Close()
	sums, err := st.Images()
	var ds []verity.Digest
	for _, s := range sums {
		if d, ok := s.Digest(); ok {
			ds = append(ds, d)
		}
	}
	return ds, err
}

func (i *Images) Remove(d verity.Digest) error {
	return i.exclusive(func(st *store.Store) error { return st.RemoveImage(d.Sum()) })
}

func (i *Images) GC() error {
	if i.deferGC {
		i.gcPending = true
		return nil
	}
	return i.exclusive(func(st *store.Store) error {
		_, _, err := st.GC(false)
		return err
	})
}

func (i *Images) exclusive(do func(*store.Store) error) error {
	st, err := store.OpenExisting(i.Dir, store.OpenOptions{Lock: store.Exclusive})
	if err != nil {
		return err
	}
	defer st.Close()
	return do(st)
}

// MakeWritable lets a running system's tools change the physical root at
// root, which cfsboot-init leaves read-only as a mount (the filesystem
// itself stays writable, as bootc leaves /sysroot): it clears the mount's
// read-only flag and returns the function that sets it again.
func MakeWritable(root string) (restore func() error, err error) {
	var st unix.Statfs_t
	if err := unix.Statfs(root, &st); err != nil {
		return nil, fmt.Errorf("%s: %w", root, err)
	}
	if st.Flags&unix.ST_RDONLY == 0 {
		return func() error { return nil }, nil
	}
	if err := unix.MountSetattr(unix.AT_FDCWD, root, 0, &unix.MountAttr{Attr_clr: unix.MOUNT_ATTR_RDONLY}); err != nil {
		return nil, fmt.Errorf("making %s writable: %w", root, err)
	}
	return func() error {
		if err := unix.MountSetattr(unix.AT_FDCWD, root, 0, &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY}); err != nil {
			return fmt.Errorf("making %s read-only again: %w", root, err)
		}
		return nil
	}, nil
}
