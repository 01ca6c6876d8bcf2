package oci

import (
	"fmt"
	"sort"
	"strings"

	"cfsboot/gen/tree"
)

// Whiteout names of the OCI image layer spec.
const (
	whiteoutPrefix = ".wh."
	whiteoutOpaque = ".wh..wh..opq"
	// whiteoutMeta prefixes AUFS metadata names (".wh..wh.plnk", ...), which
	// OCI reserves and no supported image uses.
	whiteoutMeta = ".wh..wh."
)

// rootfs is the image tree while layers are applied. Directory entries and
// inodes are apart so that hard links share an inode and survive the
// removal or replacement of the path they were made from.
type rootfs struct {
	root  *dirEntry
	layer int // index of the layer being applied
	// captured holds the contents of SELinux policy files (see
	// isSELinuxPolicyFile) too big to be inline.
	captured map[*inode][]byte
}

// inode holds one file's metadata; name, parent, children and link fields of
// meta are unused.
type inode struct {
	meta     tree.Node
	children map[string]*dirEntry // directories only
}

func (i *inode) isDir() bool { return i.meta.Mode&tree.SIFMT == tree.SIFDIR }

type dirEntry struct {
	ino *inode
	// written is the layer whose entry made this one (-1: created implicitly
	// as the parent of a later entry); touched is the newest layer that wrote
	// this entry or anything below it.
	written, touched int
}

func newRootfs() *rootfs {
	// Layers often carry no "./" entry: the root then is root's 0755 directory
	// with mtime 0, the way it is until a layer says otherwise.
	return &rootfs{root: &dirEntry{ino: newDir(), written: -1, touched: -1}, captured: map[*inode][]byte{}}
}

func newDir() *inode {
	return &inode{meta: tree.Node{Mode: tree.SIFDIR | 0o755}, children: map[string]*dirEntry{}}
}

// splitPath turns a tar entry name into path components. Leading "./" and a
// trailing "/" are dropped; absolute names and ".", ".." or empty components
// anywhere are errors. The root itself has no components.
func splitPath(name string) ([]string, error) {
	if strings.HasPrefix(name, "/") {
		return nil, fmt.Errorf("absolute name")
	}
	if len(name) > maxPathLen {
		return nil, fmt.Errorf("name of %d bytes is longer than %d", len(name), maxPathLen)
	}
	for strings.HasPrefix(name, "./") {
		name = name[2:]
	}
	name = strings.TrimSuffix(name, "/")
	if name == "" || name == "." {
		return nil, nil
	}
	parts := strings.Split(name, "/")
	for _, p := range parts {
		if p == ".." {
			return nil, fmt.Errorf("name climbs out with \"..\"")
		}
		if err := tree.ValidName(p); err != nil {
			return nil, err
		}
	}
	return parts, nil
}

// maxPathLen is Linux's PATH_MAX: longer names cannot be created anyway.
const maxPathLen = 4096

// parentDir walks to the directory holding the last component of parts,
// never following symlinks: a symlink or other non-directory on the way is
// an error, since writing through it would write outside the tree (or
// nowhere). Missing directories are created (implicit) when create is set;
// otherwise a missing one yields nil.
func (fs *rootfs) parentDir(parts []string, create bool) (*inode, error) {
	dir := fs.root
	for i, name := range parts[:len(parts)-1] {
		if strings.HasPrefix(name, whiteoutPrefix) {
			return nil, fmt.Errorf("whiteout name %q used as a directory", strings.Join(parts[:i+1], "/"))
		}
		next := dir.ino.children[name]
		switch {
		case next == nil && !create:
			return nil, nil
		case next == nil:
			next = &dirEntry{ino: newDir(), written: -1}
			dir.ino.children[name] = next
		case next.ino.meta.Mode&tree.SIFMT == tree.SIFLNK:
			return nil, fmt.Errorf("%q is a symlink, not a directory", strings.Join(parts[:i+1], "/"))
		case !next.ino.isDir():
			return nil, fmt.Errorf("%q is not a directory", strings.Join(parts[:i+1], "/"))
		}
		if create {
			dir.touched = fs.layer
		}
		dir = next
	}
	if create {
		dir.touched = fs.layer
	}
	return dir.ino, nil
}

// lookup returns the entry at parts without following symlinks, or nil.
func (fs *rootfs) lookup(parts []string) (*dirEntry, error) {
	if len(parts) == 0 {
		return fs.root, nil
	}
	dir, err := fs.parentDir(parts, false)
	if err != nil || dir == nil {
		return nil, err
	}
	return dir.children[parts[len(parts)-1]], nil
}

// put adds the inode at parts, as a tar entry of the current layer does:
// a directory over a directory keeps the old children and takes the new
// metadata; anything else replaces what was there, subtree included.
func (fs *rootfs) put(parts []string, ino *inode) error {
	if len(parts) == 0 {
		if !ino.isDir() {
			return fmt.Errorf("the root must be a directory")
		}
		if fs.root.written == fs.layer {
			return fmt.Errorf("duplicate entry for the root")
		}
		ino.children = fs.root.ino.children
		fs.root.ino = ino
		fs.root.written, fs.root.touched = fs.layer, fs.layer
		return nil
	}
	name := parts[len(parts)-1]
	if strings.HasPrefix(name, whiteoutPrefix) {
		return fmt.Errorf("whiteout name on a non-whiteout entry")
	}
	dir, err := fs.parentDir(parts, true)
	if err != nil {
		return err
	}
	old := dir.children[name]
	if err := fs.checkReplace(old, ino); err != nil {
		return err
	}
	if old != nil && old.ino.isDir() && ino.isDir() {
		ino.children = old.ino.children
	}
	dir.children[name] = &dirEntry{ino: ino, written: fs.layer, touched: fs.layer}
	return nil
}

// checkReplace refuses a second entry for a path in one layer, and a
// non-directory over a directory this layer already wrote into.
func (fs *rootfs) checkReplace(old *dirEntry, ino *inode) error {
	switch {
	case old == nil:
	case old.written == fs.layer:
		return fmt.Errorf("duplicate entry")
	case old.touched == fs.layer && !(old.ino.isDir() && ino.isDir()):
		return fmt.Errorf("replaces a directory this layer wrote into")
	}
	return nil
}

// whiteout applies ".wh.NAME" (remove NAME of a lower layer) or the opaque
// marker (remove every lower-layer entry of the directory). OCI: whiteouts
// hide only what lower layers made, whatever their order in the layer; a
// whiteout of a path that does not exist hides nothing.
func (fs *rootfs) whiteout(parts []string) error {
	name := parts[len(parts)-1]
	dir, err := fs.parentDir(parts, name == whiteoutOpaque)
	if err != nil || dir == nil {
		return err
	}
	if name == whiteoutOpaque {
		fs.pruneLower(dir)
		return nil
	}
	if strings.HasPrefix(name, whiteoutMeta) {
		return fmt.Errorf("unsupported AUFS metadata name")
	}
	hidden := strings.TrimPrefix(name, whiteoutPrefix)
	if err := tree.ValidName(hidden); err != nil {
		return fmt.Errorf("whiteout: %w", err)
	}
	old := dir.children[hidden]
	if old == nil {
		return nil
	}
	if old.touched == fs.layer {
		// This layer wrote the entry (or into it) before its whiteout: the
		// entry stays, and of a directory only what this layer wrote.
		if old.ino.isDir() {
			fs.pruneLower(old.ino)
		}
		return nil
	}
	delete(dir.children, hidden)
	return nil
}

// pruneLower removes what lower layers put in dir, keeping what the current
// layer wrote (and the directories leading to it).
func (fs *rootfs) pruneLower(dir *inode) {
	for name, e := range dir.children {
		switch {
		case e.written == fs.layer:
		case e.touched == fs.layer && e.ino.isDir():
			fs.pruneLower(e.ino)
		default:
			delete(dir.children, name)
		}
	}
}

// link makes parts another name of the inode at target, which an earlier
// entry must have made and which must not be a directory.
func (fs *rootfs) link(parts, target []string) error {
	if len(target) == 0 {
		return fmt.Errorf("hard link to the root directory")
	}
	t, err := fs.lookup(target)
	if err != nil {
		return fmt.Errorf("hard link target: %w", err)
	}
	if t == nil {
		return fmt.Errorf("hard link to %q, which no earlier entry made", strings.Join(target, "/"))
	}
	if t.ino.isDir() {
		return fmt.Errorf("hard link to directory %q", strings.Join(target, "/"))
	}
	if len(parts) == 0 {
		return fmt.Errorf("the root must be a directory")
	}
	return fs.put(parts, t.ino)
}

// build turns the applied layers into a composefs tree. Every inode named
// by more than one entry becomes one node plus hard-link nodes (in path
// order), with its link count set.
func (fs *rootfs) build() (*tree.Node, error) {
	nlink := map[*inode]uint32{}
	var count func(*inode)
	count = func(i *inode) {
		for _, e := range i.children {
			if e.ino.isDir() {
				count(e.ino)
			} else {
				nlink[e.ino]++
			}
		}
	}
	count(fs.root.ino)
	made := map[*inode]*tree.Node{}
	var mk func(i *inode, name string, parent *tree.Node) (*tree.Node, error)
	mk = func(i *inode, name string, parent *tree.Node) (*tree.Node, error) {
		if first := made[i]; first != nil {
			n := &tree.Node{Name: name, Mode: first.Mode, LinkTo: first}
			return n, parent.AddChild(n)
		}
		n := i.meta
		n.Name, n.Parent, n.Children, n.LinkTo = name, nil, nil, nil
		node := &n
		if !i.isDir() {
			node.Nlink = nlink[i]
			made[i] = node
		}
		if parent != nil {
			if err := parent.AddChild(node); err != nil {
				return nil, err
			}
		}
		names := make([]string, 0, len(i.children))
		for c := range i.children {
			names = append(names, c)
		}
		sort.Strings(names)
		for _, c := range names {
			if _, err := mk(i.children[c].ino, c, node); err != nil {
				return nil, err
			}
		}
		return node, nil
	}
	return mk(fs.root.ino, "", nil)
}
