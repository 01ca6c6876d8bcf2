// Package store manages a composefs object store (a composefs-rs
// repository): file contents in objects/XX/<rest> named by their fs-verity
// digest, images in images/<digest>, named images in images/refs/, and
// composefs-rs's splitstreams in streams/.
//
// A store with meta.json (composefs-rs' repository metadata, package
// repometa) is named with its algorithm (fsverity-sha512-12 by default
// there) and keeps each image as an object, images/<digest> a symlink to
// ../objects/XX/<rest>, as composefs-rs does; its erofs_formats say which
// image formats a commit writes. A store without meta.json is a SHA-256
// store whose images are plain files in images/, as cfsboot made them
// before (and as mkcomposefs users lay them out); both kinds boot.
//
// Processes share a store with composefs-rs's protocol: flock on the store
// directory itself, shared while a store is open for reading or adding,
// exclusive for anything that deletes (gc, repair). A deleter therefore
// never runs beside a writer, and a writer's temporary files and its new,
// not yet referenced objects are safe. Writes are ordered for crashes:
// objects are durable before the image that names them, the image before
// its ref.
package store

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"cfsboot/gen/repometa"
	"cfsboot/gen/tree"
	"cfsboot/verity"
)

// Store is an open object store, holding its lock until Close.
type Store struct {
	dir  string
	fd   *os.File // the store directory; the lock is on it
	lock Lock

	// meta is meta.json, nil for a store without one: a SHA-256 store
	// with plain image files, as cfsboot and mkcomposefs users made them
	// first.
	meta   *repometa.Meta
	alg    verity.Algorithm // names objects and images
	secure bool             // meta.json carries fs-verity: every file must

	probe     sync.Once
	protected bool
	probeErr  error
}

// ErrNotStore: a directory is not an object store.
var ErrNotStore = errors.New("not a composefs object store (no objects/ and images/ directories, no meta.json)")

// Open opens the store at dir for adding to it, with a shared lock,
// creating the store when dir does not exist or is empty. A directory that
// holds anything else is refused. Commands that make or fill a store use
// it; every other command uses OpenExisting.
func Open(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	s, err := openDir(dir)
	if err != nil {
		return nil, err
	}
	if err := s.takeLock(OpenOptions{Lock: Shared}); err != nil {
		s.fd.Close()
		return nil, err
	}
	if !isStore(s.fd) {
		if err := s.checkEmpty(); err != nil {
			s.Close()
			return nil, err
		}
	}
	if err := s.makeLayout(); err != nil {
		s.Close()
		return nil, err
	}
	if err := s.loadMeta(true); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Create makes a new store at dir (missing or empty) with meta.json as
// composefs-rs writes it: a repository cfsctl and bootc open. meta.json
// gets fs-verity where the filesystem has it, which marks the repository
// secure (every object and image must be sealed).
func Create(dir string, meta *repometa.Meta) (*Store, error) {
	if meta == nil {
		return nil, fmt.Errorf("store %s: no repository metadata to write", dir)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	s, err := openDir(dir)
	if err != nil {
		return nil, err
	}
	if err := s.takeLock(OpenOptions{Lock: Shared}); err != nil {
		s.fd.Close()
		return nil, err
	}
	if err := s.create(meta); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func (s *Store) create(meta *repometa.Meta) error {
	names, err := s.fd.Readdirnames(-1)
	if err != nil {
		return fmt.Errorf("store %s: %w", s.dir, err)
	}
	if len(names) > 0 {
		return fmt.Errorf("store %s: not empty (it holds %q): a new repository needs an empty directory", s.dir, names[0])
	}
	if err := s.makeLayout(); err != nil {
		return err
	}
	data, err := meta.Marshal()
	if err != nil {
		return err
	}
	tmp, err := createTemp(filepath.Join(s.dir, "objects"), tempPrefix+"meta-")
	if err != nil {
		return fmt.Errorf("store %s: %w", s.dir, err)
	}
	defer os.Remove(tmp.Name()) // fails harmlessly after the rename
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("store %s: %w", s.dir, err)
	}
	if s.Protected() {
		if err := seal(tmp.Name(), meta.Algorithm.ComputeBytes(data)); err != nil {
			return err
		}
	}
	if err := renameNoReplace(tmp.Name(), filepath.Join(s.dir, repometa.FileName)); err != nil {
		return err
	}
	if err := syncDir(s.dir); err != nil {
		return err
	}
	return s.loadMeta(true)
}

// loadMeta reads meta.json, if the store has one, and applies its rules:
// an unknown version or incompatible feature refuses the store (Parse),
// an unknown read-only-compatible one refuses writing (forWriting).
func (s *Store) loadMeta(forWriting bool) error {
	s.alg = verity.SHA256
	f, err := os.OpenFile(filepath.Join(s.dir, repometa.FileName), os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("store %s: %w", s.dir, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, 1<<20))
	if err != nil {
		return fmt.Errorf("store %s: %w", s.dir, err)
	}
	if s.meta, err = repometa.Parse(data); err != nil {
		return fmt.Errorf("store %s: %w", s.dir, err)
	}
	s.alg = s.meta.Algorithm
	if ro, unknown := s.meta.ReadOnly(); ro && forWriting {
		return fmt.Errorf("store %s: read-only for this cfsboot: meta.json names read-only-compatible features it does not know (%s)", s.dir, strings.Join(unknown, ", "))
	}
	switch got, err := verity.MeasureSum(int(f.Fd())); {
	case err == nil:
		if want := s.alg.ComputeBytes(data); got != want {
			return fmt.Errorf("store %s: meta.json has fs-verity digest %s:%s, its content %s:%s", s.dir, got.Algorithm(), got, want.Algorithm(), want)
		}
		s.secure = true
	case errors.Is(err, verity.ErrNotEnabled), errors.Is(err, verity.ErrNotSupported):
	default:
		return fmt.Errorf("store %s: meta.json: %w", s.dir, err)
	}
	if s.secure && forWriting {
		return s.RequireProtected()
	}
	return nil
}

// Algorithm is the fs-verity algorithm that names the store's objects and
// images: meta.json's, SHA-256 without one.
func (s *Store) Algorithm() verity.Algorithm { return s.alg }

// Meta is the store's meta.json, nil when it has none.
func (s *Store) Meta() *repometa.Meta { return s.meta }

// Secure reports whether meta.json carries fs-verity, which composefs-rs
// takes as "every object and image is sealed".
func (s *Store) Secure() bool { return s.secure }

// OpenExisting opens the store at dir, which must already be one, and
// takes the lock opts ask for.
func OpenExisting(dir string, opts OpenOptions) (*Store, error) {
	s, err := openDir(dir)
	if err != nil {
		return nil, err
	}
	if !isStore(s.fd) {
		s.fd.Close()
		return nil, fmt.Errorf("store %s: %w", dir, ErrNotStore)
	}
	if err := s.takeLock(opts); err != nil {
		s.fd.Close()
		return nil, err
	}
	// Deleting (gc, repair) is writing.
	if err := s.loadMeta(opts.Lock == Exclusive); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func openDir(dir string) (*Store, error) {
	fd, err := os.OpenFile(dir, os.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		if errors.Is(err, unix.ENOTDIR) {
			return nil, fmt.Errorf("store %s: not a directory", dir)
		}
		return nil, fmt.Errorf("store: %w", err)
	}
	return &Store{dir: dir, fd: fd}, nil
}

// isStore: objects/ and images/ are directories, or composefs-rs's
// meta.json is present (its repositories make images/ on first use).
func isStore(dir *os.File) bool {
	var st unix.Stat_t
	isDir := func(name string) bool {
		return unix.Fstatat(int(dir.Fd()), name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR
	}
	if isDir("objects") && isDir("images") {
		return true
	}
	return unix.Fstatat(int(dir.Fd()), "meta.json", &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT == unix.S_IFREG
}

// checkEmpty accepts a directory to make a store in: an empty one, or one
// another process is making a store in (objects/ or images/ only).
func (s *Store) checkEmpty() error {
	names, err := s.fd.Readdirnames(-1)
	if err != nil {
		return fmt.Errorf("store %s: %w", s.dir, err)
	}
	for _, n := range names {
		if n != "objects" && n != "images" {
			return fmt.Errorf("store %s: %w, and not empty (it holds %q): refusing to make it one", s.dir, ErrNotStore, n)
		}
	}
	return nil
}

// makeLayout makes objects/ and images/ where they are missing (a new
// store; composefs-rs makes them on first use).
func (s *Store) makeLayout() error {
	made := false
	for _, d := range []string{"objects", "images"} {
		err := unix.Mkdirat(int(s.fd.Fd()), d, 0o755)
		if err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("store %s: %w", filepath.Join(s.dir, d), err)
		}
		made = made || err == nil
	}
	if made {
		if err := s.fd.Sync(); err != nil {
			return fmt.Errorf("store %s: %w", s.dir, err)
		}
	}
	return nil
}

// Close releases the lock.
func (s *Store) Close() error { return s.fd.Close() }

// Dir is the store's root directory.
func (s *Store) Dir() string { return s.dir }

// Protected reports whether objects and images get fs-verity. The first
// call finds out by sealing an anonymous temporary file in objects/.
func (s *Store) Protected() bool {
	s.probe.Do(func() { s.protected, s.probeErr = s.probeVerity() })
	return s.protected
}

// probeVerity enables fs-verity on an O_TMPFILE (nothing left behind by a
// crash); on a filesystem without O_TMPFILE, on a named temporary file.
func (s *Store) probeVerity() (bool, error) {
	objects := filepath.Join(s.dir, "objects")
	f, err := os.OpenFile(objects, os.O_RDWR|unix.O_TMPFILE, 0o600)
	if err != nil {
		if f, err = createTemp(objects, tempObject); err != nil {
			return false, fmt.Errorf("store: probing fs-verity: %w", err)
		}
		defer os.Remove(f.Name())
	}
	defer f.Close()
	if _, err := f.Write([]byte{0}); err != nil {
		return false, fmt.Errorf("store: probing fs-verity: %w", err)
	}
	// fs-verity needs a read-only descriptor and no writers.
	ro, err := os.Open(fmt.Sprintf("/proc/self/fd/%d", f.Fd()))
	if err != nil {
		return false, fmt.Errorf("store: probing fs-verity: %w", err)
	}
	defer ro.Close()
	f.Close()
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

// ErrUnprotected: the store's filesystem has no fs-verity.
var ErrUnprotected = errors.New("object store is not protected: its filesystem has no fs-verity (use ext4 made with 'mkfs.ext4 -O verity', or enable it with 'tune2fs -O verity')")

// RequireProtected fails for a store whose files the kernel cannot verify.
func (s *Store) RequireProtected() error {
	if !s.Protected() {
		if s.probeErr != nil {
			return s.probeErr
		}
		return fmt.Errorf("%s: %w", s.dir, ErrUnprotected)
	}
	return nil
}

// ObjectPath is the path of the object named d.
func (s *Store) ObjectPath(d verity.Sum) string {
	return filepath.Join(s.dir, "objects", tree.ObjectPathOf(d))
}

// ImagePath is the path of the image named d.
func (s *Store) ImagePath(d verity.Sum) string {
	return filepath.Join(s.dir, "images", d.String())
}
