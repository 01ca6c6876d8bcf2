package store

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"cfsboot/verity"
)

// Images lists the images of the store named by fs-verity digests
// (images/refs and names that are no digest are left out).
func (s *Store) Images() ([]verity.Sum, error) {
	entries, err := readDirIfExists(filepath.Join(s.dir, "images"))
	if err != nil {
		return nil, err
	}
	var ds []verity.Sum
	for _, e := range entries {
		if d, err := verity.ParseSum(e.Name()); err == nil {
			ds = append(ds, d)
		}
	}
	return ds, nil
}

// RemoveImage removes the image d and the refs naming it; its objects stay
// until GC. It needs the exclusive lock: a writer holding the shared lock
// may be about to name the image in a ref. The refs go first, so a crash
// leaves the image unnamed, never a ref to a missing image.
func (s *Store) RemoveImage(d verity.Sum) error {
	if s.lock != Exclusive {
		return fmt.Errorf("store %s: removing an image needs the exclusive lock", s.dir)
	}
	image := s.ImagePath(d)
	if _, err := os.Lstat(image); err != nil {
		return fmt.Errorf("store: remove image: %w", err)
	}
	refs := filepath.Join(s.dir, "images", "refs")
	err := filepath.WalkDir(refs, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && path == refs {
				return nil
			}
			return err
		}
		if e.Type()&fs.ModeSymlink == 0 {
			return nil
		}
		target, err := os.Readlink(path)
		if err != nil || filepath.Base(target) != d.String() {
			return err
		}
		if err := os.Remove(path); err != nil {
			return err
		}
		return syncDir(filepath.Dir(path))
	})
	if err != nil {
		return fmt.Errorf("store: remove image %s: refs: %w", d, err)
	}
	if err := os.Remove(image); err != nil {
		return fmt.Errorf("store: remove image: %w", err)
	}
	return syncDir(filepath.Dir(image))
}
