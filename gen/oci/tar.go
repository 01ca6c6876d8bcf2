package oci

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"golang.org/x/sys/unix"

	"cfsboot/gen/source"
	"cfsboot/gen/tree"
	"cfsboot/verity"
)

// paxXattrPrefix marks extended attributes in PAX records (GNU tar, Docker,
// buildah and umoci write them so).
const paxXattrPrefix = "SCHILY.xattr."

// Limits of what one xattr may hold: the kernel's XATTR_NAME_MAX and
// XATTR_SIZE_MAX.
const (
	maxXattrName  = 255
	maxXattrValue = 64 << 10
)

// Stats count what layers put into the tree.
type Stats struct {
	Entries int   // tar entries applied
	Files   int   // regular file entries
	Bytes   int64 // bytes of regular file content
}

// EntryError is a layer entry that could not be applied.
type EntryError struct {
	Layer string // "layer N (sha256:...)"
	Entry string // the entry's name in the tar stream, as written
	Err   error
}

func (e *EntryError) Error() string {
	return fmt.Sprintf("%s: entry %q: %v", e.Layer, e.Entry, e.Err)
}

func (e *EntryError) Unwrap() error { return e.Err }

// applyTar applies one uncompressed layer tar stream to fs, streaming
// regular files of more than source.InlineMax bytes into sink (through par,
// on other goroutines, when it is not nil). It stops at the tar end marker;
// the caller drains what follows.
func (fs *rootfs) applyTar(layer string, r io.Reader, sink ObjectSink, par *puts, st *Stats) error {
	err := fs.applyEntries(layer, r, sink, par, st)
	if par != nil {
		// Every put of the layer ends before its digests are checked or its
		// tree is used.
		if perr := par.wait(); err == nil {
			err = perr
		}
	}
	return err
}

func (fs *rootfs) applyEntries(layer string, r io.Reader, sink ObjectSink, par *puts, st *Stats) error {
	tr := tar.NewReader(r)
	for {
		if par != nil {
			if err := par.failed(); err != nil {
				return err
			}
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s: reading tar after %d entries: %w", layer, st.Entries, err)
		}
		if err := fs.applyEntry(layer, hdr, tr, sink, par, st); err != nil {
			return &EntryError{Layer: layer, Entry: hdr.Name, Err: err}
		}
		st.Entries++
	}
}

func (fs *rootfs) applyEntry(layer string, hdr *tar.Header, content io.Reader, sink ObjectSink, par *puts, st *Stats) error {
	if hdr.Typeflag == tar.TypeXGlobalHeader {
		return nil // archive-wide PAX records (git archive's comment), no file
	}
	parts, err := splitPath(hdr.Name)
	if err != nil {
		return err
	}
	if len(parts) > 0 && strings.HasPrefix(parts[len(parts)-1], whiteoutPrefix) {
		if hdr.Typeflag != tar.TypeReg && hdr.Typeflag != tar.TypeRegA {
			return fmt.Errorf("whiteout is not a regular file entry")
		}
		return fs.whiteout(parts)
	}
	if hdr.Typeflag == tar.TypeLink {
		target, err := splitPath(hdr.Linkname)
		if err != nil {
			return fmt.Errorf("hard link target %q: %w", hdr.Linkname, err)
		}
		return fs.link(parts, target)
	}
	for k := range hdr.PAXRecords {
		// archive/tar expands PAX sparse files itself: their holes would
		// bypass the layer's size limits, and images have no use for them.
		if strings.HasPrefix(k, "GNU.sparse.") {
			return fmt.Errorf("sparse files are not supported")
		}
	}
	ino, err := inodeOf(hdr)
	if err != nil {
		return err
	}
	// The path is checked before any content is read, so that a hostile
	// entry costs no copy.
	if err := fs.checkPut(parts, ino); err != nil {
		return err
	}
	if ino.meta.Mode&tree.SIFMT == tree.SIFREG {
		var kept *bytes.Buffer
		if hdr.Size > source.InlineMax && hdr.Size <= selinuxFileCap && isSELinuxPolicyFile(parts) {
			kept = &bytes.Buffer{}
			content = io.TeeReader(content, kept)
		}
		name := strings.Join(parts, "/")
		var err error
		if par != nil && hdr.Size > source.InlineMax {
			err = par.put(&ino.meta, layer, hdr.Name, name, content, hdr.Size)
		} else {
			err = storeContent(&ino.meta, name, content, hdr.Size, sink)
		}
		if err != nil {
			return err
		}
		if kept != nil {
			fs.captured[ino] = kept.Bytes()
		}
		st.Files++
		st.Bytes += hdr.Size
	}
	return fs.put(parts, ino)
}

// checkPut reports the errors of the path put would give, without
// changing fs.
func (fs *rootfs) checkPut(parts []string, ino *inode) error {
	if len(parts) == 0 {
		return nil
	}
	e, err := fs.lookup(parts)
	if err != nil {
		return err
	}
	return fs.checkReplace(e, ino)
}

// inodeOf maps a tar header to inode metadata.
func inodeOf(hdr *tar.Header) (*inode, error) {
	var typ uint32
	switch hdr.Typeflag {
	case tar.TypeReg, tar.TypeRegA:
		typ = tree.SIFREG
	case tar.TypeDir:
		typ = tree.SIFDIR
	case tar.TypeSymlink:
		typ = tree.SIFLNK
	case tar.TypeChar:
		typ = tree.SIFCHR
	case tar.TypeBlock:
		typ = tree.SIFBLK
	case tar.TypeFifo:
		typ = tree.SIFIFO
	default:
		return nil, fmt.Errorf("unsupported tar entry type %q", hdr.Typeflag)
	}
	if hdr.Uid < 0 || hdr.Gid < 0 || hdr.Uid > 1<<32-1 || hdr.Gid > 1<<32-1 {
		return nil, fmt.Errorf("owner %d:%d out of range", hdr.Uid, hdr.Gid)
	}
	ino := &inode{meta: tree.Node{
		Mode:  typ | uint32(hdr.Mode&0o7777),
		Nlink: 1,
		UID:   uint32(hdr.Uid), GID: uint32(hdr.Gid),
		MtimeSec: hdr.ModTime.Unix(), MtimeNsec: uint32(hdr.ModTime.Nanosecond()),
	}}
	switch typ {
	case tree.SIFDIR:
		ino.children = map[string]*dirEntry{}
	case tree.SIFLNK:
		if hdr.Linkname == "" || len(hdr.Linkname) > maxPathLen-1 {
			return nil, fmt.Errorf("symlink target must be 1..%d bytes, got %d", maxPathLen-1, len(hdr.Linkname))
		}
		ino.meta.Payload, ino.meta.Size = hdr.Linkname, uint64(len(hdr.Linkname))
	case tree.SIFCHR, tree.SIFBLK:
		if hdr.Devmajor < 0 || hdr.Devminor < 0 || hdr.Devmajor > 1<<32-1 || hdr.Devminor > 1<<32-1 {
			return nil, fmt.Errorf("device %d:%d out of range", hdr.Devmajor, hdr.Devminor)
		}
		ino.meta.Rdev = uint32(unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor)))
	}
	xattrs, err := xattrsOf(hdr)
	if err != nil {
		return nil, err
	}
	ino.meta.Xattrs = xattrs
	return ino, nil
}

// xattrsOf reads the PAX SCHILY.xattr.* records, sorted by name. A record
// with an empty value unsets its keyword (POSIX pax, as umoci reads it), so
// it is no xattr.
func xattrsOf(hdr *tar.Header) ([]tree.Xattr, error) {
	var xs []tree.Xattr
	for k, v := range hdr.PAXRecords {
		key, ok := strings.CutPrefix(k, paxXattrPrefix)
		if !ok || v == "" {
			continue
		}
		if key == "" || len(key) > maxXattrName || strings.IndexByte(key, 0) >= 0 {
			return nil, fmt.Errorf("invalid xattr name %.64q", key)
		}
		if len(v) > maxXattrValue {
			return nil, fmt.Errorf("xattr %s: value of %d bytes exceeds %d", key, len(v), maxXattrValue)
		}
		xs = append(xs, tree.Xattr{Key: key, Value: []byte(v)})
	}
	sort.Slice(xs, func(a, b int) bool { return xs[a].Key < xs[b].Key })
	return xs, nil
}

// storeContent reads a regular file's size bytes of content: small files
// are kept inline (as directory sources do), larger ones are streamed into
// the sink. Either way the node gets its size, digest and object path.
func storeContent(n *tree.Node, name string, content io.Reader, size int64, sink ObjectSink) error {
	n.Size = uint64(size)
	if size == 0 {
		return nil
	}
	var d verity.Sum
	if size <= source.InlineMax {
		data := make([]byte, size)
		if _, err := io.ReadFull(content, data); err != nil {
			return fmt.Errorf("reading content: %w", err)
		}
		n.Content = data
		d = verity.SHA256.ComputeBytes(data)
	} else {
		c := &countingReader{r: content}
		var err error
		if d, err = putInto(sink, name, c); err != nil {
			return fmt.Errorf("storing content: %w", err)
		}
		if c.n != size {
			return fmt.Errorf("object sink read %d of %d content bytes", c.n, size)
		}
	}
	n.SetFileDigest(d)
	return nil
}

// putInto puts r into sink, telling a NamedSink the file's name.
func putInto(sink ObjectSink, name string, r io.Reader) (verity.Sum, error) {
	if named, ok := sink.(NamedSink); ok {
		return named.PutNamed(name, r)
	}
	return sink.Put(r)
}

// countingReader counts what the sink read of a file's content.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
