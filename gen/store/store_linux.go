// Package store manages a composefs object store: file contents in
// objects/XX/<62 hex> named by their fs-verity digest, images in
// images/<digest>. Every write is atomic (temporary file, fsync, rename),
// and on a filesystem with fs-verity every object and image is protected.
package store

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"

	"golang.org/x/sys/unix"

	"cfsboot/gen/erofs"
	"cfsboot/gen/tree"
	"cfsboot/internal/parallel"
	"cfsboot/verity"
)

// Store is an object store rooted at a directory.
type Store struct {
	dir       string
	protected bool
}

// Open opens (creating if needed) the store at dir and finds out whether its
// filesystem can protect files with fs-verity.
func Open(dir string) (*Store, error) {
	for _, d := range []string{dir, filepath.Join(dir, "objects"), filepath.Join(dir, "images")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
	}
	s := &Store{dir: dir}
	protected, err := s.probeVerity()
	if err != nil {
		return nil, err
	}
	s.protected = protected
	return s, nil
}

// probeVerity enables fs-verity on a scratch file in the store.
func (s *Store) probeVerity() (bool, error) {
	f, err := os.CreateTemp(s.dir, ".probe-")
	if err != nil {
		return false, fmt.Errorf("store: %w", err)
	}
	defer os.Remove(f.Name())
	_, err = f.Write([]byte{0})
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return false, fmt.Errorf("store: %w", err)
	}
	ro, err := os.Open(f.Name())
	if err != nil {
		return false, fmt.Errorf("store: %w", err)
	}
	defer ro.Close()
	err = verity.Enable(int(ro.Fd()))
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, verity.ErrNotSupported):
		return false, nil
	default:
		return false, fmt.Errorf("store %s: probing fs-verity: %w", s.dir, err)
	}
}

// Dir is the store's root directory.
func (s *Store) Dir() string { return s.dir }

// Protected reports whether objects and images get fs-verity.
func (s *Store) Protected() bool { return s.protected }

// ErrUnprotected: the store's filesystem has no fs-verity.
var ErrUnprotected = errors.New("object store is not protected: its filesystem has no fs-verity (use ext4 made with 'mkfs.ext4 -O verity', or enable it with 'tune2fs -O verity')")

// RequireProtected fails for a store whose files the kernel cannot verify.
func (s *Store) RequireProtected() error {
	if !s.protected {
		return fmt.Errorf("%s: %w", s.dir, ErrUnprotected)
	}
	return nil
}

// ObjectPath is the path of the object named d.
func (s *Store) ObjectPath(d verity.Digest) string {
	return filepath.Join(s.dir, "objects", tree.ObjectPath(d))
}

// ImagePath is the path of the image named d.
func (s *Store) ImagePath(d verity.Digest) string {
	return filepath.Join(s.dir, "images", d.String())
}

// AddTree puts the content of every regular file of root that comes from
// the host (Source set) and is not inlined into the store, computing digests
// that are still missing and setting each file's payload to its object.
// Files are copied by several workers at once: each copy ends in an fsync,
// and the disk serves those better in parallel.
func (s *Store) AddTree(root *tree.Node) error {
	var files []*tree.Node
	root.Walk(func(n *tree.Node) error {
		if n.LinkTo == nil && n.Mode&tree.SIFMT == tree.SIFREG && n.Source != "" && n.Content == nil && n.Size > 0 {
			files = append(files, n)
		}
		return nil
	})
	return parallel.Each(files, 4*runtime.GOMAXPROCS(0), func(n *tree.Node) error {
		d, err := s.addFile(n.Source, n.Digest)
		if err == nil {
			n.Digest = &d
			n.Payload = tree.ObjectPath(d)
		}
		return err
	})
}

// AddObject copies the file at src into the store and returns its digest.
func (s *Store) AddObject(src string) (verity.Digest, error) { return s.addFile(src, nil) }

func (s *Store) addFile(src string, known *verity.Digest) (verity.Digest, error) {
	var d verity.Digest
	if known != nil {
		d = *known
	} else {
		var err error
		if d, err = verity.ComputeFile(src); err != nil {
			return d, fmt.Errorf("store: %w", err)
		}
	}
	dst := s.ObjectPath(d)
	if _, err := os.Lstat(dst); err == nil {
		return d, nil // deduplicated
	}
	in, err := os.Open(src)
	if err != nil {
		return d, fmt.Errorf("store: %w", err)
	}
	defer in.Close()
	err = s.writeAtomic(dst, d, func(out *os.File) error {
		// A reflink shares blocks; otherwise copy (copy_file_range).
		if unix.IoctlFileClone(int(out.Fd()), int(in.Fd())) == nil {
			return nil
		}
		_, err := io.Copy(out, in)
		return err
	})
	if err != nil {
		return d, fmt.Errorf("store: add %s: %w", src, err)
	}
	return d, nil
}

// AddImage stores an image under its fs-verity digest.
func (s *Store) AddImage(image []byte) (verity.Digest, error) {
	d := verity.ComputeBytes(image)
	dst := s.ImagePath(d)
	if _, err := os.Lstat(dst); err == nil {
		return d, nil
	}
	err := s.writeAtomic(dst, d, func(out *os.File) error {
		_, err := out.Write(image)
		return err
	})
	if err != nil {
		return d, fmt.Errorf("store: add image: %w", err)
	}
	return d, nil
}

// writeAtomic fills a temporary file in the store, makes it durable, seals
// it with fs-verity when the store is protected (checking the kernel's
// digest against want), and renames it to dst.
func (s *Store) writeAtomic(dst string, want verity.Digest, fill func(*os.File) error) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(dst), ".tmp-")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	err = fill(tmp)
	if err == nil {
		err = tmp.Chmod(0o644)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if s.protected {
		if err := sealAndCheck(tmp.Name(), want); err != nil {
			return err
		}
	}
	return os.Rename(tmp.Name(), dst)
}

func sealAndCheck(path string, want verity.Digest) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := verity.Enable(int(f.Fd())); err != nil {
		return err
	}
	got, err := verity.Measure(int(f.Fd()))
	if err != nil {
		return err
	}
	if got != want {
		return fmt.Errorf("content changed while copying: fs-verity digest %s, expected %s", got, want)
	}
	return nil
}

// FileDigest returns the fs-verity digest of a file in the store: the
// kernel's when the file is protected, else computed from its content.
func (s *Store) FileDigest(path string) (verity.Digest, error) {
	f, err := os.Open(path)
	if err != nil {
		return verity.Digest{}, err
	}
	defer f.Close()
	if s.protected {
		d, err := verity.Measure(int(f.Fd()))
		if err == nil {
			return d, nil
		}
		if errors.Is(err, verity.ErrNotEnabled) {
			return d, fmt.Errorf("%s: %w", path, err)
		}
	}
	st, err := f.Stat()
	if err != nil {
		return verity.Digest{}, err
	}
	return verity.ComputeReaderAt(f, st.Size())
}

// Commit puts root's file contents into the store and then its image,
// returning the image's digest and bytes.
func (s *Store) Commit(root *tree.Node, opts erofs.Options) (verity.Digest, []byte, error) {
	if err := s.AddTree(root); err != nil {
		return verity.Digest{}, nil, err
	}
	img, err := erofs.Build(root, opts)
	if err != nil {
		return verity.Digest{}, nil, err
	}
	d, err := s.AddImage(img)
	return d, img, err
}
