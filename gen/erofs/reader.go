package erofs

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"cfsboot/gen/tree"
	"cfsboot/verity"
)

// maxImageSize bounds what Read loads: composefs images hold metadata only.
const maxImageSize = 1 << 30

// ErrNotComposefs: the data does not start with a composefs header and an
// EROFS superblock.
var ErrNotComposefs = errors.New("not a composefs image")

// Read parses a composefs image back into a tree, undoing what the writer
// added: overlay xattrs become Payload and Digest again, escaped xattrs and
// whiteouts are restored, and the root's whiteouts are dropped. Every
// offset is checked, so a truncated or hostile image gives an error naming
// the inode, never a panic.
func Read(r io.ReaderAt, size int64) (*tree.Node, error) {
	if size < blockSize {
		return nil, fmt.Errorf("%w: %d bytes is shorter than one block", ErrNotComposefs, size)
	}
	if size > maxImageSize {
		return nil, fmt.Errorf("image of %d bytes is larger than %d", size, maxImageSize)
	}
	img := make([]byte, size)
	if _, err := r.ReadAt(img, 0); err != nil && err != io.EOF {
		return nil, fmt.Errorf("read image: %w", err)
	}
	le := binary.LittleEndian
	if le.Uint32(img[0:]) != composefsMagic {
		return nil, fmt.Errorf("%w: bad composefs magic %#x", ErrNotComposefs, le.Uint32(img[0:]))
	}
	if v := le.Uint32(img[4:]); v != composefsHdrV {
		return nil, fmt.Errorf("unsupported composefs header version %d", v)
	}
	sb := img[superOffset:]
	if le.Uint32(sb[0:]) != erofsMagic {
		return nil, fmt.Errorf("%w: bad EROFS magic %#x", ErrNotComposefs, le.Uint32(sb[0:]))
	}
	if sb[12] != blockBits {
		return nil, fmt.Errorf("unsupported EROFS block size 2^%d", sb[12])
	}
	rd := &reader{
		img:       img,
		version:   le.Uint32(img[12:]),
		meta:      uint64(le.Uint32(sb[40:])) * blockSize,
		xattrs:    uint64(le.Uint32(sb[44:])) * blockSize,
		buildSec:  int64(le.Uint64(sb[24:])),
		buildNsec: le.Uint32(sb[32:]),
		seen:      map[uint64]*tree.Node{},
	}
	if rd.meta >= uint64(size) || rd.xattrs >= uint64(size) {
		return nil, errors.New("image: metadata or xattr area starts past the end")
	}
	root, err := rd.node(uint64(le.Uint16(sb[14:])), true)
	if err != nil {
		return nil, err
	}
	if root == nil || root.Mode&tree.SIFMT != tree.SIFDIR {
		return nil, errors.New("image: root inode is not a directory")
	}
	return root, nil
}

type reader struct {
	img          []byte
	version      uint32 // composefs_version: 2 keeps whiteouts as they are
	meta, xattrs uint64
	buildSec     int64
	buildNsec    uint32
	seen         map[uint64]*tree.Node
}

// slice returns img[off:off+n] or an error when that is out of bounds.
func (rd *reader) slice(off, n uint64) ([]byte, error) {
	if off > uint64(len(rd.img)) || n > uint64(len(rd.img))-off {
		return nil, fmt.Errorf("range %d+%d is outside the %d-byte image", off, n, len(rd.img))
	}
	return rd.img[off : off+n], nil
}

// node reads inode nid. Below version 2 a whiteout (char 0:0) returns nil:
// those are the root's own whiteouts, not part of the tree (the tree's own
// whiteouts are escaped into regular files).
func (rd *reader) node(nid uint64, isRoot bool) (*tree.Node, error) {
	if first, ok := rd.seen[nid]; ok {
		if first.Mode&tree.SIFMT == tree.SIFDIR {
			return nil, fmt.Errorf("image: inode %d: directory reached twice", nid)
		}
		return &tree.Node{Mode: first.Mode, LinkTo: first}, nil
	}
	n, err := rd.readInode(nid)
	if err != nil {
		return nil, fmt.Errorf("image: inode %d: %w", nid, err)
	}
	return n, nil
}

func (rd *reader) readInode(nid uint64) (*tree.Node, error) {
	le := binary.LittleEndian
	off := rd.meta + nid*slotSize
	hdr, err := rd.slice(off, compactInodeSize)
	if err != nil {
		return nil, err
	}
	format := le.Uint16(hdr[0:])
	compact := format&1 == 0
	layout := format >> 1 & 7
	n := &tree.Node{Mode: uint32(le.Uint16(hdr[4:]))}
	var isize uint64
	var raw uint32
	if compact {
		isize = compactInodeSize
		n.Nlink = uint32(le.Uint16(hdr[6:]))
		n.Size = uint64(le.Uint32(hdr[8:]))
		raw = le.Uint32(hdr[16:])
		n.UID, n.GID = uint32(le.Uint16(hdr[24:])), uint32(le.Uint16(hdr[26:]))
		n.MtimeSec, n.MtimeNsec = rd.buildSec, rd.buildNsec
	} else {
		isize = extendedInodeSize
		ext, err := rd.slice(off, extendedInodeSize)
		if err != nil {
			return nil, err
		}
		n.Size = le.Uint64(ext[8:])
		raw = le.Uint32(ext[16:])
		n.UID, n.GID = le.Uint32(ext[24:]), le.Uint32(ext[28:])
		n.MtimeSec, n.MtimeNsec = int64(le.Uint64(ext[32:])), le.Uint32(ext[40:])
		n.Nlink = le.Uint32(ext[44:])
	}
	typ := n.Mode & tree.SIFMT
	if !validMode(n.Mode) {
		return nil, fmt.Errorf("invalid file mode %o", n.Mode)
	}
	if typ == tree.SIFCHR || typ == tree.SIFBLK {
		n.Rdev = raw
		if typ == tree.SIFCHR && raw == 0 && rd.version < legacyVersion {
			return nil, nil
		}
	}
	// Registered before reading a directory's entries, so an entry that
	// points back at an ancestor is caught instead of recursing forever.
	rd.seen[nid] = n
	icount := uint64(le.Uint16(hdr[2:]))
	var xattrSize uint64
	if icount > 0 {
		xattrSize = xattrHeaderSize + 4*(icount-1)
	}
	tailPacked := layout == layoutFlatInline
	var tail []byte
	if tailPacked {
		if tail, err = rd.slice(off+isize+xattrSize, n.Size%blockSize); err != nil {
			return nil, fmt.Errorf("inline data: %w", err)
		}
	}
	nblocks := (n.Size + blockSize - 1) / blockSize
	oobBlocks := nblocks
	if tailPacked && oobBlocks > 0 {
		oobBlocks--
	}
	blockData := func() ([]byte, error) {
		if layout != layoutFlatPlain && layout != layoutFlatInline {
			return nil, fmt.Errorf("unsupported data layout %d", layout)
		}
		length := n.Size
		if tailPacked {
			length = oobBlocks * blockSize
		}
		return rd.slice(uint64(raw)*blockSize, length)
	}
	switch {
	case typ == tree.SIFDIR:
		data, err := blockData()
		if err != nil {
			return nil, fmt.Errorf("directory data: %w", err)
		}
		for len(data) > 0 {
			block := data[:min(uint64(len(data)), blockSize)]
			data = data[len(block):]
			if err := rd.readDirBlock(n, block); err != nil {
				return nil, err
			}
		}
		if len(tail) > 0 {
			if err := rd.readDirBlock(n, tail); err != nil {
				return nil, err
			}
		}
	case typ == tree.SIFLNK:
		if n.Size == 0 || n.Size > 4095 {
			return nil, fmt.Errorf("symlink target of %d bytes", n.Size)
		}
		target := tail
		if !tailPacked {
			if target, err = blockData(); err != nil {
				return nil, fmt.Errorf("symlink target: %w", err)
			}
		}
		n.Payload = string(target)
	case typ == tree.SIFREG && n.Size > 0 && layout != layoutChunkBased:
		if n.Size > maxInlineContent {
			return nil, fmt.Errorf("inline file of %d bytes exceeds %d", n.Size, maxInlineContent)
		}
		data, err := blockData()
		if err != nil {
			return nil, fmt.Errorf("file data: %w", err)
		}
		n.Content = append(append([]byte{}, data...), tail...)
	}
	if xattrSize > 0 {
		body, err := rd.slice(off+isize, xattrSize)
		if err != nil {
			return nil, fmt.Errorf("xattrs: %w", err)
		}
		if err := rd.readXattrs(n, body); err != nil {
			return nil, fmt.Errorf("xattrs: %w", err)
		}
	}
	return n, nil
}

func (rd *reader) readDirBlock(dir *tree.Node, block []byte) error {
	le := binary.LittleEndian
	if len(block) < direntSize {
		return fmt.Errorf("directory block of %d bytes", len(block))
	}
	namesStart := uint64(le.Uint16(block[8:]))
	if namesStart%direntSize != 0 || namesStart == 0 || namesStart > uint64(len(block)) {
		return fmt.Errorf("corrupt directory block (first name offset %d)", namesStart)
	}
	count := namesStart / direntSize
	for i := uint64(0); i < count; i++ {
		d := block[i*direntSize:]
		start := uint64(le.Uint16(d[8:]))
		end := uint64(len(block))
		if i+1 < count {
			end = uint64(le.Uint16(block[(i+1)*direntSize+8:]))
		} else if z := bytes.IndexByte(block[min(start, end):], 0); z >= 0 {
			end = start + uint64(z)
		}
		if start < namesStart || start > end || end > uint64(len(block)) {
			return fmt.Errorf("corrupt directory entry %d (name %d..%d)", i, start, end)
		}
		name := string(block[start:end])
		if name == "." || name == ".." {
			continue
		}
		child, err := rd.node(le.Uint64(d[0:]), false)
		if err != nil {
			return err
		}
		if child == nil {
			continue
		}
		if child.Parent != nil || child == dir {
			return fmt.Errorf("directory entry %q: inode already placed elsewhere", name)
		}
		child.Name = name
		if err := dir.AddChild(child); err != nil {
			return fmt.Errorf("directory entry: %w", err)
		}
	}
	return nil
}

func (rd *reader) readXattrs(n *tree.Node, body []byte) error {
	le := binary.LittleEndian
	if len(body) < xattrHeaderSize {
		return fmt.Errorf("xattr body of %d bytes", len(body))
	}
	shared := uint64(body[4])
	inline := uint64(xattrHeaderSize) + 4*shared
	if inline > uint64(len(body)) {
		return fmt.Errorf("%d shared xattrs do not fit the xattr body", shared)
	}
	for p := body[inline:]; len(p) > xattrEntrySize; {
		name, value, size, err := parseXattrEntry(p)
		if err != nil {
			return err
		}
		rd.applyXattr(n, name, value)
		p = p[min(size, uint64(len(p))):]
	}
	for i := uint64(0); i < shared; i++ {
		off := rd.xattrs + 4*uint64(le.Uint32(body[xattrHeaderSize+4*i:]))
		entry, err := rd.slice(off, xattrEntrySize)
		if err != nil {
			return fmt.Errorf("shared xattr %d: %w", i, err)
		}
		entry, err = rd.slice(off, xattrEntrySize+uint64(entry[0])+uint64(le.Uint16(entry[2:])))
		if err != nil {
			return fmt.Errorf("shared xattr %d: %w", i, err)
		}
		name, value, _, err := parseXattrEntry(entry)
		if err != nil {
			return err
		}
		rd.applyXattr(n, name, value)
	}
	return nil
}

func parseXattrEntry(p []byte) (name string, value []byte, size uint64, err error) {
	nameLen, index := uint64(p[0]), p[1]
	valueLen := uint64(binary.LittleEndian.Uint16(p[2:]))
	end := xattrEntrySize + nameLen + valueLen
	if end > uint64(len(p)) {
		return "", nil, 0, fmt.Errorf("xattr entry of %d bytes overruns its area", end)
	}
	prefix := ""
	if index != 0 {
		for _, px := range xattrPrefixes {
			if px.index == index {
				prefix = px.prefix
			}
		}
		if prefix == "" {
			return "", nil, 0, fmt.Errorf("unknown xattr name index %d", index)
		}
	}
	name = prefix + string(p[xattrEntrySize:xattrEntrySize+nameLen])
	value = append([]byte{}, p[xattrEntrySize+nameLen:end]...)
	return name, value, roundUp(end, 4), nil
}

// applyXattr turns one stored xattr back into what the tree had: overlay
// metadata becomes Payload/Digest (or Verity), escaped names are unescaped,
// whiteout markers are dropped (version 2 has none: its whiteouts are
// stored as themselves).
func (rd *reader) applyXattr(n *tree.Node, name string, value []byte) {
	isReg := n.Mode&tree.SIFMT == tree.SIFREG
	if rd.version < legacyVersion {
		switch name {
		case xattrEscWhiteout:
			if isReg {
				n.Mode = tree.SIFCHR | n.Mode&^tree.SIFMT
				n.Rdev, n.Size = 0, 0
				return
			}
		case xattrEscWhiteouts, xattrUserWhiteout, xattrUserWhiteouts:
			return
		}
	}
	switch name {
	case xattrRedirect:
		if isReg {
			n.Payload = string(bytes.TrimPrefix(value, []byte("/")))
		}
		return
	case xattrMetacopy:
		if !isReg || len(value) < metacopyHeaderSize || int(value[1]) != len(value) {
			return
		}
		s, err := verity.NewSum(verity.Algorithm(value[3]), value[metacopyHeaderSize:])
		if err != nil {
			return
		}
		if d, ok := s.Digest(); ok {
			n.Digest = &d
		} else {
			n.Verity = s
		}
		return
	}
	if len(name) >= len(overlayPrefix) && name[:len(overlayPrefix)] == overlayPrefix {
		if len(name) < len(overlayEscapePrefix) || name[:len(overlayEscapePrefix)] != overlayEscapePrefix {
			return // our own overlay xattrs (opaque, ...)
		}
		name = overlayPrefix + name[len(overlayEscapePrefix):]
	}
	for i, x := range n.Xattrs {
		if x.Key == name {
			n.Xattrs = append(n.Xattrs[:i], n.Xattrs[i+1:]...)
			break
		}
	}
	n.Xattrs = append(n.Xattrs, tree.Xattr{Key: name, Value: value})
}
