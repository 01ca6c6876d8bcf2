package erofs_test

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"cfsboot/gen/dump"
	"cfsboot/gen/erofs"
	"cfsboot/gen/tree"
	"cfsboot/verity"
)

// The two trees of composefs-rs' crates/composefs/tests/mkfs.rs: an empty
// root (mode 0755, everything else zero) and one holding one leaf of each
// kind, all with mode bits 0, uid/gid 0, mtime 0.
func rsEmpty() *tree.Node { return &tree.Node{Mode: tree.SIFDIR | 0o755} }

func rsSimple(t testing.TB) *tree.Node {
	root := rsEmpty()
	ext, err := verity.ParseDigest(strings.Repeat("5a", 32))
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []*tree.Node{
		{Name: "fifo", Mode: tree.SIFIFO},
		{Name: "regular-inline", Mode: tree.SIFREG, Size: 4, Content: []byte("hihi")},
		{Name: "regular-external", Mode: tree.SIFREG, Size: 1234, Digest: &ext, Payload: tree.ObjectPath(ext)},
		{Name: "chrdev", Mode: tree.SIFCHR, Rdev: 123},
		{Name: "blkdev", Mode: tree.SIFBLK, Rdev: 123},
		{Name: "socket", Mode: tree.SIFSOCK},
		{Name: "symlink", Mode: tree.SIFLNK, Payload: "/target"},
	} {
		n.Nlink = 1
		if err := root.AddChild(n); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// TestComposefsRsDigests: our three formats give exactly the images whose
// fs-verity digests composefs-rs pins in test_erofs_digest_stability (V0
// and V1 there are also checked byte for byte against mkcomposefs).
func TestComposefsRsDigests(t *testing.T) {
	for _, c := range []struct {
		name   string
		format erofs.Format
		tree   *tree.Node
		want   string
	}{
		{"empty_v0", erofs.FormatV0, rsEmpty(), "8f589e8f57ecb88823736b0d857ddca1e1068a23e264fad164b28f7038eb3682"},
		{"simple_v0", erofs.FormatV0, rsSimple(t), "9f3f5620ee0c54708516467d0d58741e7963047c7106b245d94c298259d0fa01"},
		{"empty_v1", erofs.FormatV1, rsEmpty(), "14a26c957c84f6eb774b91205476adc13196c7c33b9dd97d08d43725ecb90b63"},
		{"simple_v1", erofs.FormatV1, rsSimple(t), "ad6db6427568a1e4fdc772cbab7b6063f5eb4b33cb62982a740ba9213e5962b5"},
		{"empty_v2", erofs.FormatV2, rsEmpty(), "086b702a519b57d6ef5aea6f8b3f2be24355cd1fb835cd80fb4e3d388b24d5a5"},
		{"simple_v2", erofs.FormatV2, rsSimple(t), "a8fcd41f8b313bede69f462f2af0a38d64b99a6333f5df884ea9ab4037fac722"},
	} {
		img, err := erofs.Build(c.tree, c.format.Options())
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if got := verity.ComputeBytes(img).String(); got != c.want {
			t.Errorf("%s: fs-verity digest %s, composefs-rs pins %s", c.name, got, c.want)
		}
	}
}

// TestComposefsRsSnapshotLayout checks the V2 images field by field
// against composefs-rs' snapshot dumps (tests/snapshots/mkfs__*.snap):
// where each inode sits, what it says, and the image size.
func TestComposefsRsSnapshotLayout(t *testing.T) {
	img, err := erofs.Build(rsEmpty(), erofs.FormatV2.Options())
	if err != nil {
		t.Fatal(err)
	}
	if len(img) != 4096 || le32(img, 12) != 2 || le16(img, 0x40e) != 36 || le64(img, 0x410) != 1 || le32(img, 0x424) != 1 {
		t.Errorf("empty: size %d, composefs_version %d, root nid %d, inos %d, blocks %d; snapshot: 4096, 2, 36, 1, 1",
			len(img), le32(img, 12), le16(img, 0x40e), le64(img, 0x410), le32(img, 0x424))
	}
	// Root at 0x480: extended, flat inline, 27 bytes of entries, ino 36, nlink 2.
	checkInode(t, img, "empty /", 0x480, 5, 0o40755, 27, 0, 36, 2)

	img, err = erofs.Build(rsSimple(t), erofs.FormatV2.Options())
	if err != nil {
		t.Fatal(err)
	}
	if len(img) != 4096 || le64(img, 0x410) != 8 {
		t.Errorf("simple: size %d, inos %d; snapshot: 4096, 8", len(img), le64(img, 0x410))
	}
	for _, c := range []struct {
		name                  string
		off                   int
		format, mode          uint16
		size                  uint64
		u, ino, nlink, icount uint32
	}{
		{"/", 0x480, 5, 0o40755, 170, 0, 36, 2, 0},
		{"/blkdev", 0x580, 1, 0o60000, 0, 123, 44, 1, 0},
		{"/chrdev", 0x5c0, 1, 0o20000, 0, 123, 46, 1, 0},
		{"/fifo", 0x600, 1, 0o10000, 0, 0, 48, 1, 0},
		{"/regular-external", 0x640, 9, 0o100000, 1234, 31, 50, 1, 37},
		{"/regular-inline", 0x720, 5, 0o100000, 4, 0, 57, 1, 0},
		{"/socket", 0x780, 1, 0o140000, 0, 0, 60, 1, 0},
		{"/symlink", 0x7c0, 5, 0o120000, 7, 0, 62, 1, 0},
	} {
		checkInode(t, img, c.name, c.off, c.format, c.mode, c.size, c.u, c.ino, c.nlink)
		if got := uint32(le16(img, c.off+2)); got != c.icount {
			t.Errorf("%s: xattr_icount %d, snapshot %d", c.name, got, c.icount)
		}
	}
	// The external file's xattrs: filter, metacopy (sha256), redirect, then
	// its one null chunk index (the snapshot's hexdump row +0xd0, column 12).
	ext := 0x640
	if le32(img, ext+0x40) != 2147352575 {
		t.Errorf("name_filter %d, snapshot 2147352575", le32(img, ext+0x40))
	}
	meta := append([]byte{0, 36, 0, 1}, bytes.Repeat([]byte{0x5a}, 32)...)
	if !bytes.Equal(img[ext+0x4c+4+16:ext+0x4c+4+16+36], meta) || string(img[ext+0x4c+4:ext+0x4c+4+16]) != "overlay.metacopy" {
		t.Errorf("metacopy xattr at +0x4c differs from the snapshot")
	}
	if string(img[ext+0x84+4:ext+0x84+4+16]) != "overlay.redirect" || string(img[ext+0x84+20:ext+0x84+20+66]) != "/5a/"+strings.Repeat("5a", 31) {
		t.Errorf("redirect xattr at +0x84 differs from the snapshot")
	}
	if le32(img, ext+0xdc) != 0xffffffff {
		t.Errorf("null chunk index at +0xdc: %#x", le32(img, ext+0xdc))
	}
	if string(img[0x720+0x40:0x720+0x44]) != "hihi" || string(img[0x7c0+0x40:0x7c0+0x47]) != "/target" {
		t.Errorf("inline data differs from the snapshot")
	}
}

func checkInode(t *testing.T, img []byte, name string, off int, format, mode uint16, size uint64, u, ino, nlink uint32) {
	t.Helper()
	got := []uint64{uint64(le16(img, off)), uint64(le16(img, off+4)), le64(img, off+8), uint64(le32(img, off+0x10)), uint64(le32(img, off+0x14)), uint64(le32(img, off+0x2c))}
	want := []uint64{uint64(format), uint64(mode), size, uint64(u), uint64(ino), uint64(nlink)}
	for i, field := range []string{"format", "mode", "size", "u", "ino", "nlink"} {
		if got[i] != want[i] {
			t.Errorf("%s at %#x: %s %#o, snapshot %#o", name, off, field, got[i], want[i])
		}
	}
}

func le16(b []byte, off int) uint16 { return uint16(b[off]) | uint16(b[off+1])<<8 }
func le32(b []byte, off int) uint32 { return uint32(le16(b, off)) | uint32(le16(b, off+2))<<16 }
func le64(b []byte, off int) uint64 { return uint64(le32(b, off)) | uint64(le32(b, off+4))<<32 }

// TestComposefsRsSpecialV1: composefs-rs' special_v1.dump (the reference's,
// without the inline-large entries it refuses) written as V1 has the digest
// composefs-rs pins and checks against mkcomposefs --min-version=1.
func TestComposefsRsSpecialV1(t *testing.T) {
	raw, err := os.ReadFile("../../../shared/composefs-tests/special_v1.dump")
	if err != nil {
		t.Skipf("no conformance vectors beside the repository: %v", err)
	}
	var trimmed bytes.Buffer
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if !strings.HasPrefix(sc.Text(), "/inline-large") {
			trimmed.WriteString(sc.Text() + "\n")
		}
	}
	root, err := dump.Parse(&trimmed, dump.Options{Strict: true})
	if err != nil {
		t.Fatal(err)
	}
	img, err := erofs.Build(root, erofs.FormatV1.Options())
	if err != nil {
		t.Fatal(err)
	}
	if got, want := verity.ComputeBytes(img).String(), "b1c78c25db8638be5b9b483472d32ee9624d8d32ded626a91cd536116e8df97c"; got != want {
		t.Errorf("fs-verity digest %s, composefs-rs pins %s", got, want)
	}
}

func TestParseFormat(t *testing.T) {
	for _, f := range erofs.Formats {
		var g erofs.Format
		if err := g.Set(f.String()); err != nil || g != f {
			t.Errorf("%s: %v %v", f, g, err)
		}
	}
	for _, bad := range []string{"", "v3", "V1", "1", "v01"} {
		if _, err := erofs.ParseFormat(bad); err == nil {
			t.Errorf("ParseFormat(%q) accepted", bad)
		}
	}
	if _, err := erofs.Build(rsEmpty(), erofs.Options{MinVersion: 1, MaxVersion: 2}); err == nil {
		t.Error("min 1, max 2 accepted: version 2 is never reached by raising")
	}
}

// TestFsckAllFormats: fsck.erofs accepts every format of a tree with
// whiteouts, hard links, shared xattrs, big directories and both digest
// algorithms.
func TestFsckAllFormats(t *testing.T) {
	fsck, err := exec.LookPath("fsck.erofs")
	if err != nil {
		t.Skip("fsck.erofs (Debian package erofs-utils) not installed")
	}
	for _, f := range erofs.Formats {
		for name, root := range map[string]*tree.Node{"simple": rsSimple(t), "rich": richTree(t)} {
			img, err := erofs.Build(root, f.Options())
			if err != nil {
				t.Fatalf("%s %s: %v", f, name, err)
			}
			path := filepath.Join(t.TempDir(), "img")
			if err := os.WriteFile(path, img, 0o644); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command(fsck, "--extract", path).CombinedOutput(); err != nil {
				t.Errorf("%s %s: fsck.erofs: %v\n%s", f, name, err, out)
			}
		}
	}
}

// richTree has what the simple tree lacks: nested and large directories,
// hard links, a whiteout, user and overlay xattrs shared between files, a
// long symlink, and files named by SHA-256 and SHA-512 digests.
func richTree(t testing.TB) *tree.Node {
	var b strings.Builder
	b.WriteString("/ 0 40755 2 0 0 0 100.5 - - - security.selinux=root\n")
	b.WriteString("/big 0 40755 2 1000 1000 0 200.0 - - -\n")
	for i := 0; i < 300; i++ {
		b.WriteString("/big/entry-with-a-long-name-" + strings.Repeat("x", i%40) + "-" + strconv.Itoa(i) + " 5 100644 1 0 0 0 100.5 - hello - user.same=1\n")
	}
	b.WriteString("/d 0 40700 2 0 0 0 100.5 - - - trusted.overlay.opaque=y user.same=1\n")
	b.WriteString("/d/wh 0 20000 1 0 0 0 100.5 - - -\n")
	b.WriteString("/d/ext256 9000 100644 2 0 0 0 100.5 ab/" + strings.Repeat("c", 62) + " - ab" + strings.Repeat("c", 62) + " user.same=1\n")
	b.WriteString("/d/ext512 70000 100644 1 0 0 0 100.5 cd/" + strings.Repeat("e", 126) + " - cd" + strings.Repeat("e", 126) + " lustre.x=1\n")
	b.WriteString("/d/link 9000 @100644 2 0 0 0 100.5 /d/ext256 - -\n")
	b.WriteString("/l 4000 120777 1 0 0 0 100.5 " + strings.Repeat("t", 4000) + " - -\n")
	root, err := dump.Parse(strings.NewReader(b.String()), dump.Options{Strict: true})
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// TestRoundTripAllFormats: reading an image of any format gives back a tree
// (whiteouts, hard links, xattrs, SHA-256 and SHA-512 digests) that builds
// the same bytes again, and its dump names the SHA-512 object by 128 hex
// digits.
func TestRoundTripAllFormats(t *testing.T) {
	for _, f := range erofs.Formats {
		img, err := erofs.Build(richTree(t), f.Options())
		if err != nil {
			t.Fatal(err)
		}
		back, err := erofs.Read(bytes.NewReader(img), int64(len(img)))
		if err != nil {
			t.Fatalf("%s: read: %v", f, err)
		}
		var text bytes.Buffer
		if err := dump.Write(&text, back); err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"/d/ext512 70000 100644 1 0 0 0 100.", " cd/" + strings.Repeat("e", 126) + " - cd" + strings.Repeat("e", 126), "/d/wh 0 20000 1", "lustre.x=1"} {
			if !strings.Contains(text.String(), want) {
				t.Errorf("%s: dump lacks %q:\n%s", f, want, text.String())
			}
		}
		again, err := erofs.Build(back, f.Options())
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(img, again) {
			t.Errorf("%s: image -> tree -> image changed the bytes (%d vs %d)", f, len(img), len(again))
		}
	}
}
