// Package oci imports OCI container images as composefs trees. It applies
// the image's layers in order as the OCI image layer spec says, keeps only
// the tree's metadata in memory and streams every file's content into an
// ObjectSink (a store, or DigestOnly); files of at most 64 bytes are inlined
// as directory sources inline them.
//
// What a layer does to the tree:
//   - An entry replaces what was at its path; a directory over a directory
//     keeps the children and takes the new metadata. Type, permission bits
//     (with setuid, setgid, sticky), owner, mtime (with PAX nanoseconds),
//     device numbers and SCHILY.xattr.* PAX records become the inode's
//     metadata; an empty PAX xattr record unsets it (POSIX pax).
//   - ".wh.NAME" removes NAME from lower layers, ".wh..wh..opq" removes
//     every lower-layer entry of its directory. Whiteouts never hide what
//     their own layer wrote, whatever the order inside the layer; a whiteout
//     of a path that does not exist hides nothing.
//   - A hard link names an inode an earlier entry (of this or a lower layer)
//     made; the names share the inode (one node, the others LinkTo it, with
//     the link count set) and it survives removal of the first name.
//   - Parents an entry needs and no entry made are 0755 root directories
//     with mtime 0, as is the root when no layer has a "./" entry.
//
// What is refused, with an *EntryError naming the layer and the entry:
// absolute names, ".." components, names or components past PATH_MAX or
// NAME_MAX, writes through a symlink or a non-directory ("a -> /etc" then
// "a/passwd"), hard links to missing, later, directory or root entries or
// through symlinks, two entries for one path in a layer, a non-directory
// over a directory its layer wrote into, whiteout names used as directories
// or on non-regular entries, AUFS ".wh..wh." metadata, unknown entry types
// (old GNU sparse files among them) and PAX sparse files (archive/tar
// would expand their holes past the limits), symlink targets past 4095 bytes, xattrs past
// the kernel's limits. archive/tar refuses PAX and GNU headers past 1 MiB.
//
// What is refused for the layer as a whole: a blob that does not hash to
// the manifest's digest, an uncompressed stream that does not hash to the
// config's diff ID (both checked to the last byte, padding included), a
// layer expanding past Limits (gzip and zstd bombs), a missing blob, and a
// manifest or config that does not match its own digest. Any error means
// the caller commits no image; objects already in the sink are left to
// garbage collection.
//
// Transform (TransformOCI, TransformBoot) applies composefs-rs's and bootc's
// changes to the finished tree; FindBootArtefacts reports the kernels,
// initrds and UKIs an image carries.
package oci
