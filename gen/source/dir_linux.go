// Package source builds composefs trees from host directories, the way
// `mkcomposefs SRC_DIR` does, so the resulting image is byte-identical.
package source

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"cfsboot/gen/tree"
	"cfsboot/internal/parallel"
	"cfsboot/verity"
)

// InlineMax is the largest regular file kept inside the image rather than
// in the object store (LCFS_RECOMMENDED_INLINE_CONTENT_MAX).
const InlineMax = 64

// Options mirror mkcomposefs' directory flags.
type Options struct {
	UseEpoch    bool // every mtime is 0, for reproducible images
	SkipXattrs  bool
	UserXattrs  bool // keep only user.* xattrs
	SkipDevices bool
}

// Dir reads the tree at path. Regular files get their fs-verity digest, the
// object path "xx/yyyy..." as payload and their host path as Source; files
// of at most InlineMax bytes are also inlined. Like the reference, every
// inode has link count 1: hard links in the source become separate files.
// Symlinks are never followed.
func Dir(path string, opts Options) (*tree.Node, error) {
	root, err := Walk(path, opts)
	if err != nil {
		return nil, err
	}
	return root, Digest(root, nil)
}

// Unread lists the host files of a Walk tree that are still to be read
// and digested, with their total size.
func Unread(root *tree.Node) (files []*tree.Node, bytes int64) {
	root.Walk(func(n *tree.Node) error {
		if n.LinkTo == nil && n.Mode&tree.SIFMT == tree.SIFREG && n.Source != "" && n.Digest == nil {
			files = append(files, n)
			bytes += int64(n.Size)
		}
		return nil
	})
	return files, bytes
}

// Digest reads and digests, on all cores, the files Walk left unread,
// calling progress (if not nil) with each one's size when it is done.
func Digest(root *tree.Node, progress func(bytes int64)) error {
	return DigestAlgorithm(root, verity.SHA256, progress)
}

// Walk reads the tree at path like Dir, but leaves the files larger than
// InlineMax unread (no Digest, no Payload): an object store reads each of
// them once, hashing while it copies (see CopyContent).
func Walk(path string, opts Options) (*tree.Node, error) {
	root, files, err := walk(path, opts)
	if err != nil {
		return nil, err
	}
	small := files[:0]
	for _, n := range files {
		if n.Size <= InlineMax {
			small = append(small, n)
		}
	}
	if err := parallel.Each(small, runtime.GOMAXPROCS(0), digestFile); err != nil {
		return nil, err
	}
	return root, nil
}

// walk lists the tree and returns the regular files with content.
func walk(path string, opts Options) (*tree.Node, []*tree.Node, error) {
	if opts.SkipXattrs && opts.UserXattrs {
		return nil, nil, errors.New("source: SkipXattrs and UserXattrs conflict")
	}
	b := &builder{opts: opts, helpers: make(chan struct{}, runtime.GOMAXPROCS(0)-1)}
	root, err := b.node(path, "")
	if err != nil {
		return nil, nil, err
	}
	if !root.IsDir() {
		return nil, nil, fmt.Errorf("source %s: not a directory", path)
	}
	b.walk(root, path)
	b.wg.Wait()
	if b.err != nil {
		return nil, nil, b.err
	}
	return root, b.files, nil
}

// builder lists a tree on all cores: a directory's entries are added in
// order by the goroutine that read it; its subdirectories go to a helper
// goroutine when one is free (lstat and xattrs of 100,000 entries are
// most of a scale tree's time).
type builder struct {
	opts    Options
	helpers chan struct{} // one token per running helper
	wg      sync.WaitGroup
	mu      sync.Mutex
	files   []*tree.Node // regular files to digest
	err     error        // the first failure; the walk stops
}

func (b *builder) fail(err error) {
	b.mu.Lock()
	if b.err == nil {
		b.err = err
	}
	b.mu.Unlock()
}

func (b *builder) failed() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.err != nil
}

func (b *builder) walk(dir *tree.Node, path string) {
	entries, err := os.ReadDir(path)
	if err != nil {
		b.fail(fmt.Errorf("source: %w", err))
		return
	}
	for _, e := range entries {
		if b.failed() {
			return
		}
		p := filepath.Join(path, e.Name())
		if b.opts.SkipDevices && e.Type()&(os.ModeDevice|os.ModeCharDevice) != 0 {
			continue
		}
		// The node's name shares the path's bytes: one string per entry,
		// not two.
		n, err := b.node(p, p[len(p)-len(e.Name()):])
		if err != nil {
			b.fail(err)
			return
		}
		if err := dir.AddChild(n); err != nil {
			b.fail(fmt.Errorf("source %s: %w", p, err))
			return
		}
		if !n.IsDir() {
			continue
		}
		select {
		case b.helpers <- struct{}{}:
			b.wg.Add(1)
			go func() {
				defer func() { <-b.helpers; b.wg.Done() }()
				b.walk(n, p)
			}()
		default:
			b.walk(n, p)
		}
	}
}

func (b *builder) node(path, name string) (*tree.Node, error) {
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		return nil, fmt.Errorf("source %s: %w", path, err)
	}
	n := &tree.Node{
		Name: name, Mode: st.Mode, Nlink: 1, UID: st.Uid, GID: st.Gid,
		Rdev: uint32(st.Rdev), Size: uint64(st.Size),
	}
	if !b.opts.UseEpoch {
		n.MtimeSec, n.MtimeNsec = st.Mtim.Sec, uint32(st.Mtim.Nsec)
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		n.Source = path
		if n.Size > 0 {
			b.mu.Lock()
			b.files = append(b.files, n)
			b.mu.Unlock()
		}
	case unix.S_IFLNK:
		target, err := os.Readlink(path)
		if err != nil {
			return nil, fmt.Errorf("source %s: %w", path, err)
		}
		if target == "" {
			return nil, fmt.Errorf("source %s: empty symlink target", path)
		}
		n.Payload, n.Size = target, uint64(len(target))
	}
	if !b.opts.SkipXattrs {
		if err := b.readXattrs(n, path); err != nil {
			return nil, fmt.Errorf("source %s: %w", path, err)
		}
	}
	return n, nil
}

func (b *builder) readXattrs(n *tree.Node, path string) error {
	size, err := unix.Llistxattr(path, nil)
	if err != nil || size == 0 {
		if errors.Is(err, unix.ENOTSUP) {
			return nil
		}
		return err
	}
	list := make([]byte, size)
	if size, err = unix.Llistxattr(path, list); err != nil {
		return fmt.Errorf("list xattrs: %w", err)
	}
	for _, key := range strings.Split(strings.TrimRight(string(list[:size]), "\x00"), "\x00") {
		if b.opts.UserXattrs && !strings.HasPrefix(key, "user.") {
			continue
		}
		vsize, err := unix.Lgetxattr(path, key, nil)
		if err != nil {
			return fmt.Errorf("xattr %s: %w", key, err)
		}
		value := make([]byte, vsize)
		if vsize, err = unix.Lgetxattr(path, key, value); err != nil {
			return fmt.Errorf("xattr %s: %w", key, err)
		}
		n.Xattrs = append(n.Xattrs, tree.Xattr{Key: key, Value: value[:vsize]})
	}
	return nil
}

// digestFile computes a regular file's fs-verity digest, sets its object
// path and inlines it when it is small.
func digestFile(n *tree.Node) error {
	if n.Size <= InlineMax {
		data, err := os.ReadFile(n.Source)
		if err != nil {
			return fmt.Errorf("source: %w", err)
		}
		if uint64(len(data)) != n.Size {
			return changed(n.Source, fmt.Sprintf("%d bytes read, %d when listed", len(data), n.Size))
		}
		n.Content = data
		d := verity.ComputeBytes(data)
		n.Digest = &d
	} else {
		d, err := verity.ComputeFile(n.Source)
		if err != nil {
			return fmt.Errorf("source: %w", err)
		}
		n.Digest = &d
	}
	n.Payload = tree.ObjectPath(*n.Digest)
	return nil
}
