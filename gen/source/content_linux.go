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
	// A bare descriptor (package fdio says why); fdio.File has no WriterTo,
	// so the copy goes through w (which hashes), not a kernel-side splice.
	fd, err := unix.Open(n.Source, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("source: %w", &os.PathError{Op: "open", Path: n.Source, Err: err})
	}
	defer unix.Close(fd)
	var before, after unix.Stat_t
	if err := unix.Fstat(fd, &before); err != nil {
		return fmt.Errorf("source %s: %w", n.Source, err)
	}
	if before.Mode&unix.S_IFMT != unix.S_IFREG {
		return changed(n.Source, "no longer a regular file")
	}
	if uint64(before.Size) != n.Size {
		return changed(n.Source, fmt.Sprintf("%d bytes when listed, %d when opened", n.Size, before.Size))
	}
	if (n.MtimeSec != 0 || n.MtimeNsec != 0) && (before.Mtim.Sec != n.MtimeSec || uint32(before.Mtim.Nsec) != n.MtimeNsec) {
		return changed(n.Source, "modified after it was listed")
	}
	// After a reflink the source is still read, for its hash: from the page
	// cache, where the clone's own blocks would have to come from the disk.
	dst := w
	if c, ok := w.(Cloner); ok {
		hash, cloned, err := c.Clone(fd)
		if err != nil {
			return fmt.Errorf("source %s: %w", n.Source, err)
		}
		if cloned {
			dst = hash
		}
	}
	buf := copyBuffers.Get().(*[]byte)
	copied, err := io.CopyBuffer(dst, io.LimitReader(fdio.File(fd), before.Size), *buf)
	copyBuffers.Put(buf)
	if err != nil {
		return fmt.Errorf("source %s: %w", n.Source, err)
	}
	if err := unix.Fstat(fd, &after); err != nil {
		return fmt.Errorf("source %s: %w", n.Source, err)
	}
	var now unix.Stat_t
	if err := unix.Lstat(n.Source, &now); err != nil || now.Dev != after.Dev || now.Ino != after.Ino {
		return changed(n.Source, "replaced by another file")
	}
	switch {
	case copied != before.Size || after.Size < before.Size:
		return changed(n.Source, fmt.Sprintf("truncated from %d to %d bytes", before.Size, min(copied, after.Size)))
	case after.Size > before.Size:
		return changed(n.Source, fmt.Sprintf("grew from %d to %d bytes", before.Size, after.Size))
	case after.Ctim != before.Ctim:
		return changed(n.Source, "modified (its change time moved)")
	}
	return nil
}

// A Cloner is a CopyContent destination that can share the source's
// blocks (a reflink) instead of having them copied. When it did, Clone
// returns the writer that takes the source's bytes for hashing only.
// CopyContent's checks that the file did not change (size, change time,
// identity) bracket both the clone and that read, so the hash is the
// clone's content as it is for a copy; a store with fs-verity has the
// kernel confirm it when the object is sealed.
type Cloner interface {
	Clone(srcFd int) (hash io.Writer, cloned bool, err error)
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
