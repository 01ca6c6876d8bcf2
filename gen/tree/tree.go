// Package tree is the in-memory model of a composefs filesystem tree: what
// the image writer consumes, what the dump parser and the image reader
// produce, and what directory and OCI sources build. It mirrors the inode
// fields that composefs images carry, nothing more.
package tree

import (
	"encoding/hex"
	"fmt"
	"sort"
	"strings"

	"cfsboot/verity"
)

// Xattr is one extended attribute. Keys are full names ("user.foo",
// "trusted.overlay.metacopy"); values are raw bytes.
type Xattr struct {
	Key   string
	Value []byte
}

// Node is one inode in the tree, reached under Name from its Parent.
// A hard link is a Node whose LinkTo points at the inode it shares; all other
// fields of a link node are ignored.
type Node struct {
	Name   string // entry name in the parent; "" for the root
	Parent *Node

	// (The fields are ordered so that a Node packs into 256 bytes: trees
	// hold a million of them.)
	MtimeSec  int64
	MtimeNsec uint32
	Mode      uint32 // st_mode, including the file type bits (S_IFREG, ...)
	Nlink     uint32 // link count of non-directories (directories' is derived)
	UID, GID  uint32
	Rdev      uint32 // device number for character/block devices
	Size      uint64 // regular files only

	// Payload is a symlink's target, or for a regular file stored outside
	// the image the object path relative to the store's objects dir
	// ("ab/cdef..."), which becomes the overlay redirect.
	Payload string
	// Content is a small regular file's inline data (the image holds it).
	Content []byte
	// Digest is the fs-verity SHA-256 digest of a regular file's content,
	// when known.
	Digest *verity.Digest
	// Verity is the content's fs-verity digest in any algorithm (a SHA-512
	// store's files carry it here); when set it wins over Digest. Read both
	// through FileDigest.
	Verity verity.Sum
	// Source is the host path a regular file's content can be read from
	// (directory sources), so the object store can copy it in.
	Source string

	Xattrs   []Xattr
	Children []*Node // directories only, kept sorted by Name

	LinkTo *Node // non-nil: this entry is a hard link to LinkTo
}

// Target follows a hard link to the inode it names; other nodes return
// themselves.
func (n *Node) Target() *Node {
	for n.LinkTo != nil {
		n = n.LinkTo
	}
	return n
}

// IsDir reports whether the node is a directory.
func (n *Node) IsDir() bool { return n.Target().Mode&SIFMT == SIFDIR }

// File type bits of st_mode, as stored in composefs images and dumps.
const (
	SIFMT   = 0o170000
	SIFSOCK = 0o140000
	SIFLNK  = 0o120000
	SIFREG  = 0o100000
	SIFBLK  = 0o060000
	SIFDIR  = 0o040000
	SIFCHR  = 0o020000
	SIFIFO  = 0o010000
)

// Lookup returns the direct child called name, or nil.
func (n *Node) Lookup(name string) *Node {
	i := sort.Search(len(n.Children), func(i int) bool { return n.Children[i].Name >= name })
	if i < len(n.Children) && n.Children[i].Name == name {
		return n.Children[i]
	}
	return nil
}

// AddChild inserts child under n, keeping Children sorted by name. A name
// that is empty, "." or "..", contains '/' or NUL, or already exists is an
// error.
func (n *Node) AddChild(child *Node) error {
	if !n.IsDir() {
		return fmt.Errorf("%s: not a directory", n.Path())
	}
	if err := ValidName(child.Name); err != nil {
		return fmt.Errorf("%s: %w", n.Path(), err)
	}
	i := sort.Search(len(n.Children), func(i int) bool { return n.Children[i].Name >= child.Name })
	if i < len(n.Children) && n.Children[i].Name == child.Name {
		return fmt.Errorf("%s: duplicate entry %q", n.Path(), child.Name)
	}
	child.Parent = n
	n.Children = append(n.Children, nil)
	copy(n.Children[i+1:], n.Children[i:])
	n.Children[i] = child
	return nil
}

// ValidName checks one path component.
func ValidName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("empty file name")
	case name == "." || name == "..":
		return fmt.Errorf("invalid file name %q", name)
	case strings.ContainsAny(name, "/\x00"):
		return fmt.Errorf("file name %q contains '/' or NUL", name)
	case len(name) > MaxNameLen:
		return fmt.Errorf("file name %.32q...: longer than %d bytes", name, MaxNameLen)
	}
	return nil
}

// MaxNameLen is the longest file name composefs (and EROFS) accept.
const MaxNameLen = 255

// Path returns the absolute path of n within its tree ("/" for the root).
func (n *Node) Path() string {
	if n.Parent == nil {
		return "/"
	}
	var parts []string
	for p := n; p.Parent != nil; p = p.Parent {
		parts = append(parts, p.Name)
	}
	var b strings.Builder
	for i := len(parts) - 1; i >= 0; i-- {
		b.WriteByte('/')
		b.WriteString(parts[i])
	}
	return b.String()
}

// Walk calls fn for n and then every descendant, depth first, children in
// name order. Hard-link nodes are visited as entries; Walk does not follow
// them. A non-nil error from fn stops the walk.
func (n *Node) Walk(fn func(*Node) error) error {
	if err := fn(n); err != nil {
		return err
	}
	for _, c := range n.Children {
		if err := c.Walk(fn); err != nil {
			return err
		}
	}
	return nil
}

// FileDigest returns the fs-verity digest of a regular file's content:
// Verity when set, else Digest; ok is false when neither is known.
func (n *Node) FileDigest() (d verity.Sum, ok bool) {
	switch {
	case !n.Verity.IsZero():
		return n.Verity, true
	case n.Digest != nil:
		return n.Digest.Sum(), true
	}
	return verity.Sum{}, false
}

// SetFileDigest records a regular file's fs-verity digest in either
// algorithm (Digest too for SHA-256) and points the file at its object.
func (n *Node) SetFileDigest(d verity.Sum) {
	n.Verity, n.Digest = d, nil
	if d256, ok := d.Digest(); ok {
		n.Digest = &d256
	}
	n.Payload = ObjectPathOf(d)
}

// ObjectPath is where a file's content lives below a store's objects
// directory, named by its fs-verity SHA-256 digest; see ObjectPathOf.
func ObjectPath(d verity.Digest) string { return ObjectPathOf(d.Sum()) }

// ObjectPathOf is where a file's content lives below a store's objects
// directory, named by its fs-verity digest: "xx/" and the other 62 (SHA-256)
// or 126 (SHA-512) hex digits. It is also the payload (overlay redirect) of
// external files.
func ObjectPathOf(d verity.Sum) string {
	raw := d.Bytes()
	b := make([]byte, 2*len(raw)+1)
	hex.Encode(b[:2], raw[:1])
	b[2] = '/'
	hex.Encode(b[3:], raw[1:])
	return string(b)
}
