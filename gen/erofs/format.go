// Package erofs writes and reads composefs images: EROFS metadata images laid
// out exactly as mkcomposefs 1.0.8 (containers/composefs) writes them, so
// that the same tree gives the same bytes and so the same composefs digest.
package erofs

// On-disk constants of EROFS and of the composefs header in front of it.
const (
	blockSize      = 4096
	blockBits      = 12
	slotSize       = 32 // inodes start on 32-byte slots; nid = offset / 32
	superOffset    = 1024
	superSize      = 128
	composefsMagic = 0xd078629a
	composefsHdrV  = 1 // LCFS_EROFS_VERSION
	erofsMagic     = 0xe0f5e1e2
	headerFlagACL  = 1 << 0

	compactInodeSize  = 32
	extendedInodeSize = 64
	xattrHeaderSize   = 12
	xattrEntrySize    = 4
	direntSize        = 12

	featureCompatMtime       = 0x2
	featureCompatXattrFilter = 0x4

	layoutFlatPlain  = 0
	layoutFlatInline = 2
	layoutChunkBased = 4

	chunkBlkBitsMask = 0x1f
	maxChunks        = 1024 // LCFS_MAX_NONINLINE_CHUNKS
	nullAddr         = 0xffffffff

	xattrFilterBits  = 32
	xattrFilterSeed  = 0x25bbe08f
	maxSharedXattrs  = 0x80 // per inode, as the reference caps them
	maxInlineContent = 5000
)

// EROFS directory entry file types.
const (
	ftUnknown = iota
	ftRegFile
	ftDir
	ftChrdev
	ftBlkdev
	ftFifo
	ftSock
	ftSymlink
)

// xattr name prefixes EROFS stores as an index byte. mkcomposefs 1.0.8 does
// not know "lustre." (it stores such names whole, index 0); composefs-rs'
// version 2 layout uses index 5 for it.
var xattrPrefixes = []struct {
	prefix string
	index  uint8
}{
	{"user.", 1},
	{"system.posix_acl_access", 2},
	{"system.posix_acl_default", 3},
	{"trusted.", 4},
	{"lustre.", lustreIndex},
	{"security.", 6},
}

const lustreIndex = 5

// Overlay xattrs composefs adds, and the escaped forms of user-supplied ones.
const (
	overlayPrefix       = "trusted.overlay."
	overlayEscapePrefix = "trusted.overlay.overlay."
	xattrMetacopy       = "trusted.overlay.metacopy"
	xattrRedirect       = "trusted.overlay.redirect"
	xattrOpaque         = "trusted.overlay.opaque"
	xattrEscWhiteout    = "trusted.overlay.overlay.whiteout"
	xattrEscWhiteouts   = "trusted.overlay.overlay.whiteouts"
	xattrEscOpaque      = "trusted.overlay.overlay.opaque"
	xattrUserWhiteout   = "user.overlay.whiteout"
	xattrUserWhiteouts  = "user.overlay.whiteouts"
	xattrUserOpaque     = "user.overlay.opaque"
	metacopyHeaderSize  = 4 // struct ovl_metacopy before the digest
)

// legacyVersion is the composefs_version of composefs-rs' own layout (V2).
const legacyVersion = 2

// splitXattrName returns the EROFS prefix index of an xattr name and the
// rest; lustre says whether "lustre." has an index (version 2 only).
func splitXattrName(key string, lustre bool) (index uint8, suffix string) {
	for _, p := range xattrPrefixes {
		if p.index == lustreIndex && !lustre {
			continue
		}
		if len(key) >= len(p.prefix) && key[:len(p.prefix)] == p.prefix {
			return p.index, key[len(p.prefix):]
		}
	}
	return 0, key
}

func roundUp(x, align uint64) uint64 { return (x + align - 1) / align * align }
