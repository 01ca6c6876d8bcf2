package source

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"golang.org/x/sys/unix"

	"cfsboot/gen/tree"
	"cfsboot/internal/fdio"
)

// ErrChanged: a source file changed while it was being read, so its bytes
// are no snapshot of one state of the file.
var ErrChanged = errors.New("changed while being read")

func changed(path, detail string) error {
	return fmt.Errorf("source %s: %w (%s)", path, ErrChanged, detail)
}

// copyBuffers hold the unit of one read: large enough for few syscalls,
// small enough for many parallel copies; reused, since a tree has many
// files and allocating per file costs more than the copy.
var copyBuffers = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}

// CopyContent writes the content of the regular file n (read from
// n.Source) to w in a single read of the file. It fails with ErrChanged when
// the file no longer has the size it was listed with, or when its size,
// change time or identity differ after the read from before it: the caller
// then holds bytes that match no state of the file and must not commit them.
func CopyContent(n *tree.Node, w io.Writer) error {
	c, err := OpenContent(n)
	if err != nil {
		return err
	}
	_, err = c.WriteTo(w)
	if cerr := c.Close(); err == nil {
		err = cerr
	}
	return err
}

// Content is the regular file n opened for reading, with its state at the
// open: Close reports (ErrChanged) whether the file changed from then on,
// so the checks bracket whatever the caller did with it meanwhile (read
// it, or share its blocks with a reflink).
type Content struct {
	n      *tree.Node
	fd     int
	before unix.Stat_t
	read   int64 // bytes the last WriteTo read
}

// OpenContent opens n's source. It fails with ErrChanged when the file is
// no longer what was listed (type, size, mtime).
func OpenContent(n *tree.Node) (*Content, error) {
	// A bare descriptor (package fdio says why); fdio.File has no WriterTo,
	// so a copy goes through w (which hashes), not a kernel-side splice.
	fd, err := unix.Open(n.Source, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("source: %w", &os.PathError{Op: "open", Path: n.Source, Err: err})
	}
	c := &Content{n: n, fd: fd}
	err = unix.Fstat(fd, &c.before)
	switch {
	case err != nil:
		err = fmt.Errorf("source %s: %w", n.Source, err)
	case c.before.Mode&unix.S_IFMT != unix.S_IFREG:
		err = changed(n.Source, "no longer a regular file")
	case uint64(c.before.Size) != n.Size:
		err = changed(n.Source, fmt.Sprintf("%d bytes when listed, %d when opened", n.Size, c.before.Size))
	case (n.MtimeSec != 0 || n.MtimeNsec != 0) && (c.before.Mtim.Sec != n.MtimeSec || uint32(c.before.Mtim.Nsec) != n.MtimeNsec):
		err = changed(n.Source, "modified after it was listed")
	}
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	return c, nil
}

// Fd is the open file's descriptor (for a reflink).
func (c *Content) Fd() int { return c.fd }

// WriteTo writes the file's bytes, as many as it had when opened, to w.
func (c *Content) WriteTo(w io.Writer) (int64, error) {
	buf := copyBuffers.Get().(*[]byte)
	n, err := io.CopyBuffer(w, io.NewSectionReader(fdio.File(c.fd), 0, c.before.Size), *buf)
	copyBuffers.Put(buf)
	c.read = n
	if err != nil {
		return n, fmt.Errorf("source %s: %w", c.n.Source, err)
	}
	return n, nil
}

// Close closes the file and reports ErrChanged when its size, change time
// or identity moved since OpenContent, or WriteTo read less than it held.
func (c *Content) Close() error {
	defer unix.Close(c.fd)
	src := c.n.Source
	var after, now unix.Stat_t
	if err := unix.Fstat(c.fd, &after); err != nil {
		return fmt.Errorf("source %s: %w", src, err)
	}
	if err := unix.Lstat(src, &now); err != nil || now.Dev != after.Dev || now.Ino != after.Ino {
		return changed(src, "replaced by another file")
	}
	before := c.before
	switch {
	case c.read != before.Size || after.Size < before.Size:
		return changed(src, fmt.Sprintf("truncated from %d to %d bytes", before.Size, min(c.read, after.Size)))
	case after.Size > before.Size:
		return changed(src, fmt.Sprintf("grew from %d to %d bytes", before.Size, after.Size))
	case after.Ctim != before.Ctim:
		return changed(src, "modified (its change time moved)")
	}
	return nil
}

// Refresh lists the regular file n again after CopyContent reported a
// change: its size and (unless the tree uses epoch mtimes) its mtime are
// read anew, its digest forgotten, and a file that shrank to InlineMax
// bytes or fewer is inlined, so that a retry describes the file as it is.
func Refresh(n *tree.Node) error {
	var st unix.Stat_t
	if err := unix.Lstat(n.Source, &st); err != nil {
		return fmt.Errorf("source: %w", err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return fmt.Errorf("source %s: no longer a regular file", n.Source)
	}
	n.Size = uint64(st.Size)
	if n.MtimeSec != 0 || n.MtimeNsec != 0 {
		n.MtimeSec, n.MtimeNsec = st.Mtim.Sec, uint32(st.Mtim.Nsec)
	}
	n.Digest, n.Payload, n.Content = nil, "", nil
	if n.Size > 0 && n.Size <= InlineMax {
		return digestFile(n)
	}
	return nil
}
