package store

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"cfsboot/gen/erofs"
	"cfsboot/gen/source"
	"cfsboot/gen/tree"
	"cfsboot/internal/fdio"
	"cfsboot/internal/parallel"
	"cfsboot/verity"
)

// Temporary files live directly in objects/ (where composefs-rs puts its
// own, and where its gc does not look), except a reflinked object's, which
// is made beside its final name in objects/XX/; all are named with these
// prefixes. Only a process holding the exclusive lock may prove them
// abandoned.
const (
	tempPrefix = ".tmp-"
	tempObject = ".tmp-object-"
	tempImage  = ".tmp-image-"
	tempRef    = ".tmp-ref-"
)

// retries bounds how often CommitOptions.Retry re-reads a changing file.
const retries = 3

// CommitOptions control CommitTree.
type CommitOptions struct {
	Erofs erofs.Options
	// Ref, if set, names the image as images/refs/<Ref>.
	Ref string
	// Retry re-reads (up to 3 times) a file that changed while being read,
	// instead of failing.
	Retry bool
	// Progress, if set, is called (from several goroutines) with the size
	// of each file once it is stored.
	Progress func(bytes int64)
}

// Commit is CommitTree with only image options.
func (s *Store) Commit(root *tree.Node, opts erofs.Options) (verity.Sum, []byte, error) {
	return s.CommitTree(root, CommitOptions{Erofs: opts})
}

// CommitTree puts the content of root's host files (source.Walk or
// source.Dir trees) into the store, reading each file once and hashing
// while copying, then writes the image and, if asked, its ref. It returns
// the image's digest and bytes. Objects are durable before the image, the
// image before the ref. A file that changed while being read fails the
// commit (source.ErrChanged) unless opts.Retry.
func (s *Store) CommitTree(root *tree.Node, opts CommitOptions) (verity.Sum, []byte, error) {
	var files []*tree.Node
	root.Walk(func(n *tree.Node) error {
		if n.LinkTo == nil && n.Mode&tree.SIFMT == tree.SIFREG && n.Source != "" && n.Content == nil && n.Size > 0 {
			files = append(files, n)
		}
		return nil
	})
	b := s.NewBatch()
	defer b.Abort()
	// Copying and hashing is CPU work (no fsync per file to wait for):
	// one worker per core.
	err := parallel.Each(files, runtime.GOMAXPROCS(0), func(n *tree.Node) error {
		err := b.addFile(n, opts.Retry)
		if err == nil && opts.Progress != nil {
			opts.Progress(int64(n.Size))
		}
		return err
	})
	if err != nil {
		return verity.Sum{}, nil, err
	}
	return b.Commit(root, opts.Erofs, opts.Ref)
}

// Commit makes the batch's objects durable, then writes the image of root
// (whose files point at them) and, if ref is not empty, its ref: objects
// before the image, the image before the ref.
func (b *Batch) Commit(root *tree.Node, opts erofs.Options, ref string) (verity.Sum, []byte, error) {
	if err := b.Flush(); err != nil {
		return verity.Sum{}, nil, err
	}
	img, err := erofs.Build(root, opts)
	if err != nil {
		return verity.Sum{}, nil, err
	}
	d, err := b.s.AddImage(img)
	if err == nil && ref != "" {
		err = b.s.SetRef(ref, d)
	}
	return d, img, err
}

// Formats are the image formats meta.json's erofs_formats asks every
// commit to be written in, the default first; nil for a store without
// meta.json (the caller's choice).
func (s *Store) Formats() []erofs.Format {
	if s.meta == nil {
		return nil
	}
	var out []erofs.Format
	for _, v := range s.meta.EROFSFormats().All() {
		out = append(out, erofs.Format(v))
	}
	return out
}

// AddImages writes root's image in each format as its own image, after a
// commit of root has stored its objects (the same tree committed in
// several formats, as composefs-rs does for erofs_formats' extra).
func (s *Store) AddImages(root *tree.Node, formats []erofs.Format) ([]verity.Sum, error) {
	var out []verity.Sum
	for _, f := range formats {
		img, err := erofs.Build(root, f.Options())
		if err != nil {
			return out, fmt.Errorf("image format %s: %w", f, err)
		}
		d, err := s.AddImage(img)
		if err != nil {
			return out, err
		}
		out = append(out, d)
	}
	return out, nil
}

// Put streams r into a new object: a Batch is where an import sinks file
// contents (gen/oci's ObjectSink).
func (b *Batch) Put(r io.Reader) (verity.Sum, error) {
	return b.AddObject(func(w io.Writer) error {
		_, err := io.Copy(w, r)
		return err
	})
}

// PutsInParallel: a Batch takes objects from several goroutines at once
// (gen/oci's ParallelSink).
func (b *Batch) PutsInParallel() {}

// addFile copies one host file into a new object and points n at it.
func (b *Batch) addFile(n *tree.Node, retry bool) error {
	if known, ok := n.FileDigest(); ok && known.Algorithm() == b.s.alg && exists(b.s.ObjectPath(known)) {
		n.SetFileDigest(known)
		return nil // a known digest already stored: nothing to read
	}
	for attempt := 0; ; attempt++ {
		listed, hasListed := n.FileDigest()
		d, size, err := b.storeContent(n)
		switch {
		case err != nil:
		case size != n.Size:
			err = fmt.Errorf("source %s: %w (%d bytes stored, %d listed)", n.Source, source.ErrChanged, size, n.Size)
		case hasListed && listed.Algorithm() == d.Algorithm() && listed != d:
			err = fmt.Errorf("source %s: %w (content differs from when it was digested)", n.Source, source.ErrChanged)
		}
		if err == nil {
			n.SetFileDigest(d)
			return nil
		}
		if !retry || attempt == retries || !errors.Is(err, source.ErrChanged) {
			return err
		}
		if err := source.Refresh(n); err != nil {
			return err
		}
		if n.Content != nil || n.Size == 0 {
			return nil // now inline or empty: no object
		}
	}
}

// storeContent puts n's content into an object: sharing the source's
// blocks where the filesystem can (a reflink), else copying it.
func (b *Batch) storeContent(n *tree.Node) (verity.Sum, uint64, error) {
	if !b.noReflink.Load() {
		d, size, cloned, err := b.cloneContent(n)
		if cloned || err != nil {
			return d, size, err
		}
	}
	return b.addObject(func(w io.Writer) error { return source.CopyContent(n, w) })
}

// cloneContent stores n by reflink. The source is read once, from the
// page cache, for its digest (the clone's own blocks would come from the
// disk); then, unless the store has that object, a temporary file beside
// the object's name shares the source's blocks, so that Flush renames
// within one directory. source.Content's checks bracket the read and the
// clone, so the digest is the clone's content, and sealing has the kernel
// confirm it. cloned is false when the filesystem refused the reflink (the
// source is on another filesystem, or this one has none): copy instead.
func (b *Batch) cloneContent(n *tree.Node) (d verity.Sum, size uint64, cloned bool, err error) {
	c, err := source.OpenContent(n)
	if err != nil {
		return d, 0, false, err
	}
	h := b.s.alg.NewHasher()
	_, err = c.WriteTo(h)
	d = h.Sum()
	tmp := ""
	if err == nil {
		tmp, cloned, err = b.cloneObject(c.Fd(), d)
	}
	if cerr := c.Close(); err == nil && cerr != nil {
		err = cerr
		if tmp != "" {
			b.unreserve(d, tmp)
		}
	}
	if err != nil {
		return verity.Sum{}, 0, false, err
	}
	return d, h.Size(), cloned, nil
}

// cloneObject makes the temporary file of object d a reflink of src and
// returns its path; "" when the store has d already or another worker is
// cloning it. cloned is false when the filesystem refused the reflink.
func (b *Batch) cloneObject(src int, d verity.Sum) (tmp string, cloned bool, err error) {
	obj := b.s.ObjectPath(d)
	b.mu.Lock()
	_, dup := b.pending[d]
	if !dup {
		dup = exists(obj)
	}
	if !dup {
		b.pending[d] = "" // reserved until the clone is made
	}
	b.mu.Unlock()
	if dup {
		return "", true, nil
	}
	dir := filepath.Dir(obj)
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		b.unreserve(d, "")
		return "", false, fmt.Errorf("store: %w", err)
	}
	fd, tmp, err := createObjectTemp(dir)
	if err != nil {
		b.unreserve(d, "")
		return "", false, err
	}
	err = unix.IoctlFileClone(fd, src)
	if cerr := unix.Close(fd); err == nil && cerr != nil {
		err = fmt.Errorf("store: %s: %w", tmp, cerr)
	}
	switch {
	case errors.Is(err, unix.EOPNOTSUPP), errors.Is(err, unix.EXDEV), errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOTTY), errors.Is(err, unix.ENOSYS):
		b.noReflink.Store(true)
		b.unreserve(d, tmp)
		return "", false, nil
	case err != nil:
		b.unreserve(d, tmp)
		return "", false, fmt.Errorf("store: reflink %s: %w", tmp, err)
	}
	b.mu.Lock()
	b.pending[d] = tmp
	b.mu.Unlock()
	return tmp, true, nil
}

// unreserve drops pending object d and removes its temporary file, if any.
func (b *Batch) unreserve(d verity.Sum, tmp string) {
	if tmp != "" {
		os.Remove(tmp)
	}
	b.mu.Lock()
	delete(b.pending, d)
	b.mu.Unlock()
}

// Batch adds objects to the store with one durability point for all of
// them, the way ostree does: every object is written to a temporary file,
// then one syncfs makes them all durable, then they are renamed into place
// and their directories synced. Until Flush, nothing is visible.
type Batch struct {
	s         *Store
	mu        sync.Mutex
	pending   map[verity.Sum]string // object -> temporary file
	noReflink atomic.Bool           // the filesystem refused a reflink
}

// NewBatch starts a batch of new objects.
func (s *Store) NewBatch() *Batch {
	return &Batch{s: s, pending: map[verity.Sum]string{}}
}

// AddObject writes what fill writes into a new object (hashing while
// writing, with the store's algorithm) and returns its digest. The object
// becomes visible at Flush.
func (b *Batch) AddObject(fill func(io.Writer) error) (verity.Sum, error) {
	d, _, err := b.addObject(fill)
	return d, err
}

func (b *Batch) addObject(fill func(io.Writer) error) (verity.Sum, uint64, error) {
	w, err := b.newObjectWriter()
	if err != nil {
		return verity.Sum{}, 0, err
	}
	err = fill(w)
	if cerr := unix.Close(w.fd); err == nil && cerr != nil {
		err = fmt.Errorf("store: %s: %w", w.path, cerr)
	}
	if err != nil {
		os.Remove(w.path)
		return verity.Sum{}, 0, err
	}
	d := w.h.Sum()
	b.mu.Lock()
	_, dup := b.pending[d]
	if !dup {
		dup = exists(b.s.ObjectPath(d))
	}
	if !dup {
		b.pending[d] = w.path
	}
	b.mu.Unlock()
	if dup {
		os.Remove(w.path)
	}
	return d, w.h.Size(), nil
}

// objectWriter fills a temporary object through its bare descriptor
// (package fdio says why) and hashes what goes in.
type objectWriter struct {
	fd   int
	path string
	h    *verity.Hasher
}

// newObjectWriter creates a temporary object file in objects/.
func (b *Batch) newObjectWriter() (*objectWriter, error) {
	fd, path, err := createObjectTemp(filepath.Join(b.s.dir, "objects"))
	if err != nil {
		return nil, err
	}
	return &objectWriter{fd: fd, path: path, h: b.s.alg.NewHasher()}, nil
}

// createObjectTemp creates a new temporary object file in dir.
func createObjectTemp(dir string) (int, string, error) {
	for {
		path := filepath.Join(dir, tempObject+randomName())
		fd, err := unix.Open(path, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o644)
		if errors.Is(err, unix.EEXIST) {
			continue
		}
		if err != nil {
			return -1, "", fmt.Errorf("store: %w", &os.PathError{Op: "create", Path: path, Err: err})
		}
		return fd, path, nil
	}
}

func (w *objectWriter) Write(p []byte) (int, error) {
	n, err := fdio.File(w.fd).Write(p)
	w.h.Write(p[:n])
	if err != nil {
		return n, fmt.Errorf("store: write %s: %w", w.path, err)
	}
	return n, nil
}

// Flush makes the batch's objects durable and visible: seal each with
// fs-verity when the store is protected, one syncfs, then rename into
// place and sync the directories that changed.
func (b *Batch) Flush() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.pending) == 0 {
		return nil
	}
	type item struct {
		d        verity.Sum
		tmp, dst string
	}
	items := make([]item, 0, len(b.pending))
	for d, tmp := range b.pending {
		items = append(items, item{d, tmp, b.s.ObjectPath(d)})
	}
	if b.s.Protected() {
		if err := parallel.Each(items, runtime.GOMAXPROCS(0), func(it item) error { return seal(it.tmp, it.d) }); err != nil {
			return err
		}
	} else if b.s.probeErr != nil {
		return b.s.probeErr
	}
	if err := unix.Syncfs(int(b.s.fd.Fd())); err != nil {
		return fmt.Errorf("store %s: syncfs: %w", b.s.dir, err)
	}
	dirs := map[string]bool{}
	newDirs := false
	for _, it := range items {
		dir := filepath.Dir(it.dst)
		if dirs[dir] {
			continue
		}
		if err := os.Mkdir(dir, 0o755); err == nil {
			newDirs = true
		} else if !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("store: %w", err)
		}
		dirs[dir] = true
	}
	// On both cores: a reflinked object's rename stays within its
	// directory and runs beside the others (a copy's, out of objects/,
	// waits for the kernel's one lock on renames across directories).
	err := parallel.Each(items, runtime.GOMAXPROCS(0), func(it item) error { return renameNoReplace(it.tmp, it.dst) })
	if err != nil {
		return err // Abort removes what is left of the temporary files
	}
	for _, it := range items {
		delete(b.pending, it.d)
	}
	if newDirs {
		dirs[filepath.Join(b.s.dir, "objects")] = true
	}
	return parallel.Each(slices.Collect(maps.Keys(dirs)), runtime.GOMAXPROCS(0), syncDir)
}

// Abort removes the temporary files of objects not yet flushed.
func (b *Batch) Abort() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for d, tmp := range b.pending {
		os.Remove(tmp)
		delete(b.pending, d)
	}
}

// AddImage stores an image under its fs-verity digest (the store's
// algorithm), durably, after everything it references has been flushed.
// In a store with meta.json the image is an object and images/<digest> a
// relative symlink to it, as composefs-rs writes them; otherwise it is a
// plain file in images/.
func (s *Store) AddImage(image []byte) (verity.Sum, error) {
	d := s.alg.ComputeBytes(image)
	dst := s.ImagePath(d)
	if exists(dst) {
		return d, nil
	}
	tmp, err := createTemp(filepath.Join(s.dir, "objects"), tempImage)
	if err != nil {
		return d, fmt.Errorf("store: add image: %w", err)
	}
	defer os.Remove(tmp.Name()) // fails harmlessly after the rename
	_, err = tmp.Write(image)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return d, fmt.Errorf("store: add image: %w", err)
	}
	if s.Protected() {
		if err := seal(tmp.Name(), d); err != nil {
			return d, err
		}
	} else if s.probeErr != nil {
		return d, s.probeErr
	}
	if s.meta == nil {
		if err := renameNoReplace(tmp.Name(), dst); err != nil {
			return d, err
		}
		return d, syncDir(filepath.Dir(dst))
	}
	obj := s.ObjectPath(d)
	if err := os.Mkdir(filepath.Dir(obj), 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return d, fmt.Errorf("store: add image: %w", err)
	}
	if err := renameNoReplace(tmp.Name(), obj); err != nil {
		return d, err
	}
	if err := syncDir(filepath.Dir(obj)); err != nil {
		return d, err
	}
	return d, s.symlinkImage(d)
}

// symlinkImage makes images/<d> a relative symlink to its object.
func (s *Store) symlinkImage(d verity.Sum) error {
	dst := s.ImagePath(d)
	tmp := filepath.Join(filepath.Dir(dst), tempImage+randomName())
	if err := os.Symlink("../objects/"+tree.ObjectPathOf(d), tmp); err != nil {
		return fmt.Errorf("store: add image: %w", err)
	}
	if err := renameNoReplace(tmp, dst); err != nil {
		os.Remove(tmp)
		return err
	}
	return syncDir(filepath.Dir(dst))
}

// SetRef points images/refs/<name> at the image d (a relative symlink, as
// composefs-rs makes them), replacing an older target atomically. The
// image must already be in the store.
func (s *Store) SetRef(name string, d verity.Sum) error {
	if err := checkRefName(name); err != nil {
		return err
	}
	if !exists(s.ImagePath(d)) {
		return fmt.Errorf("store: ref %s: image %s is not in the store", name, d)
	}
	path := filepath.Join(s.dir, "images", "refs", name)
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("store: ref %s: %w", name, err)
	}
	target := strings.Repeat("../", strings.Count(name, "/")+1) + d.String()
	tmp := filepath.Join(dir, tempRef+randomName())
	if err := os.Symlink(target, tmp); err != nil {
		return fmt.Errorf("store: ref %s: %w", name, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("store: ref %s: %w", name, err)
	}
	return syncDir(dir)
}

// checkRefName accepts relative slash-separated names that stay below
// images/refs/ and cannot be mistaken for temporary files.
func checkRefName(name string) error {
	if name == "" || strings.HasPrefix(name, "/") {
		return fmt.Errorf("store: ref name %q: must be a relative path", name)
	}
	for _, c := range strings.Split(name, "/") {
		if c == "" || c == "." || c == ".." || strings.HasPrefix(c, tempPrefix) {
			return fmt.Errorf("store: ref name %q: bad component %q", name, c)
		}
	}
	return nil
}

// seal enables fs-verity with want's algorithm on the file at path and
// checks the kernel's digest against want.
func seal(path string, want verity.Sum) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	defer f.Close()
	if err := verity.EnableAlgorithm(int(f.Fd()), want.Algorithm()); err != nil {
		return fmt.Errorf("store %s: %w", path, err)
	}
	got, err := verity.MeasureSum(int(f.Fd()))
	if err != nil {
		return fmt.Errorf("store %s: %w", path, err)
	}
	if got != want {
		return fmt.Errorf("store %s: kernel fs-verity digest %s, expected %s", path, got, want)
	}
	return nil
}

func createTemp(dir, prefix string) (*os.File, error) {
	for {
		f, err := os.OpenFile(filepath.Join(dir, prefix+randomName()), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
		if !errors.Is(err, os.ErrExist) {
			return f, err
		}
	}
}

func randomName() string {
	const letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	b := make([]byte, 12)
	rand.Read(b)
	for i := range b {
		b[i] = letters[int(b[i])%len(letters)]
	}
	return string(b)
}

// renameNoReplace moves tmp to dst unless dst exists (another writer put
// the same object there first), in which case tmp is removed.
func renameNoReplace(tmp, dst string) error {
	err := unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, dst, unix.RENAME_NOREPLACE)
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) {
		// No RENAME_NOREPLACE here: replacing an object by the same
		// content is harmless.
		err = unix.Rename(tmp, dst)
	}
	if errors.Is(err, unix.EEXIST) {
		return os.Remove(tmp)
	}
	if err != nil {
		return fmt.Errorf("store: rename %s to %s: %w", tmp, dst, err)
	}
	return nil
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("store: sync %s: %w", dir, err)
	}
	return nil
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}
