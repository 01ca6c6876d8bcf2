package erofs

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"math/bits"
	"sort"

	"cfsboot/gen/tree"
	"cfsboot/verity"
)

// Options are the image format choices mkcomposefs exposes, plus
// composefs-rs' legacy layout.
type Options struct {
	// MinVersion is the composefs format version to write; MaxVersion is
	// the highest it may be raised to when the tree needs it (version 1
	// marks directories holding escaped whiteouts opaque). The reference's
	// defaults are 0 and 1. Version 2 is composefs-rs' own layout (see
	// FormatV2) and is never reached by raising: both must be 2.
	MinVersion, MaxVersion int
}

// DefaultOptions are mkcomposefs' defaults.
func DefaultOptions() Options { return Options{MinVersion: 0, MaxVersion: 1} }

// maxVersion is the newest composefs format version this writer knows.
const maxVersion = 2

type xattr struct {
	key    string
	value  []byte
	shared int64 // offset in the shared xattr area, or -1 when inline

	// the name as stored: a prefix index and the rest, key[nameOff:] (set
	// by nameXattrs)
	index, nameOff uint8
}

// suffix is the name as stored after its prefix index.
func (x xattr) suffix() string { return x.key[x.nameOff:] }

type dirent struct {
	name   string
	target *inode
	link   bool // a hard link (including "." and ".."): not a tree edge
}

// inode is the writer's own copy of a tree node: the image needs changes
// (overlay xattrs, whiteout escaping, "." and "..", the root whiteouts) that
// must not touch the caller's tree.
type inode struct {
	mode, nlink, uid, gid, rdev uint32
	mtimeNsec                   uint32
	mtimeSec                    int64
	size                        uint64
	payload                     string
	content                     []byte
	xattrs                      []xattr
	entries                     []dirent // directories, sorted by name
	parent                      *inode
	name                        string // in parent; the path is made from names only for errors

	// layout, filled by computeLayout
	ino       uint32
	compact   bool
	nid       uint64
	nblocks   uint64
	tail      uint64
	ipad      uint64
	xattrSize uint64
}

func (i *inode) typ() uint32 { return i.mode & tree.SIFMT }

// path names the inode in errors.
func (i *inode) path() string {
	if i.parent == nil || i.parent == i {
		return "/"
	}
	if i.parent.parent == nil {
		return "/" + i.name
	}
	return i.parent.path() + "/" + i.name
}

func (i *inode) setXattr(key string, value []byte) {
	for j := range i.xattrs {
		if i.xattrs[j].key == key {
			i.xattrs = append(i.xattrs[:j], i.xattrs[j+1:]...)
			break
		}
	}
	i.xattrs = append(i.xattrs, xattr{key: key, value: value})
}

func (i *inode) xattr(key string) []byte {
	for _, x := range i.xattrs {
		if x.key == key {
			return x.value
		}
	}
	return nil
}

// overlayXattrs is how many xattrs copyTree put before the tree's own:
// metacopy and (with a payload) redirect for an external file.
func (i *inode) overlayXattrs() int {
	switch {
	case !i.external():
		return 0
	case i.payload == "":
		return 1
	}
	return 2
}

// external reports whether a regular file's data lives in the object
// store (metacopy + redirect) rather than inline in the image.
func (i *inode) external() bool {
	return i.typ() == tree.SIFREG && i.size > 0 && i.content == nil
}

// Build returns the composefs image of root.
func Build(root *tree.Node, opts Options) ([]byte, error) {
	w, r, err := prepare(root, opts, false)
	if err != nil {
		return nil, err
	}
	b := &buf{b: make([]byte, 0, w.size())}
	w.write(b, r)
	return b.b, nil
}

// WriteImage writes the composefs image of root (the bytes Build returns)
// to out a piece at a time, so that the image is never whole in memory,
// and returns its size.
func WriteImage(out io.Writer, root *tree.Node, opts Options) (int64, error) {
	return writeImage(out, root, opts, false)
}

// WriteImageConsuming is WriteImage for a tree the caller is done with:
// each directory's Children are dropped once they are copied, so that the
// tree's nodes are freed while the image is made instead of staying beside
// the writer's own copy of every entry. The tree is not to be used
// afterwards, even after an error: its directories are emptied.
func WriteImageConsuming(out io.Writer, root *tree.Node, opts Options) (int64, error) {
	return writeImage(out, root, opts, true)
}

func writeImage(out io.Writer, root *tree.Node, opts Options, consume bool) (int64, error) {
	w, r, err := prepare(root, opts, consume)
	if err != nil {
		return 0, err
	}
	b := &buf{b: make([]byte, 0, flushSize+blockSize), out: out}
	w.write(b, r)
	if b.err != nil {
		return int64(b.flushed), fmt.Errorf("writing image: %w", b.err)
	}
	return int64(b.flushed), nil
}

// prepare copies root into writer inodes (consuming it if asked, see
// WriteImageConsuming) and lays the image out.
func prepare(root *tree.Node, opts Options, consume bool) (*imageWriter, *inode, error) {
	if opts.MinVersion < 0 || opts.MinVersion > maxVersion || opts.MaxVersion < 0 || opts.MaxVersion > maxVersion {
		return nil, nil, fmt.Errorf("composefs format version must be 0..%d (min %d, max %d)", maxVersion, opts.MinVersion, opts.MaxVersion)
	}
	if opts.MaxVersion < opts.MinVersion {
		opts.MaxVersion = opts.MinVersion
	}
	if (opts.MinVersion == legacyVersion) != (opts.MaxVersion == legacyVersion) {
		return nil, nil, fmt.Errorf("composefs format version %d is its own layout: min and max must both be %d (min %d, max %d)", legacyVersion, legacyVersion, opts.MinVersion, opts.MaxVersion)
	}
	if !root.IsDir() || root.LinkTo != nil {
		return nil, nil, errors.New("image root must be a directory")
	}
	r, version, err := copyTree(root, opts, consume)
	if err != nil {
		return nil, nil, err
	}
	if err := rewriteForOverlay(r, r, version); err != nil {
		return nil, nil, err
	}
	w := &imageWriter{version: version}
	if version == legacyVersion {
		w.computeTreeV2(r)
		w.computeSharedXattrsV2()
		if err := w.computeLayoutV2(); err != nil {
			return nil, nil, err
		}
		return w, r, nil
	}
	r.setXattr(xattrOpaque, []byte("y"))
	addRootWhiteouts(r)
	w.computeTree(r)
	w.computeSharedXattrs()
	w.computeLayout()
	return w, r, nil
}

// copyTree clones the caller's tree into writer inodes, resolving hard links
// and checking what the reference rejects. It also picks the format version:
// version 1 is needed (if allowed) when the tree has whiteouts to escape.
func copyTree(root *tree.Node, opts Options, consume bool) (*inode, int, error) {
	version := opts.MinVersion
	// Hard links, resolved first so that only their targets and the
	// directories holding them get an index entry (an index of every node
	// would cost more than the image's own metadata).
	var links []*tree.Node
	root.Walk(func(n *tree.Node) error {
		if n.LinkTo != nil {
			links = append(links, n)
		}
		return nil
	})
	targets := make([]*tree.Node, len(links))
	byNode := map[*tree.Node]*inode{}
	for i, l := range links {
		t, steps := l, 0
		for ; t.LinkTo != nil; steps++ {
			if steps > len(links) {
				return nil, 0, fmt.Errorf("%s: cycle of hard links", l.Path())
			}
			t = t.LinkTo
		}
		targets[i] = t
		byNode[t], byNode[l.Parent] = nil, nil
	}
	var clone func(n *tree.Node, parent *inode) (*inode, error)
	clone = func(n *tree.Node, parent *inode) (*inode, error) {
		if !validMode(n.Mode) {
			return nil, fmt.Errorf("%s: invalid file mode %o", n.Path(), n.Mode)
		}
		in := &inode{
			mode: n.Mode, nlink: n.Nlink, uid: n.UID, gid: n.GID, rdev: n.Rdev,
			size: n.Size, mtimeSec: n.MtimeSec, mtimeNsec: n.MtimeNsec,
			payload: n.Payload, content: n.Content,
			parent: parent, name: n.Name,
		}
		if in.nlink == 0 {
			in.nlink = 1
		}
		if len(in.content) > 0 && uint64(len(in.content)) != in.size {
			return nil, fmt.Errorf("%s: inline content of %d bytes but size %d", in.path(), len(in.content), in.size)
		}
		if len(in.content) > maxInlineContent {
			return nil, fmt.Errorf("%s: inline content of %d bytes exceeds %d", in.path(), len(in.content), maxInlineContent)
		}
		if in.typ() == tree.SIFLNK {
			if in.payload == "" || len(in.payload) > 4095 {
				return nil, fmt.Errorf("%s: symlink target must be 1..4095 bytes, got %d", in.path(), len(in.payload))
			}
			in.size = uint64(len(in.payload))
		}
		if in.typ() == tree.SIFCHR && in.rdev == 0 && opts.MaxVersion >= 1 {
			version = max(version, 1)
		}
		for _, x := range n.Xattrs {
			in.setXattr(x.Key, x.Value)
		}
		if in.external() {
			// The overlay's own xattrs come first, as composefs-rs lists them.
			d, _ := n.FileDigest()
			overlay := make([]xattr, 0, in.overlayXattrs()+len(in.xattrs))
			overlay = append(overlay, xattr{key: xattrMetacopy, value: metacopy(d)})
			if in.payload != "" {
				overlay = append(overlay, xattr{key: xattrRedirect, value: redirect(in.payload)})
			}
			in.xattrs = append(overlay, in.xattrs...)
		}
		if _, ok := byNode[n]; ok {
			byNode[n] = in
		}
		if len(n.Children) > 0 && in.typ() != tree.SIFDIR {
			return nil, fmt.Errorf("%s: only directories can have children", in.path())
		}
		if in.typ() == tree.SIFDIR {
			in.entries = make([]dirent, 0, len(n.Children)+2) // and "." and ".."
		}
		for _, c := range n.Children {
			if err := tree.ValidName(c.Name); err != nil {
				return nil, fmt.Errorf("%s: %w", in.path(), err)
			}
			if c.LinkTo != nil {
				in.entries = append(in.entries, dirent{name: c.Name, link: true})
				continue
			}
			ci, err := clone(c, in)
			if err != nil {
				return nil, err
			}
			in.entries = append(in.entries, dirent{name: c.Name, target: ci})
		}
		if consume {
			n.Children = nil
		}
		sort.Slice(in.entries, func(a, b int) bool { return in.entries[a].name < in.entries[b].name })
		return in, nil
	}
	r, err := clone(root, nil)
	if err != nil {
		return nil, 0, err
	}
	for i, l := range links {
		t := targets[i]
		target := byNode[t]
		if target == nil {
			return nil, 0, fmt.Errorf("%s: hard link to an inode outside the tree", l.Path())
		}
		if target.typ() == tree.SIFDIR || l.Mode&tree.SIFMT == tree.SIFDIR {
			return nil, 0, fmt.Errorf("%s: directories can't be hard-linked", l.Path())
		}
		parent := byNode[l.Parent]
		for j := range parent.entries {
			if parent.entries[j].name == l.Name {
				parent.entries[j].target = target
			}
		}
	}
	return r, version, nil
}

func validMode(mode uint32) bool {
	switch mode & tree.SIFMT {
	case tree.SIFREG, tree.SIFDIR, tree.SIFLNK, tree.SIFBLK, tree.SIFCHR, tree.SIFSOCK, tree.SIFIFO:
		return true
	}
	return false
}

// chunking returns the EROFS chunk size (as bits) and chunk count for an
// external file: one chunk where possible, never below one block.
func chunking(size uint64) (chunkBits uint32, count uint64) {
	chunkBits = uint32(bits.Len64(size - 1))
	if size <= 1 {
		chunkBits = 1
	}
	chunkBits = max(chunkBits, blockBits)
	if chunkBits-blockBits > chunkBlkBitsMask {
		chunkBits = chunkBlkBitsMask + blockBits
	}
	return chunkBits, (size + 1<<chunkBits - 1) >> chunkBits
}

// rewriteForOverlay escapes the tree's own overlay xattrs, adds metacopy and
// redirect xattrs for external files (first, as composefs-rs lists them),
// turns whiteouts into escaped regular files (not in version 2, which keeps
// them) and adds "." and "..", depth first as the reference does.
func rewriteForOverlay(in, parent *inode, version int) error {
	if in.external() {
		if _, n := chunking(in.size); n > maxChunks {
			return fmt.Errorf("%s: file of %d bytes is too large for a composefs image", in.path(), in.size)
		}
	}
	// The tree's own xattrs, after the overlay's (added by copyTree), sorted
	// by their names: version 2 keeps this order on disk.
	own := in.xattrs[in.overlayXattrs():]
	sort.SliceStable(own, func(a, b int) bool { return own[a].key < own[b].key })
	for j := range own {
		if k := own[j].key; len(k) >= len(overlayPrefix) && k[:len(overlayPrefix)] == overlayPrefix {
			own[j].key = overlayEscapePrefix + k[len(overlayPrefix):]
		}
	}
	if in.typ() == tree.SIFCHR && in.rdev == 0 && version < legacyVersion {
		in.size = 0
		in.mode = tree.SIFREG | in.mode&^tree.SIFMT
		in.setXattr(xattrEscWhiteout, []byte{})
		in.setXattr(xattrUserWhiteout, []byte{})
		parent.setXattr(xattrEscWhiteouts, []byte{})
		parent.setXattr(xattrUserWhiteouts, []byte{})
		if version >= 1 {
			parent.setXattr(xattrEscOpaque, []byte("x"))
			parent.setXattr(xattrUserOpaque, []byte("x"))
		}
	}
	if in.typ() != tree.SIFDIR {
		return nil
	}
	in.insertEntry(dirent{name: ".", target: in, link: true})
	in.insertEntry(dirent{name: "..", target: parent, link: true})
	for _, e := range in.entries {
		if !e.link {
			if err := rewriteForOverlay(e.target, in, version); err != nil {
				return err
			}
		}
	}
	return nil
}

// metacopy is the trusted.overlay.metacopy value for a file whose content
// has digest d: overlayfs' struct ovl_metacopy (version 0, length, flags 0,
// the fs-verity algorithm, the digest), or empty when the digest is unknown.
func metacopy(d verity.Sum) []byte {
	if d.IsZero() {
		return []byte{}
	}
	b := d.Bytes()
	return append([]byte{0, byte(metacopyHeaderSize + len(b)), 0, byte(d.Algorithm())}, b...)
}

// redirect makes a payload an absolute overlay redirect ("/ab/cdef...").
func redirect(payload string) []byte {
	b := make([]byte, 1+len(payload))
	b[0] = '/'
	copy(b[1:], payload)
	return b
}

func (i *inode) insertEntry(e dirent) {
	j := sort.Search(len(i.entries), func(j int) bool { return i.entries[j].name >= e.name })
	if j < len(i.entries) && i.entries[j].name == e.name {
		return
	}
	i.entries = append(i.entries, dirent{})
	copy(i.entries[j+1:], i.entries[j:])
	i.entries[j] = e
}

// addRootWhiteouts adds whiteouts "00".."ff" at the root (where no such
// entry exists) so that the object store's XX/ directories, mounted as a
// data-only lower layer, never show through the overlay.
func addRootWhiteouts(r *inode) {
	selinux := r.xattr("security.selinux")
	for b := 0; b < 256; b++ {
		name := fmt.Sprintf("%02x", b)
		w := &inode{
			mode: tree.SIFCHR | 0o644, nlink: 1, uid: r.uid, gid: r.gid,
			mtimeSec: r.mtimeSec, mtimeNsec: r.mtimeNsec, parent: r, name: name,
		}
		if selinux != nil {
			w.setXattr("security.selinux", selinux)
		}
		r.insertEntry(dirent{name: name, target: w})
	}
}

type imageWriter struct {
	version      int
	inodes       []*inode // breadth first: the inode number order
	minSec       int64
	minNsec      uint32
	hasACL       bool
	shared       []xattr // shared xattr area, in order
	sharedSize   uint64
	inodesEnd    uint64
	nDataBlocks  uint64
	dataStart    uint64
	currentBlock uint64
}

// computeTree numbers inodes breadth first, derives directory link counts,
// sorts xattrs and finds the oldest mtime (compact inodes inherit it).
func (w *imageWriter) computeTree(root *inode) {
	w.minSec, w.minNsec = root.mtimeSec, root.mtimeNsec
	queue := []*inode{root}
	for len(queue) > 0 {
		in := queue[0]
		queue = queue[1:]
		in.ino = uint32(len(w.inodes))
		w.inodes = append(w.inodes, in)
		if in.typ() == tree.SIFDIR {
			in.nlink = 2
			for _, e := range in.entries {
				if !e.link && e.target.typ() == tree.SIFDIR {
					in.nlink++
				}
			}
		}
		sort.Slice(in.xattrs, func(a, b int) bool { return in.xattrs[a].key < in.xattrs[b].key })
		nameXattrs(in, false)
		if in.mtimeSec < w.minSec || in.mtimeSec == w.minSec && in.mtimeNsec < w.minNsec {
			w.minSec, w.minNsec = in.mtimeSec, in.mtimeNsec
		}
		if in.xattr("system.posix_acl_access") != nil || in.xattr("system.posix_acl_default") != nil {
			w.hasACL = true
		}
		for _, e := range in.entries {
			if !e.link {
				queue = append(queue, e.target)
			}
		}
	}
}

// nameXattrs splits the inode's xattr names into prefix index and rest.
func nameXattrs(in *inode, lustre bool) {
	for j := range in.xattrs {
		index, suffix := splitXattrName(in.xattrs[j].key, lustre)
		in.xattrs[j].index, in.xattrs[j].nameOff = index, uint8(len(in.xattrs[j].key)-len(suffix))
	}
}

func xattrEntrySizeOf(x xattr) uint64 {
	return roundUp(uint64(xattrEntrySize+len(x.suffix())+len(x.value)), 4)
}

// computeSharedXattrs moves every xattr (name and value) used by more than
// one inode into the shared area, in the reference's canonical order.
func (w *imageWriter) computeSharedXattrs() {
	// Most pairs are used once (every external file's own metacopy and
	// redirect): counting by a 64-bit hash first leaves the exact count,
	// with its allocated keys, to the few pairs that may be shared.
	seed := maphash.MakeSeed()
	hashOf := func(x xattr) uint64 {
		return maphash.Bytes(seed, x.value) ^ bits.RotateLeft64(maphash.String(seed, x.key), 1)
	}
	maybe := make(map[uint64]int32, len(w.inodes))
	for _, in := range w.inodes {
		for _, x := range in.xattrs {
			maybe[hashOf(x)]++
		}
	}
	type use struct {
		x      xattr
		count  int
		offset int64
	}
	uses := map[string]*use{}
	var candidates []*use // per inode xattr hashed more than once, in inode order
	for _, in := range w.inodes {
		for _, x := range in.xattrs {
			if maybe[hashOf(x)] < 2 {
				continue
			}
			id := x.key + "\x00" + string(x.value)
			u := uses[id]
			if u == nil {
				u = &use{x: x, offset: -1}
				uses[id] = u
			}
			u.count++
			candidates = append(candidates, u)
		}
	}
	var sorted []*use
	for _, u := range uses {
		if u.count > 1 {
			sorted = append(sorted, u)
		}
	}
	// Descending by name, then by value length, then by value bytes.
	sort.Slice(sorted, func(a, b int) bool {
		xa, xb := sorted[a].x, sorted[b].x
		if xa.key != xb.key {
			return xa.key > xb.key
		}
		if len(xa.value) != len(xb.value) {
			return len(xa.value) > len(xb.value)
		}
		return bytes.Compare(xa.value, xb.value) > 0
	})
	for _, u := range sorted {
		u.offset = int64(w.sharedSize)
		w.shared = append(w.shared, u.x)
		w.sharedSize += xattrEntrySizeOf(u.x)
	}
	for _, in := range w.inodes {
		nShared := 0
		for j := range in.xattrs {
			in.xattrs[j].shared = -1
			if maybe[hashOf(in.xattrs[j])] < 2 {
				continue
			}
			u := candidates[0]
			candidates = candidates[1:]
			if u.offset >= 0 && nShared < maxSharedXattrs {
				in.xattrs[j].shared = u.offset
				nShared++
			}
		}
	}
}

func (i *inode) xattrCounts() (nShared, inlineSize uint64) {
	for _, x := range i.xattrs {
		if x.shared >= 0 {
			nShared++
		} else {
			inlineSize += xattrEntrySizeOf(x)
		}
	}
	return nShared, inlineSize
}

func (i *inode) xattrBodySize() uint64 {
	nShared, inlineSize := i.xattrCounts()
	if nShared == 0 && inlineSize == 0 {
		return 0
	}
	return roundUp(xattrHeaderSize+nShared*4+inlineSize, 4)
}

// dataSize sizes an inode's data: whole blocks plus a tail packed after the
// inode. Directories and inline files never tail-pack more than half a block.
func (i *inode) dataSize() {
	i.nblocks, i.tail = 0, 0
	switch i.typ() {
	case tree.SIFDIR:
		var block uint64
		for _, e := range i.entries {
			l := uint64(direntSize + len(e.name))
			if block+l > blockSize {
				i.nblocks++
				block = 0
			}
			block += l
		}
		if block > blockSize/2 {
			i.nblocks++
			block = 0
		}
		i.tail = block
	case tree.SIFLNK:
		i.tail = uint64(len(i.payload))
	case tree.SIFREG:
		if i.size == 0 {
			return
		}
		if i.content != nil {
			i.nblocks, i.tail = i.size/blockSize, i.size%blockSize
			if i.tail > blockSize/2 {
				i.nblocks++
				i.tail = 0
			}
			return
		}
		_, n := chunking(i.size)
		i.tail = n * 4
	}
}

func (w *imageWriter) fitsCompact(i *inode) bool {
	if i.mtimeSec != w.minSec || i.mtimeNsec != w.minNsec {
		return false
	}
	if i.nlink > 0xffff || i.uid > 0xffff || i.gid > 0xffff {
		return false
	}
	return i.dataLen() <= 0xffffffff
}

// dataLen is the inode's i_size.
func (i *inode) dataLen() uint64 {
	switch i.typ() {
	case tree.SIFDIR:
		return i.nblocks*blockSize + i.tail
	case tree.SIFREG:
		return i.size
	case tree.SIFLNK:
		return uint64(len(i.payload))
	}
	return 0
}

// tailPadding returns the padding to put before an inode so its tail data
// does not cross a block boundary, moving the tail into a block of its own
// when even padding cannot make it fit.
func (i *inode) tailPadding(pos, inodeSize uint64) uint64 {
	nonTail := inodeSize + i.xattrSize
	total := nonTail + i.tail
	if i.typ() == tree.SIFLNK {
		// Keep inode and target together, or move the target out when
		// both cannot share one block.
		if total/blockSize > 0 {
			i.nblocks++
			i.tail = 0
		}
		if pos/blockSize != (pos+total-1)/blockSize {
			return roundUp(pos, blockSize) - pos
		}
		return 0
	}
	remainder := blockSize - (pos+nonTail)%blockSize
	if remainder >= i.tail {
		return 0
	}
	pad := roundUp(remainder, slotSize)
	remainder = blockSize - (pos+nonTail+pad)%blockSize
	if i.tail <= remainder {
		return pad
	}
	i.nblocks++
	i.tail = 0
	return roundUp(pos, blockSize) - pos
}

func (w *imageWriter) computeLayout() {
	pos := uint64(superOffset + superSize)
	metaStart := pos / blockSize * blockSize
	for _, in := range w.inodes {
		in.dataSize()
		in.compact = w.fitsCompact(in)
		inodeSize := uint64(extendedInodeSize)
		if in.compact {
			inodeSize = compactInodeSize
		}
		in.xattrSize = in.xattrBodySize()
		prev := pos
		pos = roundUp(pos, slotSize)
		extra := in.tailPadding(pos, inodeSize)
		in.ipad = pos - prev + extra
		pos += extra
		w.nDataBlocks += in.nblocks
		in.nid = (pos - metaStart) / slotSize
		pos += inodeSize + in.xattrSize + in.tail
	}
	w.inodesEnd = roundUp(pos, slotSize)
	w.dataStart = roundUp(w.inodesEnd+w.sharedSize, blockSize)
}

// buf is an image under construction.
// buf is the image being written: kept whole (Build), or handed to out
// every flushSize bytes (WriteImage).
type buf struct {
	b       []byte
	out     io.Writer
	flushed uint64 // bytes handed to out
	err     error  // out's first error; later writes are dropped
}

// flushSize is how much WriteImage buffers before writing.
const flushSize = 256 << 10

func (b *buf) u8(v uint8)     { b.b = append(b.b, v) }
func (b *buf) u16(v uint16)   { b.b = binary.LittleEndian.AppendUint16(b.b, v) }
func (b *buf) u32(v uint32)   { b.b = binary.LittleEndian.AppendUint32(b.b, v) }
func (b *buf) u64(v uint64)   { b.b = binary.LittleEndian.AppendUint64(b.b, v) }
func (b *buf) bytes(v []byte) { b.b = append(b.b, v...) }
func (b *buf) str(v string)   { b.b = append(b.b, v...) }
func (b *buf) zeros(n uint64) { b.b = append(b.b, make([]byte, n)...) }
func (b *buf) align(a uint64) { b.zeros(roundUp(b.len(), a) - b.len()) }
func (b *buf) len() uint64    { return b.flushed + uint64(len(b.b)) }

// flush hands what is buffered to out once there is enough of it (or
// always, at the end); without out everything stays in b.
func (b *buf) flush(end bool) {
	if b.out == nil || len(b.b) < flushSize && !end {
		return
	}
	if b.err == nil {
		_, b.err = b.out.Write(b.b)
	}
	b.flushed += uint64(len(b.b))
	b.b = b.b[:0]
}

// size is the image's length in bytes, once laid out.
func (w *imageWriter) size() uint64 { return w.dataStart + w.nDataBlocks*blockSize }

func (w *imageWriter) write(b *buf, root *inode) {
	// composefs header
	b.u32(composefsMagic)
	b.u32(composefsHdrV)
	flags := uint32(0)
	if w.hasACL {
		flags |= headerFlagACL
	}
	b.u32(flags)
	b.u32(uint32(w.version))
	b.zeros(superOffset - 16)
	// superblock
	b.u32(erofsMagic)
	b.u32(0) // checksum
	b.u32(featureCompatMtime | featureCompatXattrFilter)
	b.u8(blockBits)
	b.u8(0) // sb_extslots
	b.u16(uint16(root.nid))
	b.u64(uint64(len(w.inodes)))
	b.u64(uint64(w.minSec))
	b.u32(w.minNsec)
	b.u32(uint32(w.dataStart/blockSize + w.nDataBlocks))
	b.u32(uint32((superOffset + superSize) / blockSize)) // meta_blkaddr
	b.u32(uint32(w.xattrBlkaddr()))                      // xattr_blkaddr
	b.zeros(superOffset + superSize - b.len())
	w.currentBlock = w.dataStart / blockSize
	for _, in := range w.inodes {
		w.writeInode(b, in)
		b.flush(false)
	}
	b.align(slotSize)
	for _, x := range w.shared {
		writeXattrEntry(b, x)
		b.flush(false)
	}
	b.align(blockSize)
	for _, in := range w.inodes {
		writeDirents(b, in, true, false)
		writeBlockData(b, in)
		b.flush(false)
	}
	b.flush(true)
}

// xattrBlkaddr is the block the shared xattr references count from:
// version 2 counts from the image start.
func (w *imageWriter) xattrBlkaddr() uint64 {
	if w.version == legacyVersion {
		return 0
	}
	return w.inodesEnd / blockSize
}

func writeXattrEntry(b *buf, x xattr) {
	b.u8(uint8(len(x.suffix())))
	b.u8(x.index)
	b.u16(uint16(len(x.value)))
	b.str(x.suffix())
	b.bytes(x.value)
	b.align(4)
}

func direntType(in *inode) uint8 {
	switch in.typ() {
	case tree.SIFREG:
		return ftRegFile
	case tree.SIFDIR:
		return ftDir
	case tree.SIFCHR:
		return ftChrdev
	case tree.SIFBLK:
		return ftBlkdev
	case tree.SIFIFO:
		return ftFifo
	case tree.SIFSOCK:
		return ftSock
	case tree.SIFLNK:
		return ftSymlink
	}
	return ftUnknown
}

func (w *imageWriter) xattrFilter(in *inode) uint32 {
	var filter uint32
	for _, x := range in.xattrs {
		filter |= 1 << (xxh32([]byte(x.suffix()), xattrFilterSeed+uint32(x.index)) & (xattrFilterBits - 1))
	}
	return ^filter
}

func (w *imageWriter) writeInode(b *buf, in *inode) {
	b.zeros(in.ipad)
	nShared, _ := in.xattrCounts()
	icount := uint16(0)
	if in.xattrSize > 0 {
		icount = uint16((in.xattrSize-xattrHeaderSize)/4 + 1)
	}
	layout := uint16(layoutFlatPlain)
	if in.tail > 0 {
		layout = layoutFlatInline
	}
	var chunkFormat uint16
	chunkBased := false
	if in.external() {
		bits, _ := chunking(in.size)
		if w.version == legacyVersion {
			bits = blockBits + chunkBlkBitsMask // composefs-rs: always one chunk
		}
		layout, chunkFormat, chunkBased = layoutChunkBased, uint16(bits-blockBits), true
	}
	size := in.dataLen()
	// i_u: a block address, a device number, or chunk info. The reference
	// fills it as a C union: the chunk format overwrites the low half of a
	// block address.
	var iu [4]byte
	switch in.typ() {
	case tree.SIFCHR, tree.SIFBLK:
		binary.LittleEndian.PutUint32(iu[:], in.rdev)
	case tree.SIFDIR, tree.SIFREG, tree.SIFLNK:
		if in.nblocks > 0 {
			binary.LittleEndian.PutUint32(iu[:], uint32(w.currentBlock))
			w.currentBlock += in.nblocks
		}
		if chunkBased {
			binary.LittleEndian.PutUint16(iu[:], chunkFormat)
		}
	}
	version := uint16(1)
	if in.compact {
		version = 0
	}
	b.u16(layout<<1 | version)
	b.u16(icount)
	b.u16(uint16(in.mode))
	if in.compact {
		b.u16(uint16(in.nlink))
		b.u32(uint32(size))
		b.u32(0)
		b.bytes(iu[:])
		b.u32(in.ino)
		b.u16(uint16(in.uid))
		b.u16(uint16(in.gid))
		b.u32(0)
	} else {
		b.u16(0)
		b.u64(size)
		b.bytes(iu[:])
		b.u32(in.ino)
		b.u32(in.uid)
		b.u32(in.gid)
		b.u64(uint64(in.mtimeSec))
		b.u32(in.mtimeNsec)
		b.u32(in.nlink)
		b.zeros(16)
	}
	if in.xattrSize > 0 {
		b.u32(w.xattrFilter(in))
		b.u8(uint8(nShared))
		b.zeros(7)
		for _, x := range in.xattrs {
			if x.shared >= 0 {
				b.u32(uint32((w.inodesEnd - w.xattrBlkaddr()*blockSize + uint64(x.shared)) / 4))
			}
		}
		for _, x := range in.xattrs {
			if x.shared < 0 {
				writeXattrEntry(b, x)
			}
		}
	}
	switch {
	case in.typ() == tree.SIFDIR:
		writeDirents(b, in, false, true)
	case in.typ() == tree.SIFLNK:
		if in.nblocks == 0 {
			b.str(in.payload)
		}
	case in.typ() == tree.SIFREG && in.tail > 0:
		if in.content != nil {
			b.bytes(in.content[in.size-in.tail:])
		} else {
			writeNullChunks(b, in.tail/4)
		}
	}
}

func writeNullChunks(b *buf, n uint64) {
	for ; n > 0; n-- {
		b.u32(nullAddr)
	}
}

// writeDirents writes a directory's entries: full blocks when blocks is
// set, the packed tail when tail is set.
func writeDirents(b *buf, in *inode, blocks, tail bool) {
	if in.typ() != tree.SIFDIR {
		return
	}
	var blockLen uint64
	written, first := uint64(0), 0
	for j, e := range in.entries {
		l := uint64(direntSize + len(e.name))
		if blockLen+l > blockSize {
			if blocks {
				writeDirentChunk(b, in.entries[first:j], blockSize)
			}
			written++
			blockLen, first = 0, j
		}
		blockLen += l
	}
	if written < in.nblocks {
		if blocks {
			writeDirentChunk(b, in.entries[first:], blockSize)
		}
		blockLen, first = 0, len(in.entries)
	}
	if tail && blockLen > 0 {
		writeDirentChunk(b, in.entries[first:], 1)
	}
}

func writeDirentChunk(b *buf, entries []dirent, align uint64) {
	nameoff := len(entries) * direntSize
	for _, e := range entries {
		b.u64(e.target.nid)
		b.u16(uint16(nameoff))
		b.u8(direntType(e.target))
		b.u8(0)
		nameoff += len(e.name)
	}
	for _, e := range entries {
		b.str(e.name)
	}
	b.align(align)
}

// writeBlockData writes the non-tail data block of an inline file or
// symlink, or the null chunk index block of an external file whose index
// did not fit after its inode.
func writeBlockData(b *buf, in *inode) {
	if in.nblocks == 0 {
		return
	}
	switch in.typ() {
	case tree.SIFREG:
		if in.content == nil {
			writeNullChunks(b, blockSize/4)
			return
		}
		b.bytes(in.content[:min(in.size, blockSize)])
	case tree.SIFLNK:
		b.str(in.payload)
	default:
		return
	}
	b.align(blockSize)
}
