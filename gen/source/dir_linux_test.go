package source_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"cfsboot/gen/erofs"
	"cfsboot/gen/source"
)

// makeTree builds a deterministic tree with every file type, inline and
// external files, xattrs (shared, escaped overlay ones), a whiteout, a hard
// link, ids and mtimes that force extended inodes, and a directory spanning
// several blocks. It needs root (devices, ownership, trusted.* xattrs).
func makeTree(t *testing.T) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), "root")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	file := func(name string, size int, mode os.FileMode) {
		data := make([]byte, size)
		for i := range data {
			data[i] = byte(i*7 + len(name))
		}
		must(os.WriteFile(filepath.Join(root, name), data, mode))
		must(os.Chmod(filepath.Join(root, name), mode))
	}
	must(os.MkdirAll(filepath.Join(root, "sub", "deeper"), 0o755))
	must(os.Mkdir(filepath.Join(root, "opaque"), 0o700))
	file("empty", 0, 0o644)
	file("small", 10, 0o644)
	file("exact64", 64, 0o600)
	file("over64", 65, 0o644)
	file("big", 100<<10, 0o755)
	file("sub/deeper/nested", 5000, 0o644)
	must(os.Link(filepath.Join(root, "big"), filepath.Join(root, "hardlink")))
	must(os.Symlink("small", filepath.Join(root, "link")))
	must(os.Symlink(strings.Repeat("long/", 60)+"target", filepath.Join(root, "longlink")))
	must(unix.Mkfifo(filepath.Join(root, "fifo"), 0o644))
	must(unix.Mknod(filepath.Join(root, "null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
	must(unix.Mknod(filepath.Join(root, "loop0"), unix.S_IFBLK|0o660, int(unix.Mkdev(7, 0))))
	must(unix.Mknod(filepath.Join(root, "whiteout"), unix.S_IFCHR|0o000, 0))
	must(unix.Mknod(filepath.Join(root, "sock"), unix.S_IFSOCK|0o755, 0))
	for i := 0; i < 300; i++ {
		file(fmt.Sprintf("sub/entry-with-a-rather-long-name-%04d", i), i%3, 0o644)
	}
	must(unix.Setxattr(filepath.Join(root, "small"), "user.note", []byte("hello"), 0))
	must(unix.Setxattr(filepath.Join(root, "small"), "user.shared", []byte("same"), 0))
	must(unix.Setxattr(filepath.Join(root, "big"), "user.shared", []byte("same"), 0))
	must(unix.Setxattr(filepath.Join(root, "opaque"), "trusted.overlay.opaque", []byte("y"), 0))
	must(unix.Setxattr(filepath.Join(root, "over64"), "security.test", []byte{0, 1, 2}, 0))
	must(os.Lchown(filepath.Join(root, "over64"), 1000, 1000))
	must(os.Lchown(filepath.Join(root, "exact64"), 70000, 70001))
	// Fixed mtimes, deepest first so a parent's is not bumped afterwards.
	var paths []string
	must(filepath.Walk(root, func(p string, _ os.FileInfo, err error) error {
		paths = append(paths, p)
		return err
	}))
	for i := len(paths) - 1; i >= 0; i-- {
		ts := unix.NsecToTimespec(1700000000_500000000)
		if filepath.Base(paths[i]) == "over64" {
			ts = unix.NsecToTimespec(1800000000_000000123)
		}
		must(unix.UtimesNanoAt(unix.AT_FDCWD, paths[i], []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW))
	}
	must(os.Chown(root, 0, 0))
	return root
}

// goldenImageSHA256 is the SHA-256 of the image `mkcomposefs` 1.0.8 writes
// for makeTree's tree, computed once with a local build of the reference. To
// regenerate: CFSBOOT_KEEP_TREE=/tmp/t go test -run TestDirMatches, then
// `mkcomposefs /tmp/t img && sha256sum img`.
const goldenImageSHA256 = "12c7900ceac48e4f307498abf8a36fd1d1861e7ba17dc2faf7baf9b0e03976a0"

func TestDirMatchesMkcomposefs(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the reference tree has devices, other owners and trusted.* xattrs")
	}
	root := makeTree(t)
	tr, err := source.Dir(root, source.Options{})
	if err != nil {
		t.Fatal(err)
	}
	img, err := erofs.Build(tr, erofs.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	if keep := os.Getenv("CFSBOOT_KEEP_TREE"); keep != "" {
		if err := os.Rename(root, keep); err != nil {
			t.Fatal(err)
		}
	}
	sum := sha256.Sum256(img)
	if got := hex.EncodeToString(sum[:]); got != goldenImageSHA256 {
		t.Fatalf("image sha256 %s, mkcomposefs 1.0.8 gives %s", got, goldenImageSHA256)
	}
}

func TestDirErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := source.Dir(filepath.Join(dir, "missing"), source.Options{}); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("missing source: %v", err)
	}
	f := filepath.Join(dir, "file")
	if err := os.WriteFile(f, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := source.Dir(f, source.Options{}); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("file as source: %v", err)
	}
	if os.Geteuid() != 0 {
		unreadable := filepath.Join(dir, "tree")
		if err := os.MkdirAll(unreadable, 0o755); err != nil {
			t.Fatal(err)
		}
		secret := filepath.Join(unreadable, "secret")
		if err := os.WriteFile(secret, []byte("x"), 0o000); err != nil {
			t.Fatal(err)
		}
		if _, err := source.Dir(unreadable, source.Options{}); err == nil || !strings.Contains(err.Error(), "secret") {
			t.Errorf("unreadable file: %v", err)
		}
	}
	if _, err := source.Dir(dir, source.Options{SkipXattrs: true, UserXattrs: true}); err == nil {
		t.Error("conflicting options accepted")
	}
}

// TestDirRecordsSymlinksWithoutFollowing: loops and links pointing out of
// the tree are stored as symlinks; nothing outside the tree is read.
func TestDirRecordsSymlinksWithoutFollowing(t *testing.T) {
	dir := t.TempDir()
	for name, target := range map[string]string{"a": "b", "b": "a", "self": "self", "escape": "../../../../etc/passwd", "abs": "/etc/shadow"} {
		if err := os.Symlink(target, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	root, err := source.Dir(dir, source.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for name, target := range map[string]string{"a": "b", "self": "self", "escape": "../../../../etc/passwd", "abs": "/etc/shadow"} {
		n := root.Lookup(name)
		if n == nil || n.Mode&unix.S_IFMT != unix.S_IFLNK || n.Payload != target || n.Content != nil || n.Source != "" {
			t.Errorf("%s: %+v", name, n)
		}
	}
}

// Directories are listed on several goroutines; the image is the same as
// when one lists them all.
func TestParallelWalkSameImage(t *testing.T) {
	root := t.TempDir()
	for i := 0; i < 40; i++ {
		dir := filepath.Join(root, fmt.Sprintf("d%02d", i%7), fmt.Sprintf("e%02d", i))
		if err := os.MkdirAll(filepath.Join(dir, "deeper"), 0o755); err != nil {
			t.Fatal(err)
		}
		for j := 0; j < 5; j++ {
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%d", j)), []byte(strings.Repeat("x", i*100+j)), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	image := func(procs int) []byte {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
		tr, err := source.Dir(root, source.Options{UseEpoch: true})
		if err != nil {
			t.Fatal(err)
		}
		img, err := erofs.Build(tr, erofs.DefaultOptions())
		if err != nil {
			t.Fatal(err)
		}
		return img
	}
	want := image(1)
	for i := 0; i < 5; i++ {
		if got := image(4); !bytes.Equal(got, want) {
			t.Fatal("the image of a tree listed on 4 goroutines differs from one listed on 1")
		}
	}
}
