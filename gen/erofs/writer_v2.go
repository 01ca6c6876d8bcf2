package erofs

import (
	"fmt"
	"sort"

	"cfsboot/gen/tree"
)

// composefs-rs' legacy layout (FormatV2, composefs_version 2), as its
// erofs/writer.rs lays it out: every inode extended, numbered depth first,
// its i_ino its nid, no sub-second mtimes and no build time; no root
// whiteouts, whiteouts stored as themselves; external files as one chunk
// (chunk format 31) with a single null index when their digest is known;
// shared xattrs in ascending (index, name, value) order, referenced from the
// image start; inline tails moved to the next block when they would cross one.

// computeTreeV2 numbers inodes depth first (a directory before its entries,
// a hard-linked file where it is first reached) and counts link numbers
// from the directory entries.
func (w *imageWriter) computeTreeV2(root *inode) {
	refs := map[*inode]uint32{}
	var visit func(in *inode)
	visit = func(in *inode) {
		w.inodes = append(w.inodes, in)
		in.mtimeNsec = 0
		nameXattrs(in, true)
		if in.typ() != tree.SIFDIR {
			return
		}
		in.nlink = 2
		for _, e := range in.entries {
			if e.name == "." || e.name == ".." {
				continue
			}
			if e.target.typ() == tree.SIFDIR {
				in.nlink++
			}
			refs[e.target]++
			if refs[e.target] == 1 {
				visit(e.target)
			}
		}
	}
	visit(root)
	for in, n := range refs {
		if in.typ() != tree.SIFDIR {
			in.nlink = n
		}
	}
}

// computeSharedXattrsV2 shares every (name, value) pair used more than
// once, in ascending order of prefix index, name and value bytes.
func (w *imageWriter) computeSharedXattrsV2() {
	type key struct {
		index         uint8
		suffix, value string
	}
	keyOf := func(x xattr) key { return key{x.index, x.suffix(), string(x.value)} }
	count := map[key]int{}
	first := map[key]xattr{}
	for _, in := range w.inodes {
		for _, x := range in.xattrs {
			k := keyOf(x)
			if count[k] == 0 {
				first[k] = x
			}
			count[k]++
		}
	}
	var keys []key
	for k, n := range count {
		if n > 1 {
			keys = append(keys, k)
		}
	}
	sort.Slice(keys, func(a, b int) bool {
		ka, kb := keys[a], keys[b]
		if ka.index != kb.index {
			return ka.index < kb.index
		}
		if ka.suffix != kb.suffix {
			return ka.suffix < kb.suffix
		}
		return ka.value < kb.value
	})
	offset := map[key]int64{}
	for _, k := range keys {
		offset[k] = int64(w.sharedSize)
		w.shared = append(w.shared, first[k])
		w.sharedSize += xattrEntrySizeOf(first[k])
	}
	for _, in := range w.inodes {
		for j := range in.xattrs {
			in.xattrs[j].shared = -1
			if off, ok := offset[keyOf(in.xattrs[j])]; ok {
				in.xattrs[j].shared = off
			}
		}
	}
}

// dataSizeV2 sizes an inode's data: only directories have blocks; inline
// files and symlinks are all tail, external files one null chunk index.
func (i *inode) dataSizeV2() {
	i.nblocks, i.tail = 0, 0
	switch i.typ() {
	case tree.SIFDIR:
		i.dataSize()
	case tree.SIFLNK:
		i.tail = uint64(len(i.payload))
	case tree.SIFREG:
		switch {
		case !i.external():
			i.tail = uint64(len(i.content))
		case len(i.xattr(xattrMetacopy)) > 0: // the digest is known
			i.tail = 4
		}
	}
}

func (w *imageWriter) computeLayoutV2() error {
	pos := uint64(superOffset + superSize)
	for _, in := range w.inodes {
		in.dataSizeV2()
		in.compact = false
		in.xattrSize = in.xattrBodySize()
		prev := pos
		pos = roundUp(pos, slotSize)
		if in.tail > 0 && !in.external() {
			// An inline tail whose last byte lands in another block than
			// the metadata's last byte starts the inode over after that
			// block's end (composefs-rs' rule, kept for its digests).
			inlineStart := pos + extendedInodeSize + in.xattrSize
			metaEnd := inlineStart - 1
			if metaEnd/blockSize != (inlineStart+in.dataLen()%blockSize)/blockSize {
				pos = roundUp(pos+blockSize-metaEnd%blockSize, slotSize)
			}
			start := pos + extendedInodeSize + in.xattrSize
			if start/blockSize != (start+in.tail-1)/blockSize {
				return fmt.Errorf("%s: %d bytes of inline data do not fit in one block in format v2", in.path(), in.tail)
			}
		}
		in.ipad = pos - prev
		w.nDataBlocks += in.nblocks
		in.nid = pos / slotSize
		in.ino = uint32(in.nid)
		pos += extendedInodeSize + in.xattrSize + in.tail
	}
	w.inodesEnd = roundUp(pos, slotSize)
	w.dataStart = roundUp(w.inodesEnd+w.sharedSize, blockSize)
	return nil
}
