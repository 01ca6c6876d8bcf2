package mount_test

import (
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"cfsboot/gen/dump"
	"cfsboot/gen/erofs"
	"cfsboot/gen/tree"
	"cfsboot/internal/conformance"
	"cfsboot/mount"
)

// TestKernelReadsConformanceImages mounts the image of every reference
// conformance vector with the kernel's EROFS driver, checks it with
// fsck.erofs, and compares what the kernel shows with what our reader
// makes of the same bytes.
func TestKernelReadsConformanceImages(t *testing.T) {
	requireRoot(t)
	for _, v := range conformance.ForTest(t) {
		if v.ShouldFail {
			continue
		}
		t.Run(v.Name, func(t *testing.T) {
			root, err := dump.Parse(bytes.NewReader(v.Dump), dump.Options{})
			if err != nil {
				t.Fatal(err)
			}
			img, err := erofs.Build(root, erofs.DefaultOptions())
			if err != nil {
				t.Fatal(err)
			}
			imgPath := filepath.Join(t.TempDir(), "image")
			os.WriteFile(imgPath, img, 0o644)
			if out, err := exec.Command("fsck.erofs", imgPath).CombinedOutput(); err != nil {
				t.Errorf("fsck.erofs: %v\n%s", err, out)
			}
			ours, err := erofs.Read(bytes.NewReader(img), int64(len(img)))
			if err != nil {
				t.Fatal(err)
			}
			f, _ := os.Open(imgPath)
			defer f.Close()
			mnt := t.TempDir()
			if err := mount.EROFS(int(f.Fd()), mnt); err != nil {
				t.Fatal(err)
			}
			defer unix.Unmount(mnt, unix.MNT_DETACH)
			compareWithKernel(t, ours, mnt)
		})
	}
}

func compareWithKernel(t *testing.T, ours *tree.Node, mnt string) {
	t.Helper()
	want := map[string]*tree.Node{}
	ours.Walk(func(n *tree.Node) error {
		want[n.Path()] = n.Target()
		return nil
	})
	seen := 0
	filepath.WalkDir(mnt, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			t.Errorf("walking the mounted image: %v", err)
			return nil
		}
		rel := "/" + strings.TrimPrefix(strings.TrimPrefix(p, mnt), "/")
		var st unix.Stat_t
		unix.Lstat(p, &st)
		n := want[rel]
		if n == nil {
			// The root's overlay whiteouts (char 0:0) are ours, not the tree's.
			if filepath.Dir(rel) == "/" && st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == 0 {
				return nil
			}
			t.Errorf("%s: shown by the kernel, not in the tree", rel)
			return nil
		}
		seen++
		mode := n.Mode
		if mode&tree.SIFMT == tree.SIFCHR && n.Rdev == 0 {
			mode = tree.SIFREG | mode&^tree.SIFMT // escaped whiteouts are stored as files
		}
		if uint32(st.Mode)&0o177777 != mode&0o177777 || st.Uid != n.UID || st.Gid != n.GID {
			t.Errorf("%s: kernel mode %o uid %d gid %d, tree %o %d %d", rel, st.Mode, st.Uid, st.Gid, mode, n.UID, n.GID)
		}
		switch mode & tree.SIFMT {
		case tree.SIFLNK:
			if target, _ := os.Readlink(p); target != n.Payload {
				t.Errorf("%s: kernel symlink %q, tree %q", rel, target, n.Payload)
			}
		case tree.SIFREG:
			if n.Content != nil {
				if data, err := os.ReadFile(p); err != nil || !bytes.Equal(data, n.Content) {
					t.Errorf("%s: kernel content differs (%v)", rel, err)
				}
			}
		}
		return nil
	})
	if seen != len(want) {
		t.Errorf("kernel shows %d of the tree's %d entries", seen, len(want))
	}
}
